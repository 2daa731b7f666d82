import type { Kysely } from 'kysely';
import { booleanColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';
import { withStandardColumns } from './standard-columns.ts';

/**
 * Security groups and their rules. `default_security_groups` holds one row
 * per project naming its `default` group: its primary key is what keeps two
 * concurrent first requests of a project from creating two default groups.
 */
export const migration = {
  version: 10,
  name: 'security groups',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const time = timestampColumn(dialect);
    await withStandardColumns(s.createTable('security_groups'), dialect)
      .addColumn('stateful', booleanColumn(dialect), (c) => c.notNull().defaultTo(1))
      .execute();
    await s.createIndex('security_groups_project').on('security_groups').column('project_id').execute();

    await s
      .createTable('default_security_groups')
      .addColumn('project_id', 'varchar(255)', (c) => c.primaryKey())
      .addColumn('security_group_id', 'varchar(36)', (c) => c.notNull())
      .execute();

    await s
      .createTable('security_group_rules')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)')
      .addColumn('description', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', time, (c) => c.notNull())
      .addColumn('updated_at', time, (c) => c.notNull())
      .addColumn('security_group_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('direction', 'varchar(16)', (c) => c.notNull())
      .addColumn('ethertype', 'varchar(8)', (c) => c.notNull())
      .addColumn('protocol', 'varchar(40)')
      .addColumn('port_range_min', 'integer')
      .addColumn('port_range_max', 'integer')
      .addColumn('remote_ip_prefix', 'varchar(64)')
      .addColumn('remote_group_id', 'varchar(36)')
      .addColumn('remote_address_group_id', 'varchar(36)')
      .execute();
    await s.createIndex('security_group_rules_group').on('security_group_rules').column('security_group_id').execute();
    await s.createIndex('security_group_rules_remote_group').on('security_group_rules').column('remote_group_id').execute();
  },
};
