import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import type { RbacPolicyRow } from '../db/schema.ts';
import { inTransaction } from '../db/transaction.ts';
import type { NetworkService } from '../domain/networks.ts';
import { rbacNotFound, RbacService } from '../domain/rbac.ts';
import { allowed, authorizeAction, callerOf, type ApiDeps, type Caller } from './context.ts';
import { listRows, selectFields, type ListSpec } from './list.ts';
import { checkAttrs, memberBody, owningProject, str, uuid, type Validator } from './validate.ts';

const RBAC_LIST: ListSpec = {
  table: 'rbac_policies',
  collection: 'rbac_policies',
  standard: false,
  columns: {
    object_type: { column: 'object_type', type: 'string', sortable: true },
    object_id: { column: 'object_id', type: 'string', sortable: true },
    action: { column: 'action', type: 'string', sortable: true },
    target_tenant: { column: 'target_project', type: 'string', sortable: true },
    target_project: { column: 'target_project', type: 'string', sortable: true },
  },
};

const CREATE_ATTRS: Record<string, Validator> = {
  object_type: str(255),
  object_id: uuid,
  action: str(255),
  target_tenant: str(255),
  target_project: str(255),
  project_id: str(255),
  tenant_id: str(255),
};
const UPDATE_ATTRS: Record<string, Validator> = { target_tenant: str(255), target_project: str(255) };

/** The policy target of an RBAC entry (`field:rbac_policy:target_tenant=*` reads it). */
export function rbacTarget(p: Pick<RbacPolicyRow, 'project_id' | 'object_type' | 'object_id' | 'action' | 'target_project'>): Target {
  return {
    project_id: p.project_id,
    tenant_id: p.project_id,
    object_type: p.object_type,
    object_id: p.object_id,
    action: p.action,
    target_tenant: p.target_project,
    target_project: p.target_project,
  };
}

export function rbacView(p: RbacPolicyRow): Record<string, unknown> {
  return {
    id: p.id,
    project_id: p.project_id,
    tenant_id: p.project_id,
    object_type: p.object_type,
    object_id: p.object_id,
    action: p.action,
    target_project: p.target_project,
    target_tenant: p.target_project,
  };
}

/** One target from a body that may name it either way (`target_tenant` is what the CLI sends). */
function targetOf(a: Record<string, unknown>): string | undefined {
  const t = a.target_project ?? a.target_tenant;
  if (a.target_project !== undefined && a.target_tenant !== undefined && a.target_project !== a.target_tenant) {
    throw new ApiError('bad_request', "'target_project' and 'target_tenant' do not match", { type: 'HTTPBadRequest' });
  }
  return t as string | undefined;
}

const required = (attr: string) => new ApiError('bad_request', `Failed to parse request. Required attribute '${attr}' not specified`, { type: 'HTTPBadRequest' });

