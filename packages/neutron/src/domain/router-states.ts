import type { Kysely } from 'kysely';
import type { NeutronDB } from '../db/schema.ts';
import type { RouterFixedIp, RouterState } from '../agent/l3/router-state.ts';
import { parseCidr } from './addresses.ts';
import { OWNER_GATEWAY, OWNER_INTERFACE } from './routers.ts';

/**
 * The routers' part of the host state (agent/l3/router-state.ts), read from
 * the database: interfaces and gateway with their addresses, extra routes
 * and associated floating IPs, like upstream's sync_routers payload. All
 * routers, or those in `routerIds` (a deleted one is simply absent).
 */
export async function routerStates(db: Kysely<NeutronDB>, routerIds?: string[]): Promise<RouterState[]> {
  if (routerIds && routerIds.length === 0) return [];
  let q = db.selectFrom('routers').selectAll().orderBy('id');
  if (routerIds) q = q.where('id', 'in', routerIds);
  const routers = await q.execute();
  if (routers.length === 0) return [];
  const ids = routers.map((r) => r.id);

  const links = await db.selectFrom('router_ports').selectAll().where('router_id', 'in', ids).execute();
  const portIds = links.map((l) => l.port_id);
  const ports = portIds.length ? await db.selectFrom('ports').selectAll().where('id', 'in', portIds).orderBy('id').execute() : [];
  const allocs = portIds.length ? await db.selectFrom('ipallocations').selectAll().where('port_id', 'in', portIds).orderBy('ip_address').execute() : [];
  const netIds = [...new Set(ports.map((p) => p.network_id))];
  const nets = netIds.length ? await db.selectFrom('networks').select(['id', 'mtu']).where('id', 'in', netIds).execute() : [];
  const subnets = netIds.length ? await db.selectFrom('subnets').select(['id', 'network_id', 'cidr', 'gateway_ip', 'ip_version', 'ipv6_ra_mode']).where('network_id', 'in', netIds).orderBy('ip_version').orderBy('id').execute() : [];
  const segments = netIds.length ? await db.selectFrom('network_segments').select(['network_id', 'physical_network']).where('network_id', 'in', netIds).orderBy('segment_index').execute() : [];
  const routes = await db.selectFrom('router_routes').selectAll().where('router_id', 'in', ids).orderBy('destination').orderBy('nexthop').execute();
  const fips = await db.selectFrom('floatingips').selectAll().where('router_id', 'in', ids).where('fixed_port_id', 'is not', null).orderBy('floating_ip_address').execute();

  const mtuOf = (netId: string) => nets.find((n) => n.id === netId)?.mtu;
  const fixedIpsOf = (portId: string): RouterFixedIp[] =>
    allocs
      .filter((a) => a.port_id === portId)
      .map((a) => {
        const s = subnets.find((x) => x.id === a.subnet_id);
        return { ipAddress: a.ip_address, prefixlen: s ? parseCidr(s.cidr)!.prefix : a.ip_address.includes(':') ? 128 : 32, subnetId: a.subnet_id, ...(s?.ipv6_ra_mode ? { ipv6RaMode: s.ipv6_ra_mode } : {}) };
      });

  return routers.map((r) => {
    const mine = links.filter((l) => l.router_id === r.id);
    const interfaces = mine
      .filter((l) => l.port_type === OWNER_INTERFACE)
      .map((l) => ports.find((p) => p.id === l.port_id))
      .filter((p) => p !== undefined)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((p) => ({ portId: p.id, networkId: p.network_id, macAddress: p.mac_address, fixedIps: fixedIpsOf(p.id), ...opt('mtu', mtuOf(p.network_id)) }));
    const gwLink = mine.find((l) => l.port_type === OWNER_GATEWAY);
    const gwPort = gwLink && ports.find((p) => p.id === gwLink.port_id);
    const state: RouterState = {
      id: r.id,
      adminStateUp: r.admin_state_up === 1,
      interfaces,
      routes: routes.filter((x) => x.router_id === r.id).map((x) => ({ destination: x.destination, nexthop: x.nexthop })),
      floatingIps: fips
        .filter((f) => f.router_id === r.id)
        .map((f) => ({ id: f.id, floatingIpAddress: f.floating_ip_address, fixedIpAddress: f.fixed_ip_address!, portId: f.fixed_port_id! })),
    };
    if (gwPort) {
      const gwIps = fixedIpsOf(gwPort.id);
      const families = new Set<number>(gwIps.map((i) => (i.ipAddress.includes(':') ? 6 : 4)));
      // One default route per family the gateway has an address in: the first external subnet of that family with a gateway.
      const externalGatewayIps = ([4, 6] as const)
        .filter((v) => families.has(v))
        .map((v) => subnets.find((s) => s.network_id === gwPort.network_id && s.ip_version === v && s.gateway_ip && gwIps.some((i) => i.subnetId === s.id))?.gateway_ip)
        .filter((g): g is string => typeof g === 'string');
      state.gateway = {
        portId: gwPort.id,
        networkId: gwPort.network_id,
        macAddress: gwPort.mac_address,
        fixedIps: gwIps,
        enableSnat: r.enable_snat === 1,
        externalGatewayIps,
        ...opt('mtu', mtuOf(gwPort.network_id)),
        ...opt('physicalNetwork', segments.find((g) => g.network_id === gwPort.network_id && g.physical_network)?.physical_network ?? undefined),
      };
    }
    return state;
  });
}

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}
