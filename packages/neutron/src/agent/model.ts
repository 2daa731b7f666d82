/**
 * The host-state contract: the *desired* data plane of one host, as the server computes it
 * from the database and sends it to the host's agents (over the bus, so plain JSON only: no
 * classes, no Dates, no undefined-vs-missing distinctions that matter). The agents are
 * declarative reconcilers, like upstream's after a full sync: they make the host match this
 * state and remove whatever of their own is not in it.
 *
 * Who reads what:
 * - L2 agent (linuxbridge): networks (bridge per network, vxlan/flat/vlan uplink), ports
 *   (taps attached to their network's bridge), vtepPeers + localVtepIp (flood entries).
 * - DHCP agent: networks, subnets, dhcpPorts (its own port per network on this host) and
 *   the entries of every port of those networks: `ports` plus `otherPorts`.
 * - Firewall: ports (anti-spoofing per port unless port security is off, security groups
 *   per port) and securityGroups (rules, member IPs for remote-group rules).
 * - L3 agent: routers (see ./l3/router-state.ts, owned by the L3 agent).
 *
 * Names follow upstream's API attributes in camelCase; ids are Neutron UUIDs (lower case).
 */
import type { RouterState } from './l3/router-state.ts';

export type { RouterState } from './l3/router-state.ts';

export type NetworkType = 'local' | 'flat' | 'vlan' | 'vxlan';

/** The network's segment on this host (upstream's provider attributes). */
export interface SegmentState {
  networkType: NetworkType;
  /** VNI for vxlan, VLAN id for vlan, null for flat and local. */
  segmentationId: number | null;
  /** Physical network label for flat and vlan (mapped to an interface by the agent's config), else null. */
  physicalNetwork: string | null;
}

export interface NetworkState {
  id: string;
  /** Bridge, vxlan device and ports get it; DHCP advertises it as option 26. */
  mtu: number;
  segment: SegmentState;
}

export interface FixedIpState {
  subnetId: string;
  ipAddress: string;
}

export interface AllowedAddressPairState {
  /** An address or a CIDR. */
  ipAddress: string;
  /** The port's own MAC when the API request gave none (the server fills it in). */
  macAddress: string;
}

export interface PortState {
  id: string;
  networkId: string;
  macAddress: string;
  fixedIps: FixedIpState[];
  /** `compute:nova`, `network:dhcp`, `network:router_interface` … */
  deviceOwner: string;
  deviceId: string;
  adminStateUp: boolean;
  /** False: no anti-spoofing and no security groups (all traffic passes), as upstream. */
  portSecurityEnabled: boolean;
  securityGroupIds: string[];
  allowedAddressPairs: AllowedAddressPairState[];
  /** Host name for DHCP/DNS entries (upstream's dns_name); `host-<ip with dashes>` when absent. */
  dnsName?: string | null;
}

export interface HostRouteState {
  destination: string;
  nexthop: string;
}

export type Ipv6Mode = 'slaac' | 'dhcpv6-stateful' | 'dhcpv6-stateless';

export interface SubnetState {
  id: string;
  networkId: string;
  ipVersion: 4 | 6;
  cidr: string;
  gatewayIp: string | null;
  enableDhcp: boolean;
  dnsNameservers: string[];
  hostRoutes: HostRouteState[];
  ipv6RaMode: Ipv6Mode | null;
  ipv6AddressMode: Ipv6Mode | null;
  /**
   * Metadata is served on the DHCP port for this subnet (no router on it: upstream's isolated
   * metadata): the DHCP namespace gets 169.254.169.254/32 and DHCP pushes a route to it via the
   * DHCP port's address.
   */
  isolatedMetadata?: boolean;
}

export type Direction = 'ingress' | 'egress';
export type Ethertype = 'IPv4' | 'IPv6';

export interface SecurityGroupRuleState {
  id: string;
  direction: Direction;
  ethertype: Ethertype;
  /** A name (`tcp`, `udp`, `icmp`, `icmpv6`/`ipv6-icmp`, `sctp`, …), a number as string or number, or null/`any` for all. */
  protocol: string | number | null;
  /** Ports for tcp/udp/sctp; ICMP type (min) and code (max) for icmp/icmpv6. */
  portRangeMin: number | null;
  portRangeMax: number | null;
  remoteIpPrefix: string | null;
  remoteGroupId: string | null;
}

export interface SecurityGroupState {
  id: string;
  /** False: no conntrack, both directions must be allowed explicitly (upstream's stateless groups). */
  stateful: boolean;
  rules: SecurityGroupRuleState[];
  /**
   * Fixed IPs and allowed-pair addresses of every port in this group on any host: what a rule
   * with `remoteGroupId` = this group matches. Kept current by the server's resyncs.
   */
  memberIps: string[];
}

export interface HostState {
  /** The host's name (binding:host_id). */
  host: string;
  /** This host's VXLAN endpoint address in the host namespace; null when the host has no VXLAN networks. */
  localVtepIp: string | null;
  /** Networks that have something on this host (ports, DHCP, routers). */
  networks: NetworkState[];
  /** Ports bound to this host that a plugger (Nova, a test) attaches as `tap<port-id[:11]>`. */
  ports: PortState[];
  /** Ports of this host's DHCP networks bound elsewhere: DHCP entries only. */
  otherPorts?: PortState[];
  /** Subnets of `networks`. */
  subnets: SubnetState[];
  securityGroups: SecurityGroupState[];
  /** The DHCP port (device_owner network:dhcp) of each network this host's DHCP agent serves. */
  dhcpPorts: PortState[];
  /** Remote VTEP addresses per network id (every other host with a port on it): one flood entry each. */
  vtepPeers: Record<string, string[]>;
  /** Routers scheduled to this host (L3 agent). */
  routers?: RouterState[];
}

/** What the agents report back for the server (port status ACTIVE, network-vif-plugged). */
export interface HostReport {
  host: string;
  /** Ports whose tap exists and is attached to its network's bridge. */
  wiredPorts: string[];
  /** Ports in the state whose tap does not exist (yet). */
  unwiredPorts: string[];
  /** Networks whose DHCP server runs here. */
  dhcpNetworks: string[];
  errors: { what: string; message: string }[];
}

/** Upstream's device names: a prefix and the id's first 11 characters (IFNAMSIZ is 15). */
export const ID_CHARS = 11;
export const bridgeNameFor = (networkId: string): string => `brq${networkId.slice(0, ID_CHARS)}`;
export const tapNameFor = (portId: string): string => `tap${portId.slice(0, ID_CHARS)}`;
export const vxlanNameFor = (vni: number): string => `vxlan-${vni}`;

export function emptyHostState(host: string): HostState {
  return { host, localVtepIp: null, networks: [], ports: [], otherPorts: [], subnets: [], securityGroups: [], dhcpPorts: [], vtepPeers: {} };
}
