import type { Kysely } from 'kysely';

/**
 * Backup metadata (3.43) as a JSON object on the row: it is read and replaced
 * whole (create, update, views), never filtered on, so upstream's key/value
 * table would only add a join to every backup list.
 */
export const migration = {
  version: 5,
  name: 'backup-metadata',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('backups').addColumn('metadata', 'text').execute();
  },
};
