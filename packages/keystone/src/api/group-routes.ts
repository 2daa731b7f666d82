import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound, validationError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import type { Group } from '../domain/identity-manager.ts';
import type { ApiDeps } from './context.ts';
import { authorize, collectionLinks } from './context.ts';
import { groupView, userView } from './views.ts';
import { callerDomain, extraOf, ID_STRING, inCallerDomain, listTarget, normalized, NULLABLE_STRING, queryString, requireMatchingId, wrapped } from './request-helpers.ts';
import { IDENTITY_NAME, listDomain, userFilter, userTarget } from './user-routes.ts';

/** /v3/groups and their members, as keystone/api/groups.py. */
export function registerGroupRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.get('/v3/groups', async (req) => {
    authorize(deps, req, 'identity:list_groups', listTarget(req, (domainId) => ({ group: { domain_id: domainId } })));
    const q = req.query as Record<string, unknown>;
    const groups = await ks.identity.listGroups({ domainId: listDomain(deps, req), name: queryString(q.name) });
    return { groups: inCallerDomain(req, groups, (g) => g.domainId).map((g) => groupView(deps, g)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/groups', { schema: { body: wrapped('group', { ...GROUP, domain_id: ID_STRING }, { required: ['name'] }) } }, async (req, reply) => {
    const raw = (req.body as { group: GroupBody }).group;
    authorize(deps, req, 'identity:create_group', { target: { group: raw } });
    const body = normalized(raw) as GroupBody;
    const group = await ks.identity.createGroup({
      name: body.name!,
      domainId: body.domain_id || callerDomain(req),
      description: body.description ?? undefined,
      extra: extraOf(body, GROUP_COLUMNS),
    });
    reply.code(201);
    return { group: groupView(deps, group) };
  });

  app.get('/v3/groups/:group_id', async (req) => {
    const { id, group, target } = await groupTarget(deps, req);
    authorize(deps, req, 'identity:get_group', target);
    return { group: groupView(deps, existingGroup(group, id)) };
  });

  app.patch('/v3/groups/:group_id', { schema: { body: wrapped('group', GROUP, { minProperties: 1 }) } }, async (req) => {
    const { id, group, target } = await groupTarget(deps, req);
    authorize(deps, req, 'identity:update_group', target);
    const current = existingGroup(group, id);
    const body = (req.body as { group: GroupBody }).group;
    requireMatchingId(body, id);
    if (body.domain_id !== undefined && body.domain_id !== current.domainId) throw validationError('Cannot change Domain ID');
    const updated = await ks.identity.updateGroup(id, { name: body.name, description: body.description ?? undefined, extra: extraOf(body, GROUP_COLUMNS) });
    return { group: groupView(deps, updated) };
  });

  app.delete('/v3/groups/:group_id', async (req, reply) => {
    const { id, group, target } = await groupTarget(deps, req);
    authorize(deps, req, 'identity:delete_group', target);
    await ks.identity.deleteGroup(existingGroup(group, id).id);
    reply.code(204).send();
  });

  app.get('/v3/groups/:group_id/users', async (req) => {
    const { id, group, target } = await groupTarget(deps, req);
    authorize(deps, req, 'identity:list_users_in_group', target);
    existingGroup(group, id);
    const users = await ks.identity.listUsersInGroup(id, userFilter(req.query as Record<string, unknown>));
    return { users: inCallerDomain(req, users, (u) => u.domainId).map((u) => userView(deps, u)), links: collectionLinks(deps, req) };
  });

  // GET answers HEAD as well: both are upstream's check_user_in_group.
  app.get('/v3/groups/:group_id/users/:user_id', async (req, reply) => {
    const target = await membershipTarget(deps, req);
    authorize(deps, req, 'identity:check_user_in_group', target.target);
    await ks.identity.checkUserInGroup(target.userId, target.groupId);
    reply.code(204).send();
  });

  app.put('/v3/groups/:group_id/users/:user_id', async (req, reply) => {
    const target = await membershipTarget(deps, req);
    authorize(deps, req, 'identity:add_user_to_group', target.target);
    await ks.identity.addUserToGroup(target.userId, target.groupId);
    reply.code(204).send();
  });

  app.delete('/v3/groups/:group_id/users/:user_id', async (req, reply) => {
    const target = await membershipTarget(deps, req);
    authorize(deps, req, 'identity:remove_user_from_group', target.target);
    await ks.identity.removeUserFromGroup(target.userId, target.groupId);
    reply.code(204).send();
  });
}

/** The group a route names; a missing one leaves the target empty (see userTarget). */
async function groupTarget(deps: ApiDeps, req: FastifyRequest): Promise<{ id: string; group: Group | undefined; target: Target }> {
  const params = req.params as Record<string, string>;
  const id = params.group_id;
  const group = await deps.ks.identity.findGroup(id);
  return { id, group, target: { ...params, target: group ? { group: groupView(deps, group) } : {} } };
}

/** Both ends of a membership, each present in the target only when it exists. */
async function membershipTarget(deps: ApiDeps, req: FastifyRequest): Promise<{ userId: string; groupId: string; target: Target }> {
  const [{ id: userId, target: forUser }, { id: groupId, target: forGroup }] = await Promise.all([userTarget(deps, req), groupTarget(deps, req)]);
  return { userId, groupId, target: { ...forUser, ...forGroup, target: { ...(forUser.target as object), ...(forGroup.target as object) } } };
}

function existingGroup(group: Group | undefined, id: string): Group {
  if (!group) throw notFound(`Could not find group: ${id}.`);
  return group;
}

interface GroupBody {
  id?: string;
  name?: string;
  domain_id?: string;
  description?: string | null;
}

const GROUP_COLUMNS = ['id', 'name', 'domain_id', 'description', 'links'];

const GROUP = {
  description: NULLABLE_STRING,
  name: IDENTITY_NAME,
};
