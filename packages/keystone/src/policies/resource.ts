import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_SYSTEM_READER, domainAdmin, domainReader } from './base.ts';

/**
 * Domains and projects, as upstream's domain.py and project.py; the domain
 * persona is the domain admin (see base.ts), where upstream now names a
 * `manager` role.
 */
const ANY_SCOPE = ['system', 'domain', 'project'] as const;

/** Anyone scoped to the domain, or to a project in it, may see the domain itself. */
const READ_DOMAIN = `${ADMIN_OR_SYSTEM_READER} or domain_id:%(target.domain.id)s or project_domain_id:%(target.domain.id)s`;
const READ_PROJECT = `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.project.domain_id')} or project_id:%(target.project.id)s`;
const MANAGE_PROJECT = `${ADMIN} or ${domainAdmin('target.project.domain_id')}`;

const domain = '/v3/domains/{domain_id}';
const project = '/v3/projects/{project_id}';
const tags = `${project}/tags`;
const tag = `${tags}/{value}`;

export const resourceRules: RuleDefault[] = [
  {
    name: 'identity:get_domain',
    checkStr: READ_DOMAIN,
    description: 'Show domain details.',
    operations: [{ path: domain, method: 'GET' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_domains',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain.id')}`,
    description: 'List domains.',
    operations: [{ path: '/v3/domains', method: 'GET' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_domain',
    checkStr: ADMIN,
    description: 'Create domain.',
    operations: [{ path: '/v3/domains', method: 'POST' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:update_domain',
    checkStr: ADMIN,
    description: 'Update domain.',
    operations: [{ path: domain, method: 'PATCH' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:delete_domain',
    checkStr: ADMIN,
    description: 'Delete domain.',
    operations: [{ path: domain, method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:get_project',
    checkStr: READ_PROJECT,
    description: 'Show project details.',
    operations: [{ path: project, method: 'GET' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_projects',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.domain_id')}`,
    description: 'List projects.',
    operations: [{ path: '/v3/projects', method: 'GET' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_user_projects',
    checkStr: `${ADMIN_OR_SYSTEM_READER} or ${domainReader('target.user.domain_id')} or user_id:%(target.user.id)s`,
    description: 'List projects for user.',
    operations: [{ path: '/v3/users/{user_id}/projects', method: 'GET' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_project',
    checkStr: MANAGE_PROJECT,
    description: 'Create project.',
    operations: [{ path: '/v3/projects', method: 'POST' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:update_project',
    checkStr: MANAGE_PROJECT,
    description: 'Update project.',
    operations: [{ path: project, method: 'PATCH' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:delete_project',
    checkStr: MANAGE_PROJECT,
    description: 'Delete project.',
    operations: [{ path: project, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:list_project_tags',
    checkStr: READ_PROJECT,
    description: 'List tags for a project.',
    operations: [
      { path: tags, method: 'GET' },
      { path: tags, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:get_project_tag',
    checkStr: READ_PROJECT,
    description: 'Check if project contains a tag.',
    operations: [
      { path: tag, method: 'GET' },
      { path: tag, method: 'HEAD' },
    ],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:update_project_tags',
    checkStr: MANAGE_PROJECT,
    description: 'Replace all tags on a project with the new set of tags.',
    operations: [{ path: tags, method: 'PUT' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:create_project_tag',
    checkStr: MANAGE_PROJECT,
    description: 'Add a single tag to a project.',
    operations: [{ path: tag, method: 'PUT' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:delete_project_tags',
    checkStr: MANAGE_PROJECT,
    description: 'Remove all tags from a project.',
    operations: [{ path: tags, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
  {
    name: 'identity:delete_project_tag',
    checkStr: MANAGE_PROJECT,
    description: 'Delete a specified tag from project.',
    operations: [{ path: tag, method: 'DELETE' }],
    scopeTypes: ANY_SCOPE,
  },
];
