import type { Operation, RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER, SYSTEM_READER, domainReader } from './base.ts';

/**
 * Grants, system grants, role assignments and implied roles, as upstream
 * writes them. A domain's admin (reader) manages (sees) only grants whose
 * actor, user or group, AND target, project or domain, are in its domain,
 * of a global role or one of its domain's roles.
 */
const inDomain = (path: string) => `domain_id:%(${path})s`;
const actorAndTargetInDomain = (role: 'admin' | 'reader') =>
  ['target.user.domain_id', 'target.group.domain_id']
    .flatMap((actor) => ['target.project.domain_id', 'target.domain.id'].map((t) => `(role:${role} and ${inDomain(actor)} and ${inDomain(t)})`))
    .join(' or ');
const ROLE_OF_DOMAIN = `(${inDomain('target.role.domain_id')} or None:%(target.role.domain_id)s)`;
const GRANTS_DOMAIN_READER = `(${actorAndTargetInDomain('reader')})`;
const GRANTS_DOMAIN_ADMIN = `(${actorAndTargetInDomain('admin')})`;
const ALL_SCOPES: ScopeType[] = ['system', 'domain', 'project'];

const grantPaths = [
  '/projects/{project_id}/users/{user_id}/roles/{role_id}',
  '/projects/{project_id}/groups/{group_id}/roles/{role_id}',
  '/domains/{domain_id}/users/{user_id}/roles/{role_id}',
  '/domains/{domain_id}/groups/{group_id}/roles/{role_id}',
];
const allGrantPaths = [...grantPaths, ...grantPaths.map((p) => `/OS-INHERIT${p}/inherited_to_projects`)];
const grantListPaths = [
  '/projects/{project_id}/users/{user_id}/roles',
  '/projects/{project_id}/groups/{group_id}/roles',
  '/domains/{domain_id}/users/{user_id}/roles',
  '/domains/{domain_id}/groups/{group_id}/roles',
  '/OS-INHERIT/domains/{domain_id}/groups/{group_id}/roles/inherited_to_projects',
  '/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/inherited_to_projects',
];
const impliedRolePath = '/roles/{prior_role_id}/implies/{implied_role_id}';

const ops = (paths: string[], methods: string[]): Operation[] => paths.flatMap((p) => methods.map((method) => ({ path: `/v3${p}`, method })));

const rule = (name: string, checkStr: string, description: string, operations: Operation[], scopeTypes: ScopeType[] = ['system', 'project']): RuleDefault => ({
  name: `identity:${name}`,
  checkStr,
  description,
  operations,
  scopeTypes,
});

function systemGrantRules(actor: 'user' | 'group'): RuleDefault[] {
  const one = `/system/${actor}s/{${actor}_id}/roles/{role_id}`;
  const all = `/system/${actor}s/{${actor}_id}/roles`;
  return [
    rule(`list_system_grants_for_${actor}`, ADMIN_OR_SYSTEM_READER, `List all grants a specific ${actor} has on the system.`, ops([all], ['HEAD', 'GET'])),
    rule(`check_system_grant_for_${actor}`, ADMIN_OR_SYSTEM_READER, `Check if a ${actor} has a role on the system.`, ops([one], ['HEAD', 'GET'])),
    rule(`create_system_grant_for_${actor}`, ADMIN, `Grant a ${actor} a role on the system.`, ops([one], ['PUT'])),
    rule(`revoke_system_grant_for_${actor}`, ADMIN, `Remove a role from a ${actor} on the system.`, ops([one], ['DELETE'])),
  ];
}

export const assignmentRules: RuleDefault[] = [
  rule(
    'check_grant',
    `${ADMIN} or ${SYSTEM_READER} or (${GRANTS_DOMAIN_READER} and ${ROLE_OF_DOMAIN})`,
    'Check a role grant between a target (domain or project) and an actor (user or group), OS-INHERIT ones included.',
    ops(allGrantPaths, ['HEAD', 'GET']),
    ALL_SCOPES,
  ),
  rule(
    'list_grants',
    `${ADMIN} or ${SYSTEM_READER} or ${GRANTS_DOMAIN_READER}`,
    'List roles granted to an actor on a target, OS-INHERIT ones included.',
    ops(grantListPaths, ['GET', 'HEAD']),
    ALL_SCOPES,
  ),
  rule(
    'create_grant',
    `${ADMIN} or (${GRANTS_DOMAIN_ADMIN} and ${ROLE_OF_DOMAIN})`,
    'Create a role grant between a target and an actor, OS-INHERIT ones included.',
    ops(allGrantPaths, ['PUT']),
    ALL_SCOPES,
  ),
  rule(
    'revoke_grant',
    `${ADMIN} or (${GRANTS_DOMAIN_ADMIN} and ${ROLE_OF_DOMAIN})`,
    'Revoke a role grant between a target and an actor, OS-INHERIT ones included.',
    ops(allGrantPaths, ['DELETE']),
    ALL_SCOPES,
  ),
  ...systemGrantRules('user'),
  ...systemGrantRules('group'),
  // A domain-scoped caller sees its own domain's assignments only: the route
  // puts that domain in target.domain_id and filters the answer to it.
  rule('list_role_assignments', `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain_id')}`, 'List role assignments.', ops(['/role_assignments'], ['GET', 'HEAD']), ALL_SCOPES),
  // Upstream's project persona for this rule: the project's admin sees its subtree.
  rule(
    'list_role_assignments_for_tree',
    `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain_id')} or (role:admin and project_id:%(target.project.id)s)`,
    'List all role assignments for a given tree of hierarchical projects.',
    ops(['/role_assignments?include_subtree'], ['GET', 'HEAD']),
    ALL_SCOPES,
  ),
  rule('get_implied_role', ADMIN_OR_SYSTEM_READER, 'Get information about an association between two roles.', ops([impliedRolePath], ['GET'])),
  rule('list_implied_roles', ADMIN_OR_SYSTEM_READER, 'List the roles a prior role implies.', ops(['/roles/{prior_role_id}/implies'], ['GET', 'HEAD'])),
  rule('create_implied_role', ADMIN, 'Create an association between two roles.', ops([impliedRolePath], ['PUT'])),
  rule('delete_implied_role', ADMIN, 'Delete the association between two roles.', ops([impliedRolePath], ['DELETE'])),
  rule('list_role_inference_rules', ADMIN_OR_SYSTEM_READER, 'List all associations between two roles in the system.', ops(['/role_inferences'], ['GET', 'HEAD'])),
  rule('check_implied_role', ADMIN_OR_SYSTEM_READER, 'Check an association between two roles.', ops([impliedRolePath], ['HEAD'])),
];
