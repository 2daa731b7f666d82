import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { credentialsFromAuth, type Target } from '@onestack/core/policy/index.ts';
import type { FloatingIpRow } from '../db/router-schema.ts';
import { ipToBig } from '../domain/addresses.ts';
import type { FloatingIpService } from '../domain/floating-ips.ts';
import { fipNotFound, networkNotFound } from '../domain/l3-errors.ts';
import { networkScope } from '../domain/networks.ts';
import { tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, type ApiDeps, type Caller } from './context.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { createBodies, invalidInput, memberBody, owningProject, str, uuid, type Validator } from './validate.ts';

const FIP_LIST: ListSpec = {
  table: 'floatingips',
  collection: 'floatingips',
  columns: {
    floating_ip_address: { column: 'floating_ip_address', type: 'string', sortable: true },
    floating_network_id: { column: 'floating_network_id', type: 'string', sortable: true },
    router_id: { column: 'router_id', type: 'string', sortable: true },
    port_id: { column: 'fixed_port_id', type: 'string', sortable: true },
    fixed_ip_address: { column: 'fixed_ip_address', type: 'string', sortable: true },
    status: { column: 'status', type: 'string', sortable: true },
  },
  ignored: ['port_details', 'tags', 'dns_name', 'dns_domain', 'qos_policy_id', 'port_forwardings'],
};

const ip: Validator = (v, attr) => {
  if (typeof v !== 'string' || !ipToBig(v)) throw invalidInput(attr, `'${String(v)}' is not a valid IP address`);
  return v;
};
const ipOrNull: Validator = (v, attr) => (v === null ? null : ip(v, attr));
const uuidOrNull: Validator = (v, attr) => (v === null ? null : uuid(v, attr));
const dnsEmpty: Validator = (v, attr) => {
  // dns-integration for floating IPs needs an external DNS driver; only the empty value is accepted.
  if (v !== '' && v !== null) throw badRequest(`Invalid input for ${attr}. Reason: DNS assignment for floating IPs needs an external DNS service.`, { type: 'HTTPBadRequest' });
  return v;
};

const CREATE: Record<string, Validator> = {
  project_id: str(255),
  tenant_id: str(255),
  description: str(255),
  floating_network_id: uuid,
  floating_ip_address: ip,
  subnet_id: uuidOrNull,
  port_id: uuidOrNull,
  fixed_ip_address: ipOrNull,
  dns_name: dnsEmpty,
  dns_domain: dnsEmpty,
  qos_policy_id: (v, a) => (v === null ? null : invalidInputThrow(a)),
};
const UPDATE: Record<string, Validator> = { description: str(255), port_id: uuidOrNull, fixed_ip_address: ipOrNull };

function invalidInputThrow(attr: string): never {
  throw invalidInput(attr, 'QoS policies are not supported');
}

export function fipTarget(f: Pick<FloatingIpRow, 'id' | 'project_id'>): Target {
  return { id: f.id, project_id: f.project_id, tenant_id: f.project_id };
}

function fieldsOf(req: FastifyRequest): string[] {
  return ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
}

