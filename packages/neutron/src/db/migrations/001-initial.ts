import type { CreateTableBuilder, Kysely } from 'kysely';
import { booleanColumn, jsonColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';
import { withStandardColumns } from './standard-columns.ts';

/**
 * The core Networking API schema: networks with their segments, subnets,
 * subnet pools, ports with their IP allocations and security group bindings,
 * the segment allocation tables of the type drivers, tags, quotas, RBAC
 * policies and agents. Every API resource carries upstream's standard
 * attributes (project, name, description, revision, timestamps) as columns.
 * Uniqueness that must hold under concurrency lives in the database:
 * one IP per subnet, one MAC per network, one owner per VLAN id and VNI.
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const standard = <T extends string>(t: CreateTableBuilder<T, any>) => withStandardColumns(t, dialect);
    const bool = booleanColumn(dialect);
    const json = jsonColumn(dialect);

    await standard(s.createTable('networks'))
      .addColumn('status', 'varchar(16)', (c) => c.notNull())
      .addColumn('admin_state_up', bool, (c) => c.notNull())
      .addColumn('shared', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('router_external', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('is_default', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('mtu', 'integer', (c) => c.notNull())
      .addColumn('port_security_enabled', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('availability_zone_hints', json, (c) => c.notNull())
      .addColumn('dns_domain', 'varchar(255)')
      .execute();
    await s.createIndex('networks_project').on('networks').column('project_id').execute();

    await s
      .createTable('network_segments')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('network_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('network_type', 'varchar(32)', (c) => c.notNull())
      .addColumn('physical_network', 'varchar(64)')
      .addColumn('segmentation_id', 'integer')
      .addColumn('segment_index', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await s.createIndex('network_segments_network').on('network_segments').column('network_id').execute();

    await s
      .createTable('ml2_vlan_allocations')
      .addColumn('physical_network', 'varchar(64)', (c) => c.notNull())
      .addColumn('vlan_id', 'integer', (c) => c.notNull())
      .addColumn('allocated', bool, (c) => c.notNull())
      .addPrimaryKeyConstraint('ml2_vlan_allocations_pk', ['physical_network', 'vlan_id'])
      .execute();
    await s
      .createTable('ml2_vxlan_allocations')
      .addColumn('vxlan_vni', 'integer', (c) => c.primaryKey())
      .addColumn('allocated', bool, (c) => c.notNull())
      .execute();
    await s
      .createTable('ml2_flat_allocations')
      .addColumn('physical_network', 'varchar(64)', (c) => c.primaryKey())
      .execute();

    await standard(s.createTable('subnetpools'))
      .addColumn('ip_version', 'integer', (c) => c.notNull())
      .addColumn('default_prefixlen', 'integer', (c) => c.notNull())
      .addColumn('min_prefixlen', 'integer', (c) => c.notNull())
      .addColumn('max_prefixlen', 'integer', (c) => c.notNull())
      .addColumn('shared', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('is_default', bool, (c) => c.notNull().defaultTo(0))
      .addColumn('default_quota', 'integer')
      .addColumn('address_scope_id', 'varchar(36)')
      .addColumn('prefixes', json, (c) => c.notNull())
      .execute();

    await standard(s.createTable('subnets'))
      .addColumn('network_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('ip_version', 'integer', (c) => c.notNull())
      .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
      .addColumn('gateway_ip', 'varchar(64)')
      .addColumn('enable_dhcp', bool, (c) => c.notNull())
      .addColumn('ipv6_ra_mode', 'varchar(32)')
      .addColumn('ipv6_address_mode', 'varchar(32)')
      .addColumn('subnetpool_id', 'varchar(36)')
      .addColumn('segment_id', 'varchar(36)')
      .addColumn('allocation_pools', json, (c) => c.notNull())
      .addColumn('dns_nameservers', json, (c) => c.notNull())
      .addColumn('host_routes', json, (c) => c.notNull())
      .addColumn('service_types', json, (c) => c.notNull())
      .execute();
    await s.createIndex('subnets_network').on('subnets').column('network_id').execute();
    await s.createIndex('subnets_subnetpool').on('subnets').column('subnetpool_id').execute();

    await standard(s.createTable('ports'))
      .addColumn('network_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('mac_address', 'varchar(32)', (c) => c.notNull())
      .addColumn('admin_state_up', bool, (c) => c.notNull())
      .addColumn('status', 'varchar(16)', (c) => c.notNull())
      .addColumn('device_id', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addColumn('device_owner', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addColumn('port_security_enabled', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('allowed_address_pairs', json, (c) => c.notNull())
      .addColumn('binding_host_id', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addColumn('binding_vif_type', 'varchar(64)', (c) => c.notNull())
      .addColumn('binding_vif_details', json, (c) => c.notNull())
      .addColumn('binding_profile', json, (c) => c.notNull())
      .addColumn('binding_vnic_type', 'varchar(64)', (c) => c.notNull())
      .addColumn('dns_name', 'varchar(255)', (c) => c.notNull().defaultTo(''))
      .addUniqueConstraint('ports_network_mac', ['network_id', 'mac_address'])
      .execute();
    for (const col of ['project_id', 'device_id', 'device_owner', 'binding_host_id'] as const) {
      await s.createIndex(`ports_${col}`).on('ports').column(col).execute();
    }

    await s
      .createTable('ipallocations')
      .addColumn('subnet_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('ip_address', 'varchar(64)', (c) => c.notNull())
      .addColumn('port_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('network_id', 'varchar(36)', (c) => c.notNull())
      .addPrimaryKeyConstraint('ipallocations_pk', ['subnet_id', 'ip_address'])
      .execute();
    await s.createIndex('ipallocations_port').on('ipallocations').column('port_id').execute();

    await s
      .createTable('port_security_group_bindings')
      .addColumn('port_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('security_group_id', 'varchar(36)', (c) => c.notNull())
      .addPrimaryKeyConstraint('port_security_group_bindings_pk', ['port_id', 'security_group_id'])
      .execute();
    await s.createIndex('port_sg_bindings_group').on('port_security_group_bindings').column('security_group_id').execute();

    await s
      .createTable('tags')
      .addColumn('resource_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('tag', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('tags_pk', ['resource_id', 'tag'])
      .execute();
    await s.createIndex('tags_tag').on('tags').column('tag').execute();

    await s
      .createTable('quotas')
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource', 'varchar(255)', (c) => c.notNull())
      .addColumn('limit', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
      .execute();

    await s
      .createTable('rbac_policies')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('object_type', 'varchar(64)', (c) => c.notNull())
      .addColumn('object_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('action', 'varchar(64)', (c) => c.notNull())
      .addColumn('target_project', 'varchar(255)', (c) => c.notNull())
      .addUniqueConstraint('rbac_policies_unique', ['object_type', 'object_id', 'action', 'target_project'])
      .execute();
    await s.createIndex('rbac_policies_target').on('rbac_policies').columns(['target_project', 'action']).execute();

    await s
      .createTable('agents')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('agent_type', 'varchar(255)', (c) => c.notNull())
      .addColumn('binary', 'varchar(255)', (c) => c.notNull())
      .addColumn('topic', 'varchar(255)', (c) => c.notNull())
      .addColumn('host', 'varchar(255)', (c) => c.notNull())
      .addColumn('availability_zone', 'varchar(255)')
      .addColumn('admin_state_up', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('description', 'varchar(255)')
      .addColumn('configurations', json, (c) => c.notNull())
      .addColumn('resource_versions', json)
      .addColumn('load', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('resources_synced', bool)
      .addColumn('created_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('started_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('heartbeat_timestamp', timestampColumn(dialect), (c) => c.notNull())
      .addUniqueConstraint('agents_type_host', ['agent_type', 'host'])
      .execute();
  },
};
