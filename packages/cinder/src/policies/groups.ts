import type { RuleDefault } from '@onestack/core/policy/index.ts';

/** upstream's cinder/policies/group_types.py, groups.py, group_actions.py, group_snapshots.py, group_snapshot_actions.py. */
const ADMIN = 'rule:admin_api';
const MEMBER_OR_ADMIN = 'rule:xena_system_admin_or_project_member';
const READER_OR_ADMIN = 'rule:xena_system_admin_or_project_reader';

const r = (name: string, checkStr: string, description: string, method: string, path: string): RuleDefault => ({
  name,
  checkStr,
  description,
  operations: [{ method, path }],
  scopeTypes: ['project'],
});

export const groupPolicies: RuleDefault[] = [
  r('group:group_types:create', ADMIN, 'Create a group type.', 'POST', '/group_types/'),
  r('group:group_types:update', ADMIN, 'Update a group type.', 'PUT', '/group_types/{group_type_id}'),
  r('group:group_types:delete', ADMIN, 'Delete a group type.', 'DELETE', '/group_types/{group_type_id}'),
  r('group:access_group_types_specs', ADMIN, 'Show group type with type specs attributes.', 'GET', '/group_types/{group_type_id}'),
  r('group:group_types_specs:get', ADMIN, 'Show a group type spec.', 'GET', '/group_types/{group_type_id}/group_specs/{g_spec_id}'),
  r('group:group_types_specs:get_all', ADMIN, 'List group type specs.', 'GET', '/group_types/{group_type_id}/group_specs'),
  r('group:group_types_specs:create', ADMIN, 'Create a group type spec.', 'POST', '/group_types/{group_type_id}/group_specs'),
  r('group:group_types_specs:update', ADMIN, 'Update a group type spec.', 'PUT', '/group_types/{group_type_id}/group_specs/{g_spec_id}'),
  r('group:group_types_specs:delete', ADMIN, 'Delete a group type spec.', 'DELETE', '/group_types/{group_type_id}/group_specs/{g_spec_id}'),
  r('group:get_all', READER_OR_ADMIN, 'List groups.', 'GET', '/groups'),
  r('group:create', MEMBER_OR_ADMIN, 'Create group.', 'POST', '/groups'),
  r('group:get', READER_OR_ADMIN, 'Show group.', 'GET', '/groups/{group_id}'),
  r('group:update', MEMBER_OR_ADMIN, 'Update group.', 'PUT', '/groups/{group_id}'),
  r('group:group_project_attribute', ADMIN, 'List groups or show group with project attributes.', 'GET', '/groups/{group_id}'),
  r('group:delete', MEMBER_OR_ADMIN, 'Delete group.', 'POST', '/groups/{group_id}/action (delete)'),
  r('group:reset_status', ADMIN, 'Reset status of group.', 'POST', '/groups/{group_id}/action (reset_status)'),
  r('group:enable_replication', MEMBER_OR_ADMIN, 'Enable replication.', 'POST', '/groups/{group_id}/action (enable_replication)'),
  r('group:disable_replication', MEMBER_OR_ADMIN, 'Disable replication.', 'POST', '/groups/{group_id}/action (disable_replication)'),
  r('group:failover_replication', MEMBER_OR_ADMIN, 'Fail over replication.', 'POST', '/groups/{group_id}/action (failover_replication)'),
  r('group:list_replication_targets', MEMBER_OR_ADMIN, 'List failover replication.', 'POST', '/groups/{group_id}/action (list_replication_targets)'),
  r('group:get_all_group_snapshots', READER_OR_ADMIN, 'List group snapshots.', 'GET', '/group_snapshots'),
  r('group:create_group_snapshot', MEMBER_OR_ADMIN, 'Create group snapshot.', 'POST', '/group_snapshots'),
  r('group:get_group_snapshot', READER_OR_ADMIN, 'Show group snapshot.', 'GET', '/group_snapshots/{group_snapshot_id}'),
  r('group:delete_group_snapshot', MEMBER_OR_ADMIN, 'Delete group snapshot.', 'DELETE', '/group_snapshots/{group_snapshot_id}'),
  r('group:update_group_snapshot', MEMBER_OR_ADMIN, 'Update group snapshot.', 'PUT', '/group_snapshots/{group_snapshot_id}'),
  r('group:group_snapshot_project_attribute', ADMIN, 'List group snapshots or show group snapshot with project attributes.', 'GET', '/group_snapshots/{group_snapshot_id}'),
  r('group:reset_group_snapshot_status', ADMIN, 'Reset status of group snapshot.', 'POST', '/group_snapshots/{group_snapshot_id}/action (reset_status)'),
];
