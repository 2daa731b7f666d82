import type { Kysely } from 'kysely';
import { withTransaction, type Database } from '@onestack/core/db/index.ts';

/**
 * core's withTransaction, at READ COMMITTED on MySQL: allocators (segments,
 * addresses) re-read what others committed after losing a race, which
 * InnoDB's default REPEATABLE READ snapshot would hide, so they would retry
 * against a stale view forever. PostgreSQL's default is already READ
 * COMMITTED; SQLite serializes writers.
 */
export function inTransaction<DB, T>(database: Database<DB>, fn: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
  if (database.dialect === 'mysql') return database.db.transaction().setIsolationLevel('read committed').execute(fn);
  return withTransaction(database, fn);
}
