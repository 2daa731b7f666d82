import type { Clock } from '@onestack/core/clock.ts';
import { isUniqueViolation, withTransaction, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { MigrationRow, NovaDB } from '../db/schema.ts';

export type Migration = MigrationRow;

export interface MigrationFilters {
  status?: string;
  host?: string;
  sourceCompute?: string;
  migrationType?: string;
  instanceUuid?: string;
  projectId?: string;
  userId?: string;
  changesSince?: number;
  changesBefore?: number;
}

/** Migration records (upstream's nova.objects.Migration): one per resize or cold migrate. */
export class Migrations {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  async create(m: Omit<MigrationRow, 'id' | 'uuid' | 'created_at' | 'updated_at'>): Promise<Migration> {
    const uuid = this.ids.uuid();
    for (;;) {
      try {
        await withTransaction(this.database, async (trx) => {
          const max = await trx.selectFrom('migrations').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst();
          await trx.insertInto('migrations').values({ ...m, id: Number(max?.m ?? 0) + 1, uuid, created_at: this.clock.now(), updated_at: null }).execute();
        });
        return this.byUuid(uuid);
      } catch (e) {
        // Another create took the same next id: count again.
        if (!isUniqueViolation(e)) throw e;
      }
    }
  }

  async byUuid(uuid: string): Promise<Migration> {
    return this.database.db.selectFrom('migrations').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
  }

  async find(uuid: string): Promise<Migration | undefined> {
    return this.database.db.selectFrom('migrations').selectAll().where('uuid', '=', uuid).executeTakeFirst();
  }

  async update(uuid: string, set: Partial<Omit<MigrationRow, 'id' | 'uuid'>>): Promise<void> {
    await this.database.db.updateTable('migrations').set({ ...set, updated_at: this.clock.now() }).where('uuid', '=', uuid).execute();
  }

  /** The instance's unconfirmed resize or migration (status finished), as confirm/revert look it up. */
  async inProgress(instanceUuid: string, statuses: string[]): Promise<Migration | undefined> {
    return this.database.db.selectFrom('migrations').selectAll().where('instance_uuid', '=', instanceUuid).where('status', 'in', statuses).orderBy('id', 'desc').executeTakeFirst();
  }

  /** Newest first by created_at then id, as upstream's migration_get_all_by_filters with paging (2.59). */
  async list(f: MigrationFilters, page: { limit?: number; markerId?: number } = {}): Promise<Migration[]> {
    let q = this.database.db.selectFrom('migrations').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    if (f.host) q = q.where((eb) => eb.or([eb('source_compute', '=', f.host!), eb('dest_compute', '=', f.host!)]));
    if (f.sourceCompute) q = q.where('source_compute', '=', f.sourceCompute);
    if (f.migrationType) q = q.where('migration_type', '=', f.migrationType);
    if (f.instanceUuid) q = q.where('instance_uuid', '=', f.instanceUuid);
    if (f.projectId) q = q.where('project_id', '=', f.projectId);
    if (f.userId) q = q.where('user_id', '=', f.userId);
    if (f.changesSince !== undefined) q = q.where((eb) => eb.or([eb('updated_at', '>=', f.changesSince!), eb.and([eb('updated_at', 'is', null), eb('created_at', '>=', f.changesSince!)])]));
    if (f.changesBefore !== undefined) q = q.where((eb) => eb.or([eb('updated_at', '<=', f.changesBefore!), eb.and([eb('updated_at', 'is', null), eb('created_at', '<=', f.changesBefore!)])]));
    if (page.markerId !== undefined) q = q.where('id', '<', page.markerId);
    q = q.orderBy('created_at', 'desc').orderBy('id', 'desc');
    if (page.limit !== undefined) q = q.limit(page.limit);
    return q.execute();
  }
}
