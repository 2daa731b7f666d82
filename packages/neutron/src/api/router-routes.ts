import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { jsonFromDb } from '@onestack/core/db/index.ts';
import { credentialsFromAuth, type Target } from '@onestack/core/policy/index.ts';
import type { RouterRow } from '../db/router-schema.ts';
import { createMechanismDrivers } from '../domain/ml2/mechanism-driver.ts';
import { ipToBig, parseCidr } from '../domain/addresses.ts';
import { FloatingIpService } from '../domain/floating-ips.ts';
import { routerBadRequest, routerNotFound } from '../domain/l3-errors.ts';
import { PortRules } from '../domain/ports.ts';
import { RouterService, type GatewayInput, type Route } from '../domain/routers.ts';
import { tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, hideRefused, type ApiDeps, type Caller, type NeutronModule } from './context.ts';
import { registerFloatingIpRoutes } from './floating-ip-routes.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { STANDARD_ATTRS, bool, checkAttrs, createBodies, dict, invalidInput, listOf, memberBody, owningProject, str, uuid, type Validator } from './validate.ts';

const ROUTER_LIST: ListSpec = {
  table: 'routers',
  collection: 'routers',
  columns: {
    status: { column: 'status', type: 'string', sortable: true },
    admin_state_up: { column: 'admin_state_up', type: 'bool', sortable: true },
  },
  ignored: ['external_gateway_info', 'routes', 'availability_zones', 'availability_zone_hints', 'distributed', 'ha', 'flavor_id', 'tags'],
};

const FIXED_IP: Validator = (v, attr) => {
  const o = dict(v, attr) as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'subnet_id' && k !== 'ip_address');
  if (extra.length > 0) throw invalidInput(attr, `Unrecognized attribute(s) '${extra.join(', ')}'`);
  if (o.subnet_id !== undefined) uuid(o.subnet_id, attr);
  if (o.ip_address !== undefined && (typeof o.ip_address !== 'string' || !ipToBig(o.ip_address))) throw invalidInput(attr, `'${String(o.ip_address)}' is not a valid IP address`);
  return o;
};

/** external_gateway_info: null or {} clears it; otherwise network_id is required (neutron-lib's validate_dict_or_nodata). */
const GATEWAY: Validator = (v, attr) => {
  if (v === null) return null;
  const o = dict(v, attr) as Record<string, unknown>;
  if (Object.keys(o).length === 0) return null;
  const unknown = Object.keys(o).filter((k) => !['network_id', 'enable_snat', 'external_fixed_ips'].includes(k));
  if (unknown.length > 0 || o.network_id === undefined) {
    throw invalidInput(attr, `Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: {${Object.keys(o).map((k) => `'${k}'`).join(', ')}}`);
  }
  return {
    networkId: uuid(o.network_id, attr) as string,
    enableSnat: o.enable_snat === undefined ? undefined : (bool(o.enable_snat, attr) as boolean),
    externalFixedIps: o.external_fixed_ips === undefined ? undefined : (listOf(FIXED_IP)(o.external_fixed_ips, attr) as GatewayInput['externalFixedIps']),
  } satisfies GatewayInput;
};

/** neutron-lib's validate_hostroutes: {destination: CIDR, nexthop: IP}, no duplicates. */
export const ROUTES: Validator = (v, attr) => {
  if (!Array.isArray(v)) throw invalidInput(attr, `'${JSON.stringify(v)}' is not a list`);
  const seen = new Set<string>();
  return v.map((r) => {
    const o = dict(r, attr) as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    if (keys.join(',') !== 'destination,nexthop') {
      throw invalidInput(attr, `Validation of dictionary's keys failed. Expected keys: {'destination', 'nexthop'} Provided keys: {${keys.map((k) => `'${k}'`).join(', ')}}`);
    }
    const dest = String(o.destination);
    const c = parseCidr(dest, false);
    if (typeof o.destination !== 'string' || !c || !dest.includes('/')) throw invalidInput(attr, `'${dest}' is not a valid IP subnet`);
    if (c.text !== dest) throw invalidInput(attr, `'${dest}' isn't a recognized IP subnet cidr, '${c.text}' is recommended`);
    if (typeof o.nexthop !== 'string' || !ipToBig(o.nexthop)) throw invalidInput(attr, `'${String(o.nexthop)}' is not a valid IP address`);
    const key = `${dest}|${o.nexthop}`;
    if (seen.has(key)) throw invalidInput(attr, `Duplicate hostroute '${JSON.stringify({ destination: dest, nexthop: o.nexthop }).replace(/"/g, "'").replace(/,/g, ', ').replace(/:/g, ': ')}'`);
    seen.add(key);
    return { destination: dest, nexthop: o.nexthop } satisfies Route;
  });
};

