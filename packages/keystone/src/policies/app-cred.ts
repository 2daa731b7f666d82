import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, SYSTEM_READER } from './base.ts';

const appCreds = '/v3/users/{user_id}/application_credentials';
const appCred = `${appCreds}/{application_credential_id}`;
const accessRules = '/v3/users/{user_id}/access_rules';
const accessRule = `${accessRules}/{access_rule_id}`;

/**
 * Application credentials and access rules, as upstream's
 * application_credential.py and access_rule.py. The owner is `user_id` (the
 * credential's real owner, never the path's) for application credentials and
 * `target.user.id` for access rules, upstream's own spellings.
 */
export const appCredRules: RuleDefault[] = [
  {
    name: 'identity:get_application_credential',
    checkStr: `(${ADMIN}) or (${SYSTEM_READER}) or rule:owner`,
    description: 'Show application credential details.',
    operations: [
      { path: appCred, method: 'GET' },
      { path: appCred, method: 'HEAD' },
    ],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:list_application_credentials',
    checkStr: `(${ADMIN}) or (${SYSTEM_READER}) or rule:owner`,
    description: 'List application credentials for a user.',
    operations: [
      { path: appCreds, method: 'GET' },
      { path: appCreds, method: 'HEAD' },
    ],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:create_application_credential',
    checkStr: 'rule:owner',
    description: 'Create an application credential.',
    operations: [{ path: appCreds, method: 'POST' }],
    scopeTypes: ['project'],
  },
  {
    name: 'identity:delete_application_credential',
    checkStr: 'rule:admin_or_owner',
    description: 'Delete an application credential.',
    operations: [{ path: appCred, method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:get_access_rule',
    checkStr: `(${SYSTEM_READER}) or user_id:%(target.user.id)s`,
    description: 'Show access rule details.',
    operations: [
      { path: accessRule, method: 'GET' },
      { path: accessRule, method: 'HEAD' },
    ],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:list_access_rules',
    checkStr: `(${SYSTEM_READER}) or user_id:%(target.user.id)s`,
    description: 'List access rules for a user.',
    operations: [
      { path: accessRules, method: 'GET' },
      { path: accessRules, method: 'HEAD' },
    ],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:delete_access_rule',
    checkStr: `(role:admin and system_scope:all) or user_id:%(target.user.id)s`,
    description: 'Delete an access_rule.',
    operations: [{ path: accessRule, method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
];
