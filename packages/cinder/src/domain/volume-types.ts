import type { Kysely } from 'kysely';
import type { IdSource } from '@onestack/core/ids.ts';
import type { Clock } from '@onestack/core/clock.ts';
import { conflict } from '@onestack/core/errors.ts';
import type { CinderDB, VolumeTypeRow } from '../db/schema.ts';
import { typeNotFound } from './errors.ts';

export const DEFAULT_TYPE_NAME = '__DEFAULT__';

export interface VolumeType {
  id: string;
  name: string;
  description: string | null;
  isPublic: boolean;
  extraSpecs: Record<string, string>;
}

/** Volume types with extra specs and private-type access; `__DEFAULT__` exists from the start, as upstream's migration makes it. */
export class VolumeTypes {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  async ensureDefault(): Promise<void> {
    const row = await this.db.selectFrom('volume_types').select('id').where('name', '=', DEFAULT_TYPE_NAME).where('deleted', '=', 0).executeTakeFirst();
    if (row) return;
    await this.db
      .insertInto('volume_types')
      .values({ id: this.ids.uuid(), name: DEFAULT_TYPE_NAME, description: 'Default Volume Type', is_public: 1, created_at: this.clock.now(), updated_at: null, deleted: 0, deleted_at: null })
      .execute();
  }

  private async hydrate(row: VolumeTypeRow): Promise<VolumeType> {
    const specs = await this.db.selectFrom('volume_type_extra_specs').selectAll().where('volume_type_id', '=', row.id).execute();
    return { id: row.id, name: row.name, description: row.description, isPublic: row.is_public === 1, extraSpecs: Object.fromEntries(specs.map((s) => [s.key, s.value])) };
  }

  /** By id or name, as upstream's get_by_name_or_id; a private type only for admins or projects with access. */
  async find(idOrName: string, projectId?: string, isAdmin = true): Promise<VolumeType> {
    const row =
      (await this.db.selectFrom('volume_types').selectAll().where('id', '=', idOrName).where('deleted', '=', 0).executeTakeFirst()) ??
      (await this.db.selectFrom('volume_types').selectAll().where('name', '=', idOrName).where('deleted', '=', 0).executeTakeFirst());
    if (!row || !(await this.visible(row, projectId, isAdmin))) throw typeNotFound(idOrName);
    return this.hydrate(row);
  }

  private async visible(row: VolumeTypeRow, projectId: string | undefined, isAdmin: boolean): Promise<boolean> {
    if (row.is_public === 1 || isAdmin) return true;
    if (!projectId) return false;
    return !!(await this.db.selectFrom('volume_type_projects').select('project_id').where('volume_type_id', '=', row.id).where('project_id', '=', projectId).executeTakeFirst());
  }

  async list(projectId: string | undefined, isAdmin: boolean): Promise<VolumeType[]> {
    const rows = await this.db.selectFrom('volume_types').selectAll().where('deleted', '=', 0).orderBy('name').execute();
    const out: VolumeType[] = [];
    for (const row of rows) if (await this.visible(row, projectId, isAdmin)) out.push(await this.hydrate(row));
    return out;
  }

  async create(input: { name: string; description?: string | null; isPublic: boolean; extraSpecs: Record<string, string> }): Promise<VolumeType> {
    const dup = await this.db.selectFrom('volume_types').select('id').where('name', '=', input.name).where('deleted', '=', 0).executeTakeFirst();
    if (dup) throw conflict(`Volume Type ${input.name} already exists.`);
    const id = this.ids.uuid();
    await this.db
      .insertInto('volume_types')
      .values({ id, name: input.name, description: input.description ?? null, is_public: input.isPublic ? 1 : 0, created_at: this.clock.now(), updated_at: null, deleted: 0, deleted_at: null })
      .execute();
    await this.setSpecs(id, input.extraSpecs);
    return this.find(id);
  }

  async update(id: string, patch: { name?: string; description?: string | null; isPublic?: boolean }): Promise<VolumeType> {
    await this.find(id);
    const set: Partial<VolumeTypeRow> = { updated_at: this.clock.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.isPublic !== undefined) set.is_public = patch.isPublic ? 1 : 0;
    await this.db.updateTable('volume_types').set(set).where('id', '=', id).execute();
    return this.find(id);
  }

  async delete(id: string): Promise<void> {
    const t = await this.find(id);
    if (t.name === DEFAULT_TYPE_NAME) throw conflict('Default volume type can not be deleted.');
    const used = await this.db.selectFrom('volumes').select('id').where('volume_type_id', '=', t.id).where('deleted', '=', 0).executeTakeFirst();
    if (used) throw conflict(`Target volume type is still in use. Volume Type ${t.id} deletion is not allowed with volumes present with the type.`);
    await this.db.updateTable('volume_types').set({ deleted: 1, deleted_at: this.clock.now() }).where('id', '=', t.id).execute();
  }

  async setSpecs(id: string, specs: Record<string, string>): Promise<void> {
    for (const [key, value] of Object.entries(specs)) {
      await this.db.deleteFrom('volume_type_extra_specs').where('volume_type_id', '=', id).where('key', '=', key).execute();
      await this.db.insertInto('volume_type_extra_specs').values({ volume_type_id: id, key, value }).execute();
    }
  }

  async deleteSpec(id: string, key: string): Promise<boolean> {
    const r = await this.db.deleteFrom('volume_type_extra_specs').where('volume_type_id', '=', id).where('key', '=', key).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async addAccess(id: string, projectId: string): Promise<void> {
    await this.db.deleteFrom('volume_type_projects').where('volume_type_id', '=', id).where('project_id', '=', projectId).execute();
    await this.db.insertInto('volume_type_projects').values({ volume_type_id: id, project_id: projectId }).execute();
  }

  async removeAccess(id: string, projectId: string): Promise<void> {
    await this.db.deleteFrom('volume_type_projects').where('volume_type_id', '=', id).where('project_id', '=', projectId).execute();
  }

  async access(id: string): Promise<string[]> {
    return (await this.db.selectFrom('volume_type_projects').select('project_id').where('volume_type_id', '=', id).execute()).map((r) => r.project_id);
  }
}
