import type { Kysely } from 'kysely';
import { booleanColumn, jsonColumn, type Dialect } from '@onestack/core/db/index.ts';
import { withStandardColumns } from './standard-columns.ts';

/**
 * Routers (with the ports they own and their extra routes) and floating IPs.
 * A fixed IP carries at most one floating IP per external network: the
 * unique key decides between two concurrent associations, as upstream's does.
 */
export const migration = {
  version: 20,
  name: 'routers and floating IPs',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const bool = booleanColumn(dialect);
    await withStandardColumns(s.createTable('routers'), dialect)
      .addColumn('status', 'varchar(16)', (c) => c.notNull())
      .addColumn('admin_state_up', bool, (c) => c.notNull())
      .addColumn('gw_port_id', 'varchar(36)')
      .addColumn('enable_snat', bool, (c) => c.notNull().defaultTo(1))
      .addColumn('availability_zone_hints', jsonColumn(dialect), (c) => c.notNull())
      .execute();
    await s.createIndex('routers_project').on('routers').column('project_id').execute();

    await s
      .createTable('router_ports')
      .addColumn('router_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('port_id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('port_type', 'varchar(255)', (c) => c.notNull())
      .execute();
    await s.createIndex('router_ports_router').on('router_ports').column('router_id').execute();

    await s
      .createTable('router_routes')
      .addColumn('router_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('destination', 'varchar(64)', (c) => c.notNull())
      .addColumn('nexthop', 'varchar(64)', (c) => c.notNull())
      .addPrimaryKeyConstraint('router_routes_pk', ['router_id', 'destination', 'nexthop'])
      .execute();

    await withStandardColumns(s.createTable('floatingips'), dialect)
      .addColumn('floating_ip_address', 'varchar(64)', (c) => c.notNull())
      .addColumn('floating_network_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('floating_port_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('fixed_port_id', 'varchar(36)')
      .addColumn('fixed_ip_address', 'varchar(64)')
      .addColumn('router_id', 'varchar(36)')
      .addColumn('last_known_router_id', 'varchar(36)')
      .addColumn('status', 'varchar(16)', (c) => c.notNull())
      .addUniqueConstraint('floatingips_fixed_unique', ['floating_network_id', 'fixed_port_id', 'fixed_ip_address'])
      .execute();
    for (const col of ['project_id', 'fixed_port_id', 'router_id', 'floating_network_id'] as const) {
      await s.createIndex(`floatingips_${col}`).on('floatingips').column(col).execute();
    }
  },
};
