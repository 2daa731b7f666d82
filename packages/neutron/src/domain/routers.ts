import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonToDb, withTransaction, type Database } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { Logger } from 'pino';
import type { NetworkRow, NeutronDB, PortRow, SubnetRow } from '../db/schema.ts';
import type { RouterRow } from '../db/router-schema.ts';
import { contains, ipToBig, overlaps, parseCidr } from './addresses.ts';
import type { Hooks } from './hooks.ts';
import { poolsOf } from './ipam.ts';
import {
  gatewayInUseByFip,
  interfaceInUseByFip,
  interfaceInUseByRoute,
  interfaceNotFound,
  interfaceNotFoundForSubnet,
  invalidRoutes,
  l3PortInUse,
  networkNotFound,
  portInUse,
  portNotFound,
  routerBadRequest,
  routerInUse,
  routerNotFound,
  routesExhausted,
  subnetNotFound,
} from './l3-errors.ts';
import type { PortRules } from './ports.ts';
import type { QuotaRegistry } from './quotas.ts';
import { deleteTags } from './tags.ts';

export const OWNER_INTERFACE = 'network:router_interface';
export const OWNER_GATEWAY = 'network:router_gateway';
export const OWNER_FLOATINGIP = 'network:floatingip';
/** upstream's max_routes. */
export const MAX_ROUTES = 30;

export interface GatewayInput {
  networkId: string;
  enableSnat?: boolean;
  externalFixedIps?: { subnet_id?: string; ip_address?: string }[];
}

export interface Route {
  destination: string;
  nexthop: string;
}

export interface RouterCreate {
  projectId: string;
  name?: string;
  description?: string;
  adminStateUp?: boolean;
  gateway?: GatewayInput | null;
  availabilityZoneHints?: string[];
}

export interface RouterChanges {
  name?: string;
  description?: string;
  adminStateUp?: boolean;
  /** null removes the gateway; undefined leaves it. */
  gateway?: GatewayInput | null;
  routes?: Route[];
}

/** What add/remove_router_interface answer (upstream's router interface info). */
export interface InterfaceInfo {
  id: string;
  tenant_id: string | null;
  project_id: string | null;
  port_id: string;
  network_id: string;
  subnet_id: string;
  subnet_ids: string[];
}

export interface Viewer {
  projectId?: string;
  isAdmin: boolean;
}

type PortEvent = { event: 'create' | 'update' | 'delete'; port: PortRow };

/**
 * Routers as upstream's L3 DB mixins keep them (l3_db, l3_gwmode_db,
 * extraroute_db): the gateway port on an external network, interface ports
 * on tenant subnets, extra routes whose nexthop must sit on a connected
 * subnet. Every write runs in one transaction with the ports it makes or
 * removes; afterwards the port hooks and the `changed` listeners hear about
 * it (the data plane resyncs those routers).
 */
export class RouterService {
  /** Called after a commit with the ids of routers whose interfaces, gateway, routes or floating IPs changed. */
  readonly changed: ((routerIds: string[]) => void)[] = [];
  /** Routers whose floating IPs a port deletion disassociated, reported once that deletion commits. */
  private readonly pendingByPort = new Map<string, string[]>();

  constructor(
    private readonly deps: { database: Database<NeutronDB>; clock: Clock; ids: IdSource; quotas: QuotaRegistry; hooks: Hooks; ports: PortRules; logger: Logger },
  ) {}

  get db(): Kysely<NeutronDB> {
    return this.deps.database.db;
  }

  /** Quotas for routers and floating IPs, and the core's port hooks. */
  install(): void {
    const { quotas, hooks } = this.deps;
    quotas.register({ name: 'router', count: async (trx, p) => countOf(trx, 'routers', p) });
    quotas.register({ name: 'floatingip', count: async (trx, p) => countOf(trx, 'floatingips', p) });
    hooks.portDeleting.push((trx, port, viaApi) => this.portDeleting(trx, port, viaApi));
    hooks.portChanged.push((event, port) => {
      if (event !== 'delete') return;
      const routers = this.pendingByPort.get(port.id);
      this.pendingByPort.delete(port.id);
      if (routers && routers.length > 0) this.notifyChanged(routers);
    });
  }

