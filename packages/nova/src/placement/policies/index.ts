import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';

/**
 * Placement's policies in code: upstream's names and defaults (placement/policies/*.py).
 * Everything is for the cloud admin or a service (Nova's service user has the
 * `service` role) except the total usages of a project, which its readers may see.
 */
const ADMIN_OR_SERVICE = 'rule:admin_or_service_api';
const ADMIN_OR_PROJECT_READER_OR_SERVICE = 'rule:admin_or_project_reader_or_service_api';
const PROJECT: ScopeType[] = ['project'];

const RP = '/resource_providers';
const RP1 = '/resource_providers/{uuid}';

const rule = (name: string, checkStr: string, description: string, operations: { path: string; method: string }[]): RuleDefault => ({
  name,
  checkStr,
  description,
  operations,
  scopeTypes: PROJECT,
});

const crud = (prefix: string, what: string, collection: string, item: string, verbs: Record<string, [string, string]>): RuleDefault[] =>
  Object.entries(verbs).map(([verb, [method, path]]) => rule(`${prefix}:${verb}`, ADMIN_OR_SERVICE, `${verb} ${what}`, [{ method, path: path === 'c' ? collection : item }]));

export const placementPolicies: RuleDefault[] = [
  { name: 'admin_api', checkStr: 'role:admin', description: 'Default rule for most placement APIs.', scopeTypes: PROJECT },
  { name: 'service_api', checkStr: 'role:service', description: 'Default rule for service-to-service placement APIs.', scopeTypes: PROJECT },
  { name: 'admin_or_service_api', checkStr: 'role:admin or role:service', description: 'Default rule for most placement APIs.', scopeTypes: PROJECT },
  { name: 'project_reader_api', checkStr: 'role:reader and project_id:%(project_id)s', description: 'Default rule for Project level reader APIs.' },
  {
    name: 'admin_or_project_reader_or_service_api',
    checkStr: 'role:admin or rule:project_reader_api or role:service',
    description: 'Default rule for project level reader APIs.',
    scopeTypes: PROJECT,
  },
  ...crud('placement:resource_providers', 'resource providers', RP, RP1, {
    list: ['GET', 'c'],
    create: ['POST', 'c'],
    show: ['GET', 'i'],
    update: ['PUT', 'i'],
    delete: ['DELETE', 'i'],
  }),
  ...crud('placement:resource_providers:inventories', 'inventories', `${RP1}/inventories`, `${RP1}/inventories/{resource_class}`, {
    list: ['GET', 'c'],
    create: ['POST', 'c'],
    show: ['GET', 'i'],
    update: ['PUT', 'i'],
    delete: ['DELETE', 'i'],
  }),
  ...crud('placement:resource_providers:aggregates', 'resource provider aggregates', `${RP1}/aggregates`, `${RP1}/aggregates`, {
    list: ['GET', 'c'],
    update: ['PUT', 'c'],
  }),
  ...crud('placement:resource_providers:traits', 'resource provider traits', `${RP1}/traits`, `${RP1}/traits`, {
    list: ['GET', 'c'],
    update: ['PUT', 'c'],
    delete: ['DELETE', 'c'],
  }),
  ...crud('placement:resource_classes', 'resource classes', '/resource_classes', '/resource_classes/{name}', {
    list: ['GET', 'c'],
    create: ['POST', 'c'],
    show: ['GET', 'i'],
    update: ['PUT', 'i'],
    delete: ['DELETE', 'i'],
  }),
  ...crud('placement:traits', 'traits', '/traits', '/traits/{name}', {
    list: ['GET', 'c'],
    show: ['GET', 'i'],
    update: ['PUT', 'i'],
    delete: ['DELETE', 'i'],
  }),
  rule('placement:allocations:manage', ADMIN_OR_SERVICE, 'Manage allocations.', [{ method: 'POST', path: '/allocations' }]),
  rule('placement:allocations:list', ADMIN_OR_SERVICE, 'List allocations.', [{ method: 'GET', path: '/allocations/{consumer_uuid}' }]),
  rule('placement:allocations:update', ADMIN_OR_SERVICE, 'Update allocations.', [{ method: 'PUT', path: '/allocations/{consumer_uuid}' }]),
  rule('placement:allocations:delete', ADMIN_OR_SERVICE, 'Delete allocations.', [{ method: 'DELETE', path: '/allocations/{consumer_uuid}' }]),
  rule('placement:resource_providers:allocations:list', ADMIN_OR_SERVICE, 'List resource provider allocations.', [{ method: 'GET', path: `${RP1}/allocations` }]),
  rule('placement:resource_providers:usages', ADMIN_OR_SERVICE, 'List resource provider usages.', [{ method: 'GET', path: `${RP1}/usages` }]),
  rule('placement:usages', ADMIN_OR_PROJECT_READER_OR_SERVICE, 'List total resource usages for a given project.', [{ method: 'GET', path: '/usages' }]),
  rule('placement:allocation_candidates:list', ADMIN_OR_SERVICE, 'List allocation candidates.', [{ method: 'GET', path: '/allocation_candidates' }]),
  rule('placement:reshaper:reshape', 'rule:service_api', 'Reshape Inventory and Allocations.', [{ method: 'POST', path: '/reshaper' }]),
];
