import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER, domainAdmin, domainReader } from './base.ts';

/**
 * Users and groups, as upstream's user.py and group.py; the domain persona is
 * the domain admin (see base.ts), where upstream now names a `manager` role.
 * Changing one's own password has no rule: the original password is the
 * proof (upstream leaves POST /v3/users/{id}/password unenforced).
 */
const ANY_SCOPE = ['system', 'domain', 'project'] as const;

const MANAGE_USER = `${ADMIN} or ${domainAdmin('target.user.domain_id')}`;
const MANAGE_GROUP = `${ADMIN} or ${domainAdmin('target.group.domain_id')}`;
const READ_GROUP = `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.group.domain_id')}`;
/** Membership touches two entities: a domain persona needs both in its domain. */
const MANAGE_MEMBERSHIP = `${ADMIN} or (${domainAdmin('target.group.domain_id')} and ${domainAdmin('target.user.domain_id')})`;
const READ_MEMBERSHIP = `${ADMIN_OR_SYSTEM_READER} or (${domainReader('target.group.domain_id')} and ${domainReader('target.user.domain_id')})`;

const user = '/v3/users/{user_id}';
const group = '/v3/groups/{group_id}';
const member = `${group}/users/{user_id}`;

export const identityRules: RuleDefault[] = [
  {
    name: 'identity:get_user',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.user.domain_id')} or user_id:%(target.user.id)s`,
    description: 'Show user details.',
    operations: [
      { path: user, method: 'GET' },
      { path: user, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_users',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain_id')}`,
    description: 'List users.',
    operations: [
      { path: '/v3/users', method: 'GET' },
      { path: '/v3/users', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_user',
    checkStr: MANAGE_USER,
    description: 'Create a user.',
    operations: [{ path: '/v3/users', method: 'POST' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:update_user',
    checkStr: MANAGE_USER,
    description: 'Update a user, including administrative password resets.',
    operations: [{ path: user, method: 'PATCH' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:delete_user',
    checkStr: MANAGE_USER,
    description: 'Delete a user.',
    operations: [{ path: user, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:get_group',
    checkStr: READ_GROUP,
    description: 'Show group details.',
    operations: [
      { path: group, method: 'GET' },
      { path: group, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_groups',
    checkStr: READ_GROUP,
    description: 'List groups.',
    operations: [
      { path: '/v3/groups', method: 'GET' },
      { path: '/v3/groups', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_groups_for_user',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.user.domain_id')} or user_id:%(user_id)s`,
    description: 'List groups to which a user belongs.',
    operations: [
      { path: `${user}/groups`, method: 'GET' },
      { path: `${user}/groups`, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_group',
    checkStr: MANAGE_GROUP,
    description: 'Create group.',
    operations: [{ path: '/v3/groups', method: 'POST' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:update_group',
    checkStr: MANAGE_GROUP,
    description: 'Update group.',
    operations: [{ path: group, method: 'PATCH' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:delete_group',
    checkStr: MANAGE_GROUP,
    description: 'Delete group.',
    operations: [{ path: group, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_users_in_group',
    checkStr: READ_GROUP,
    description: 'List members of a specific group.',
    operations: [
      { path: `${group}/users`, method: 'GET' },
      { path: `${group}/users`, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:remove_user_from_group',
    checkStr: MANAGE_MEMBERSHIP,
    description: 'Remove user from group.',
    operations: [{ path: member, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:check_user_in_group',
    checkStr: READ_MEMBERSHIP,
    description: 'Check whether a user is a member of a group.',
    operations: [
      { path: member, method: 'HEAD' },
      { path: member, method: 'GET' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:add_user_to_group',
    checkStr: MANAGE_MEMBERSHIP,
    description: 'Add user to group.',
    operations: [{ path: member, method: 'PUT' }],
    scopeTypes: ANY_SCOPE,
  },
];
