import { isoTime } from '../domain/json-columns.ts';
import type { Group, User } from '../domain/identity-manager.ts';
import type { Project } from '../domain/resource-manager.ts';
import type { Role, RoleAssignment } from '../domain/assignment-manager.ts';
import type { ApiDeps } from './context.ts';
import { selfLink } from './context.ts';

/** Wire representations of identity entities, field for field as upstream renders them. */
export function projectView(deps: ApiDeps, p: Project): Record<string, unknown> {
  return {
    ...p.extra,
    id: p.id,
    name: p.name,
    domain_id: p.domainId,
    description: p.description,
    enabled: p.enabled,
    parent_id: p.parentId,
    is_domain: p.isDomain,
    tags: p.tags,
    options: p.options,
    links: selfLink(deps, `projects/${p.id}`),
  };
}

export function domainView(deps: ApiDeps, d: Project): Record<string, unknown> {
  return {
    ...d.extra,
    id: d.id,
    name: d.name,
    description: d.description,
    enabled: d.enabled,
    tags: d.tags,
    options: d.options,
    links: selfLink(deps, `domains/${d.id}`),
  };
}

export function userView(deps: ApiDeps, u: User): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...u.extra,
    id: u.id,
    name: u.name,
    domain_id: u.domainId,
    enabled: u.enabled,
    password_expires_at: isoTime(u.passwordExpiresAt),
    options: u.options,
    links: selfLink(deps, `users/${u.id}`),
  };
  if (u.defaultProjectId) out.default_project_id = u.defaultProjectId;
  if (u.description) out.description = u.description;
  if (u.email) out.email = u.email;
  return out;
}

export function groupView(deps: ApiDeps, g: Group): Record<string, unknown> {
  return { ...g.extra, id: g.id, name: g.name, domain_id: g.domainId, description: g.description, links: selfLink(deps, `groups/${g.id}`) };
}

export function roleView(deps: ApiDeps, r: Role): Record<string, unknown> {
  return {
    ...r.extra,
    id: r.id,
    name: r.name,
    domain_id: r.domainId,
    description: r.description || null,
    options: r.options,
    links: selfLink(deps, `roles/${r.id}`),
  };
}

/** A role as role inferences show it: id, name and link only. */
export function roleRefView(deps: ApiDeps, r: Role): Record<string, unknown> {
  return { id: r.id, links: selfLink(deps, `roles/${r.id}`), name: r.name };
}

/**
 * One entry of GET /v3/role_assignments as upstream formats it. `links.assignment`
 * is the grant API URL the assignment comes from: the group's grant for a
 * membership, the OS-INHERIT grant on the domain or parent for an inherited
 * one, the prior role's grant for an implied one.
 */
export function roleAssignmentView(deps: ApiDeps, a: RoleAssignment): Record<string, unknown> {
  const url = (path: string) => selfLink(deps, path).self;
  const names = a.names;
  const links: Record<string, string> = {};
  const scope: Record<string, unknown> = {};
  const out: Record<string, unknown> = { links, scope };
  let inherited = a.inheritedToProjects === true;
  let path: string;
  if (a.projectId) {
    scope.project = { id: a.projectId, ...names?.project };
    inherited ||= Boolean(a.indirect?.domainId ?? a.indirect?.projectId);
    path = a.indirect?.domainId ? `domains/${a.indirect.domainId}` : `projects/${a.indirect?.projectId ?? a.projectId}`;
  } else if (a.domainId) {
    scope.domain = { id: a.domainId, ...names?.domain };
    path = `domains/${a.domainId}`;
  } else {
    scope.system = { all: true };
    path = 'system';
  }
  if (a.userId) {
    out.user = { id: a.userId, ...names?.user };
    const viaGroup = a.indirect?.groupId;
    if (viaGroup) links.membership = url(`groups/${viaGroup}/users/${a.userId}`);
    path += viaGroup ? `/groups/${viaGroup}` : `/users/${a.userId}`;
  } else {
    out.group = { id: a.groupId, ...names?.group };
    path += `/groups/${a.groupId}`;
  }
  out.role = { id: a.roleId, ...names?.role };
  const prior = a.indirect?.roleId;
  path += `/roles/${prior ?? a.roleId}`;
  if (inherited) {
    scope['OS-INHERIT:inherited_to'] = 'projects';
    path = `OS-INHERIT/${path}/inherited_to_projects`;
  }
  links.assignment = url(path);
  // Upstream names the implied role "prior" and the prior one "implied" in this link; kept for compatibility.
  if (prior) links.prior_role = url(`prior_role/${a.roleId}/implies/${prior}`);
  return out;
}
