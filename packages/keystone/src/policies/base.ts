import type { RuleDefault } from '@onestack/core/policy/index.ts';

/**
 * The personas every identity rule is written with, upstream's names:
 * - cloud admin: admin on the system scope, or admin on the admin project
 *   (the project `onestack bootstrap` makes; upstream's is_admin_project);
 * - system reader: reader on the system scope;
 * - domain admin / reader: admin / reader on a domain-scoped token for the
 *   target's domain, never beyond it;
 * - owner: the user the target belongs to.
 * An admin role on an ordinary project is only that project's admin: it grants
 * no identity management, unlike upstream's legacy `role:admin` anywhere.
 */
export const ADMIN = 'rule:admin_required';
export const SYSTEM_READER = 'rule:system_reader';
export const ADMIN_OR_SYSTEM_READER = `${ADMIN} or ${SYSTEM_READER}`;
export const domainAdmin = (domainPath: string) => `(role:admin and domain_id:%(${domainPath})s)`;
export const domainReader = (domainPath: string) => `(role:reader and domain_id:%(${domainPath})s)`;

export const baseRules: RuleDefault[] = [
  {
    name: 'admin_required',
    checkStr: '(role:admin and system_scope:all) or (role:admin and is_admin_project:True)',
    description: 'Cloud administrator: admin on the system scope or on the admin project.',
  },
  { name: 'system_reader', checkStr: 'role:reader and system_scope:all', description: 'Read-only access to the whole deployment.' },
  { name: 'service_role', checkStr: 'role:service', description: 'A service user (nova, neutron …).' },
  { name: 'service_or_admin', checkStr: 'rule:admin_required or rule:service_role' },
  { name: 'owner', checkStr: 'user_id:%(user_id)s' },
  { name: 'admin_or_owner', checkStr: 'rule:admin_required or rule:owner' },
  { name: 'token_subject', checkStr: 'user_id:%(target.token.user_id)s' },
  { name: 'admin_or_token_subject', checkStr: 'rule:admin_required or rule:token_subject' },
  { name: 'service_admin_or_token_subject', checkStr: 'rule:service_or_admin or rule:token_subject' },
];
