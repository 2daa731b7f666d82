import { isoTime } from '../domain/json-columns.ts';
import type { Group, User } from '../domain/identity-manager.ts';
import type { Project } from '../domain/resource-manager.ts';
import type { Role } from '../domain/assignment-manager.ts';
import type { ApiDeps } from './context.ts';
import { selfLink } from './context.ts';

/** Wire representations of identity entities, field for field as upstream renders them. */
export function projectView(deps: ApiDeps, p: Project): Record<string, unknown> {
  return {
    ...p.extra,
    id: p.id,
    name: p.name,
    domain_id: p.domainId ?? p.id,
    description: p.description,
    enabled: p.enabled,
    parent_id: p.parentId,
    is_domain: false,
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
