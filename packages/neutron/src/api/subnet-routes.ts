import { inTransaction } from '../db/transaction.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { ApiError } from '@onestack/core/errors.ts';
import { jsonFromDb, jsonToDb } from '@onestack/core/db/index.ts';
import { credentialsFromAuth, type Target } from '@onestack/core/policy/index.ts';
import type { NetworkRow, NeutronDB, SubnetRow } from '../db/schema.ts';
import { bigToIp, ipToBig, parseCidr } from '../domain/addresses.ts';
import { networkScope, type NetworkService } from '../domain/networks.ts';
import type { SubnetRules } from '../domain/subnets.ts';
import { deleteTags, tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, hideRefused, resourceNotFound, type ApiDeps, type Caller } from './context.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { STANDARD_ATTRS, any, bool, createBodies, int, listOf, memberBody, oneOf, owningProject, str, strOrNull, uuid, uuidOrNull, type Validator } from './validate.ts';

export const SUBNET_LIST: ListSpec = {
  table: 'subnets',
  collection: 'subnets',
  columns: {
    network_id: { column: 'network_id', type: 'string', sortable: true },
    ip_version: { column: 'ip_version', type: 'int', sortable: true },
    cidr: { column: 'cidr', type: 'string', sortable: true },
    gateway_ip: { column: 'gateway_ip', type: 'string', sortable: true },
    enable_dhcp: { column: 'enable_dhcp', type: 'bool', sortable: true },
    ipv6_ra_mode: { column: 'ipv6_ra_mode', type: 'string', sortable: true },
    ipv6_address_mode: { column: 'ipv6_address_mode', type: 'string', sortable: true },
    subnetpool_id: { column: 'subnetpool_id', type: 'string', sortable: true },
    segment_id: { column: 'segment_id', type: 'string', sortable: false },
  },
  ignored: ['allocation_pools', 'dns_nameservers', 'host_routes', 'service_types', 'dns_publish_fixed_ip', 'tags'],
};

const MODE = oneOf('slaac', 'dhcpv6-stateful', 'dhcpv6-stateless', null);
const POOL: Validator = (v, attr) => {
  const o = any(v, attr) as { start?: unknown; end?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.start !== 'string' || typeof o.end !== 'string') {
    throw new ApiError('bad_request', `Invalid input for ${attr}. Reason: Invalid data format for IP pool: '${JSON.stringify(v)}'.`, { type: 'HTTPBadRequest' });
  }
  return { start: o.start, end: o.end };
};

const CREATE_ATTRS: Record<string, Validator> = {
  ...STANDARD_ATTRS,
  network_id: uuid,
  ip_version: int(),
  cidr: str(64),
  prefixlen: int(0, 128),
  subnetpool_id: uuidOrNull,
  use_default_subnetpool: bool,
  gateway_ip: strOrNull(64),
  allocation_pools: listOf(POOL),
  dns_nameservers: listOf(str(64)),
  host_routes: listOf(any),
  enable_dhcp: bool,
  ipv6_ra_mode: MODE,
  ipv6_address_mode: MODE,
  segment_id: uuidOrNull,
  service_types: listOf(str(255)),
};

const UPDATE_ATTRS: Record<string, Validator> = {
  name: str(255),
  description: str(255),
  gateway_ip: strOrNull(64),
  allocation_pools: listOf(POOL),
  dns_nameservers: listOf(str(64)),
  host_routes: listOf(any),
  enable_dhcp: bool,
  service_types: listOf(str(255)),
  segment_id: uuidOrNull,
};

export function subnetTarget(s: SubnetRow, net: Pick<NetworkRow, 'project_id' | 'shared'> | undefined): Target {
  return { id: s.id, project_id: s.project_id, tenant_id: s.project_id, network_id: s.network_id, 'network:project_id': net?.project_id ?? null, 'network:tenant_id': net?.project_id ?? null, shared: net?.shared === 1 };
}

/** Subnets a viewer sees: those of networks it sees. */
function subnetScope(caller: Caller) {
  const netScope = networkScope(caller);
  if (!netScope) return undefined;
  return (eb: any) => eb.or([eb('subnets.project_id', '=', caller.projectId ?? ''), eb('subnets.network_id', 'in', eb.selectFrom('networks').select('networks.id').where(netScope))]);
}

export function subnetView(s: SubnetRow, tags: string[]): Record<string, unknown> {
  return {
    id: s.id,
    name: s.name,
    tenant_id: s.project_id,
    network_id: s.network_id,
    ip_version: s.ip_version,
    subnetpool_id: s.subnetpool_id,
    enable_dhcp: s.enable_dhcp === 1,
    ipv6_ra_mode: s.ipv6_ra_mode,
    ipv6_address_mode: s.ipv6_address_mode,
    gateway_ip: s.gateway_ip,
    cidr: s.cidr,
    allocation_pools: jsonFromDb(s.allocation_pools),
    host_routes: jsonFromDb(s.host_routes),
    dns_nameservers: jsonFromDb(s.dns_nameservers),
    description: s.description,
    service_types: jsonFromDb(s.service_types),
    tags,
    created_at: isoTime(s.created_at),
    updated_at: isoTime(s.updated_at),
    revision_number: s.revision_number,
    project_id: s.project_id,
    segment_id: s.segment_id,
    dns_publish_fixed_ip: false,
  };
}

