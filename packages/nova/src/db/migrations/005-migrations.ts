import type { Kysely } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Migrations (resize and cold migrate records, os-migrations): integer ids as the API
 * shows them, a uuid that is also the placement consumer holding the source host's
 * allocation while the move is unconfirmed, and the flavors before and after.
 */
export const migration = {
  version: 5,
  name: 'migrations',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const ts = timestampColumn(dialect);
    await db.schema
      .createTable('migrations')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('migration_type', 'varchar(30)', (c) => c.notNull())
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('source_compute', 'varchar(255)')
      .addColumn('source_node', 'varchar(255)')
      .addColumn('dest_compute', 'varchar(255)')
      .addColumn('dest_node', 'varchar(255)')
      .addColumn('dest_host', 'varchar(255)')
      .addColumn('old_flavor_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('new_flavor_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)')
      .addColumn('user_id', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .execute();
    await db.schema.createIndex('migrations_instance_idx').on('migrations').column('instance_uuid').execute();
  },
};
