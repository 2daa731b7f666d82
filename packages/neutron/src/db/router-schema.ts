import type { StandardRow } from './schema.ts';

/** Rows of migrations/020-routers.ts. */
export interface RouterRow extends StandardRow {
  status: string;
  admin_state_up: number;
  /** The router's port on the external network (device_owner network:router_gateway), null without a gateway. */
  gw_port_id: string | null;
  enable_snat: number;
  availability_zone_hints: string;
}

/** A port the router owns: its gateway and its interfaces (upstream's routerports). */
export interface RouterPortRow {
  router_id: string;
  port_id: string;
  port_type: string;
}

export interface RouterRouteRow {
  router_id: string;
  destination: string;
  nexthop: string;
}

export interface FloatingIpRow extends StandardRow {
  floating_ip_address: string;
  floating_network_id: string;
  /** The FIP's own port on the external network (device_owner network:floatingip). */
  floating_port_id: string;
  fixed_port_id: string | null;
  fixed_ip_address: string | null;
  router_id: string | null;
  last_known_router_id: string | null;
  status: string;
}

export interface RouterTables {
  routers: RouterRow;
  router_ports: RouterPortRow;
  router_routes: RouterRouteRow;
  floatingips: FloatingIpRow;
}
