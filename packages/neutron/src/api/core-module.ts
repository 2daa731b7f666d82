import type { NeutronModule } from './context.ts';

const ext = (alias: string, name: string, description: string) => ({ alias, name, description });

/** Networks, subnets, subnet pools, ports, quotas, RBAC, agents and tags. */
export const coreModule: NeutronModule = {
  name: 'core',
  extensions: [
    ext('project-id', 'project_id field enabled', 'Extension that indicates that project_id field is enabled.'),
    ext('filter-validation', 'Filter parameters validation', 'Provides validation on filter parameters.'),
    ext('empty-string-filtering', 'Empty String Filtering Extension', 'Allow filtering by attributes with empty string value'),
    ext('pagination', 'Pagination support', 'Extension that indicates that pagination is enabled.'),
    ext('sorting', 'Sorting support', 'Extension that indicates that sorting is enabled.'),
  ],
  resources: [],
  register() {},
};