  notifyChanged(routerIds: string[]): void {
    const ids = [...new Set(routerIds)];
    if (ids.length === 0) return;
    for (const l of this.changed) {
      try {
        l(ids);
      } catch (err) {
        this.deps.logger.warn({ err, router_ids: ids }, 'router change listener failed');
      }
    }
  }

  private portEvents(events: PortEvent[]): void {
    for (const { event, port } of events) {
      for (const h of this.deps.hooks.portChanged) {
        try {
          h(event, port);
        } catch (err) {
          this.deps.logger.warn({ err, port_id: port.id }, 'port change hook failed');
        }
      }
    }
  }

  /**
   * upstream's prevent_l3_port_deletion: a router's or a floating IP's own
   * port cannot go through /ports; any other port takes its floating IPs'
   * associations with it.
   */
  private async portDeleting(trx: Kysely<NeutronDB>, port: PortRow, viaApi: boolean): Promise<void> {
    if (viaApi && [OWNER_INTERFACE, OWNER_GATEWAY].includes(port.device_owner)) {
      const owned = await trx.selectFrom('router_ports').select('router_id').where('port_id', '=', port.id).executeTakeFirst();
      if (owned) throw l3PortInUse(port.id, port.device_owner);
    }
    if (viaApi && port.device_owner === OWNER_FLOATINGIP) {
      const owned = await trx.selectFrom('floatingips').select('id').where('floating_port_id', '=', port.id).executeTakeFirst();
      if (owned) throw l3PortInUse(port.id, port.device_owner);
    }
    const fips = await trx.selectFrom('floatingips').selectAll().where('fixed_port_id', '=', port.id).execute();
    if (fips.length === 0) return;
    const now = this.deps.clock.now();
    for (const f of fips) {
      await trx
        .updateTable('floatingips')
        .set({ fixed_port_id: null, fixed_ip_address: null, router_id: null, last_known_router_id: f.router_id, status: 'DOWN', revision_number: f.revision_number + 1, updated_at: Math.max(now, f.updated_at) })
        .where('id', '=', f.id)
        .execute();
    }
    this.pendingByPort.set(port.id, fips.map((f) => f.router_id).filter((r): r is string => r !== null));
  }

  async find(id: string): Promise<RouterRow | undefined> {
    return this.db.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirst();
  }

  // ---------- create / update / delete ----------

  async create(input: RouterCreate): Promise<RouterRow> {
    const events: PortEvent[] = [];
    const row = await withTransaction(this.deps.database, async (trx) => {
      await this.deps.quotas.check(trx, input.projectId, 'router');
      const now = this.deps.clock.now();
      const router: RouterRow = {
        id: this.deps.ids.uuid(),
        project_id: input.projectId,
        name: input.name ?? '',
        description: input.description ?? '',
        revision_number: 1,
        created_at: now,
        updated_at: now,
        status: 'ACTIVE',
        admin_state_up: input.adminStateUp === false ? 0 : 1,
        gw_port_id: null,
        enable_snat: 1,
        availability_zone_hints: jsonToDb(input.availabilityZoneHints ?? []),
      };
      await trx.insertInto('routers').values(router).execute();
      if (input.gateway) {
        const gw = await this.setGateway(trx, router, input.gateway, events);
        await trx.updateTable('routers').set(gw).where('id', '=', router.id).execute();
        Object.assign(router, gw);
      }
      return router;
    });
    this.portEvents(events);
    if (row.gw_port_id) this.notifyChanged([row.id]);
    return row;
  }

  async update(router: RouterRow, changes: RouterChanges): Promise<RouterRow> {
    const events: PortEvent[] = [];
    const updated = await withTransaction(this.deps.database, async (trx) => {
      const next: Partial<RouterRow> = {};
      if (changes.name !== undefined) next.name = changes.name;
      if (changes.description !== undefined) next.description = changes.description;
      if (changes.adminStateUp !== undefined) next.admin_state_up = changes.adminStateUp ? 1 : 0;
      if (changes.gateway !== undefined) Object.assign(next, await this.setGateway(trx, router, changes.gateway, events));
      if (changes.routes !== undefined) await this.replaceRoutes(trx, router, changes.routes);
      return this.bump(trx, router, next);
    });
    this.portEvents(events);
    this.notifyChanged([router.id]);
    return updated;
  }

