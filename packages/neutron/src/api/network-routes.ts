import { inTransaction } from '../db/transaction.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { jsonFromDb } from '@onestack/core/db/index.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import type { NetworkRow } from '../db/schema.ts';
import { networkScope, type NetworkService } from '../domain/networks.ts';
import { tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, hideRefused, resourceNotFound, type ApiDeps, type Caller } from './context.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { STANDARD_ATTRS, bool, createBodies, int, intOrNull, listOf, memberBody, owningProject, str, strOrNull, type Validator } from './validate.ts';

export const NETWORK_LIST: ListSpec = {
  table: 'networks',
  collection: 'networks',
  columns: {
    status: { column: 'status', type: 'string', sortable: true },
    admin_state_up: { column: 'admin_state_up', type: 'bool', sortable: true },
    shared: { column: 'shared', type: 'bool', sortable: true },
    'router:external': { column: 'router_external', type: 'bool', sortable: true },
    mtu: { column: 'mtu', type: 'int', sortable: true },
    port_security_enabled: { column: 'port_security_enabled', type: 'bool', sortable: false },
    is_default: { column: 'is_default', type: 'bool', sortable: false },
    dns_domain: { column: 'dns_domain', type: 'string', sortable: false },
  },
  custom: {
    'provider:network_type': (eb, v) => eb('networks.id', 'in', eb.selectFrom('network_segments').select('network_id').where('network_type', 'in', v)),
    'provider:physical_network': (eb, v) => eb('networks.id', 'in', eb.selectFrom('network_segments').select('network_id').where('physical_network', 'in', v)),
    'provider:segmentation_id': (eb, v) =>
      eb('networks.id', 'in', eb.selectFrom('network_segments').select('network_id').where('segmentation_id', 'in', v.map(Number))),
    subnets: (eb, v) => eb('networks.id', 'in', eb.selectFrom('subnets').select('network_id').where('id', 'in', v)),
  },
  ignored: ['availability_zone_hints', 'availability_zones', 'ipv4_address_scope', 'ipv6_address_scope', 'l2_adjacency', 'segments', 'tags'],
};

const PROVIDER_ATTRS: Record<string, Validator> = {
  'provider:network_type': str(32),
  'provider:physical_network': strOrNull(64),
  'provider:segmentation_id': intOrNull(0),
};

const CREATE_ATTRS: Record<string, Validator> = {
  ...STANDARD_ATTRS,
  admin_state_up: bool,
  shared: bool,
  'router:external': bool,
  mtu: int(68),
  port_security_enabled: bool,
  availability_zone_hints: listOf(str(255)),
  dns_domain: str(255),
  ...PROVIDER_ATTRS,
};

const UPDATE_ATTRS: Record<string, Validator> = {
  name: str(255),
  description: str(255),
  admin_state_up: bool,
  shared: bool,
  'router:external': bool,
  mtu: int(68),
  port_security_enabled: bool,
  dns_domain: str(255),
};

/** The policy target of a network: upstream's resource dict with tenant_id, so `field:networks:<attr>=…` checks find the attribute. */
export function networkTarget(n: NetworkRow): Target {
  return {
    id: n.id,
    project_id: n.project_id,
    tenant_id: n.project_id,
    name: n.name,
    description: n.description,
    status: n.status,
    admin_state_up: n.admin_state_up === 1,
    mtu: n.mtu,
    port_security_enabled: n.port_security_enabled === 1,
    shared: n.shared === 1,
    'router:external': n.router_external === 1,
    'network:project_id': n.project_id,
    'network:tenant_id': n.project_id,
  };
}

export async function networkViews(deps: ApiDeps, svc: NetworkService, caller: Caller, rows: NetworkRow[]): Promise<Record<string, unknown>[]> {
  const ids = rows.map((r) => r.id);
  const [segments, subnets, tags, sharedToMe] = await Promise.all([svc.segmentsOf(ids), svc.subnetIdsOf(ids), tagsOf(deps.database.db, ids), svc.sharedWith(ids, caller.projectId)]);
  return rows.map((n) => {
    const seg = segments.get(n.id)?.[0];
    const view: Record<string, unknown> = {
      id: n.id,
      name: n.name,
      tenant_id: n.project_id,
      admin_state_up: n.admin_state_up === 1,
      mtu: n.mtu,
      status: n.status,
      subnets: subnets.get(n.id) ?? [],
      shared: n.shared === 1 || sharedToMe.has(n.id),
      availability_zone_hints: jsonFromDb(n.availability_zone_hints),
      availability_zones: [],
      ipv4_address_scope: null,
      ipv6_address_scope: null,
      'router:external': n.router_external === 1,
      description: n.description,
      port_security_enabled: n.port_security_enabled === 1,
      dns_domain: n.dns_domain ?? '',
      l2_adjacency: true,
      tags: tags.get(n.id) ?? [],
      created_at: isoTime(n.created_at),
      updated_at: isoTime(n.updated_at),
      revision_number: n.revision_number,
      project_id: n.project_id,
      'provider:network_type': seg?.network_type ?? null,
      'provider:physical_network': seg?.physical_network ?? null,
      'provider:segmentation_id': seg?.segmentation_id ?? null,
    };
    return hideRefused(deps, caller, 'network', view, networkTarget(n));
  });
}

