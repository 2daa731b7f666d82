import type { Kysely } from 'kysely';
import { DEFAULT_FLAVORS, insertFlavor } from '../../domain/flavors.ts';

/**
 * Devstack creates m1.* flavors when a cloud is set up; here a new database gets
 * them once, sized for the onestack guest. An admin who deletes them later does not
 * see them come back (the migration never runs again).
 */
export const migration = {
  version: 2,
  name: 'default-flavors',
  async up(db: Kysely<any>): Promise<void> {
    const now = Date.now();
    for (const f of DEFAULT_FLAVORS) await insertFlavor(db, { ...f, id: f.id! }, now);
  },
};
