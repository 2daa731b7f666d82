/**
 * The server half of the agents' contract (agent/model.ts): the desired data plane of one
 * host, computed from the database, as upstream's RPC callbacks (get_devices_details_list,
 * get_active_networks_info, security_group_info_for_devices, sync_routers) would hand it out,
 * but as one document per host: the agents do a full sync against it.
 *
 * Scheduling is static, not upstream's agent schedulers: one "network host" (the API
 * server's `[neutron] host` unless told otherwise) serves DHCP for every network whose DHCP
 * port is bound to it (the API binds DHCP ports there) and hosts every router. Other hosts
 * only get what their own bound ports need.
 */
import type { Kysely } from 'kysely';
import { jsonFromDb } from '@onestack/core/db/index.ts';
import type { NeutronDB, PortRow, SubnetRow } from '../db/schema.ts';
import type {
  HostState,
  Ipv6Mode,
  NetworkState,
  NetworkType,
  PortState,
  RouterState,
  SecurityGroupState,
  SubnetState,
} from '../agent/model.ts';

/** Routers (with interfaces, gateway, floating IPs) by id: the L3 area's routerStates, once it exists. */
export type RouterStatesFn = (db: Kysely<NeutronDB>, ids?: string[]) => Promise<RouterState[]>;

export interface HostStateOptions {
  /** The host serving DHCP (for DHCP ports without a host) and all routers. */
  networkHost: string;
  routerStates?: RouterStatesFn;
  /** Upstream's enable_isolated_metadata: DHCP namespaces answer 169.254.169.254 on subnets without a router. */
  isolatedMetadata?: boolean;
}

const DHCP_OWNER = 'network:dhcp';
const ROUTER_INTERFACE_OWNERS = ['network:router_interface', 'network:router_interface_distributed', 'network:ha_router_replicated_interface'];

/** Agents' `configurations.local_ip` (upstream's linuxbridge/ovs agents report their VTEP so). */
export async function vtepAddresses(db: Kysely<NeutronDB>, hosts?: string[]): Promise<Map<string, string>> {
  let q = db.selectFrom('agents').select(['host', 'configurations']);
  if (hosts) {
    if (hosts.length === 0) return new Map();
    q = q.where('host', 'in', hosts);
  }
  const out = new Map<string, string>();
  for (const r of await q.execute()) {
    const c = jsonFromDb<Record<string, unknown>>(r.configurations) ?? {};
    const ip = c.local_ip ?? c.tunneling_ip;
    if (typeof ip === 'string' && ip) out.set(r.host, ip);
  }
  return out;
}

/** Is `port` wired by the L2 agent of its host (a tap the host plugs), rather than by DHCP/L3? */
export function isHostPlugged(deviceOwner: string): boolean {
  return !deviceOwner.startsWith('network:');
}

export async function buildHostState(db: Kysely<NeutronDB>, host: string, opts: HostStateOptions): Promise<HostState> {
  const isNetworkHost = host === opts.networkHost;
  const bound = (await db.selectFrom('ports').selectAll().where('binding_host_id', '=', host).execute()).filter((p) => isHostPlugged(p.device_owner));

  let dhcpQuery = db.selectFrom('ports').selectAll().where('device_owner', '=', DHCP_OWNER);
  dhcpQuery = isNetworkHost ? dhcpQuery.where('binding_host_id', 'in', [host, '']) : dhcpQuery.where('binding_host_id', '=', host);
  const dhcpPortRows = await dhcpQuery.execute();

  const routers = isNetworkHost && opts.routerStates ? await opts.routerStates(db) : [];
  const networkIds = new Set<string>([...bound.map((p) => p.network_id), ...dhcpPortRows.map((p) => p.network_id)]);
  for (const r of routers) for (const i of r.interfaces) networkIds.add(i.networkId);
  const netIds = [...networkIds].sort();

  const [networks, subnetRows] = await Promise.all([networkStates(db, netIds), netIds.length ? db.selectFrom('subnets').selectAll().where('network_id', 'in', netIds).orderBy('id').execute() : []]);
  // A network deleted between the two reads is simply not on the host.
  const present = new Set(networks.map((n) => n.id));
  const dhcpNets = new Set(dhcpPortRows.filter((p) => present.has(p.network_id)).map((p) => p.network_id));
  const routed = await routedSubnets(db, subnetRows.map((s) => s.id));

  const boundIds = new Set(bound.map((p) => p.id));
  const otherRows = dhcpNets.size
    ? (await db.selectFrom('ports').selectAll().where('network_id', 'in', [...dhcpNets]).where('device_owner', '!=', DHCP_OWNER).execute()).filter((p) => !boundIds.has(p.id))
    : [];
  const fixedIps = await fixedIpsOf(db, [...bound, ...dhcpPortRows, ...otherRows].map((p) => p.id));
  const groupsByPort = await groupsOf(db, bound.map((p) => p.id));
  const toState = (p: PortRow) => portState(p, fixedIps.get(p.id) ?? [], groupsByPort.get(p.id) ?? []);

  const ports = bound.filter((p) => present.has(p.network_id)).map(toState);
  const securityGroups = await securityGroupStates(db, [...new Set(ports.filter((p) => p.portSecurityEnabled).flatMap((p) => p.securityGroupIds))]);
  return {
    host,
    localVtepIp: (await vtepAddresses(db, [host])).get(host) ?? null,
    networks,
    ports,
    otherPorts: otherRows.map(toState),
    subnets: subnetRows.filter((s) => present.has(s.network_id)).map((s) => subnetState(s, Boolean(opts.isolatedMetadata) && !routed.has(s.id))),
    securityGroups,
    dhcpPorts: dhcpPortRows.filter((p) => dhcpNets.has(p.network_id)).map(toState),
    vtepPeers: await vtepPeers(db, host, networks, opts.networkHost),
    ...(opts.routerStates ? { routers } : {}),
  };
}

