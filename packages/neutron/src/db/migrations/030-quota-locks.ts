import type { Kysely } from 'kysely';

/**
 * One row per project and quota resource, locked by every create that checks
 * that quota: two concurrent creates on PostgreSQL or MySQL would otherwise
 * both count the same usage and both take the last slot.
 */
export const migration = {
  version: 30,
  name: 'quota locks',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('quota_locks')
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource', 'varchar(255)', (c) => c.notNull())
      .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('quota_locks_pk', ['project_id', 'resource'])
      .execute();
  },
};
