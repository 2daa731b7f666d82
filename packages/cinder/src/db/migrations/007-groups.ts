import type { Kysely } from 'kysely';
import { booleanColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Generic volume groups (3.11-3.38) as upstream's tables: group types with
 * group_specs, groups with the volume types they admit (group_volume_type_mapping),
 * group snapshots; a snapshot taken as part of a group snapshot names it.
 * volumes.group_id exists since 001.
 */
export const migration = {
  version: 7,
  name: 'groups',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const ts = timestampColumn(dialect);
    const bool = booleanColumn(dialect);
    await s
      .createTable('group_types')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(255)')
      .addColumn('is_public', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('group_types_name').on('group_types').columns(['name', 'deleted']).execute();
    await s
      .createTable('group_type_specs')
      .addColumn('group_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('group_type_specs_pk', ['group_type_id', 'key'])
      .execute();
    await s
      .createTable('groups')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(255)')
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('availability_zone', 'varchar(255)', (c) => c.notNull())
      .addColumn('group_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('host', 'varchar(255)')
      .addColumn('group_snapshot_id', 'varchar(36)')
      .addColumn('source_group_id', 'varchar(36)')
      .addColumn('replication_status', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('groups_project').on('groups').columns(['project_id', 'deleted']).execute();
    await s
      .createTable('group_volume_type_mapping')
      .addColumn('group_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('volume_type_id', 'varchar(36)', (c) => c.notNull())
      .addPrimaryKeyConstraint('group_volume_type_mapping_pk', ['group_id', 'volume_type_id'])
      .execute();
    await s
      .createTable('group_snapshots')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('group_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(255)')
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('group_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('group_snapshots_group').on('group_snapshots').columns(['group_id', 'deleted']).execute();
    await s.alterTable('snapshots').addColumn('group_snapshot_id', 'varchar(36)').execute();
    await s.createIndex('volumes_group').on('volumes').columns(['group_id']).execute();
  },
};
