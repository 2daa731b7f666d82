import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { badRequest, conflict, notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, GroupTypeRow } from '../db/schema.ts';

export interface GroupType {
  id: string;
  name: string;
  description: string | null;
  isPublic: boolean;
  groupSpecs: Record<string, string>;
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const isUuidLike = (s: string) => UUID.test(s);

/** Upstream's GroupTypeNotFound / GroupTypeNotFoundByName. */
export const groupTypeNotFound = (id: string) => notFound(`Group type ${id} could not be found.`);
const groupTypeNotFoundByName = (name: string) => notFound(`Group type with name ${name} could not be found.`);

/**
 * Group types (3.11) with group_specs. A private type is seen by admins only:
 * upstream keeps a group type access table but no API fills it.
 */
export class GroupTypes {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  private async hydrate(row: GroupTypeRow): Promise<GroupType> {
    const specs = await this.db.selectFrom('group_type_specs').selectAll().where('group_type_id', '=', row.id).execute();
    return { id: row.id, name: row.name, description: row.description, isPublic: row.is_public === 1, groupSpecs: Object.fromEntries(specs.map((s) => [s.key, s.value])) };
  }

  private live() {
    return this.db.selectFrom('group_types').selectAll().where('deleted', '=', 0);
  }

  async get(id: string, isAdmin: boolean): Promise<GroupType> {
    const row = await this.live().where('id', '=', id).executeTakeFirst();
    if (!row || (!isAdmin && row.is_public !== 1)) throw groupTypeNotFound(id);
    return this.hydrate(row);
  }

  async byName(name: string, isAdmin: boolean): Promise<GroupType> {
    const row = await this.live().where('name', '=', name).executeTakeFirst();
    if (!row || (!isAdmin && row.is_public !== 1)) throw groupTypeNotFoundByName(name);
    return this.hydrate(row);
  }

  /** As upstream's group create: a name unless uuid-like, then an id, then a uuid-like name. */
  async resolve(idOrName: string, isAdmin: boolean): Promise<GroupType> {
    if (!isUuidLike(idOrName)) return this.byName(idOrName, isAdmin);
    return this.get(idOrName, isAdmin).catch(() => this.byName(idOrName, isAdmin).catch(() => Promise.reject(groupTypeNotFound(idOrName))));
  }

  async list(opts: { isAdmin: boolean; isPublic?: boolean }): Promise<GroupType[]> {
    let q = this.live().orderBy('created_at', 'desc').orderBy('id', 'desc');
    // Non-admins see public types only; an admin sees both unless is_public narrows it (upstream's _parse_is_public).
    const pub = opts.isAdmin ? opts.isPublic : true;
    if (pub !== undefined) q = q.where('is_public', '=', pub ? 1 : 0);
    return Promise.all((await q.execute()).map((r) => this.hydrate(r)));
  }

  async create(input: { name: string; description: string | null; isPublic: boolean; specs: Record<string, string> }): Promise<GroupType> {
    if (await this.live().where('name', '=', input.name).executeTakeFirst()) throw conflict(`Group Type ${input.name} already exists.`);
    const id = this.ids.uuid();
    await this.db.insertInto('group_types').values({ id, name: input.name, description: input.description, is_public: input.isPublic ? 1 : 0, created_at: this.clock.now(), updated_at: null, deleted: 0, deleted_at: null }).execute();
    await this.setSpecs(id, input.specs);
    return this.get(id, true);
  }

  async update(id: string, patch: { name?: string; description?: string | null; isPublic?: boolean }): Promise<GroupType> {
    const t = await this.get(id, true);
    if (patch.name !== undefined && patch.name !== t.name && (await this.live().where('name', '=', patch.name).executeTakeFirst())) throw conflict(`Group Type ${id} already exists.`);
    const set: Partial<GroupTypeRow> = { updated_at: this.clock.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.isPublic !== undefined) set.is_public = patch.isPublic ? 1 : 0;
    await this.db.updateTable('group_types').set(set).where('id', '=', id).execute();
    return this.get(id, true);
  }

  async delete(id: string): Promise<GroupType> {
    const t = await this.get(id, true);
    const used = await this.db.selectFrom('groups').select('id').where('group_type_id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (used) throw badRequest('Target group type is still in use.');
    await this.db.updateTable('group_types').set({ deleted: 1, deleted_at: this.clock.now() }).where('id', '=', id).execute();
    return t;
  }

  async setSpecs(id: string, specs: Record<string, string>): Promise<void> {
    for (const [key, value] of Object.entries(specs)) {
      await this.db.deleteFrom('group_type_specs').where('group_type_id', '=', id).where('key', '=', key).execute();
      await this.db.insertInto('group_type_specs').values({ group_type_id: id, key, value }).execute();
    }
  }

  async deleteSpec(id: string, key: string): Promise<void> {
    const r = await this.db.deleteFrom('group_type_specs').where('group_type_id', '=', id).where('key', '=', key).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw notFound(`Group Type ${id} has no specs with key ${key}.`);
  }
}
