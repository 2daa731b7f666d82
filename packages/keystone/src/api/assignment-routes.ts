import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isApiError, validationError } from '@onestack/core/errors.ts';
import type { Actor, RoleAssignment, Target } from '../domain/assignment-manager.ts';
import type { ApiDeps } from './context.ts';
import { authOf, authorize, collectionLinks } from './context.ts';
import { domainView, groupView, projectView, roleAssignmentView, roleView, userView } from './views.ts';

type ActorKind = 'users' | 'groups';
type TargetKind = 'projects' | 'domains' | 'system';
type GrantParams = { project_id?: string; domain_id?: string; user_id?: string; group_id?: string; role_id?: string };

/** What a grant request is about, read from its path. */
interface GrantRef {
  actor: Actor;
  target: Target;
  roleId?: string;
}

/**
 * How the policy target is built when an entity is missing. The /projects,
 * /domains and /system routes answer 404 before policy (`strict`; a revoke
 * tolerates a vanished actor); the OS-INHERIT routes leave the entity empty
 * so policy decides first (`lenient`), as upstream's os_inherit.py.
 */
type Lookup = 'strict' | 'revoke' | 'lenient';

interface GrantRoutes {
  base: string;
  actor: ActorKind;
  target: TargetKind;
  inherited: boolean;
}

const ID = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' };
const ASSIGNMENTS_QUERY = {
  type: 'object',
  properties: { 'group.id': ID, 'role.id': ID, 'scope.domain.id': ID, 'scope.project.id': ID, 'user.id': { type: 'string' } },
};
/** Query parameters upstream hands to policy as they are. */
const ASSIGNMENT_FILTERS = ['group.id', 'role.id', 'scope.domain.id', 'scope.project.id', 'scope.OS-INHERIT:inherited_to', 'user.id', 'scope.system'];

/**
 * Role grants (keystone/api/{projects,domains,system,os_inherit}.py) and
 * GET /v3/role_assignments (keystone/api/role_assignments.py).
 */
export function registerAssignmentRoutes(app: FastifyInstance, deps: ApiDeps): void {
  for (const actor of ['users', 'groups'] as const) {
    for (const target of ['projects', 'domains'] as const) {
      const path = `${target}/:${target.slice(0, -1)}_id/${actor}/:${actor.slice(0, -1)}_id/roles`;
      registerGrantRoutes(app, deps, { base: `/v3/${path}`, actor, target, inherited: false });
      registerGrantRoutes(app, deps, { base: `/v3/OS-INHERIT/${path}`, actor, target, inherited: true });
    }
    registerGrantRoutes(app, deps, { base: `/v3/system/${actor}/:${actor.slice(0, -1)}_id/roles`, actor, target: 'system', inherited: false });
  }

  app.get('/v3/role_assignments', { schema: { querystring: ASSIGNMENTS_QUERY } }, async (req) => {
    const q = req.query as Record<string, string | undefined>;
    // Upstream's query schema refuses these before policy is consulted.
    if ('include_subtree' in q && !('scope.project.id' in q)) throw validationError("'scope.project.id' is a dependency of 'include_subtree'");
    if ('user.id' in q && 'group.id' in q) throw validationError('Specify a user or group, not both');
    const filters = Object.fromEntries(ASSIGNMENT_FILTERS.filter((f) => f in q).map((f) => [f, q[f]]));
    let refs: RoleAssignment[];
    if (flag(q, 'include_subtree')) {
      const project = await deps.ks.resource.getProject(q['scope.project.id']!);
      const target = { project: projectView(deps, project), domain_id: project.domainId };
      authorize(deps, req, 'identity:list_role_assignments_for_tree', { ...filters, target });
      refs = await listAssignments(deps, q, true);
    } else {
      const callerDomain = authOf(req).domainId;
      authorize(deps, req, 'identity:list_role_assignments', { ...filters, ...(callerDomain ? { target: { domain_id: callerDomain } } : {}) });
      refs = await listAssignments(deps, q, false);
      if (callerDomain) refs = await onlyInDomain(deps, refs, callerDomain);
    }
    return { role_assignments: refs.map((r) => roleAssignmentView(deps, r)), links: collectionLinks(deps, req) };
  });
}

/**
 * PUT/GET/HEAD/DELETE `<base>/{role_id}[/inherited_to_projects]` and the GET
 * list at `<base>[/inherited_to_projects]` (upstream has no inherited list on
 * projects). `GET` of a single grant answers 204, as upstream.
 */