async function networkStates(db: Kysely<NeutronDB>, ids: string[]): Promise<NetworkState[]> {
  if (ids.length === 0) return [];
  const [nets, segs] = await Promise.all([
    db.selectFrom('networks').select(['id', 'mtu']).where('id', 'in', ids).orderBy('id').execute(),
    db.selectFrom('network_segments').selectAll().where('network_id', 'in', ids).orderBy('segment_index').execute(),
  ]);
  const first = new Map<string, (typeof segs)[number]>();
  for (const s of segs) if (!first.has(s.network_id)) first.set(s.network_id, s);
  return nets.flatMap((n) => {
    const s = first.get(n.id);
    if (!s) return [];
    return [{ id: n.id, mtu: n.mtu, segment: { networkType: s.network_type as NetworkType, segmentationId: s.segmentation_id, physicalNetwork: s.physical_network } }];
  });
}

async function routedSubnets(db: Kysely<NeutronDB>, subnetIds: string[]): Promise<Set<string>> {
  if (subnetIds.length === 0) return new Set();
  const rows = await db
    .selectFrom('ipallocations')
    .innerJoin('ports', 'ports.id', 'ipallocations.port_id')
    .select('ipallocations.subnet_id')
    .where('ipallocations.subnet_id', 'in', subnetIds)
    .where('ports.device_owner', 'in', ROUTER_INTERFACE_OWNERS)
    .execute();
  return new Set(rows.map((r) => r.subnet_id));
}

async function fixedIpsOf(db: Kysely<NeutronDB>, portIds: string[]): Promise<Map<string, { subnetId: string; ipAddress: string }[]>> {
  const out = new Map<string, { subnetId: string; ipAddress: string }[]>();
  for (const chunk of chunks(portIds)) {
    const rows = await db.selectFrom('ipallocations').select(['port_id', 'subnet_id', 'ip_address']).where('port_id', 'in', chunk).orderBy('ip_address').execute();
    for (const r of rows) {
      const list = out.get(r.port_id) ?? [];
      list.push({ subnetId: r.subnet_id, ipAddress: r.ip_address });
      out.set(r.port_id, list);
    }
  }
  return out;
}

async function groupsOf(db: Kysely<NeutronDB>, portIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const chunk of chunks(portIds)) {
    const rows = await db.selectFrom('port_security_group_bindings').selectAll().where('port_id', 'in', chunk).orderBy('security_group_id').execute();
    for (const r of rows) out.set(r.port_id, [...(out.get(r.port_id) ?? []), r.security_group_id]);
  }
  return out;
}

function portState(p: PortRow, fixedIps: { subnetId: string; ipAddress: string }[], groups: string[]): PortState {
  const pairs = jsonFromDb<{ ip_address: string; mac_address?: string }[]>(p.allowed_address_pairs) ?? [];
  return {
    id: p.id,
    networkId: p.network_id,
    macAddress: p.mac_address,
    fixedIps,
    deviceOwner: p.device_owner,
    deviceId: p.device_id,
    adminStateUp: p.admin_state_up === 1,
    portSecurityEnabled: p.port_security_enabled === 1,
    securityGroupIds: groups,
    allowedAddressPairs: pairs.map((x) => ({ ipAddress: x.ip_address, macAddress: x.mac_address ?? p.mac_address })),
    dnsName: p.dns_name || null,
  };
}

