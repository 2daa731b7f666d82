import type { Kysely } from 'kysely';

/**
 * One counter every Keystone process sharing the database bumps on any change
 * that can alter a token's validation, and polls: the cross-process signal to
 * drop validation and catalog caches (see domain/cluster-sync.ts).
 */
export const migration = {
  version: 2,
  name: 'cache-generation',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('cache_generation')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('value', 'bigint', (c) => c.notNull())
      .execute();
    await db.insertInto('cache_generation').values({ id: 1, value: 0 }).execute();
  },
};
