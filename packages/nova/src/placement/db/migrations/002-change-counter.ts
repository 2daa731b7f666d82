import type { Kysely } from 'kysely';

/**
 * One placement-wide counter that every change to providers, their trees, inventories,
 * traits or aggregates moves on in its own transaction. GET /allocation_candidates keeps
 * what it reads of all providers while the counter stands still (1,000 hosts: 1,000
 * providers, 3,000 inventories per request otherwise); in the database, so that every
 * API process sharing it sees another's change. Allocations do not move it: usage is
 * read per request.
 */
export const migration = {
  version: 2,
  name: 'change-counter',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('placement_changes')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('counter', 'bigint', (c) => c.notNull())
      .execute();
    await db.insertInto('placement_changes').values({ id: 1, counter: 0 }).execute();
  },
};