export function registerNetworkRoutes(app: FastifyInstance, deps: ApiDeps, svc: NetworkService, deletePorts: (net: NetworkRow) => Promise<void>): void {
  const load = async (req: FastifyRequest, caller: Caller): Promise<NetworkRow> => {
    const id = (req.params as { id: string }).id;
    const net = await svc.find(id, caller);
    if (!net) throw resourceNotFound('network', id);
    return net;
  };
  const viewOne = async (caller: Caller, net: NetworkRow) => (await networkViews(deps, svc, caller, [net]))[0];

  app.get('/v2.0/networks', async (req) => {
    const caller = callerOf(deps, req);
    const { rows, fields, links } = await listRows<NetworkRow>(deps.database.db, req, NETWORK_LIST, networkScope(caller), { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const visible = (await svc.forViewer(rows, caller)).filter((n) => caller.isAdmin || deps.enforcer.enforce('get_network', networkTarget(n), credentials(caller)));
    const views = (await networkViews(deps, svc, caller, visible)).map((v) => selectFields(v, fields));
    return { networks: views, ...(links ? { networks_links: links } : {}) };
  });

  app.get('/v2.0/networks/:id', async (req) => {
    const caller = callerOf(deps, req);
    const net = await load(req, caller);
    authorizeAction(deps, caller, 'get_network', networkTarget(net), { member: 'network', id: net.id, visible: false });
    const fields = ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
    return { network: selectFields(await viewOne(caller, net), fields) };
  });

  app.post('/v2.0/networks', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'network', 'networks');
    const inputs = items.map((b) => memberBody(b, 'network', CREATE_ATTRS));
    deps.notifier.start('network', 'create', req.body, req.ctx);
    const rows = await inTransaction(deps.database, async (trx) => {
      const out: NetworkRow[] = [];
      for (const a of inputs) {
        const projectId = owningProject(a, caller);
        authorizeAction(deps, caller, 'create_network', { project_id: projectId, tenant_id: projectId }, { attrs: a });
        out.push(
          await svc.create(trx, {
            projectId,
            name: a.name as string | undefined,
            description: a.description as string | undefined,
            adminStateUp: a.admin_state_up as boolean | undefined,
            shared: a.shared as boolean | undefined,
            external: a['router:external'] as boolean | undefined,
            mtu: a.mtu as number | undefined,
            portSecurityEnabled: a.port_security_enabled as boolean | undefined,
            availabilityZoneHints: a.availability_zone_hints as string[] | undefined,
            dnsDomain: a.dns_domain as string | undefined,
            provider:
              a['provider:network_type'] !== undefined || a['provider:physical_network'] != null || a['provider:segmentation_id'] != null
                ? {
                    networkType: a['provider:network_type'] as string | undefined,
                    physicalNetwork: (a['provider:physical_network'] as string | null | undefined) ?? null,
                    segmentationId: (a['provider:segmentation_id'] as number | null | undefined) ?? null,
                  }
                : undefined,
          }),
        );
      }
      return out;
    });
    const views = await networkViews(deps, svc, caller, rows);
    for (const v of views) deps.notifier.end('network', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { networks: views } : { network: views[0] };
  });

  app.put('/v2.0/networks/:id', async (req) => {
    const caller = callerOf(deps, req);
    const net = await load(req, caller);
    const a = memberBody(req.body, 'network', UPDATE_ATTRS);
    authorizeAction(deps, caller, 'update_network', networkTarget(net), { attrs: a, member: 'network', id: net.id, visible: deps.enforcer.enforce('get_network', networkTarget(net), credentials(caller)) });
    checkIfMatch(req, net.revision_number);
    deps.notifier.start('network', 'update', req.body, req.ctx);
    const changes: Partial<NetworkRow> = {};
    if (a.name !== undefined) changes.name = a.name as string;
    if (a.description !== undefined) changes.description = a.description as string;
    if (a.admin_state_up !== undefined) changes.admin_state_up = a.admin_state_up ? 1 : 0;
    if (a.shared !== undefined) changes.shared = a.shared ? 1 : 0;
    if (a['router:external'] !== undefined) changes.router_external = a['router:external'] ? 1 : 0;
    if (a.mtu !== undefined) changes.mtu = a.mtu as number;
    if (a.port_security_enabled !== undefined) changes.port_security_enabled = a.port_security_enabled ? 1 : 0;
    if (a.dns_domain !== undefined) changes.dns_domain = a.dns_domain as string;
    const updated = await inTransaction(deps.database, (trx) => svc.update(trx, net, changes));
    const view = await viewOne(caller, updated);
    deps.notifier.end('network', 'update', view, req.ctx);
    return { network: view };
  });

  app.delete('/v2.0/networks/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const net = await load(req, caller);
    authorizeAction(deps, caller, 'delete_network', networkTarget(net), { member: 'network', id: net.id, visible: deps.enforcer.enforce('get_network', networkTarget(net), credentials(caller)) });
    checkIfMatch(req, net.revision_number);
    const view = await viewOne(caller, net);
    deps.notifier.start('network', 'delete', { network_id: net.id }, req.ctx);
    await deletePorts(net);
    deps.notifier.deleted('network', net.id, view, req.ctx);
    reply.code(204);
  });
}

import { credentialsFromAuth } from '@onestack/core/policy/index.ts';
function credentials(caller: Caller) {
  return credentialsFromAuth(caller.auth);
}