export interface DhcpPorts {
  /** Makes the network's DHCP port match its DHCP-enabled subnets (created, given or stripped of addresses, deleted). */
  sync(trx: Kysely<NeutronDB>, net: NetworkRow): Promise<void>;
}

export function registerSubnetRoutes(app: FastifyInstance, deps: ApiDeps, nets: NetworkService, rules: SubnetRules, dhcp: DhcpPorts): void {
  const db = () => deps.database.db;
  const netOf = (id: string) => db().selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirst();
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    let q = db().selectFrom('subnets').selectAll('subnets').where('subnets.id', '=', id);
    const scope = subnetScope(caller);
    if (scope) q = q.where(scope);
    const s = await q.executeTakeFirst();
    if (!s) throw resourceNotFound('subnet', id);
    const net = await netOf(s.network_id);
    return { subnet: s, net: net && (await nets.forViewer([net], caller))[0] };
  };
  const views = async (caller: Caller, rows: SubnetRow[]) => {
    const tags = await tagsOf(db(), rows.map((r) => r.id));
    return rows.map((s) => hideRefused(deps, caller, 'subnet', subnetView(s, tags.get(s.id) ?? []), { project_id: s.project_id }));
  };
  const canSee = (caller: Caller, s: SubnetRow, net: NetworkRow | undefined) => deps.enforcer.enforce('get_subnet', subnetTarget(s, net), credentialsFromAuth(caller.auth));

  app.get('/v2.0/subnets', async (req) => {
    const caller = callerOf(deps, req);
    const { rows, fields, links } = await listRows<SubnetRow>(db(), req, SUBNET_LIST, subnetScope(caller), { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    return { subnets: (await views(caller, rows)).map((v) => selectFields(v, fields)), ...(links ? { subnets_links: links } : {}) };
  });

  app.get('/v2.0/subnets/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { subnet, net } = await load(req, caller);
    authorizeAction(deps, caller, 'get_subnet', subnetTarget(subnet, net), { member: 'subnet', id: subnet.id, visible: false });
    const fields = ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
    return { subnet: selectFields((await views(caller, [subnet]))[0], fields) };
  });

  app.post('/v2.0/subnets', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'subnet', 'subnets');
    const inputs = items.map((b) => memberBody(b, 'subnet', CREATE_ATTRS));
    deps.notifier.start('subnet', 'create', req.body, req.ctx);
    // Looked up before the transaction: on SQLite it holds the only connection.
    const found = new Map<string, NetworkRow>();
    for (const a of inputs) {
      const id = a.network_id as string | undefined;
      const net = id === undefined ? undefined : await nets.find(id, caller);
      if (net) found.set(net.id, net);
    }
    const rows = await inTransaction(deps.database, async (trx) => {
      const out: SubnetRow[] = [];
      for (const a of inputs) {
        if (a.network_id === undefined) throw new ApiError('bad_request', "Failed to parse request. Required attribute 'network_id' not specified", { type: 'HTTPBadRequest' });
        if (a.ip_version === undefined) throw new ApiError('bad_request', "Failed to parse request. Required attribute 'ip_version' not specified", { type: 'HTTPBadRequest' });
        const net = found.get(a.network_id as string);
        if (!net) throw resourceNotFound('network', a.network_id as string);
        const projectId = owningProject(a, caller);
        const target = { project_id: projectId, tenant_id: projectId, network_id: net.id, 'network:project_id': net.project_id, 'network:tenant_id': net.project_id, shared: net.shared === 1 };
        authorizeAction(deps, caller, 'create_subnet', target, { attrs: a });
        const row = await rules.create(trx, net, {
          projectId,
          name: a.name as string | undefined,
          description: a.description as string | undefined,
          ipVersion: a.ip_version as number,
          cidr: a.cidr as string | undefined,
          prefixlen: a.prefixlen as number | undefined,
          subnetpoolId: a.subnetpool_id as string | null | undefined,
          useDefaultSubnetpool: a.use_default_subnetpool as boolean | undefined,
          gatewayIp: a.gateway_ip as string | null | undefined,
          allocationPools: a.allocation_pools as { start: string; end: string }[] | undefined,
          dnsNameservers: a.dns_nameservers as string[] | undefined,
          hostRoutes: a.host_routes as { destination: string; nexthop: string }[] | undefined,
          enableDhcp: a.enable_dhcp as boolean | undefined,
          ipv6RaMode: a.ipv6_ra_mode as string | null | undefined,
          ipv6AddressMode: a.ipv6_address_mode as string | null | undefined,
          serviceTypes: a.service_types as string[] | undefined,
        });
        out.push(row);
        await dhcp.sync(trx, net);
      }
      return out;
    });
    const vs = await views(caller, rows);
    for (const v of vs) deps.notifier.end('subnet', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { subnets: vs } : { subnet: vs[0] };
  });

  app.put('/v2.0/subnets/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { subnet, net } = await load(req, caller);
    const a = memberBody(req.body, 'subnet', UPDATE_ATTRS);
    authorizeAction(deps, caller, 'update_subnet', subnetTarget(subnet, net), { attrs: a, member: 'subnet', id: subnet.id, visible: canSee(caller, subnet, net) });
    checkIfMatch(req, subnet.revision_number);
    deps.notifier.start('subnet', 'update', req.body, req.ctx);
    const cidr = parseCidr(subnet.cidr)!;
    const changes: Partial<SubnetRow> = {};
    if (a.name !== undefined) changes.name = a.name as string;
    if (a.description !== undefined) changes.description = a.description as string;
    if (a.enable_dhcp !== undefined) {
      changes.enable_dhcp = a.enable_dhcp ? 1 : 0;
      if (!a.enable_dhcp && (subnet.ipv6_address_mode || subnet.ipv6_ra_mode)) rules.checkIpv6Modes(cidr, subnet.ipv6_ra_mode, subnet.ipv6_address_mode, false);
    }
    let gateway: bigint | null = subnet.gateway_ip ? ipToBig(subnet.gateway_ip)!.value : null;
    if (a.gateway_ip !== undefined) {
      gateway = rules.gateway(cidr, a.gateway_ip as string | null);
      changes.gateway_ip = gateway === null ? null : bigToIp(cidr.version, gateway);
    }
    if (a.allocation_pools !== undefined || a.gateway_ip !== undefined) {
      const requested = (a.allocation_pools as { start: string; end: string }[] | undefined) ?? jsonFromDb<{ start: string; end: string }[]>(subnet.allocation_pools);
      const pools = rules.pools(cidr, gateway, requested);
      changes.allocation_pools = jsonToDb(pools.map((p) => ({ start: bigToIp(cidr.version, p.start), end: bigToIp(cidr.version, p.end) })));
    }
    if (a.dns_nameservers !== undefined) changes.dns_nameservers = jsonToDb(rules.dns(a.dns_nameservers as string[]));
    if (a.host_routes !== undefined) changes.host_routes = jsonToDb(rules.routes(cidr, a.host_routes as { destination: string; nexthop: string }[]));
    if (a.service_types !== undefined) changes.service_types = jsonToDb(a.service_types);
    const updated = await inTransaction(deps.database, async (trx) => {
      const next = { ...changes, revision_number: subnet.revision_number + 1, updated_at: Math.max(deps.clock.now(), subnet.updated_at) };
      const r = await trx.updateTable('subnets').set(next).where('id', '=', subnet.id).where('revision_number', '=', subnet.revision_number).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Subnet ${subnet.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
      if (changes.enable_dhcp !== undefined && net) await dhcp.sync(trx, net);
      return { ...subnet, ...next };
    });
    const view = (await views(caller, [updated]))[0];
    deps.notifier.end('subnet', 'update', view, req.ctx);
    return { subnet: view };
  });

  app.delete('/v2.0/subnets/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { subnet, net } = await load(req, caller);
    authorizeAction(deps, caller, 'delete_subnet', subnetTarget(subnet, net), { member: 'subnet', id: subnet.id, visible: canSee(caller, subnet, net) });
    checkIfMatch(req, subnet.revision_number);
    const view = (await views(caller, [subnet]))[0];
    deps.notifier.start('subnet', 'delete', { subnet_id: subnet.id }, req.ctx);
    await inTransaction(deps.database, async (trx) => {
      const users = await trx
        .selectFrom('ipallocations')
        .innerJoin('ports', 'ports.id', 'ipallocations.port_id')
        .select(['ports.id', 'ports.device_owner'])
        .where('ipallocations.subnet_id', '=', subnet.id)
        .execute();
      const auto = subnet.ip_version === 6 && (subnet.ipv6_address_mode === 'slaac' || subnet.ipv6_address_mode === 'dhcpv6-stateless');
      // DHCP ports and, on SLAAC subnets, addresses the port never asked for go with the subnet.
      const blocking = users.filter((u) => u.device_owner !== 'network:dhcp' && !(auto && !u.device_owner.startsWith('network:router')));
      if (blocking.length > 0) {
        throw new ApiError('conflict', `Unable to complete operation on subnet ${subnet.id}: One or more ports have an IP allocation from this subnet.`, { type: 'SubnetInUse' });
      }
      for (const h of deps.hooks.subnetDeleting) await h(trx, subnet.id);
      await trx.deleteFrom('ipallocations').where('subnet_id', '=', subnet.id).execute();
      await deleteTags(trx, subnet.id);
      await trx.deleteFrom('subnets').where('id', '=', subnet.id).execute();
      if (net) await dhcp.sync(trx, net);
    });
    deps.notifier.deleted('subnet', subnet.id, view, req.ctx);
    reply.code(204);
  });
}
