import type { RuleDefault } from '@onestack/core/policy/index.ts';

export const tokenRules: RuleDefault[] = [
  {
    name: 'identity:check_token',
    checkStr: 'rule:admin_required or rule:system_reader or rule:service_role or rule:token_subject',
    description: 'Check a token.',
    operations: [{ path: '/v3/auth/tokens', method: 'HEAD' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:validate_token',
    checkStr: 'rule:admin_required or rule:system_reader or rule:service_role or rule:token_subject',
    description: 'Validate a token.',
    operations: [{ path: '/v3/auth/tokens', method: 'GET' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:revoke_token',
    checkStr: 'rule:admin_required or rule:service_role or rule:token_subject',
    description: 'Revoke a token.',
    operations: [{ path: '/v3/auth/tokens', method: 'DELETE' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:list_revoke_events',
    checkStr: 'rule:service_or_admin or rule:system_reader',
    description: 'List revocation events.',
    operations: [{ path: '/v3/OS-REVOKE/events', method: 'GET' }],
    scopeTypes: ['system', 'project'],
  },
];
