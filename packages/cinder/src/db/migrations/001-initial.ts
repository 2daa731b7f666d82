import type { Kysely } from 'kysely';
import { bigTextColumn, booleanColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Block storage: volumes with metadata (user metadata, admin metadata and
 * volume_image_metadata share one table keyed by kind), volume types with extra
 * specs and project access, snapshots, attachments, quotas (per project
 * overrides; defaults come from config), backend services and backups.
 * Deleted volumes and snapshots stay as rows with deleted = 1, as upstream
 * keeps them; `status` changes only by compare-and-swap on its expected value.
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const ts = timestampColumn(dialect);
    const bool = booleanColumn(dialect);
    await s
      .createTable('volumes')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(255)')
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('attach_status', 'varchar(255)', (c) => c.notNull())
      .addColumn('migration_status', 'varchar(255)')
      .addColumn('error', bigTextColumn(dialect))
      .addColumn('availability_zone', 'varchar(255)', (c) => c.notNull())
      .addColumn('volume_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('host', 'varchar(255)')
      .addColumn('snapshot_id', 'varchar(36)')
      .addColumn('source_volid', 'varchar(36)')
      .addColumn('image_id', 'varchar(36)')
      .addColumn('bootable', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('multiattach', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('encrypted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('consistencygroup_id', 'varchar(36)')
      .addColumn('group_id', 'varchar(36)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('launched_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    for (const [name, cols] of [
      ['volumes_project', ['project_id', 'deleted']],
      ['volumes_created', ['created_at', 'id']],
      ['volumes_status', ['status']],
    ] as const)
      await s.createIndex(name).on('volumes').columns([...cols]).execute();
    await s
      .createTable('volume_metadata')
      .addColumn('volume_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('kind', 'varchar(16)', (c) => c.notNull()) // user | admin | image
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', bigTextColumn(dialect), (c) => c.notNull())
      .addPrimaryKeyConstraint('volume_metadata_pk', ['volume_id', 'kind', 'key'])
      .execute();
    await s
      .createTable('volume_types')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(255)')
      .addColumn('is_public', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('volume_types_name').on('volume_types').columns(['name', 'deleted']).execute();
    await s
      .createTable('volume_type_extra_specs')
      .addColumn('volume_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('volume_type_extra_specs_pk', ['volume_type_id', 'key'])
      .execute();
    await s
      .createTable('volume_type_projects')
      .addColumn('volume_type_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('volume_type_projects_pk', ['volume_type_id', 'project_id'])
      .execute();
    await s
      .createTable('snapshots')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('volume_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(255)')
      .addColumn('volume_size', 'integer', (c) => c.notNull())
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('progress', 'varchar(255)')
      .addColumn('error', bigTextColumn(dialect))
      .addColumn('metadata', bigTextColumn(dialect))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('snapshots_volume').on('snapshots').columns(['volume_id', 'deleted']).execute();
    await s.createIndex('snapshots_project').on('snapshots').columns(['project_id', 'deleted']).execute();
    await s
      .createTable('volume_attachment')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('volume_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('instance_uuid', 'varchar(36)')
      .addColumn('attached_host', 'varchar(255)')
      .addColumn('mountpoint', 'varchar(255)')
      .addColumn('attach_mode', 'varchar(36)', (c) => c.notNull())
      .addColumn('attach_status', 'varchar(255)', (c) => c.notNull())
      .addColumn('connector', bigTextColumn(dialect))
      .addColumn('connection_info', bigTextColumn(dialect))
      .addColumn('attach_time', ts)
      .addColumn('detach_time', ts)
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('volume_attachment_volume').on('volume_attachment').columns(['volume_id', 'deleted']).execute();
    await s
      .createTable('quotas')
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource', 'varchar(255)', (c) => c.notNull())
      .addColumn('hard_limit', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
      .execute();
    await s
      .createTable('services')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('host', 'varchar(255)', (c) => c.notNull())
      .addColumn('binary', 'varchar(255)', (c) => c.notNull())
      .addColumn('topic', 'varchar(255)', (c) => c.notNull())
      .addColumn('availability_zone', 'varchar(255)', (c) => c.notNull())
      .addColumn('disabled', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('disabled_reason', 'varchar(255)')
      .addColumn('report_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('frozen', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .execute();
    await s.createIndex('services_host_binary').on('services').columns(['host', 'binary']).unique().execute();
    await s
      .createTable('backups')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('volume_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('snapshot_id', 'varchar(36)')
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(255)')
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('object_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('status', 'varchar(255)', (c) => c.notNull())
      .addColumn('fail_reason', bigTextColumn(dialect))
      .addColumn('container', 'varchar(255)')
      .addColumn('parent_id', 'varchar(36)')
      .addColumn('service', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', ts)
      .execute();
    await s.createIndex('backups_project').on('backups').columns(['project_id', 'deleted']).execute();
  },
};