function registerGrantRoutes(app: FastifyInstance, deps: ApiDeps, { base, actor, target, inherited }: GrantRoutes): void {
  const { ks } = deps;
  const lookup: Lookup = inherited ? 'lenient' : 'strict';
  const suffix = inherited ? '/inherited_to_projects' : '';
  const rule = (action: 'check' | 'list' | 'create' | 'revoke') => {
    if (target !== 'system') return `identity:${action}_grant${action === 'list' ? 's' : ''}`;
    const single = actor === 'users' ? 'user' : 'group';
    return action === 'list' ? `identity:list_system_grants_for_${single}` : `identity:${action}_system_grant_for_${single}`;
  };
  const one = `${base}/:role_id${suffix}`;

  app.get(one, async (req, reply) => {
    const ref = grantRef(req, actor, target);
    authorize(deps, req, rule('check'), { target: await policyTarget(deps, ref, lookup) });
    await ks.assignment.checkGrant(ref.actor, ref.target, ref.roleId!, inherited);
    reply.code(204).send();
  });

  app.put(one, async (req, reply) => {
    const ref = grantRef(req, actor, target);
    authorize(deps, req, rule('create'), { target: await policyTarget(deps, ref, lookup) });
    await ks.assignment.grant(ref.actor, ref.target, ref.roleId!, inherited);
    reply.code(204).send();
  });

  app.delete(one, async (req, reply) => {
    const ref = grantRef(req, actor, target);
    authorize(deps, req, rule('revoke'), { target: await policyTarget(deps, ref, inherited ? 'lenient' : 'revoke') });
    await ks.assignment.revoke(ref.actor, ref.target, ref.roleId!, inherited);
    reply.code(204).send();
  });

  if (target === 'projects' && inherited) return;
  app.get(`${base}${suffix}`, async (req) => {
    const ref = grantRef(req, actor, target);
    authorize(deps, req, rule('list'), { target: await policyTarget(deps, ref, lookup) });
    const roles = await ks.assignment.listGrants(ref.actor, ref.target, inherited);
    return { roles: roles.map((r) => roleView(deps, r)), links: collectionLinks(deps, req) };
  });
}

function grantRef(req: FastifyRequest, actor: ActorKind, target: TargetKind): GrantRef {
  const p = req.params as GrantParams;
  return {
    actor: actor === 'users' ? { userId: p.user_id! } : { groupId: p.group_id! },
    target: target === 'projects' ? { projectId: p.project_id! } : target === 'domains' ? { domainId: p.domain_id! } : { system: 'all' },
    roleId: p.role_id,
  };
}

/** target.role, target.user or target.group, target.project or target.domain, as upstream's grant policies read them. */
async function policyTarget(deps: ApiDeps, ref: GrantRef, lookup: Lookup): Promise<Record<string, unknown>> {
  const { ks } = deps;
  const out: Record<string, unknown> = {};
  const put = async (key: string, load: () => Promise<Record<string, unknown>>, mayBeGone = false) => {
    try {
      out[key] = await load();
    } catch (e) {
      if (!isApiError(e) || e.status !== 404) throw e;
      if (mayBeGone) return;
      if (lookup !== 'lenient') throw e;
      out[key] = {};
    }
  };
  const { actor, target, roleId } = ref;
  if (roleId) await put('role', async () => roleView(deps, await ks.assignment.getRole(roleId)));
  if ('userId' in actor) await put('user', async () => userView(deps, await ks.identity.getUser(actor.userId)), lookup === 'revoke');
  else await put('group', async () => groupView(deps, await ks.identity.getGroup(actor.groupId)), lookup === 'revoke');
  if ('projectId' in target) await put('project', async () => projectView(deps, await ks.resource.getProject(target.projectId)));
  else if ('domainId' in target) await put('domain', async () => domainView(deps, await ks.resource.getDomain(target.domainId)));
  return out;
}

/** Upstream's query_filter_is_true: present and not "0" (so even "false" is true). */
function flag(q: Record<string, string | undefined>, name: string): boolean {
  return name in q && q[name] !== '0';
}

async function listAssignments(deps: ApiDeps, q: Record<string, string | undefined>, includeSubtree: boolean): Promise<RoleAssignment[]> {
  const has = (name: string) => Boolean(q[name]);
  if (has('scope.domain.id') && has('scope.project.id')) throw validationError('Specify a domain or project, not both');
  if (has('scope.domain.id') && has('scope.system')) throw validationError('Specify system or domain, not both');
  if (has('scope.project.id') && has('scope.system')) throw validationError('Specify system or project, not both');
  const effective = flag(q, 'effective');
  const inherited = 'scope.OS-INHERIT:inherited_to' in q ? q['scope.OS-INHERIT:inherited_to'] === 'projects' : undefined;
  if (effective && has('group.id')) throw validationError('Combining effective and group filter will always result in an empty list.');
  if (effective && inherited && has('scope.domain.id')) {
    throw validationError('Combining effective, domain and inherited filters will always result in an empty list.');
  }
  return deps.ks.assignment.listRoleAssignments({
    roleId: q['role.id'] || undefined,
    userId: q['user.id'] || undefined,
    groupId: q['group.id'] || undefined,
    system: q['scope.system'] === 'all',
    domainId: q['scope.domain.id'] || undefined,
    projectId: q['scope.project.id'] || undefined,
    includeSubtree,
    inherited,
    effective,
    includeNames: flag(q, 'include_names'),
  });
}

/** What a domain-scoped caller may see: assignments on its domain and on its domain's projects. */
async function onlyInDomain(deps: ApiDeps, refs: RoleAssignment[], domainId: string): Promise<RoleAssignment[]> {
  const projectDomains = new Map<string, string | null | undefined>();
  const out: RoleAssignment[] = [];
  for (const ref of refs) {
    if (ref.projectId && !projectDomains.has(ref.projectId)) projectDomains.set(ref.projectId, (await deps.ks.resource.findProject(ref.projectId))?.domainId);
    if (ref.domainId === domainId || (ref.projectId && projectDomains.get(ref.projectId) === domainId)) out.push(ref);
  }
  return out;
}