/** Checked after the policy (both are admin-only): this deployment has neither DVR nor L3 HA. */
function refuseDvrHa(a: Record<string, unknown>): void {
  if (a.distributed === true) throw routerBadRequest('Distributed routers are not supported by this deployment');
  if (a.ha === true) throw routerBadRequest('HA routers are not supported by this deployment');
}

const COMMON: Record<string, Validator> = {
  name: str(255),
  description: str(255),
  admin_state_up: bool,
  external_gateway_info: GATEWAY,
  distributed: bool,
  ha: bool,
};
const CREATE: Record<string, Validator> = { ...STANDARD_ATTRS, ...COMMON, availability_zone_hints: listOf(str(255)), flavor_id: (v, a) => (v === null ? null : uuid(v, a)) };
const UPDATE: Record<string, Validator> = { ...COMMON, routes: ROUTES };

export function routerTarget(r: Pick<RouterRow, 'id' | 'project_id'>): Target {
  return { id: r.id, project_id: r.project_id, tenant_id: r.project_id };
}

/** The attributes a policy sees for external_gateway_info, as upstream's nested-attribute checks name them. */
function gatewayAttrs(raw: unknown): Record<string, unknown> {
  if (raw === undefined) return {};
  const o = (raw ?? {}) as Record<string, unknown>;
  return {
    external_gateway_info: raw,
    'external_gateway_info:network_id': o.network_id,
    'external_gateway_info:enable_snat': o.enable_snat,
    'external_gateway_info:external_fixed_ips': o.external_fixed_ips,
  };
}

/** Routers and floating IPs (the router extension with ext-gw-mode, extraroute, fip-port-details, floatingip-pools). */
export function l3Module(): NeutronModule {
  return {
    name: 'l3',
    extensions: [
      { alias: 'router', name: 'Neutron L3 Router', description: 'Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.' },
      { alias: 'ext-gw-mode', name: 'Neutron L3 Configurable external gateway mode', description: 'Extension of the router abstraction for specifying whether SNAT should occur on the external gateway' },
      { alias: 'extraroute', name: 'Neutron Extra Route', description: 'Extra routes configuration for L3 router' },
      { alias: 'extraroute-atomic', name: 'Atomically add/remove extra routes', description: 'Edit extra routes of a router on server side by atomically adding/removing extra routes' },
      { alias: 'router_availability_zone', name: 'Router Availability Zone', description: 'Availability zone support for router.' },
      { alias: 'fip-port-details', name: 'Floating IP Port Details Extension', description: 'Add port_details attribute to Floating IP resource' },
      { alias: 'floatingip-pools', name: 'Floating IP Pools Extension', description: 'Provides a floating IP pools API.' },
    ],
    resources: [
      { name: 'router', collection: 'routers' },
      { name: 'floatingip', collection: 'floatingips' },
      { name: 'floatingip_pool', collection: 'floatingip_pools' },
    ],
    register(app, deps) {
      const ports = new PortRules({ ...deps, mechanisms: createMechanismDrivers(deps.config.mechanismDrivers) });
      const routers = new RouterService({ database: deps.database, clock: deps.clock, ids: deps.ids, quotas: deps.quotas, hooks: deps.hooks, ports, logger: deps.logger });
      routers.install();
      const fips = new FloatingIpService({ database: deps.database, clock: deps.clock, ids: deps.ids, quotas: deps.quotas, hooks: deps.hooks, ports, routers });
      deps.tags.register({
        collection: 'routers',
        member: 'router',
        find: async (_db, id, caller) => {
          const r = await routers.find(id);
          return r && (caller.isAdmin || r.project_id === caller.projectId) ? routerTarget(r) : undefined;
        },
      });
      l3Services.set(deps, { routers, fips });
      registerRouterRoutes(app, deps, routers);
      registerFloatingIpRoutes(app, deps, fips);
    },
  };
}

