import type { Kysely } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * What the chunked backup drivers need of a backup row, as upstream's backups
 * table: the object prefix (service_metadata), the zone, the time the data
 * was taken and how many incrementals build on it.
 */
export const migration = {
  version: 2,
  name: 'backup-fields',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    // One column per statement: SQLite adds a single column per ALTER TABLE.
    await db.schema.alterTable('backups').addColumn('availability_zone', 'varchar(255)').execute();
    await db.schema.alterTable('backups').addColumn('service_metadata', 'varchar(255)').execute();
    await db.schema.alterTable('backups').addColumn('data_timestamp', timestampColumn(dialect)).execute();
    await db.schema.alterTable('backups').addColumn('num_dependent_backups', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
};
