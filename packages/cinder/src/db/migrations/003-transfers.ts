import type { Kysely } from 'kysely';
import { booleanColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/** Volume transfers as upstream's transfers table: the auth key is kept only as a salted hash. */
export const migration = {
  version: 3,
  name: 'transfers',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const ts = timestampColumn(dialect);
    const bool = booleanColumn(dialect);
    await db.schema
      .createTable('transfers')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('volume_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('display_name', 'varchar(255)')
      .addColumn('salt', 'varchar(255)', (c) => c.notNull())
      .addColumn('crypt_hash', 'varchar(255)', (c) => c.notNull())
      .addColumn('no_snapshots', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('source_project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('destination_project_id', 'varchar(255)')
      .addColumn('accepted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await db.schema.createIndex('transfers_volume').on('transfers').columns(['volume_id', 'deleted']).execute();
  },
};
