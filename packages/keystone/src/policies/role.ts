import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER, domainReader } from './base.ts';

/**
 * Roles and implied roles. Upstream lets a domain's manager read roles so it
 * can grant them; here that is the domain persona: routes put the caller's
 * own domain in `target.domain_id` for global roles (as upstream does for
 * role assignments), a domain role's `target.role.domain_id` must be it.
 */
const READ_ROLES = `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain_id')}`;

export const roleRules: RuleDefault[] = [
  {
    name: 'identity:get_role',
    checkStr: READ_ROLES,
    description: 'Show role details.',
    operations: [
      { path: '/v3/roles/{role_id}', method: 'GET' },
      { path: '/v3/roles/{role_id}', method: 'HEAD' },
    ],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:list_roles',
    checkStr: READ_ROLES,
    description: 'List roles.',
    operations: [
      { path: '/v3/roles', method: 'GET' },
      { path: '/v3/roles', method: 'HEAD' },
    ],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:create_role',
    checkStr: ADMIN,
    description: 'Create role.',
    operations: [{ path: '/v3/roles', method: 'POST' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:update_role',
    checkStr: ADMIN,
    description: 'Update role.',
    operations: [{ path: '/v3/roles/{role_id}', method: 'PATCH' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:delete_role',
    checkStr: ADMIN,
    description: 'Delete role.',
    operations: [{ path: '/v3/roles/{role_id}', method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:get_domain_role',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.role.domain_id')}`,
    description: 'Show domain role.',
    operations: [
      { path: '/v3/roles/{role_id}', method: 'GET' },
      { path: '/v3/roles/{role_id}', method: 'HEAD' },
    ],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:list_domain_roles',
    // `domain_id` is the query filter, which upstream hands to policy as is.
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('domain_id')}`,
    description: 'List domain roles.',
    operations: [
      { path: '/v3/roles?domain_id={domain_id}', method: 'GET' },
      { path: '/v3/roles?domain_id={domain_id}', method: 'HEAD' },
    ],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:create_domain_role',
    checkStr: ADMIN,
    description: 'Create domain role.',
    operations: [{ path: '/v3/roles', method: 'POST' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:update_domain_role',
    checkStr: ADMIN,
    description: 'Update domain role.',
    operations: [{ path: '/v3/roles/{role_id}', method: 'PATCH' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:delete_domain_role',
    checkStr: ADMIN,
    description: 'Delete domain role.',
    operations: [{ path: '/v3/roles/{role_id}', method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
];