  private async bump(trx: Kysely<NeutronDB>, router: RouterRow, next: Partial<RouterRow>): Promise<RouterRow> {
    const set = { ...next, revision_number: router.revision_number + 1, updated_at: Math.max(this.deps.clock.now(), router.updated_at) };
    const r = await trx.updateTable('routers').set(set).where('id', '=', router.id).where('revision_number', '=', router.revision_number).executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Router ${router.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
    return { ...router, ...set };
  }

  /**
   * Moves the revision of a router whose ports changed. Not a compare-and-set
   * on the revision read before the transaction: concurrent interface changes
   * on one router all succeed (the row lock orders them), while a delete
   * racing with them loses its compare-and-set and is refused.
   */
  private async touch(trx: Kysely<NeutronDB>, routerId: string): Promise<void> {
    const r = await trx
      .updateTable('routers')
      .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: this.deps.clock.now() }))
      .where('id', '=', routerId)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw routerNotFound(routerId);
  }

  /** Deletes a router: refused while interfaces remain (RouterInUse); the gateway port, routes and tags go with it. */
  async delete(router: RouterRow): Promise<void> {
    const events: PortEvent[] = [];
    await withTransaction(this.deps.database, async (trx) => {
      const attached = await trx.selectFrom('router_ports').select('port_id').where('router_id', '=', router.id).where('port_type', '=', OWNER_INTERFACE).orderBy('port_id').execute();
      if (attached.length > 0) throw routerInUse(router.id, `has ports still attached: ${attached.map((a) => a.port_id).join(', ')}`);
      await this.removeGateway(trx, router, events);
      await trx.deleteFrom('router_routes').where('router_id', '=', router.id).execute();
      await trx.deleteFrom('router_ports').where('router_id', '=', router.id).execute();
      await deleteTags(trx, router.id);
      const r = await trx.deleteFrom('routers').where('id', '=', router.id).where('revision_number', '=', router.revision_number).executeTakeFirst();
      if (Number(r.numDeletedRows) !== 1) throw new ApiError('conflict', `Router ${router.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
    });
    this.portEvents(events);
    this.notifyChanged([router.id]);
  }

  // ---------- gateway ----------

  private async removeGateway(trx: Kysely<NeutronDB>, router: RouterRow, events: PortEvent[]): Promise<void> {
    if (!router.gw_port_id) return;
    const port = await trx.selectFrom('ports').selectAll().where('id', '=', router.gw_port_id).executeTakeFirst();
    const fip = await trx.selectFrom('floatingips').select('id').where('router_id', '=', router.id).executeTakeFirst();
    if (fip) throw gatewayInUseByFip(router.id, port?.network_id ?? '');
    await trx.deleteFrom('router_ports').where('port_id', '=', router.gw_port_id).execute();
    if (port) await this.removePort(trx, port, events);
  }

  private async removePort(trx: Kysely<NeutronDB>, port: PortRow, events: PortEvent[]): Promise<void> {
    for (const h of this.deps.hooks.portDeleting) await h(trx, port, false);
    await this.deps.ports.remove(trx, port.id);
    events.push({ event: 'delete', port });
  }

  /**
   * Sets, moves or clears the external gateway (upstream's
   * _update_router_gw_info with ext-gw-mode): a new network means a new
   * gateway port; the same network with other fixed IPs moves the port's
   * addresses; enable_snat falls back to the default when not given.
   */
  private async setGateway(trx: Kysely<NeutronDB>, router: RouterRow, info: GatewayInput | null, events: PortEvent[]): Promise<Partial<RouterRow>> {
    if (!info) {
      await this.removeGateway(trx, router, events);
      return { gw_port_id: null, enable_snat: 1 };
    }
    const net = await trx.selectFrom('networks').selectAll().where('id', '=', info.networkId).executeTakeFirst();
    if (!net) throw networkNotFound(info.networkId);
    if (net.router_external !== 1) throw routerBadRequest(`Network ${net.id} is not an external network`);
    const subnets = await trx.selectFrom('subnets').selectAll().where('network_id', '=', net.id).execute();
    for (const ip of info.externalFixedIps ?? []) {
      if (ip.ip_address !== undefined && subnets.some((s) => s.gateway_ip && s.gateway_ip === ip.ip_address)) {
        throw routerBadRequest(`External IP ${ip.ip_address} is the same as the gateway IP`);
      }
    }
    const enableSnat = info.enableSnat === undefined ? 1 : info.enableSnat ? 1 : 0;
    const current = router.gw_port_id ? await trx.selectFrom('ports').selectAll().where('id', '=', router.gw_port_id).executeTakeFirst() : undefined;
    if (current && current.network_id === net.id) {
      if (info.externalFixedIps !== undefined) {
        const requests = info.externalFixedIps.map((f) => ({ subnetId: f.subnet_id, ipAddress: f.ip_address }));
        await this.deps.ports.replaceFixedIps(trx, current, requests);
        await trx.updateTable('ports').set({ revision_number: current.revision_number + 1, updated_at: this.deps.clock.now() }).where('id', '=', current.id).execute();
        events.push({ event: 'update', port: current });
      }
      return { enable_snat: enableSnat };
    }
    await this.removeGateway(trx, router, events);
    const port = await this.deps.ports.create(
      trx,
      net,
      {
        projectId: '',
        name: '',
        deviceId: router.id,
        deviceOwner: OWNER_GATEWAY,
        adminStateUp: true,
        fixedIps: info.externalFixedIps?.map((f) => ({ subnetId: f.subnet_id, ipAddress: f.ip_address })),
      },
      { quota: false },
    );
    const ips = await trx.selectFrom('ipallocations').select('ip_address').where('port_id', '=', port.id).execute();
    if (ips.length === 0) throw routerBadRequest(`No IPs available for external network ${net.id}`);
    await trx.insertInto('router_ports').values({ router_id: router.id, port_id: port.id, port_type: OWNER_GATEWAY }).execute();
    events.push({ event: 'create', port });
    const extra = await trx.selectFrom('router_routes').select(['destination', 'nexthop']).where('router_id', '=', router.id).execute();
    if (extra.length > 0) await this.validateRoutes(trx, router.id, extra);
    return { gw_port_id: port.id, enable_snat: enableSnat };
  }

  // ---------- routes ----------

  /** Subnets the router is connected to (interfaces and the gateway's network) and its own addresses. */
  private async connected(trx: Kysely<NeutronDB>, routerId: string): Promise<{ cidrs: string[]; ips: string[] }> {
    const ports = await trx.selectFrom('router_ports').innerJoin('ports', 'ports.id', 'router_ports.port_id').select(['ports.id', 'ports.network_id', 'router_ports.port_type']).where('router_ports.router_id', '=', routerId).execute();
    if (ports.length === 0) return { cidrs: [], ips: [] };
    const allocs = await trx.selectFrom('ipallocations').innerJoin('subnets', 'subnets.id', 'ipallocations.subnet_id').select(['subnets.cidr', 'ipallocations.ip_address']).where('ipallocations.port_id', 'in', ports.map((p) => p.id)).execute();
    const cidrs = allocs.map((a) => a.cidr);
    const gwNets = ports.filter((p) => p.port_type === OWNER_GATEWAY).map((p) => p.network_id);
    if (gwNets.length > 0) cidrs.push(...(await trx.selectFrom('subnets').select('cidr').where('network_id', 'in', gwNets).execute()).map((s) => s.cidr));
    return { cidrs, ips: allocs.map((a) => a.ip_address) };
  }

  /** upstream's _validate_routes: each nexthop on a connected subnet and not one of the router's own addresses. */
  private async validateRoutes(trx: Kysely<NeutronDB>, routerId: string, routes: Route[]): Promise<void> {
    const { cidrs, ips } = await this.connected(trx, routerId);
    const parsed = cidrs.map((c) => parseCidr(c)!).filter(Boolean);
    for (const r of routes) {
      const hop = ipToBig(r.nexthop)!;
      if (!parsed.some((c) => c.version === hop.version && contains(c, hop.value))) throw invalidRoutes(routes, 'the nexthop is not connected with router');
      if (ips.includes(r.nexthop)) throw invalidRoutes(routes, 'the nexthop is used by router');
    }
  }

  private async replaceRoutes(trx: Kysely<NeutronDB>, router: RouterRow, routes: Route[]): Promise<void> {
    await this.validateRoutes(trx, router.id, routes);
    if (routes.length > MAX_ROUTES) throw routesExhausted(router.id, MAX_ROUTES);
    await trx.deleteFrom('router_routes').where('router_id', '=', router.id).execute();
    if (routes.length > 0) await trx.insertInto('router_routes').values(routes.map((r) => ({ router_id: router.id, destination: r.destination, nexthop: r.nexthop }))).execute();
  }

  async routesOf(routerIds: string[]): Promise<Map<string, Route[]>> {
    const out = new Map<string, Route[]>(routerIds.map((id) => [id, []]));
    for (let i = 0; i < routerIds.length; i += 500) {
      const rows = await this.db.selectFrom('router_routes').selectAll().where('router_id', 'in', routerIds.slice(i, i + 500)).orderBy('destination').orderBy('nexthop').execute();
      for (const r of rows) out.get(r.router_id)?.push({ destination: r.destination, nexthop: r.nexthop });
    }
    return out;
  }

  /** extraroute-atomic: adds routes to the current set (exact duplicates merge). */
  async addRoutes(router: RouterRow, add: Route[]): Promise<RouterRow> {
    const old = (await this.routesOf([router.id])).get(router.id) ?? [];
    const merged = [...old];
    for (const r of add) if (!merged.some((m) => m.destination === r.destination && m.nexthop === r.nexthop)) merged.push(r);
    return this.update(router, { routes: merged });
  }

  /** extraroute-atomic: removes routes; one already missing is no error. */
  async removeRoutes(router: RouterRow, remove: Route[]): Promise<RouterRow> {
    const old = (await this.routesOf([router.id])).get(router.id) ?? [];
    return this.update(router, { routes: old.filter((o) => !remove.some((r) => r.destination === o.destination && r.nexthop === o.nexthop)) });
  }

  // ---------- interfaces ----------

  /** Subnets of the router's ports, and the gateway network's subnets, for the duplicate and overlap checks. */
  private async checkNewSubnets(trx: Kysely<NeutronDB>, routerId: string, fresh: SubnetRow[], ignorePort?: string): Promise<void> {
    const ports = await trx.selectFrom('router_ports').innerJoin('ports', 'ports.id', 'router_ports.port_id').select(['ports.id', 'ports.network_id', 'router_ports.port_type']).where('router_ports.router_id', '=', routerId).execute();
    const mine = ports.filter((p) => p.id !== ignorePort);
    if (mine.length === 0) return;
    const allocs = await trx.selectFrom('ipallocations').select(['port_id', 'subnet_id']).where('port_id', 'in', mine.map((p) => p.id)).execute();
    const ids = new Set<string>();
    for (const a of allocs) {
      if (fresh.some((s) => s.id === a.subnet_id)) throw routerBadRequest(`Router already has a port on subnet ${a.subnet_id}`);
      const p = mine.find((x) => x.id === a.port_id)!;
      if (p.port_type !== OWNER_GATEWAY) ids.add(a.subnet_id);
    }
    const gwNets = mine.filter((p) => p.port_type === OWNER_GATEWAY).map((p) => p.network_id);
    const existing = [
      ...(ids.size > 0 ? await trx.selectFrom('subnets').selectAll().where('id', 'in', [...ids]).execute() : []),
      ...(gwNets.length > 0 ? await trx.selectFrom('subnets').selectAll().where('network_id', 'in', gwNets).execute() : []),
    ];
    for (const sub of existing) {
      for (const s of fresh) {
        if (overlaps(parseCidr(sub.cidr)!, parseCidr(s.cidr)!)) {
          throw routerBadRequest(`Cidr ${s.cidr} of subnet ${s.id} overlaps with cidr ${sub.cidr} of subnet ${sub.id}`);
        }
      }
    }
  }

  private async interfacePorts(trx: Kysely<NeutronDB>, routerId: string): Promise<PortRow[]> {
    return trx
      .selectFrom('ports')
      .selectAll('ports')
      .innerJoin('router_ports', 'router_ports.port_id', 'ports.id')
      .where('router_ports.router_id', '=', routerId)
      .where('router_ports.port_type', '=', OWNER_INTERFACE)
      .execute() as Promise<PortRow[]>;
  }

  /** add_router_interface by subnet: a port with the subnet's gateway IP (an IPv6 subnet joins the router's port on that network if it has one). */
  async addInterfaceBySubnet(router: RouterRow, subnetId: string, viewer: Viewer): Promise<InterfaceInfo> {
    const events: PortEvent[] = [];
    const info = await withTransaction(this.deps.database, async (trx) => {
      const subnet = await trx.selectFrom('subnets').selectAll().where('id', '=', subnetId).executeTakeFirst();
      const net = subnet && (await trx.selectFrom('networks').selectAll().where('id', '=', subnet.network_id).executeTakeFirst());
      if (!subnet || !net || !(await this.netVisible(trx, net, viewer))) throw subnetNotFound(subnetId);
      if (!subnet.gateway_ip) throw routerBadRequest('Subnet for router interface must have a gateway IP');
      if (!viewer.isAdmin && subnet.project_id !== viewer.projectId && !(await this.rbacShared(trx, net.id, viewer.projectId))) {
        throw routerBadRequest(`Cannot add interface to router because subnet ${subnetId} is not owned by project making the request`);
      }
      await this.checkNewSubnets(trx, router.id, [subnet]);
      if (subnet.ip_version === 6) {
        const v6 = await this.v6PortOn(trx, router.id, net.id);
        if (v6) {
          const have = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', v6.id).execute();
          await this.deps.ports.replaceFixedIps(trx, v6, [...have.map((h) => ({ subnetId: h.subnet_id, ipAddress: h.ip_address })), { subnetId: subnet.id, ipAddress: subnet.gateway_ip }]);
          await trx.updateTable('ports').set({ revision_number: v6.revision_number + 1, updated_at: this.deps.clock.now() }).where('id', '=', v6.id).execute();
          events.push({ event: 'update', port: v6 });
          await this.touch(trx, router.id);
          return this.info(router, v6.id, net.id, [...have.map((h) => h.subnet_id), subnet.id], subnet.id);
        }
      }
      const port = await this.deps.ports.create(trx, net, {
        projectId: router.project_id ?? '',
        name: '',
        deviceId: router.id,
        deviceOwner: OWNER_INTERFACE,
        adminStateUp: true,
        fixedIps: [{ subnetId: subnet.id, ipAddress: subnet.gateway_ip }],
      });
      await trx.insertInto('router_ports').values({ router_id: router.id, port_id: port.id, port_type: OWNER_INTERFACE }).execute();
      events.push({ event: 'create', port });
      await this.touch(trx, router.id);
      return this.info(router, port.id, net.id, [subnet.id], subnet.id);
    });
    this.portEvents(events);
    this.notifyChanged([router.id]);
    return info;
  }

  /** add_router_interface by port: a port without a device, with fixed IPs, at most one IPv4 subnet, becomes the router's. */
  async addInterfaceByPort(router: RouterRow, portId: string, viewer: Viewer): Promise<InterfaceInfo> {
    const events: PortEvent[] = [];
    const info = await withTransaction(this.deps.database, async (trx) => {
      const port = await trx.selectFrom('ports').selectAll().where('id', '=', portId).executeTakeFirst();
      const net = port && (await trx.selectFrom('networks').selectAll().where('id', '=', port.network_id).executeTakeFirst());
      if (!port || !net || !(viewer.isAdmin || port.project_id === viewer.projectId || net.project_id === viewer.projectId)) throw portNotFound(portId);
      if (port.device_id !== '') throw portInUse(port.id, port.network_id, port.device_id);
      const allocs = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', port.id).execute();
      if (allocs.length === 0) throw routerBadRequest('Router port must have at least one fixed IP');
      const subnets = await trx.selectFrom('subnets').selectAll().where('id', 'in', [...new Set(allocs.map((a) => a.subnet_id))]).execute();
      if (allocs.some((a) => a.ip_address.includes(':')) && (await this.v6PortOn(trx, router.id, port.network_id))) {
        const other = (await this.v6PortOn(trx, router.id, port.network_id))!;
        throw routerBadRequest(
          `Router already contains IPv6 port ${other.id} belonging to network id ${other.network_id}. Only one IPv6 port from the same network subnet can be connected to a router`,
        );
      }
      await this.checkNewSubnets(trx, router.id, subnets, port.id);
      if (subnets.filter((s) => s.ip_version === 4).length > 1) throw routerBadRequest('Cannot have multiple IPv4 subnets on router port');
      if (!viewer.isAdmin) {
        for (const a of allocs) {
          const s = subnets.find((x) => x.id === a.subnet_id)!;
          if (s.project_id !== viewer.projectId && !this.inPools(s, a.ip_address)) {
            throw routerBadRequest(
              `Cannot add interface to router because specified port ${port.id} has an IP address out of the allocation pool of subnet ${s.id}, which is not owned by the project making the request`,
            );
          }
        }
      }
      const now = Math.max(this.deps.clock.now(), port.updated_at);
      await trx.updateTable('ports').set({ device_id: router.id, device_owner: OWNER_INTERFACE, revision_number: port.revision_number + 1, updated_at: now }).where('id', '=', port.id).execute();
      // Router ports are not filtered by security groups (upstream's port security does not apply to network:* owners).
      await trx.deleteFrom('port_security_group_bindings').where('port_id', '=', port.id).execute();
      await trx.insertInto('router_ports').values({ router_id: router.id, port_id: port.id, port_type: OWNER_INTERFACE }).execute();
      events.push({ event: 'update', port: { ...port, device_id: router.id, device_owner: OWNER_INTERFACE } });
      await this.touch(trx, router.id);
      const ids = allocs.map((a) => a.subnet_id);
      return this.info(router, port.id, port.network_id, ids, ids[0]);
    });
    this.portEvents(events);
    this.notifyChanged([router.id]);
    return info;
  }

  /** remove_router_interface by port (and optionally a subnet it must have) or by subnet. */
  async removeInterface(router: RouterRow, by: { portId?: string; subnetId?: string }): Promise<InterfaceInfo> {
    const events: PortEvent[] = [];
    const info = await withTransaction(this.deps.database, async (trx) => {
      const ports = await this.interfacePorts(trx, router.id);
      if (by.portId !== undefined) {
        const port = ports.find((p) => p.id === by.portId);
        if (!port) throw interfaceNotFound(router.id, by.portId);
        const allocs = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', port.id).execute();
        const subnetIds = allocs.map((a) => a.subnet_id);
        if (by.subnetId !== undefined && !subnetIds.includes(by.subnetId)) {
          throw badRequest(`Subnet on port ${port.id} does not match the requested subnet ${by.subnetId}.`, { type: 'SubnetMismatchForPort' });
        }
        for (const s of subnetIds) await this.confirmNotInUse(trx, router.id, s);
        await trx.deleteFrom('router_ports').where('port_id', '=', port.id).execute();
        await this.removePort(trx, port, events);
        await this.touch(trx, router.id);
        return this.info(router, port.id, port.network_id, subnetIds, subnetIds[0]);
      }
      const subnetId = by.subnetId!;
      const subnet = await trx.selectFrom('subnets').select('id').where('id', '=', subnetId).executeTakeFirst();
      if (!subnet) throw subnetNotFound(subnetId);
      await this.confirmNotInUse(trx, router.id, subnetId);
      const allocs = ports.length ? await trx.selectFrom('ipallocations').selectAll().where('port_id', 'in', ports.map((p) => p.id)).execute() : [];
      const hit = allocs.find((a) => a.subnet_id === subnetId);
      if (!hit) throw interfaceNotFoundForSubnet(router.id, subnetId);
      const port = ports.find((p) => p.id === hit.port_id)!;
      const mine = allocs.filter((a) => a.port_id === port.id);
      if (mine.length > 1) {
        // An IPv6 port with several prefixes loses only this subnet's address.
        const keep = mine.filter((a) => a.subnet_id !== subnetId);
        await this.deps.ports.replaceFixedIps(trx, port, keep.map((k) => ({ subnetId: k.subnet_id, ipAddress: k.ip_address })));
        await trx.updateTable('ports').set({ revision_number: port.revision_number + 1, updated_at: this.deps.clock.now() }).where('id', '=', port.id).execute();
        events.push({ event: 'update', port });
      } else {
        await trx.deleteFrom('router_ports').where('port_id', '=', port.id).execute();
        await this.removePort(trx, port, events);
      }
      await this.touch(trx, router.id);
      return this.info(router, port.id, port.network_id, [subnetId], subnetId);
    });
    this.portEvents(events);
    this.notifyChanged([router.id]);
    return info;
  }

  /** upstream's _confirm_router_interface_not_in_use: no floating IP behind the interface, no route via it. */
  private async confirmNotInUse(trx: Kysely<NeutronDB>, routerId: string, subnetId: string): Promise<void> {
    const subnet = await trx.selectFrom('subnets').select('cidr').where('id', '=', subnetId).executeTakeFirst();
    if (!subnet) return;
    const cidr = parseCidr(subnet.cidr)!;
    const inSubnet = (ip: string) => {
      const b = ipToBig(ip);
      return b !== undefined && b.version === cidr.version && contains(cidr, b.value);
    };
    const fips = await trx.selectFrom('floatingips').select('fixed_ip_address').where('router_id', '=', routerId).execute();
    if (fips.some((f) => f.fixed_ip_address && inSubnet(f.fixed_ip_address))) throw interfaceInUseByFip(routerId, subnetId);
    const routes = await trx.selectFrom('router_routes').select('nexthop').where('router_id', '=', routerId).execute();
    if (routes.some((r) => inSubnet(r.nexthop))) throw interfaceInUseByRoute(routerId, subnetId);
  }

  private info(router: RouterRow, portId: string, networkId: string, subnetIds: string[], subnetId: string): InterfaceInfo {
    return { id: router.id, tenant_id: router.project_id, project_id: router.project_id, port_id: portId, network_id: networkId, subnet_id: subnetId, subnet_ids: subnetIds };
  }

  private async v6PortOn(trx: Kysely<NeutronDB>, routerId: string, networkId: string): Promise<PortRow | undefined> {
    for (const p of await this.interfacePorts(trx, routerId)) {
      if (p.network_id !== networkId) continue;
      const allocs = await trx.selectFrom('ipallocations').select('ip_address').where('port_id', '=', p.id).execute();
      if (allocs.some((a) => a.ip_address.includes(':'))) return p;
    }
    return undefined;
  }

  private inPools(s: SubnetRow, ip: string): boolean {
    const v = ipToBig(ip)?.value;
    if (v === undefined) return false;
    return poolsOf(s).some((p) => v >= p.start && v <= p.end);
  }

  private async netVisible(trx: Kysely<NeutronDB>, net: NetworkRow, viewer: Viewer): Promise<boolean> {
    if (viewer.isAdmin || net.project_id === viewer.projectId || net.shared === 1 || net.router_external === 1) return true;
    return this.rbacShared(trx, net.id, viewer.projectId, true);
  }

  private async rbacShared(trx: Kysely<NeutronDB>, networkId: string, projectId: string | undefined, orEveryone = false): Promise<boolean> {
    const targets = orEveryone ? [projectId ?? '', '*'] : [projectId ?? ''];
    const row = await trx
      .selectFrom('rbac_policies')
      .select('id')
      .where('object_type', '=', 'network')
      .where('object_id', '=', networkId)
      .where('action', '=', 'access_as_shared')
      .where('target_project', 'in', targets)
      .executeTakeFirst();
    return row !== undefined;
  }

  // ---------- views ----------

  /** external_gateway_info of each router (null without a gateway). */
  async gatewayInfos(routers: RouterRow[]): Promise<Map<string, Record<string, unknown> | null>> {
    const out = new Map<string, Record<string, unknown> | null>(routers.map((r) => [r.id, null]));
    const withGw = routers.filter((r) => r.gw_port_id);
    if (withGw.length === 0) return out;
    const portIds = withGw.map((r) => r.gw_port_id!);
    const ports = await this.db.selectFrom('ports').select(['id', 'network_id']).where('id', 'in', portIds).execute();
    const allocs = await this.db.selectFrom('ipallocations').select(['port_id', 'subnet_id', 'ip_address']).where('port_id', 'in', portIds).orderBy('ip_address').execute();
    for (const r of withGw) {
      const p = ports.find((x) => x.id === r.gw_port_id);
      if (!p) continue;
      out.set(r.id, {
        network_id: p.network_id,
        external_fixed_ips: allocs.filter((a) => a.port_id === p.id).map((a) => ({ subnet_id: a.subnet_id, ip_address: a.ip_address })),
        enable_snat: r.enable_snat === 1,
      });
    }
    return out;
  }
}

async function countOf(trx: Kysely<NeutronDB>, table: 'routers' | 'floatingips', projectId: string): Promise<number> {
  const row = await trx.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).executeTakeFirst();
  return Number(row?.n ?? 0);
}