function subnetState(s: SubnetRow, isolatedMetadata: boolean): SubnetState {
  return {
    id: s.id,
    networkId: s.network_id,
    ipVersion: s.ip_version === 6 ? 6 : 4,
    cidr: s.cidr,
    gatewayIp: s.gateway_ip,
    enableDhcp: s.enable_dhcp === 1,
    dnsNameservers: jsonFromDb<string[]>(s.dns_nameservers) ?? [],
    hostRoutes: jsonFromDb<HostStateRoute[]>(s.host_routes)?.map((r) => ({ destination: r.destination, nexthop: r.nexthop })) ?? [],
    ipv6RaMode: s.ipv6_ra_mode as Ipv6Mode | null,
    ipv6AddressMode: s.ipv6_address_mode as Ipv6Mode | null,
    ...(isolatedMetadata && s.ip_version === 4 && s.enable_dhcp === 1 ? { isolatedMetadata: true } : {}),
  };
}

interface HostStateRoute {
  destination: string;
  nexthop: string;
}

/**
 * The groups the host's ports use, plus the groups their rules name as remote groups (a
 * remote-group rule matches that group's members: their fixed IPs and allowed pairs, on any host).
 */
export async function securityGroupStates(db: Kysely<NeutronDB>, groupIds: string[]): Promise<SecurityGroupState[]> {
  if (groupIds.length === 0) return [];
  const rules = await db.selectFrom('security_group_rules').selectAll().where('security_group_id', 'in', groupIds).orderBy('id').execute();
  const all = [...new Set([...groupIds, ...rules.flatMap((r) => (r.remote_group_id ? [r.remote_group_id] : []))])].sort();
  const [groups, members] = await Promise.all([
    db.selectFrom('security_groups').select(['id', 'stateful']).where('id', 'in', all).orderBy('id').execute(),
    db
      .selectFrom('port_security_group_bindings')
      .innerJoin('ports', 'ports.id', 'port_security_group_bindings.port_id')
      .leftJoin('ipallocations', 'ipallocations.port_id', 'ports.id')
      .select(['port_security_group_bindings.security_group_id as gid', 'ports.id as port_id', 'ports.allowed_address_pairs as pairs', 'ipallocations.ip_address as ip'])
      .where('port_security_group_bindings.security_group_id', 'in', all)
      .execute(),
  ]);
  const ips = new Map<string, Set<string>>();
  const pairsSeen = new Set<string>();
  for (const m of members) {
    const set = ips.get(m.gid) ?? new Set<string>();
    ips.set(m.gid, set);
    if (m.ip) set.add(m.ip);
    if (pairsSeen.has(`${m.gid}|${m.port_id}`)) continue;
    pairsSeen.add(`${m.gid}|${m.port_id}`);
    for (const p of jsonFromDb<{ ip_address: string }[]>(m.pairs) ?? []) set.add(p.ip_address);
  }
  return groups.map((g) => ({
    id: g.id,
    stateful: g.stateful === 1,
    rules: rules
      .filter((r) => r.security_group_id === g.id)
      .map((r) => ({
        id: r.id,
        direction: r.direction as 'ingress' | 'egress',
        ethertype: r.ethertype as 'IPv4' | 'IPv6',
        protocol: r.protocol,
        portRangeMin: r.port_range_min,
        portRangeMax: r.port_range_max,
        remoteIpPrefix: r.remote_ip_prefix,
        remoteGroupId: r.remote_group_id,
      })),
    memberIps: [...(ips.get(g.id) ?? [])].sort(),
  }));
}

/**
 * l2population, reduced: a host floods a VXLAN network's broadcasts only to the other hosts
 * that have something on it (bound ports; the network host for DHCP ports and routers).
 */
async function vtepPeers(db: Kysely<NeutronDB>, host: string, networks: NetworkState[], networkHost: string): Promise<Record<string, string[]>> {
  const vxlan = networks.filter((n) => n.segment.networkType === 'vxlan').map((n) => n.id);
  if (vxlan.length === 0) return {};
  const rows = await db.selectFrom('ports').select(['network_id', 'binding_host_id', 'device_owner']).distinct().where('network_id', 'in', vxlan).execute();
  const hostsByNet = new Map<string, Set<string>>();
  for (const r of rows) {
    // Router interfaces live on the network host whatever host their binding names.
    const where = ROUTER_INTERFACE_OWNERS.includes(r.device_owner) ? networkHost : r.binding_host_id || (r.device_owner === DHCP_OWNER ? networkHost : '');
    if (!where || where === host) continue;
    const set = hostsByNet.get(r.network_id) ?? new Set<string>();
    set.add(where);
    hostsByNet.set(r.network_id, set);
  }
  const vteps = await vtepAddresses(db, [...new Set([...hostsByNet.values()].flatMap((s) => [...s]))]);
  const out: Record<string, string[]> = {};
  for (const id of vxlan) {
    const peers = [...(hostsByNet.get(id) ?? [])].flatMap((h) => (vteps.has(h) ? [vteps.get(h)!] : []));
    out[id] = [...new Set(peers)].sort();
  }
  return out;
}

// Bound parameters per statement stay well under SQLite's and Postgres' limits.
function* chunks<T>(items: T[], size = 500): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