/** `/v2.0/rbac-policies` (object type `network`): list, show, create, update of the target, delete. */
export function registerRbacRoutes(app: FastifyInstance, deps: ApiDeps, nets: NetworkService): void {
  const svc = new RbacService({ ids: deps.ids, quotas: deps.quotas, networks: nets });
  const db = () => deps.database.db;
  // Upstream's RBAC entries carry the creator's project_id and only the creator (or an admin) sees them.
  const scope = (caller: Caller) => (caller.isAdmin ? undefined : (eb: any) => eb('rbac_policies.project_id', '=', caller.projectId ?? ''));
  const load = async (req: FastifyRequest, caller: Caller): Promise<RbacPolicyRow> => {
    const id = (req.params as { id: string }).id;
    let q = db().selectFrom('rbac_policies').selectAll('rbac_policies').where('rbac_policies.id', '=', id);
    const s = scope(caller);
    if (s) q = q.where(s);
    const row = await q.executeTakeFirst();
    if (!row) throw rbacNotFound(id);
    return row;
  };

  app.get('/v2.0/rbac-policies', async (req) => {
    const caller = callerOf(deps, req);
    const { rows, fields, links } = await listRows<RbacPolicyRow>(db(), req, RBAC_LIST, scope(caller), { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const views = rows.filter((r) => allowed(deps, caller.auth, 'get_rbac_policy', rbacTarget(r))).map((r) => selectFields(rbacView(r), fields));
    return { rbac_policies: views, ...(links ? { rbac_policies_links: links } : {}) };
  });

  app.get('/v2.0/rbac-policies/:id', async (req) => {
    const caller = callerOf(deps, req);
    const row = await load(req, caller);
    authorizeAction(deps, caller, 'get_rbac_policy', rbacTarget(row), { member: 'rbac_policy', id: row.id, visible: false });
    const fields = ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
    return { rbac_policy: selectFields(rbacView(row), fields) };
  });

  app.post('/v2.0/rbac-policies', async (req, reply) => {
    const caller = callerOf(deps, req);
    const a = memberBody(req.body, 'rbac_policy', CREATE_ATTRS);
    for (const attr of ['object_type', 'object_id', 'action'] as const) if (a[attr] === undefined) throw required(attr);
    const target = targetOf(a);
    if (target === undefined) throw required('target_tenant');
    const projectId = owningProject(a, caller);
    const input = { projectId, objectType: a.object_type as string, objectId: a.object_id as string, action: a.action as string, targetProject: target };
    svc.validateType(input.objectType, input.action);
    const policyTarget = rbacTarget({ project_id: projectId, object_type: input.objectType, object_id: input.objectId, action: input.action, target_project: target });
    authorizeAction(deps, caller, 'create_rbac_policy', policyTarget, { attrs: { target_tenant: a.target_tenant, target_project: a.target_project } });
    // Looked up before the transaction: on SQLite it holds the only connection.
    await svc.ownedNetwork(input.objectId, caller);
    deps.notifier.start('rbac_policy', 'create', req.body, req.ctx);
    const row = await inTransaction(deps.database, (trx) => svc.create(trx, input));
    const view = rbacView(row);
    deps.notifier.end('rbac_policy', 'create', view, req.ctx);
    reply.code(201);
    return { rbac_policy: view };
  });

  app.put('/v2.0/rbac-policies/:id', async (req) => {
    const caller = callerOf(deps, req);
    const row = await load(req, caller);
    const a = memberBody(req.body, 'rbac_policy', UPDATE_ATTRS);
    checkAttrs(a, UPDATE_ATTRS);
    const target = targetOf(a);
    authorizeAction(deps, caller, 'update_rbac_policy', rbacTarget(row), { member: 'rbac_policy', id: row.id, visible: allowed(deps, caller.auth, 'get_rbac_policy', rbacTarget(row)) });
    if (target === undefined) return { rbac_policy: rbacView(row) };
    authorizeAction(deps, caller, 'update_rbac_policy', rbacTarget({ ...row, target_project: target }), { attrs: { target_tenant: a.target_tenant, target_project: a.target_project } });
    const net = await svc.ownedNetwork(row.object_id, caller);
    deps.notifier.start('rbac_policy', 'update', req.body, req.ctx);
    const updated = await inTransaction(deps.database, (trx) => svc.updateTarget(trx, row, net, target));
    const view = rbacView(updated);
    deps.notifier.end('rbac_policy', 'update', view, req.ctx);
    return { rbac_policy: view };
  });

  app.delete('/v2.0/rbac-policies/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const row = await load(req, caller);
    authorizeAction(deps, caller, 'delete_rbac_policy', rbacTarget(row), { member: 'rbac_policy', id: row.id, visible: allowed(deps, caller.auth, 'get_rbac_policy', rbacTarget(row)) });
    const net = await nets.find(row.object_id, { isAdmin: true });
    deps.notifier.start('rbac_policy', 'delete', { rbac_policy_id: row.id }, req.ctx);
    if (net) await inTransaction(deps.database, (trx) => svc.delete(trx, row, net));
    else await db().deleteFrom('rbac_policies').where('id', '=', row.id).execute();
    deps.notifier.deleted('rbac_policy', row.id, rbacView(row), req.ctx);
    reply.code(204);
  });
}