/** The L3 services of an app, for the data-plane wiring (RouterService.changed listeners). */
export const l3Services = new WeakMap<ApiDeps, { routers: RouterService; fips: FloatingIpService }>();

function fieldsOf(req: FastifyRequest): string[] {
  return ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
}

function registerRouterRoutes(app: FastifyInstance, deps: ApiDeps, svc: RouterService): void {
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    const r = await svc.find(id);
    // Another project's router does not exist for the caller (404), as upstream's scoped query.
    if (!r || !(caller.isAdmin || r.project_id === caller.projectId)) throw routerNotFound(id);
    return r;
  };
  const views = async (caller: Caller, rows: RouterRow[]) => {
    const ids = rows.map((r) => r.id);
    const [gw, routes, tags] = await Promise.all([svc.gatewayInfos(rows), svc.routesOf(ids), tagsOf(deps.database.db, ids)]);
    return rows.map((r) => {
      const view: Record<string, unknown> = {
        id: r.id,
        name: r.name,
        tenant_id: r.project_id,
        admin_state_up: r.admin_state_up === 1,
        status: r.status,
        external_gateway_info: gw.get(r.id) ?? null,
        description: r.description,
        availability_zones: [],
        availability_zone_hints: jsonFromDb(r.availability_zone_hints),
        routes: routes.get(r.id) ?? [],
        flavor_id: null,
        distributed: false,
        ha: false,
        tags: tags.get(r.id) ?? [],
        created_at: isoTime(r.created_at),
        updated_at: isoTime(r.updated_at),
        revision_number: r.revision_number,
        project_id: r.project_id,
      };
      return hideRefused(deps, caller, 'router', view, routerTarget(r));
    });
  };
  const one = async (caller: Caller, r: RouterRow) => (await views(caller, [r]))[0];

  app.get('/v2.0/routers', async (req) => {
    const caller = callerOf(deps, req);
    const scope = caller.isAdmin ? undefined : (eb: any) => eb('routers.project_id', '=', caller.projectId ?? '');
    const { rows, fields, links } = await listRows<RouterRow>(deps.database.db, req, ROUTER_LIST, scope, { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const allowed = rows.filter((r) => caller.isAdmin || deps.enforcer.enforce('get_router', routerTarget(r), credentialsFromAuth(caller.auth)));
    return { routers: (await views(caller, allowed)).map((v) => selectFields(v, fields)), ...(links ? { routers_links: links } : {}) };
  });

  app.get('/v2.0/routers/:id', async (req) => {
    const caller = callerOf(deps, req);
    const r = await load(req, caller);
    authorizeAction(deps, caller, 'get_router', routerTarget(r), { member: 'router', id: r.id, visible: false });
    return { router: selectFields(await one(caller, r), fieldsOf(req)) };
  });

  app.post('/v2.0/routers', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'router', 'routers');
    const raws = items.map((b) => ((b as Record<string, unknown>).router ?? {}) as Record<string, unknown>);
    const inputs = items.map((b) => memberBody(b, 'router', CREATE));
    deps.notifier.start('router', 'create', req.body, req.ctx);
    const rows: RouterRow[] = [];
    for (const [i, a] of inputs.entries()) {
      const projectId = owningProject(a, caller);
      authorizeAction(deps, caller, 'create_router', { project_id: projectId, tenant_id: projectId }, { attrs: { ...a, ...gatewayAttrs(raws[i].external_gateway_info) } });
      refuseDvrHa(a);
      rows.push(
        await svc.create({
          projectId,
          name: a.name as string | undefined,
          description: a.description as string | undefined,
          adminStateUp: a.admin_state_up as boolean | undefined,
          gateway: a.external_gateway_info as GatewayInput | null | undefined,
          availabilityZoneHints: a.availability_zone_hints as string[] | undefined,
        }),
      );
    }
    const vs = await views(caller, rows);
    for (const v of vs) deps.notifier.end('router', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { routers: vs } : { router: vs[0] };
  });

  app.put('/v2.0/routers/:id', async (req) => {
    const caller = callerOf(deps, req);
    const r = await load(req, caller);
    const a = memberBody(req.body, 'router', UPDATE);
    const raw = ((req.body as Record<string, unknown>).router ?? {}) as Record<string, unknown>;
    authorizeAction(deps, caller, 'update_router', routerTarget(r), { attrs: { ...a, ...gatewayAttrs(raw.external_gateway_info) } });
    refuseDvrHa(a);
    checkIfMatch(req, r.revision_number);
    deps.notifier.start('router', 'update', req.body, req.ctx);
    const updated = await svc.update(r, {
      name: a.name as string | undefined,
      description: a.description as string | undefined,
      adminStateUp: a.admin_state_up as boolean | undefined,
      gateway: a.external_gateway_info as GatewayInput | null | undefined,
      routes: a.routes as Route[] | undefined,
    });
    const view = await one(caller, updated);
    deps.notifier.end('router', 'update', view, req.ctx);
    return { router: view };
  });

  app.delete('/v2.0/routers/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const r = await load(req, caller);
    authorizeAction(deps, caller, 'delete_router', routerTarget(r));
    checkIfMatch(req, r.revision_number);
    const view = await one(caller, r);
    deps.notifier.start('router', 'delete', { router_id: r.id }, req.ctx);
    await svc.delete(r);
    deps.notifier.deleted('router', r.id, view, req.ctx);
    reply.code(204);
  });

  const interfaceBody = (body: unknown, forRemoval: boolean) => {
    const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const hasPort = o.port_id !== undefined;
    const hasSubnet = o.subnet_id !== undefined;
    if (!hasPort && !hasSubnet) throw routerBadRequest('Either subnet_id or port_id must be specified');
    for (const k of ['port_id', 'subnet_id'] as const) {
      if (o[k] !== undefined && (typeof o[k] !== 'string' || !/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(o[k] as string))) {
        throw routerBadRequest(`'${String(o[k])}' is not a valid UUID`);
      }
    }
    if (!forRemoval && hasPort && hasSubnet) throw routerBadRequest('Cannot specify both subnet-id and port-id');
    return { portId: o.port_id as string | undefined, subnetId: o.subnet_id as string | undefined };
  };

  app.put('/v2.0/routers/:id/add_router_interface', async (req) => {
    const caller = callerOf(deps, req);
    const r = await load(req, caller);
    authorizeAction(deps, caller, 'add_router_interface', routerTarget(r));
    const by = interfaceBody(req.body, false);
    const viewer = { projectId: caller.projectId, isAdmin: caller.isAdmin };
    const info = by.portId !== undefined ? await svc.addInterfaceByPort(r, by.portId, viewer) : await svc.addInterfaceBySubnet(r, by.subnetId!, viewer);
    deps.notifier.send('router.interface.create', { router_interface: info }, req.ctx);
    return info;
  });

  app.put('/v2.0/routers/:id/remove_router_interface', async (req) => {
    const caller = callerOf(deps, req);
    const r = await load(req, caller);
    authorizeAction(deps, caller, 'remove_router_interface', routerTarget(r));
    const info = await svc.removeInterface(r, interfaceBody(req.body, true));
    deps.notifier.send('router.interface.delete', { router_interface: info }, req.ctx);
    return info;
  });

  for (const action of ['add_extraroutes', 'remove_extraroutes'] as const) {
    app.put(`/v2.0/routers/:id/${action}`, async (req) => {
      const caller = callerOf(deps, req);
      const r = await load(req, caller);
      authorizeAction(deps, caller, action, routerTarget(r));
      const body = req.body as Record<string, unknown> | undefined;
      const inner = body?.router;
      if (typeof inner !== 'object' || inner === null || !('routes' in inner)) throw badRequest('Resource body required', { type: 'HTTPBadRequest' });
      const { routes } = checkAttrs(inner as Record<string, unknown>, { routes: ROUTES }) as { routes: Route[] };
      const updated = action === 'add_extraroutes' ? await svc.addRoutes(r, routes) : await svc.removeRoutes(r, routes);
      const view = await one(caller, updated);
      // Upstream's API layer sends nothing for this member action (its L3 RPC tells the agents); here the agents' resync listens for router.update.end.
      deps.notifier.end('router', 'update', view, req.ctx);
      return { router: view };
    });
  }
}
