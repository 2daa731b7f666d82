import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER, domainReader } from './base.ts';

const ADMIN_SCOPES: ScopeType[] = ['system', 'project'];
const ANY_SCOPE: ScopeType[] = ['system', 'domain', 'project'];

/**
 * Who may read a limit: cloud admins, system readers, readers of the domain
 * the limit (or its project) belongs to, and anyone on the limit's project.
 * The null guard keeps a domain limit from matching a token without a project.
 */
const LIMIT_READER =
  `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.limit.domain.id')} or ${domainReader('target.limit.project.domain_id')} or ` +
  '(project_id:%(target.limit.project_id)s and not None:%(target.limit.project_id)s)';

const REGISTERED = '/v3/registered_limits';
const REGISTERED_ONE = '/v3/registered_limits/{registered_limit_id}';
const LIMIT_ONE = '/v3/limits/{limit_id}';

export const limitRules: RuleDefault[] = [
  {
    name: 'identity:get_registered_limit',
    checkStr: '',
    description: 'Show registered limit details.',
    operations: [
      { path: REGISTERED_ONE, method: 'GET' },
      { path: REGISTERED_ONE, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_registered_limits',
    checkStr: '',
    description: 'List registered limits.',
    operations: [
      { path: REGISTERED, method: 'GET' },
      { path: REGISTERED, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  { name: 'identity:create_registered_limits', checkStr: ADMIN, description: 'Create registered limits.', operations: [{ path: REGISTERED, method: 'POST' }], scopeTypes: ADMIN_SCOPES },
  { name: 'identity:update_registered_limit', checkStr: ADMIN, description: 'Update registered limit.', operations: [{ path: REGISTERED_ONE, method: 'PATCH' }], scopeTypes: ADMIN_SCOPES },
  { name: 'identity:delete_registered_limit', checkStr: ADMIN, description: 'Delete registered limit.', operations: [{ path: REGISTERED_ONE, method: 'DELETE' }], scopeTypes: ADMIN_SCOPES },
  {
    name: 'identity:get_limit_model',
    checkStr: '',
    description: 'Get limit enforcement model.',
    operations: [
      { path: '/v3/limits/model', method: 'GET' },
      { path: '/v3/limits/model', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:get_limit',
    checkStr: LIMIT_READER,
    description: 'Show limit details.',
    operations: [
      { path: LIMIT_ONE, method: 'GET' },
      { path: LIMIT_ONE, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  // Open as upstream: the listing itself shows each caller only the limits identity:get_limit lets it read.
  {
    name: 'identity:list_limits',
    checkStr: '',
    description: 'List limits.',
    operations: [
      { path: '/v3/limits', method: 'GET' },
      { path: '/v3/limits', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  { name: 'identity:create_limits', checkStr: ADMIN, description: 'Create limits.', operations: [{ path: '/v3/limits', method: 'POST' }], scopeTypes: ADMIN_SCOPES },
  { name: 'identity:update_limit', checkStr: ADMIN, description: 'Update limit.', operations: [{ path: LIMIT_ONE, method: 'PATCH' }], scopeTypes: ADMIN_SCOPES },
  { name: 'identity:delete_limit', checkStr: ADMIN, description: 'Delete limit.', operations: [{ path: LIMIT_ONE, method: 'DELETE' }], scopeTypes: ADMIN_SCOPES },
];
