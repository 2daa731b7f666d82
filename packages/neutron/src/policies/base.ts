import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';

/**
 * Neutron's base rules (neutron/conf/policies/base.py) and the check strings
 * the resource rules are built from, with upstream's check strings
 * (`field:networks:shared=True` reads `shared` from the target), so an
 * operator's override file written for upstream means the same here.
 */
export const ADMIN = 'rule:admin_only';
export const PROJECT_MEMBER = 'role:member and project_id:%(project_id)s';
export const PROJECT_READER = 'role:reader and project_id:%(project_id)s';
export const NET_OWNER_MEMBER = 'role:member and project_id:%(network:project_id)s';
export const NET_OWNER_READER = 'role:reader and project_id:%(network:project_id)s';
export const ADMIN_OR_PROJECT_MEMBER = `(${ADMIN}) or (${PROJECT_MEMBER})`;
export const ADMIN_OR_PROJECT_READER = `(${ADMIN}) or (${PROJECT_READER})`;
export const ADMIN_OR_NET_OWNER_MEMBER = `(${ADMIN}) or (${NET_OWNER_MEMBER})`;
export const ADMIN_OR_NET_OWNER_READER = `(${ADMIN}) or (${NET_OWNER_READER})`;
export const SERVICE = 'rule:service_api';

export const PROJECT: ScopeType[] = ['project'];

/** A rule with project scope, as nearly every Neutron rule is. */
export function rule(name: string, checkStr: string, description: string, path?: string, method?: string): RuleDefault {
  return { name, checkStr, description, scopeTypes: PROJECT, ...(path && method ? { operations: [{ path, method }] } : {}) };
}

export const basePolicies: RuleDefault[] = [
  { name: 'context_is_admin', checkStr: 'role:admin', description: 'Rule for cloud admin access' },
  { name: 'service_api', checkStr: 'role:service', description: 'Default rule for the service-to-service APIs.' },
  { name: 'admin_only', checkStr: 'rule:context_is_admin', description: 'Rule for admin only access' },
  { name: 'regular_user', checkStr: '', description: 'Rule for regular user access' },
  { name: 'owner', checkStr: 'project_id:%(project_id)s', description: 'Rule for resource owner access' },
  { name: 'admin_or_owner', checkStr: 'rule:context_is_admin or rule:owner', description: 'Rule for admin or owner access' },
  { name: 'context_is_advsvc', checkStr: 'role:advsvc', description: 'Rule for advsvc role access' },
  { name: 'admin_or_network_owner', checkStr: 'rule:context_is_admin or project_id:%(network:project_id)s', description: 'Rule for admin or network owner access' },
  { name: 'network_device', checkStr: 'field:port:device_owner=~^network:', description: 'Definition of port with network device_owner' },
  { name: 'shared', checkStr: 'field:networks:shared=True', description: 'Definition of a shared resource' },
  { name: 'external', checkStr: 'field:networks:router:external=True', description: 'Definition of an external network' },
  { name: 'shared_subnetpools', checkStr: 'field:subnetpools:shared=True', description: 'Definition of a shared subnetpool' },
  { name: 'default', checkStr: 'rule:admin_or_owner', description: 'Default access rule' },
];
