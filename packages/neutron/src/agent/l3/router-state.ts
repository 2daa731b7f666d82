/**
 * The desired state of the routers on one host, as the L3 agent receives it (upstream's
 * `sync_routers` payload, reduced to what the data plane needs). The host-state model
 * (../model.ts) re-exports these types; they live here because only the L3 agent reads them.
 */

export interface RouterFixedIp {
  ipAddress: string;
  /** The subnet's prefix length: the address is configured as ipAddress/prefixlen. */
  prefixlen: number;
  subnetId: string;
  /** The v6 subnet's ipv6_ra_mode: this router advertises the subnet (slaac, dhcpv6-stateless, dhcpv6-stateful). */
  ipv6RaMode?: string;
}

/** A router port on a tenant network: qr-<port[:11]> in the router namespace, its peer on the network's bridge. */
export interface RouterInterface {
  portId: string;
  networkId: string;
  macAddress: string;
  fixedIps: RouterFixedIp[];
  /** The network's MTU; the kernel default (1500) when absent. */
  mtu?: number;
}

/** The router's port on the external network: qg-<port[:11]>. */
export interface RouterGateway {
  portId: string;
  networkId: string;
  macAddress: string;
  fixedIps: RouterFixedIp[];
  /** SNAT of the internal subnets to the gateway address (upstream's external_gateway_info.enable_snat). */
  enableSnat: boolean;
  /** The external subnets' gateway_ip, one per family: the router's default routes. */
  externalGatewayIps: string[];
  mtu?: number;
  /** The external network's physical network (flat or VLAN), which physical_interface_mappings may map to a host interface. */
  physicalNetwork?: string;
}

/** An extra route (upstream's extraroute `routes`): destination CIDR via a nexthop on one of the router's subnets. */
export interface RouterRoute {
  destination: string;
  nexthop: string;
}

/** A floating IP associated with a port behind this router: 1:1 DNAT in, SNAT out, FIP/32 on qg-. */
export interface RouterFloatingIp {
  id: string;
  floatingIpAddress: string;
  fixedIpAddress: string;
  portId: string;
}

export interface RouterState {
  id: string;
  /** A router that is administratively down has no namespace on the host (its traffic stops). */
  adminStateUp: boolean;
  interfaces: RouterInterface[];
  gateway?: RouterGateway;
  routes: RouterRoute[];
  floatingIps: RouterFloatingIp[];
}
