import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_PROJECT_MEMBER, ADMIN_OR_PROJECT_READER, rule } from './base.ts';

/**
 * Security group and rule policies (neutron/conf/policies/security_group.py).
 * A rule's target carries `security_group:project_id`, the owner of the group
 * it belongs to, so the group's owner manages every rule in it.
 */
const SG_OWNER_MEMBER = 'role:member and rule:sg_owner';
const SG_OWNER_READER = 'role:reader and rule:sg_owner';
const ADMIN_OR_SG_OWNER_MEMBER = `(${ADMIN}) or (${SG_OWNER_MEMBER})`;
const ADMIN_OR_SG_OWNER_READER = `(${ADMIN}) or (${SG_OWNER_READER})`;
const GROUPS = '/security-groups';
const GROUP = '/security-groups/{id}';
const RULES = '/security-group-rules';
const RULE = '/security-group-rules/{id}';
const SG_READ = `${ADMIN_OR_PROJECT_READER} or rule:shared_security_group`;

export const securityGroupPolicies: RuleDefault[] = [
  { name: 'sg_owner', checkStr: 'project_id:%(security_group:project_id)s', description: 'Rule for security group owner access' },
  { name: 'admin_or_sg_owner', checkStr: 'rule:context_is_admin or project_id:%(security_group:project_id)s', description: 'Rule for admin or security group owner access' },
  { name: 'admin_owner_or_sg_owner', checkStr: 'rule:owner or rule:admin_or_sg_owner', description: 'Rule for resource owner, admin or security group owner access' },
  { name: 'shared_security_group', checkStr: 'field:security_groups:shared=True', description: 'Definition of a shared security group' },
  { name: 'rule_default_sg', checkStr: 'field:security_group_rules:belongs_to_default_sg=True', description: 'Definition of a security group rule that belongs to the project default security group' },
  rule('create_security_group', ADMIN_OR_PROJECT_MEMBER, 'Create a security group', GROUPS, 'POST'),
  rule('create_security_group:tags', ADMIN_OR_PROJECT_MEMBER, 'Create the security group tags', GROUPS, 'POST'),
  rule('get_security_group', SG_READ, 'Get a security group', GROUP, 'GET'),
  rule('get_security_group:tags', SG_READ, 'Get the security group tags', GROUP, 'GET'),
  rule('update_security_group', ADMIN_OR_PROJECT_MEMBER, 'Update a security group', GROUP, 'PUT'),
  rule('update_security_group:tags', ADMIN_OR_PROJECT_MEMBER, 'Update the security group tags', GROUP, 'PUT'),
  rule('delete_security_group', ADMIN_OR_PROJECT_MEMBER, 'Delete a security group', GROUP, 'DELETE'),
  rule('delete_security_group:tags', ADMIN_OR_PROJECT_MEMBER, 'Delete the security group tags', GROUP, 'DELETE'),
  rule('create_security_group_rule', ADMIN_OR_SG_OWNER_MEMBER, 'Create a security group rule', RULES, 'POST'),
  rule('get_security_group_rule', ADMIN_OR_SG_OWNER_READER, 'Get a security group rule', RULE, 'GET'),
  rule('update_security_group_rule', ADMIN_OR_SG_OWNER_MEMBER, 'Update the description of a security group rule', RULE, 'PUT'),
  rule('delete_security_group_rule', ADMIN_OR_SG_OWNER_MEMBER, 'Delete a security group rule', RULE, 'DELETE'),
];
