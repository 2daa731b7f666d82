import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';

/**
 * Nova's policies in code with upstream's names and default check strings
 * (nova/policies/*.py, 2024.x defaults with enforce_new_defaults). The target of
 * a server rule is the server (project_id its owner, user_id its creator); of a
 * create, the caller's project.
 */
const ADMIN = 'rule:context_is_admin';
const PROJECT_MEMBER = 'role:member and project_id:%(project_id)s';
const PROJECT_READER = 'role:reader and project_id:%(project_id)s';
const PROJECT_MEMBER_OR_ADMIN = `${ADMIN} or (${PROJECT_MEMBER})`;
const PROJECT_READER_OR_ADMIN = `${ADMIN} or (${PROJECT_READER})`;
const ADMIN_OR_OWNER = `${ADMIN} or user_id:%(user_id)s`;
const PROJECT: ScopeType[] = ['project'];

const r = (name: string, checkStr: string, description: string, path = '', method = ''): RuleDefault => ({
  name,
  checkStr,
  description,
  scopeTypes: PROJECT,
  ...(path ? { operations: [{ path, method }] } : {}),
});

const S = '/servers/{server_id}';
const A = `${S}/action`;

export const novaPolicies: RuleDefault[] = [
  { name: 'context_is_admin', checkStr: 'role:admin', description: 'Decides what is required for the is_admin:True check to succeed.' },
  { name: 'admin_or_owner', checkStr: 'is_admin:True or project_id:%(project_id)s', description: 'Legacy admin or owner rule.' },
  { name: 'admin_api', checkStr: 'is_admin:True', description: 'Legacy admin rule.' },
  { name: 'service_api', checkStr: 'role:service', description: 'Service-to-service API.' },
  { name: 'project_member_api', checkStr: 'role:member and project_id:%(project_id)s', description: 'Project member API.' },
  { name: 'project_reader_api', checkStr: 'role:reader and project_id:%(project_id)s', description: 'Project reader API.' },
  r('os_compute_api:servers:index', PROJECT_READER_OR_ADMIN, 'List all servers', '/servers', 'GET'),
  r('os_compute_api:servers:detail', PROJECT_READER_OR_ADMIN, 'List all servers with detailed information', '/servers/detail', 'GET'),
  r('os_compute_api:servers:index:get_all_tenants', ADMIN, 'List all servers for all projects', '/servers', 'GET'),
  r('os_compute_api:servers:detail:get_all_tenants', ADMIN, 'List all servers with detailed information for all projects', '/servers/detail', 'GET'),
  r('os_compute_api:servers:allow_all_filters', ADMIN, 'Allow all filters when listing servers', '/servers', 'GET'),
  r('os_compute_api:servers:show', PROJECT_READER_OR_ADMIN, 'Show a server', S, 'GET'),
  r('os_compute_api:servers:show:flavor-extra-specs', PROJECT_READER_OR_ADMIN, 'Starting with microversion 2.47, the flavor and its extra specs used for a server is also returned in the response when showing server details', S, 'GET'),
  r('os_compute_api:servers:show:host_status', ADMIN, 'Show a server with additional host status information', S, 'GET'),
  r('os_compute_api:servers:show:host_status:unknown-only', ADMIN, 'Show a server with additional host status information, only if host status is UNKNOWN', S, 'GET'),
  r('os_compute_api:servers:create', PROJECT_MEMBER_OR_ADMIN, 'Create a server', '/servers', 'POST'),
  r('os_compute_api:servers:create:forced_host', ADMIN, 'Create a server on the specified host and/or node', '/servers', 'POST'),
  r('os_compute_api:servers:create:requested_destination', ADMIN, 'Create a server on the requested compute service host and/or hypervisor_hostname', '/servers', 'POST'),
  r('os_compute_api:servers:create:attach_volume', PROJECT_MEMBER_OR_ADMIN, 'Create a server with the requested volume attached to it', '/servers', 'POST'),
  r('os_compute_api:servers:create:attach_network', PROJECT_MEMBER_OR_ADMIN, 'Create a server with the requested network attached to it', '/servers', 'POST'),
  r('os_compute_api:servers:create:trusted_certs', PROJECT_MEMBER_OR_ADMIN, 'Create a server with trusted image certificate IDs', '/servers', 'POST'),
  r('os_compute_api:servers:create:zero_disk_flavor', ADMIN, 'Create a server with a zero-disk flavor from an image (not a volume)', '/servers', 'POST'),
  r('os_compute_api:servers:update', PROJECT_MEMBER_OR_ADMIN, 'Update a server', S, 'PUT'),
  r('os_compute_api:servers:delete', PROJECT_MEMBER_OR_ADMIN, 'Delete a server', S, 'DELETE'),
  r('os_compute_api:servers:start', PROJECT_MEMBER_OR_ADMIN, 'Start a server', A, 'POST'),
  r('os_compute_api:servers:stop', PROJECT_MEMBER_OR_ADMIN, 'Stop a server', A, 'POST'),
  r('os_compute_api:servers:reboot', PROJECT_MEMBER_OR_ADMIN, 'Reboot a server', A, 'POST'),
  r('os_compute_api:servers:resize', PROJECT_MEMBER_OR_ADMIN, 'Resize a server', A, 'POST'),
  r('os_compute_api:servers:confirm_resize', PROJECT_MEMBER_OR_ADMIN, 'Confirm a server resize', A, 'POST'),
  r('os_compute_api:servers:revert_resize', PROJECT_MEMBER_OR_ADMIN, 'Revert a server resize', A, 'POST'),
  r('os_compute_api:servers:rebuild', PROJECT_MEMBER_OR_ADMIN, 'Rebuild a server', A, 'POST'),
  r('os_compute_api:servers:create_image', PROJECT_MEMBER_OR_ADMIN, 'Create an image from a server', A, 'POST'),
  r('os_compute_api:os-extended-server-attributes', ADMIN, 'Return extended attributes for server', S, 'GET'),
  r('os_compute_api:os-pause-server:pause', PROJECT_MEMBER_OR_ADMIN, 'Pause a server', A, 'POST'),
  r('os_compute_api:os-pause-server:unpause', PROJECT_MEMBER_OR_ADMIN, 'Unpause a paused server', A, 'POST'),
  r('os_compute_api:os-suspend-server:suspend', PROJECT_MEMBER_OR_ADMIN, 'Suspend server', A, 'POST'),
  r('os_compute_api:os-suspend-server:resume', PROJECT_MEMBER_OR_ADMIN, 'Resume suspended server', A, 'POST'),
  r('os_compute_api:os-lock-server:lock', PROJECT_MEMBER_OR_ADMIN, 'Lock a server', A, 'POST'),
  r('os_compute_api:os-lock-server:unlock', PROJECT_MEMBER_OR_ADMIN, 'Unlock a server', A, 'POST'),
  r('os_compute_api:os-lock-server:unlock:unlock_override', ADMIN, 'Unlock a server, regardless who locked the server', A, 'POST'),
  r('os_compute_api:os-admin-actions:reset_state', ADMIN, 'Reset the state of a given server', A, 'POST'),
  r('os_compute_api:os-deferred-delete:force', PROJECT_MEMBER_OR_ADMIN, 'Force delete a server before deferred cleanup', A, 'POST'),
  r('os_compute_api:os-console-output', PROJECT_MEMBER_OR_ADMIN, 'Show console output for a server', A, 'POST'),
  r('os_compute_api:os-instance-actions:list', PROJECT_READER_OR_ADMIN, 'List actions for a server', `${S}/os-instance-actions`, 'GET'),
  r('os_compute_api:os-instance-actions:show', PROJECT_READER_OR_ADMIN, 'Show action details for a server', `${S}/os-instance-actions/{request_id}`, 'GET'),
  r('os_compute_api:os-instance-actions:events', ADMIN, 'Add events details in action details for a server', `${S}/os-instance-actions/{request_id}`, 'GET'),
  r('os_compute_api:os-instance-actions:events:details', ADMIN, 'Add "details" key in action events for a server', `${S}/os-instance-actions/{request_id}`, 'GET'),
  r('os_compute_api:server-metadata:index', PROJECT_READER_OR_ADMIN, 'List all metadata of a server', `${S}/metadata`, 'GET'),
  r('os_compute_api:server-metadata:show', PROJECT_READER_OR_ADMIN, 'Show metadata for a server', `${S}/metadata/{key}`, 'GET'),
  r('os_compute_api:server-metadata:create', PROJECT_MEMBER_OR_ADMIN, 'Create metadata for a server', `${S}/metadata`, 'POST'),
  r('os_compute_api:server-metadata:update_all', PROJECT_MEMBER_OR_ADMIN, 'Replace metadata for a server', `${S}/metadata`, 'PUT'),
  r('os_compute_api:server-metadata:update', PROJECT_MEMBER_OR_ADMIN, 'Update metadata from a server', `${S}/metadata/{key}`, 'PUT'),
  r('os_compute_api:server-metadata:delete', PROJECT_MEMBER_OR_ADMIN, 'Delete metadata from a server', `${S}/metadata/{key}`, 'DELETE'),
  r('os_compute_api:os-server-tags:index', PROJECT_READER_OR_ADMIN, 'List all tags for given server', `${S}/tags`, 'GET'),
  r('os_compute_api:os-server-tags:show', PROJECT_READER_OR_ADMIN, 'Check tag existence on the server', `${S}/tags/{tag}`, 'GET'),
  r('os_compute_api:os-server-tags:update', PROJECT_MEMBER_OR_ADMIN, 'Add a single tag to the server', `${S}/tags/{tag}`, 'PUT'),
  r('os_compute_api:os-server-tags:update_all', PROJECT_MEMBER_OR_ADMIN, 'Replace all tags on specified server with the new set of tags', `${S}/tags`, 'PUT'),
  r('os_compute_api:os-server-tags:delete', PROJECT_MEMBER_OR_ADMIN, 'Delete a single tag from the specified server', `${S}/tags/{tag}`, 'DELETE'),
  r('os_compute_api:os-server-tags:delete_all', PROJECT_MEMBER_OR_ADMIN, 'Delete all the server tags', `${S}/tags`, 'DELETE'),
  r('os_compute_api:os-flavor-manage:create', ADMIN, 'Create a flavor', '/flavors', 'POST'),
  r('os_compute_api:os-flavor-manage:update', ADMIN, 'Update a flavor', '/flavors/{flavor_id}', 'PUT'),
  r('os_compute_api:os-flavor-manage:delete', ADMIN, 'Delete a flavor', '/flavors/{flavor_id}', 'DELETE'),
  { name: 'os_compute_api:os-flavor-access', checkStr: ADMIN, description: 'List flavor access information', scopeTypes: PROJECT },
  r('os_compute_api:os-flavor-access:add_tenant_access', ADMIN, 'Add flavor access to a tenant', '/flavors/{flavor_id}/action', 'POST'),
  r('os_compute_api:os-flavor-access:remove_tenant_access', ADMIN, 'Remove flavor access from a tenant', '/flavors/{flavor_id}/action', 'POST'),
  r('os_compute_api:os-flavor-extra-specs:index', PROJECT_READER_OR_ADMIN, 'List extra specs for a flavor', '/flavors/{flavor_id}/os-extra_specs', 'GET'),
  r('os_compute_api:os-flavor-extra-specs:show', PROJECT_READER_OR_ADMIN, 'Show an extra spec for a flavor', '/flavors/{flavor_id}/os-extra_specs/{key}', 'GET'),
  r('os_compute_api:os-flavor-extra-specs:create', ADMIN, 'Create extra specs for a flavor', '/flavors/{flavor_id}/os-extra_specs', 'POST'),
  r('os_compute_api:os-flavor-extra-specs:update', ADMIN, 'Update an extra spec for a flavor', '/flavors/{flavor_id}/os-extra_specs/{key}', 'PUT'),
  r('os_compute_api:os-flavor-extra-specs:delete', ADMIN, 'Delete an extra spec for a flavor', '/flavors/{flavor_id}/os-extra_specs/{key}', 'DELETE'),
  r('os_compute_api:os-keypairs:index', `${ADMIN} or user_id:%(user_id)s`, 'List all keypairs', '/os-keypairs', 'GET'),
  r('os_compute_api:os-keypairs:create', ADMIN_OR_OWNER, 'Create a keypair', '/os-keypairs', 'POST'),
  r('os_compute_api:os-keypairs:delete', ADMIN_OR_OWNER, 'Delete a keypair', '/os-keypairs/{keypair_name}', 'DELETE'),
  r('os_compute_api:os-keypairs:show', ADMIN_OR_OWNER, 'Show details of a keypair', '/os-keypairs/{keypair_name}', 'GET'),
  r('os_compute_api:os-quota-sets:show', PROJECT_READER_OR_ADMIN, 'Show a quota', '/os-quota-sets/{tenant_id}', 'GET'),
  r('os_compute_api:os-quota-sets:update', ADMIN, 'Update the quotas', '/os-quota-sets/{tenant_id}', 'PUT'),
  r('os_compute_api:os-quota-sets:defaults', '@', 'List default quotas', '/os-quota-sets/{tenant_id}/defaults', 'GET'),
  r('os_compute_api:os-quota-sets:delete', ADMIN, 'Revert quotas to defaults', '/os-quota-sets/{tenant_id}', 'DELETE'),
  r('os_compute_api:os-quota-sets:detail', PROJECT_READER_OR_ADMIN, 'Show the detail of quota', '/os-quota-sets/{tenant_id}/detail', 'GET'),
  r('os_compute_api:limits', '@', 'Show rate and absolute limits for the current user project', '/limits', 'GET'),
  r('os_compute_api:limits:other_project', ADMIN, 'Show rate and absolute limits of other project', '/limits', 'GET'),
  r('os_compute_api:os-services:list', ADMIN, 'List all running Compute services in a region', '/os-services', 'GET'),
  r('os_compute_api:os-services:update', ADMIN, 'Update a Compute service', '/os-services/{service_id}', 'PUT'),
  r('os_compute_api:os-services:delete', ADMIN, 'Delete a Compute service', '/os-services/{service_id}', 'DELETE'),
  r('os_compute_api:os-availability-zone:list', PROJECT_READER_OR_ADMIN, 'List availability zone information without host information', '/os-availability-zone', 'GET'),
  r('os_compute_api:os-availability-zone:detail', ADMIN, 'List detailed availability zone information with host information', '/os-availability-zone/detail', 'GET'),
  r('os_compute_api:os-hypervisors:list', ADMIN, 'List all hypervisors', '/os-hypervisors', 'GET'),
  r('os_compute_api:os-hypervisors:list-detail', ADMIN, 'List all hypervisors with details', '/os-hypervisors/detail', 'GET'),
  r('os_compute_api:os-hypervisors:show', ADMIN, 'Show details for a hypervisor', '/os-hypervisors/{hypervisor_id}', 'GET'),
  r('os_compute_api:os-server-groups:create', PROJECT_MEMBER_OR_ADMIN, 'Create a new server group', '/os-server-groups', 'POST'),
  r('os_compute_api:os-server-groups:delete', PROJECT_MEMBER_OR_ADMIN, 'Delete a server group', '/os-server-groups/{server_group_id}', 'DELETE'),
  r('os_compute_api:os-server-groups:index', PROJECT_READER_OR_ADMIN, 'List all server groups', '/os-server-groups', 'GET'),
  r('os_compute_api:os-server-groups:index:all_projects', ADMIN, 'List all server groups for all projects', '/os-server-groups', 'GET'),
  r('os_compute_api:os-server-groups:show', PROJECT_READER_OR_ADMIN, 'Show details of a server group', '/os-server-groups/{server_group_id}', 'GET'),
];
