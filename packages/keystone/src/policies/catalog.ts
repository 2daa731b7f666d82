import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER } from './base.ts';

const ADMIN_SCOPES: ScopeType[] = ['system', 'project'];
const ANY_SCOPE: ScopeType[] = ['system', 'domain', 'project'];

/** Services and endpoints: read by cloud admins and system readers, written by cloud admins. */
function entityRules(entity: 'service' | 'endpoint', label: string): RuleDefault[] {
  const one = `/v3/${entity}s/{${entity}_id}`;
  return [
    { name: `identity:get_${entity}`, checkStr: ADMIN_OR_SYSTEM_READER, description: `Show ${label} details.`, operations: [{ path: one, method: 'GET' }], scopeTypes: ADMIN_SCOPES },
    { name: `identity:list_${entity}s`, checkStr: ADMIN_OR_SYSTEM_READER, description: `List ${label}s.`, operations: [{ path: `/v3/${entity}s`, method: 'GET' }], scopeTypes: ADMIN_SCOPES },
    { name: `identity:create_${entity}`, checkStr: ADMIN, description: `Create ${label}.`, operations: [{ path: `/v3/${entity}s`, method: 'POST' }], scopeTypes: ADMIN_SCOPES },
    { name: `identity:update_${entity}`, checkStr: ADMIN, description: `Update ${label}.`, operations: [{ path: one, method: 'PATCH' }], scopeTypes: ADMIN_SCOPES },
    { name: `identity:delete_${entity}`, checkStr: ADMIN, description: `Delete ${label}.`, operations: [{ path: one, method: 'DELETE' }], scopeTypes: ADMIN_SCOPES },
  ];
}

export const catalogRules: RuleDefault[] = [
  ...entityRules('service', 'service'),
  ...entityRules('endpoint', 'endpoint'),
  // Any valid token may read regions, as upstream: clients pick endpoints by region.
  {
    name: 'identity:get_region',
    checkStr: '',
    description: 'Show region details.',
    operations: [
      { path: '/v3/regions/{region_id}', method: 'GET' },
      { path: '/v3/regions/{region_id}', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_regions',
    checkStr: '',
    description: 'List regions.',
    operations: [
      { path: '/v3/regions', method: 'GET' },
      { path: '/v3/regions', method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_region',
    checkStr: ADMIN,
    description: 'Create region.',
    operations: [
      { path: '/v3/regions', method: 'POST' },
      { path: '/v3/regions/{region_id}', method: 'PUT' },
    ],
    scopeTypes: ADMIN_SCOPES,
  },
  { name: 'identity:update_region', checkStr: ADMIN, description: 'Update region.', operations: [{ path: '/v3/regions/{region_id}', method: 'PATCH' }], scopeTypes: ADMIN_SCOPES },
  { name: 'identity:delete_region', checkStr: ADMIN, description: 'Delete region.', operations: [{ path: '/v3/regions/{region_id}', method: 'DELETE' }], scopeTypes: ADMIN_SCOPES },
];