export function registerFloatingIpRoutes(app: FastifyInstance, deps: ApiDeps, svc: FloatingIpService): void {
  deps.tags.register({
    collection: 'floatingips',
    member: 'floatingip',
    find: async (_db, id, caller) => {
      const f = await svc.find(id);
      return f && (caller.isAdmin || f.project_id === caller.projectId) ? fipTarget(f) : undefined;
    },
  });
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    const f = await svc.find(id);
    if (!f || !(caller.isAdmin || f.project_id === caller.projectId)) throw fipNotFound(id);
    return f;
  };
  const views = async (rows: FloatingIpRow[]) => {
    const ids = rows.map((r) => r.id);
    const [details, tags] = await Promise.all([svc.portDetails(rows), tagsOf(deps.database.db, ids)]);
    return rows.map((f) => ({
      id: f.id,
      tenant_id: f.project_id,
      floating_ip_address: f.floating_ip_address,
      floating_network_id: f.floating_network_id,
      router_id: f.router_id,
      port_id: f.fixed_port_id,
      fixed_ip_address: f.fixed_ip_address,
      status: f.status,
      description: f.description,
      port_details: f.fixed_port_id ? (details.get(f.fixed_port_id) ?? null) : null,
      dns_domain: '',
      dns_name: '',
      qos_policy_id: null,
      tags: tags.get(f.id) ?? [],
      created_at: isoTime(f.created_at),
      updated_at: isoTime(f.updated_at),
      revision_number: f.revision_number,
      project_id: f.project_id,
    }));
  };
  const one = async (f: FloatingIpRow) => (await views([f]))[0];

  app.get('/v2.0/floatingips', async (req) => {
    const caller = callerOf(deps, req);
    const scope = caller.isAdmin ? undefined : (eb: any) => eb('floatingips.project_id', '=', caller.projectId ?? '');
    const { rows, fields, links } = await listRows<FloatingIpRow>(deps.database.db, req, FIP_LIST, scope, { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const allowed = rows.filter((f) => caller.isAdmin || deps.enforcer.enforce('get_floatingip', fipTarget(f), credentialsFromAuth(caller.auth)));
    return { floatingips: (await views(allowed)).map((v) => selectFields(v, fields)), ...(links ? { floatingips_links: links } : {}) };
  });

  app.get('/v2.0/floatingips/:id', async (req) => {
    const caller = callerOf(deps, req);
    const f = await load(req, caller);
    authorizeAction(deps, caller, 'get_floatingip', fipTarget(f), { member: 'floatingip', id: f.id, visible: false });
    return { floatingip: selectFields(await one(f), fieldsOf(req)) };
  });

  app.post('/v2.0/floatingips', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'floatingip', 'floatingips');
    const inputs = items.map((b) => memberBody(b, 'floatingip', CREATE));
    deps.notifier.start('floatingip', 'create', req.body, req.ctx);
    const rows: FloatingIpRow[] = [];
    for (const a of inputs) {
      if (a.floating_network_id === undefined) throw badRequest("Failed to parse request. Required attribute 'floating_network_id' not specified", { type: 'HTTPBadRequest' });
      const projectId = owningProject(a, caller);
      authorizeAction(deps, caller, 'create_floatingip', { project_id: projectId, tenant_id: projectId }, { attrs: a });
      // The external network must be one the caller can see, else it does not exist for them.
      const netScope = networkScope(caller);
      let q = deps.database.db.selectFrom('networks').select('id').where('networks.id', '=', a.floating_network_id as string);
      if (netScope) q = q.where(netScope);
      if (!(await q.executeTakeFirst())) throw networkNotFound(a.floating_network_id as string);
      rows.push(
        await svc.create(
          {
            projectId,
            floatingNetworkId: a.floating_network_id as string,
            floatingIpAddress: a.floating_ip_address as string | undefined,
            subnetId: (a.subnet_id as string | null | undefined) ?? undefined,
            portId: a.port_id as string | null | undefined,
            fixedIpAddress: (a.fixed_ip_address as string | null | undefined) ?? undefined,
            description: a.description as string | undefined,
          },
          caller.isAdmin,
        ),
      );
    }
    const vs = await views(rows);
    for (const v of vs) deps.notifier.end('floatingip', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { floatingips: vs } : { floatingip: vs[0] };
  });

  app.put('/v2.0/floatingips/:id', async (req) => {
    const caller = callerOf(deps, req);
    const f = await load(req, caller);
    const a = memberBody(req.body, 'floatingip', UPDATE);
    authorizeAction(deps, caller, 'update_floatingip', fipTarget(f), { attrs: a });
    checkIfMatch(req, f.revision_number);
    deps.notifier.start('floatingip', 'update', req.body, req.ctx);
    const updated = await svc.update(
      f,
      { portId: a.port_id as string | null | undefined, fixedIpAddress: (a.fixed_ip_address as string | null | undefined) ?? undefined, description: a.description as string | undefined },
      caller.isAdmin,
    );
    const view = await one(updated);
    deps.notifier.end('floatingip', 'update', view, req.ctx);
    return { floatingip: view };
  });

  app.delete('/v2.0/floatingips/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const f = await load(req, caller);
    authorizeAction(deps, caller, 'delete_floatingip', fipTarget(f));
    checkIfMatch(req, f.revision_number);
    const view = await one(f);
    deps.notifier.start('floatingip', 'delete', { floatingip_id: f.id }, req.ctx);
    await svc.delete(f);
    deps.notifier.deleted('floatingip', f.id, view, req.ctx);
    reply.code(204);
  });

  /** floatingip-pools: the IPv4 subnets of the external networks the caller can see. */
  app.get('/v2.0/floatingip_pools', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'get_floatingip_pool', { project_id: caller.projectId ?? null, tenant_id: caller.projectId ?? null });
    const scope = networkScope(caller);
    let nq = deps.database.db.selectFrom('networks').select('networks.id').where('networks.router_external', '=', 1);
    if (scope) nq = nq.where(scope);
    const netIds = (await nq.execute()).map((n) => n.id);
    const subnets = netIds.length
      ? await deps.database.db.selectFrom('subnets').selectAll().where('network_id', 'in', netIds).where('ip_version', '=', 4).orderBy('network_id').orderBy('id').execute()
      : [];
    const fields = fieldsOf(req);
    return {
      floatingip_pools: subnets.map((s) =>
        selectFields({ subnet_id: s.id, subnet_name: s.name, tenant_id: s.project_id, project_id: s.project_id, network_id: s.network_id, cidr: s.cidr }, fields),
      ),
    };
  });
}
