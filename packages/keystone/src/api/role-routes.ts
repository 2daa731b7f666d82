import type { FastifyInstance, FastifyRequest } from 'fastify';
import { validationError } from '@onestack/core/errors.ts';
import type { Role, RoleUpdate } from '../domain/assignment-manager.ts';
import type { ApiDeps } from './context.ts';
import { authOf, authorize, collectionLinks, selfLink } from './context.ts';
import { roleRefView, roleView } from './views.ts';

const ROLE_PROPERTIES = {
  name: { type: 'string', minLength: 1, maxLength: 255, pattern: '[\\S]+' },
  description: { type: ['string', 'null'] },
  domain_id: { type: ['string', 'null'], minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' },
  options: { type: 'object', properties: { immutable: { type: ['boolean', 'null'] } }, additionalProperties: false },
};
const roleBody = (extra: Record<string, unknown>) => ({
  type: 'object',
  properties: { role: { type: 'object', properties: ROLE_PROPERTIES, additionalProperties: true, ...extra } },
  required: ['role'],
  additionalProperties: false,
});
const ROLE_QUERY = {
  type: 'object',
  properties: {
    name: ROLE_PROPERTIES.name,
    domain_id: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' },
  },
};
/** Attributes with a column; anything else a client sends is kept as an extra attribute, as upstream. */
const ROLE_COLUMNS = ['id', 'name', 'description', 'domain_id', 'options', 'links'];

interface RoleBody {
  id?: string;
  name?: string;
  description?: string | null;
  domain_id?: string | null;
  options?: Record<string, unknown>;
  [extra: string]: unknown;
}
type RoleParams = { role_id: string };
type ImpliesParams = { prior_role_id: string; implied_role_id: string };

/** /v3/roles (global and domain-specific roles), their implications and /v3/role_inferences, as keystone/api/roles.py. */
export function registerRoleRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.get('/v3/roles', { schema: { querystring: ROLE_QUERY } }, async (req) => {
    const q = req.query as { name?: string; domain_id?: string };
    const filters = { ...(q.name !== undefined ? { name: q.name } : {}), ...(q.domain_id ? { domain_id: q.domain_id } : {}) };
    if (q.domain_id) authorize(deps, req, 'identity:list_domain_roles', filters);
    else authorize(deps, req, 'identity:list_roles', { ...filters, target: callerDomain(req) });
    const roles = await ks.assignment.listRoles({ name: q.name, domainId: q.domain_id || null });
    return { roles: roles.map((r) => roleView(deps, r)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/roles', { schema: { body: roleBody({ required: ['name'] }) } }, async (req, reply) => {
    const body = (req.body as { role: RoleBody }).role;
    if (body.domain_id) authorize(deps, req, 'identity:create_domain_role', { target: { role: body } });
    else authorize(deps, req, 'identity:create_role');
    const role = await ks.assignment.createRole({
      name: body.name!,
      domainId: body.domain_id,
      description: body.description,
      options: body.options,
      extra: extraOf(body),
    });
    reply.code(201);
    return { role: roleView(deps, role) };
  });

  app.get('/v3/roles/:role_id', async (req) => {
    const role = await enforcedRole(deps, req, 'get');
    return { role: roleView(deps, role) };
  });

  app.patch('/v3/roles/:role_id', { schema: { body: roleBody({ minProperties: 1 }) } }, async (req) => {
    const role = await enforcedRole(deps, req, 'update');
    const body = (req.body as { role: RoleBody }).role;
    if (body.id != null && body.id !== role.id) throw validationError('Cannot change ID');
    const extra = extraOf(body);
    const patch: RoleUpdate = {
      name: body.name,
      description: body.description,
      domainId: body.domain_id,
      options: body.options,
      extra: Object.keys(extra).length ? extra : undefined,
    };
    return { role: roleView(deps, await ks.assignment.updateRole(role.id, patch)) };
  });

  app.delete('/v3/roles/:role_id', async (req, reply) => {
    const role = await enforcedRole(deps, req, 'delete');
    await ks.assignment.deleteRole(role.id);
    reply.code(204).send();
  });

  // ---- implied roles -----------------------------------------------------

  app.get('/v3/roles/:prior_role_id/implies', async (req) => {
    const { prior_role_id: priorId } = req.params as { prior_role_id: string };
    const prior = await ks.assignment.getRole(priorId);
    authorize(deps, req, 'identity:list_implied_roles', { target: { prior_role: roleView(deps, prior) } });
    const implied = await Promise.all((await ks.assignment.listImpliedRoles(priorId)).map((r) => ks.assignment.getRole(r.impliedRoleId)));
    return {
      role_inference: { prior_role: roleRefView(deps, prior), implies: implied.map((r) => roleRefView(deps, r)) },
      links: selfLink(deps, `roles/${priorId}/implies`),
    };
  });

  app.get('/v3/roles/:prior_role_id/implies/:implied_role_id', { exposeHeadRoute: false }, async (req) => {
    await enforceImplication(deps, req, 'identity:get_implied_role');
    return impliedRoleBody(deps, req.params as ImpliesParams);
  });

  // Upstream answers this HEAD with 204 after both the check and the get rules.
  app.head('/v3/roles/:prior_role_id/implies/:implied_role_id', async (req, reply) => {
    await enforceImplication(deps, req, 'identity:check_implied_role', 'identity:get_implied_role');
    await impliedRoleBody(deps, req.params as ImpliesParams);
    reply.code(204).send();
  });

  app.put('/v3/roles/:prior_role_id/implies/:implied_role_id', async (req, reply) => {
    await enforceImplication(deps, req, 'identity:create_implied_role');
    const p = req.params as ImpliesParams;
    await ks.assignment.createImpliedRole(p.prior_role_id, p.implied_role_id);
    reply.code(201);
    return impliedRoleBody(deps, p);
  });

  app.delete('/v3/roles/:prior_role_id/implies/:implied_role_id', async (req, reply) => {
    await enforceImplication(deps, req, 'identity:delete_implied_role');
    const p = req.params as ImpliesParams;
    await ks.assignment.deleteImpliedRole(p.prior_role_id, p.implied_role_id);
    reply.code(204).send();
  });

  app.get('/v3/role_inferences', async (req) => {
    authorize(deps, req, 'identity:list_role_inference_rules');
    const rules = await ks.assignment.listImpliedRoles();
    const roles = new Map<string, Role>();
    for (const id of new Set(rules.flatMap((r) => [r.priorRoleId, r.impliedRoleId]))) roles.set(id, await ks.assignment.getRole(id));
    const byPrior = new Map<string, Record<string, unknown>[]>();
    for (const r of rules) byPrior.set(r.priorRoleId, [...(byPrior.get(r.priorRoleId) ?? []), roleRefView(deps, roles.get(r.impliedRoleId)!)]);
    return {
      role_inferences: [...byPrior].map(([priorId, implies]) => ({ prior_role: roleRefView(deps, roles.get(priorId)!), implies })),
    };
  });
}

/**
 * The role a member request is about, after policy: get_role/update_role/
 * delete_role for a global role, the *_domain_role rules (with the role as
 * target) for a domain-specific one. A missing role is reported only once
 * policy passed, so its existence does not leak.
 */
async function enforcedRole(deps: ApiDeps, req: FastifyRequest, action: 'get' | 'update' | 'delete'): Promise<Role> {
  const { role_id: id } = req.params as RoleParams;
  let role: Role | undefined;
  let missing: unknown;
  try {
    role = await deps.ks.assignment.getRole(id);
  } catch (e) {
    missing = e;
  }
  if (!role?.domainId) {
    authorize(deps, req, `identity:${action}_role`, { target: callerDomain(req) });
    if (!role) throw missing;
    return role;
  }
  authorize(deps, req, `identity:${action}_domain_role`, { target: { role: roleView(deps, role) } });
  return role;
}

/** A domain-scoped caller's own domain, what the domain persona of the global role rules matches. */
function callerDomain(req: FastifyRequest): Record<string, unknown> {
  const domainId = authOf(req).domainId;
  return domainId ? { domain_id: domainId } : {};
}

/** Both roles must exist (404) before policy sees them as target.prior_role and target.implied_role. */
async function enforceImplication(deps: ApiDeps, req: FastifyRequest, ...rules: string[]): Promise<void> {
  const p = req.params as ImpliesParams;
  const prior = await deps.ks.assignment.getRole(p.prior_role_id);
  const implied = await deps.ks.assignment.getRole(p.implied_role_id);
  for (const rule of rules) authorize(deps, req, rule, { target: { prior_role: roleView(deps, prior), implied_role: roleView(deps, implied) } });
}

async function impliedRoleBody(deps: ApiDeps, p: ImpliesParams): Promise<Record<string, unknown>> {
  const { ks } = deps;
  await ks.assignment.getImpliedRole(p.prior_role_id, p.implied_role_id);
  const [prior, implied] = [await ks.assignment.getRole(p.prior_role_id), await ks.assignment.getRole(p.implied_role_id)];
  return {
    role_inference: { prior_role: roleRefView(deps, prior), implies: roleRefView(deps, implied) },
    links: selfLink(deps, `roles/${p.prior_role_id}/implies/${p.implied_role_id}`),
  };
}

function extraOf(body: RoleBody): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).filter(([k]) => !ROLE_COLUMNS.includes(k)));
}
