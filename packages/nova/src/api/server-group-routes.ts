import type { FastifyInstance, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { ApiError, badRequest, notFound } from '@onestack/core/errors.ts';
import type { ServerGroupRow } from '../db/schema.ts';
import { authOf, enforce, isAdmin, mv, strictQuery, type ApiDeps } from './context.ts';
import { int, invalid, name, noExtra, obj, str } from './validate.ts';

/** Policies a group may have: the soft ones from 2.15 (upstream's schema per microversion). */
function policiesAt(req: FastifyRequest): string[] {
  return mv(req, '2.15') ? ['anti-affinity', 'affinity', 'soft-anti-affinity', 'soft-affinity'] : ['anti-affinity', 'affinity'];
}

function onePolicy(req: FastifyRequest, g: Record<string, unknown>): string {
  noExtra(g, ['name', 'policies'], 'server_group');
  if (!Array.isArray(g.policies) || g.policies.length !== 1) throw invalid('policies', g.policies, 'must hold exactly one policy');
  const policy = str(g.policies[0], 'policies');
  if (!policiesAt(req).includes(policy)) throw invalid('policies', g.policies, `'${policy}' is not one of ${JSON.stringify(policiesAt(req))}`);
  return policy;
}

/** 2.64: one `policy` and optional `rules`, of which anti-affinity takes max_server_per_host. */
function policyAndRules(g: Record<string, unknown>): { policy: string; rules: { max_server_per_host?: number } } {
  noExtra(g, ['name', 'policy', 'rules'], 'server_group');
  if (g.policy === undefined) throw badRequest("Invalid input for field/attribute server_group. 'policy' is a required property");
  const policy = str(g.policy, 'policy');
  const all = ['anti-affinity', 'affinity', 'soft-anti-affinity', 'soft-affinity'];
  if (!all.includes(policy)) throw invalid('policy', policy, `'${policy}' is not one of ${JSON.stringify(all)}`);
  const raw = g.rules === undefined ? {} : obj(g.rules, 'rules');
  noExtra(raw, ['max_server_per_host'], 'rules');
  const rules = raw.max_server_per_host === undefined ? {} : { max_server_per_host: int(raw.max_server_per_host, 'max_server_per_host', { min: 1 }) };
  if (policy !== 'anti-affinity' && Object.keys(rules).length) throw badRequest('Only anti-affinity policy supports rules.');
  return { policy, rules };
}

/** os-server-groups: `policies` (a one-item list) and `metadata` until 2.63, `policy` and `rules` from 2.64; project_id and user_id from 2.13. */
export function registerServerGroupRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const db = deps.instances.db;
  const members = async (uuid: string) =>
    (await db.selectFrom('server_group_members').innerJoin('instances', 'instances.uuid', 'server_group_members.instance_uuid').select('instances.uuid').where('group_uuid', '=', uuid).where('instances.deleted', '=', 0).execute()).map((r) => r.uuid);
  const view = async (req: FastifyRequest, g: ServerGroupRow) => ({
    id: g.uuid,
    name: g.name,
    ...(mv(req, '2.64') ? { policy: g.policy, rules: JSON.parse(g.rules) } : { policies: [g.policy], metadata: {} }),
    members: await members(g.uuid),
    ...(mv(req, '2.13') ? { project_id: g.project_id, user_id: g.user_id } : {}),
  });
  const find = async (req: FastifyRequest, rule: string) => {
    const id = (req.params as { id: string }).id;
    const g = await db.selectFrom('server_groups').selectAll().where('uuid', '=', id).executeTakeFirst();
    if (!g || (g.project_id !== authOf(req).projectId && !isAdmin(deps, req))) throw notFound(`Instance group ${id} could not be found.`);
    enforce(deps, req, rule, { project_id: g.project_id });
    return g;
  };

  app.get('/v2.1/os-server-groups', async (req) => {
    strictQuery(req, ['all_projects', 'limit', 'offset']);
    const q = req.query as { all_projects?: string; limit?: string; offset?: string };
    const auth = authOf(req);
    enforce(deps, req, 'os_compute_api:os-server-groups:index', { project_id: auth.projectId });
    const all = q.all_projects !== undefined && ['1', 'true', 'yes', 'on', ''].includes(q.all_projects.toLowerCase()) && isAdmin(deps, req);
    if (all) enforce(deps, req, 'os_compute_api:os-server-groups:index:all_projects');
    let query = db.selectFrom('server_groups').selectAll().orderBy('created_at').orderBy('uuid');
    if (!all) query = query.where('project_id', '=', auth.projectId ?? '');
    let rows = await query.execute();
    const offset = q.offset === undefined ? 0 : int(q.offset, 'offset', { min: 0 });
    const limit = q.limit === undefined ? deps.config.maxLimit : Math.min(int(q.limit, 'limit', { min: 1 }), deps.config.maxLimit);
    rows = rows.slice(offset, offset + limit);
    return { server_groups: await Promise.all(rows.map((g) => view(req, g))) };
  });

  app.post('/v2.1/os-server-groups', async (req, reply) => {
    const auth = authOf(req);
    enforce(deps, req, 'os_compute_api:os-server-groups:create', { project_id: auth.projectId });
    const g = obj(obj(req.body, 'body').server_group, 'server_group');
    const groupName = name(g.name);
    const { policy, rules } = mv(req, '2.64') ? policyAndRules(g) : { policy: onePolicy(req, g), rules: {} };
    const projectId = auth.projectId ?? '';
    const quota = (await deps.quotas.limits(projectId)).server_groups;
    const used = Number((await db.selectFrom('server_groups').select((eb) => eb.fn.countAll().as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow()).n);
    if (quota >= 0 && used >= quota) throw new ApiError('forbidden', 'Quota exceeded, too many server groups.');
    const row: ServerGroupRow = { uuid: randomUUID(), name: groupName, project_id: projectId, user_id: auth.userId ?? '', policy, rules: JSON.stringify(rules), created_at: Date.now() };
    await db.insertInto('server_groups').values(row).execute();
    reply.code(200);
    return { server_group: await view(req, row) };
  });

  app.get('/v2.1/os-server-groups/:id', async (req) => ({ server_group: await view(req, await find(req, 'os_compute_api:os-server-groups:show')) }));

  app.delete('/v2.1/os-server-groups/:id', async (req, reply) => {
    const g = await find(req, 'os_compute_api:os-server-groups:delete');
    await db.deleteFrom('server_group_members').where('group_uuid', '=', g.uuid).execute();
    await db.deleteFrom('server_groups').where('uuid', '=', g.uuid).execute();
    reply.code(204);
    return '';
  });
}
