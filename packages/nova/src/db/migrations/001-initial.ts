import type { Kysely } from 'kysely';
import { bigTextColumn, booleanColumn, jsonColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Nova's cell database in one: instances with their metadata, tags, faults,
 * actions and events, block device mappings; flavors with extra specs and
 * access lists; keypairs; per-project quotas; services (heartbeats); server
 * groups. Deleted instances stay as rows with deleted = 1 (admins list them
 * with deleted=True, as upstream's soft-deleted rows).
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const ts = timestampColumn(dialect);
    const bool = booleanColumn(dialect);
    const json = jsonColumn(dialect);
    const text = bigTextColumn(dialect);
    await s
      .createTable('instances')
      .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_description', text)
      .addColumn('hostname', 'varchar(255)', (c) => c.notNull())
      .addColumn('image_ref', 'varchar(255)', (c) => c.notNull())
      .addColumn('flavor', json, (c) => c.notNull())
      .addColumn('vcpus', 'integer', (c) => c.notNull())
      .addColumn('memory_mb', 'integer', (c) => c.notNull())
      .addColumn('root_gb', 'integer', (c) => c.notNull())
      .addColumn('vm_state', 'varchar(30)', (c) => c.notNull())
      .addColumn('task_state', 'varchar(60)')
      .addColumn('power_state', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('host', 'varchar(255)')
      .addColumn('node', 'varchar(255)')
      .addColumn('availability_zone', 'varchar(255)')
      .addColumn('key_name', 'varchar(255)')
      .addColumn('key_data', text)
      .addColumn('user_data', text)
      .addColumn('config_drive', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('access_ip_v4', 'varchar(64)')
      .addColumn('access_ip_v6', 'varchar(64)')
      .addColumn('reservation_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('launch_index', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('locked_by', 'varchar(10)')
      .addColumn('locked_reason', text)
      .addColumn('network_info', json, (c) => c.notNull())
      .addColumn('request_spec', json, (c) => c.notNull())
      .addColumn('system_metadata', json, (c) => c.notNull())
      .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .addColumn('launched_at', ts)
      .addColumn('terminated_at', ts)
      .addColumn('deleted_at', ts)
      .addColumn('deleted', bool, (c) => c.notNull().defaultTo(0))
      .execute();
    for (const [name, cols] of [
      ['instances_project', ['project_id', 'deleted']],
      ['instances_host', ['host', 'deleted']],
      ['instances_created', ['created_at', 'uuid']],
      ['instances_updated', ['updated_at']],
      ['instances_reservation', ['reservation_id']],
    ] as const) {
      await s.createIndex(name).on('instances').columns([...cols]).execute();
    }
    await s
      .createTable('instance_metadata')
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('instance_metadata_pk', ['instance_uuid', 'key'])
      .execute();
    await s
      .createTable('tags')
      .addColumn('resource_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('tag', 'varchar(80)', (c) => c.notNull())
      .addPrimaryKeyConstraint('tags_pk', ['resource_id', 'tag'])
      .execute();
    await s.createIndex('tags_tag').on('tags').column('tag').execute();
    await s
      .createTable('instance_faults')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('code', 'integer', (c) => c.notNull())
      .addColumn('message', 'varchar(255)', (c) => c.notNull())
      .addColumn('details', text)
      .addColumn('host', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .execute();
    await s.createIndex('instance_faults_instance').on('instance_faults').columns(['instance_uuid', 'created_at']).execute();
    await s
      .createTable('instance_actions')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('action', 'varchar(255)', (c) => c.notNull())
      .addColumn('request_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)')
      .addColumn('user_id', 'varchar(255)')
      .addColumn('message', 'varchar(255)')
      .addColumn('start_time', ts, (c) => c.notNull())
      .addColumn('finish_time', ts)
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s.createIndex('instance_actions_instance').on('instance_actions').columns(['instance_uuid', 'request_id']).execute();
    await s
      .createTable('instance_action_events')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('action_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('event', 'varchar(255)', (c) => c.notNull())
      .addColumn('start_time', ts, (c) => c.notNull())
      .addColumn('finish_time', ts)
      .addColumn('result', 'varchar(255)')
      .addColumn('traceback', text)
      .addColumn('host', 'varchar(255)')
      .addColumn('details', text)
      .execute();
    await s.createIndex('instance_action_events_action').on('instance_action_events').column('action_id').execute();
    await s
      .createTable('block_device_mapping')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('source_type', 'varchar(255)', (c) => c.notNull())
      .addColumn('destination_type', 'varchar(255)', (c) => c.notNull())
      .addColumn('boot_index', 'integer')
      .addColumn('device_name', 'varchar(255)')
      .addColumn('volume_id', 'varchar(36)')
      .addColumn('image_id', 'varchar(36)')
      .addColumn('volume_size', 'integer')
      .addColumn('delete_on_termination', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('tag', 'varchar(255)')
      .addColumn('attachment_id', 'varchar(36)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .execute();
    await s.createIndex('bdm_instance').on('block_device_mapping').column('instance_uuid').execute();
    await s
      .createTable('flavors')
      .addColumn('flavorid', 'varchar(255)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
      .addColumn('memory_mb', 'integer', (c) => c.notNull())
      .addColumn('vcpus', 'integer', (c) => c.notNull())
      .addColumn('root_gb', 'integer', (c) => c.notNull())
      .addColumn('ephemeral_gb', 'integer', (c) => c.notNull())
      .addColumn('swap', 'integer', (c) => c.notNull())
      .addColumn('rxtx_factor', 'double precision', (c) => c.notNull())
      .addColumn('is_public', bool, (c) => c.notNull())
      .addColumn('disabled', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('description', text)
      .addColumn('extra_specs', json, (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s
      .createTable('flavor_projects')
      .addColumn('flavorid', 'varchar(255)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('flavor_projects_pk', ['flavorid', 'project_id'])
      .execute();
    await s
      .createTable('key_pairs')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('fingerprint', 'varchar(255)', (c) => c.notNull())
      .addColumn('public_key', text, (c) => c.notNull())
      .addColumn('type', 'varchar(10)', (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addUniqueConstraint('key_pairs_user_name', ['user_id', 'name'])
      .execute();
    await s
      .createTable('quotas')
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addColumn('resource', 'varchar(255)', (c) => c.notNull())
      .addColumn('hard_limit', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'user_id', 'resource'])
      .execute();
    await s
      .createTable('services')
      .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('host', 'varchar(255)', (c) => c.notNull())
      .addColumn('binary', 'varchar(255)', (c) => c.notNull())
      .addColumn('topic', 'varchar(255)')
      .addColumn('disabled', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('disabled_reason', 'varchar(255)')
      .addColumn('forced_down', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('last_seen_up', ts)
      .addColumn('report_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('hypervisor', json)
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .addUniqueConstraint('services_host_binary', ['host', 'binary'])
      .execute();
    await s
      .createTable('server_groups')
      .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('policy', 'varchar(255)', (c) => c.notNull())
      .addColumn('rules', json, (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .execute();
    await s
      .createTable('server_group_members')
      .addColumn('group_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addPrimaryKeyConstraint('server_group_members_pk', ['group_uuid', 'instance_uuid'])
      .execute();
  },
};
