import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';
import { groupPolicies } from './groups.ts';

/**
 * Cinder's policies in code: upstream's names and default check strings
 * (cinder/policies/base.py and the per-area modules). The target of a volume
 * rule is the volume (project_id its owner); admin is the admin role.
 */
const ADMIN = 'rule:admin_api';
const PROJECT_MEMBER = 'role:member and project_id:%(project_id)s';
const PROJECT_READER = 'role:reader and project_id:%(project_id)s';
const MEMBER_OR_ADMIN = `${ADMIN} or (${PROJECT_MEMBER})`;
const READER_OR_ADMIN = `${ADMIN} or (${PROJECT_READER})`;
const PROJECT: ScopeType[] = ['project'];

const r = (name: string, checkStr: string, description: string, method: string, path: string): RuleDefault => ({
  name,
  checkStr,
  description,
  operations: [{ method, path }],
  scopeTypes: PROJECT,
});

const V = '/volumes';
const VOL = '/volumes/{volume_id}';
const ACTION = `${VOL}/action`;

export const cinderPolicies: RuleDefault[] = [
  { name: 'context_is_admin', checkStr: 'role:admin', description: 'Decides what is required for the is_admin:True check to succeed.' },
  { name: 'admin_api', checkStr: 'is_admin:True or role:admin', description: 'Default rule for most Admin APIs.' },
  { name: 'xena_system_admin_or_project_reader', checkStr: READER_OR_ADMIN, description: 'Upstream base rule: admin or project reader.' },
  { name: 'xena_system_admin_or_project_member', checkStr: MEMBER_OR_ADMIN, description: 'Upstream base rule: admin or project member.' },
  r('volume:create', MEMBER_OR_ADMIN, 'Create volume.', 'POST', V),
  r('volume:create_from_image', MEMBER_OR_ADMIN, 'Create volume from image.', 'POST', V),
  r('volume:get', READER_OR_ADMIN, 'Show volume.', 'GET', VOL),
  r('volume:get_all', READER_OR_ADMIN, 'List volumes or get summary of volumes.', 'GET', `${V}/detail`),
  r('volume:update', MEMBER_OR_ADMIN, 'Update volume or update a volume\'s bootable status.', 'PUT', VOL),
  r('volume:delete', MEMBER_OR_ADMIN, 'Delete volume.', 'DELETE', VOL),
  r('volume:force_delete', ADMIN, 'Force Delete a volume.', 'DELETE', VOL),
  r('volume_extension:volume_host_attribute', ADMIN, 'List or show volume with host attribute.', 'GET', VOL),
  r('volume_extension:volume_tenant_attribute', READER_OR_ADMIN, 'List or show volume with tenant attribute.', 'GET', VOL),
  r('volume_extension:volume_mig_status_attribute', ADMIN, 'List or show volume with migration status attribute.', 'GET', VOL),
  r('volume_extension:volume_image_metadata:show', READER_OR_ADMIN, 'Show image metadata for a volume.', 'GET', VOL),
  r('volume:get_volume_metadata', READER_OR_ADMIN, 'Show volume\'s metadata or one specified metadata with a given key.', 'GET', `${VOL}/metadata`),
  r('volume:create_volume_metadata', MEMBER_OR_ADMIN, 'Create volume metadata.', 'POST', `${VOL}/metadata`),
  r('volume:update_volume_metadata', MEMBER_OR_ADMIN, 'Replace a volume\'s metadata dictionary or update a single metadatum with a given key.', 'PUT', `${VOL}/metadata`),
  r('volume:delete_volume_metadata', MEMBER_OR_ADMIN, 'Delete a volume\'s metadatum with the given key.', 'DELETE', `${VOL}/metadata/{key}`),
  r('volume:extend', MEMBER_OR_ADMIN, 'Extend a volume.', 'POST', ACTION),
  r('volume:extend_attached_volume', MEMBER_OR_ADMIN, 'Extend a attached volume.', 'POST', ACTION),
  r('volume:retype', MEMBER_OR_ADMIN, 'Retype a volume.', 'POST', ACTION),
  r('volume:revert_to_snapshot', MEMBER_OR_ADMIN, 'Revert a volume to a snapshot.', 'POST', ACTION),
  r('volume:update_readonly_flag', MEMBER_OR_ADMIN, 'Update volume read-only mode.', 'POST', ACTION),
  r('volume_extension:volume_actions:upload_image', MEMBER_OR_ADMIN, 'Upload a volume to image.', 'POST', ACTION),
  ...['reserve', 'unreserve', 'begin_detaching', 'roll_detaching', 'initialize_connection', 'terminate_connection', 'attach', 'detach'].map((a) =>
    r(`volume_extension:volume_actions:${a}`, MEMBER_OR_ADMIN, `Legacy attach action os-${a}.`, 'POST', ACTION),
  ),
  r('volume_extension:volume_admin_actions:reset_status', ADMIN, 'Reset status of a volume.', 'POST', ACTION),
  r('volume_extension:volume_admin_actions:force_delete', ADMIN, 'Force delete a volume.', 'POST', ACTION),
  r('volume_extension:volume_admin_actions:migrate_volume', ADMIN, 'Migrate a volume to the specified host.', 'POST', ACTION),
  r('volume_extension:volume_admin_actions:migrate_volume_completion', ADMIN, 'Complete a volume migration.', 'POST', ACTION),
  r('volume_extension:snapshot_admin_actions:reset_status', ADMIN, 'Reset status of a snapshot.', 'POST', '/snapshots/{snapshot_id}/action'),
  r('volume_extension:snapshot_admin_actions:force_delete', ADMIN, 'Force delete a snapshot.', 'POST', '/snapshots/{snapshot_id}/action'),
  // Upstream's default (SYSTEM_ADMIN_OR_PROJECT_MEMBER): Nova's service user passes as admin; the snapshot's own project's members too.
  r('snapshot_extension:snapshot_actions:update_snapshot_status', MEMBER_OR_ADMIN, 'Update database fields of snapshot.', 'POST', '/snapshots/{snapshot_id}/action (update_snapshot_status)'),
  r('volume:create_snapshot', MEMBER_OR_ADMIN, 'Create snapshot.', 'POST', '/snapshots'),
  r('volume:get_snapshot', READER_OR_ADMIN, 'Show snapshot.', 'GET', '/snapshots/{snapshot_id}'),
  r('volume:get_all_snapshots', READER_OR_ADMIN, 'List snapshots.', 'GET', '/snapshots'),
  r('volume:update_snapshot', MEMBER_OR_ADMIN, 'Update snapshot.', 'PUT', '/snapshots/{snapshot_id}'),
  r('volume:delete_snapshot', MEMBER_OR_ADMIN, 'Delete snapshot.', 'DELETE', '/snapshots/{snapshot_id}'),
  r('volume_extension:type_create', ADMIN, 'Create volume type.', 'POST', '/types'),
  r('volume_extension:type_update', ADMIN, 'Update volume type.', 'PUT', '/types/{type_id}'),
  r('volume_extension:type_delete', ADMIN, 'Delete volume type.', 'DELETE', '/types/{type_id}'),
  r('volume_extension:type_get', READER_OR_ADMIN, 'Get one specific volume type.', 'GET', '/types/{type_id}'),
  r('volume_extension:type_get_all', READER_OR_ADMIN, 'List volume types.', 'GET', '/types'),
  r('volume_extension:types_extra_specs:index', READER_OR_ADMIN, 'List type extra specs.', 'GET', '/types/{type_id}/extra_specs'),
  r('volume_extension:types_extra_specs:create', ADMIN, 'Create type extra specs.', 'POST', '/types/{type_id}/extra_specs'),
  r('volume_extension:types_extra_specs:show', READER_OR_ADMIN, 'Show one specified type extra specs.', 'GET', '/types/{type_id}/extra_specs/{extra_spec_key}'),
  r('volume_extension:types_extra_specs:update', ADMIN, 'Update type extra specs.', 'PUT', '/types/{type_id}/extra_specs/{extra_spec_key}'),
  r('volume_extension:types_extra_specs:delete', ADMIN, 'Delete type extra specs.', 'DELETE', '/types/{type_id}/extra_specs/{extra_spec_key}'),
  r('volume_extension:access_types_extra_specs', ADMIN, 'Include the volume type\'s extra_specs attribute in the volume type list or show requests.', 'GET', '/types/{type_id}'),
  r('volume_extension:volume_type_access', READER_OR_ADMIN, 'Volume type access related APIs.', 'GET', '/types'),
  r('volume_extension:volume_type_access:addProjectAccess', ADMIN, 'Adds volume type access for project.', 'POST', '/types/{type_id}/action'),
  r('volume_extension:volume_type_access:removeProjectAccess', ADMIN, 'Remove volume type access for project.', 'POST', '/types/{type_id}/action'),
  r('volume_extension:quotas:show', READER_OR_ADMIN, 'Show project quota (including usage and default).', 'GET', '/os-quota-sets/{project_id}'),
  r('volume_extension:quotas:update', ADMIN, 'Update project quota.', 'PUT', '/os-quota-sets/{project_id}'),
  r('volume_extension:quotas:delete', ADMIN, 'Delete project quota.', 'DELETE', '/os-quota-sets/{project_id}'),
  r('limits_extension:used_limits', READER_OR_ADMIN, 'Show limits with used limit attributes.', 'GET', '/limits'),
  r('volume_extension:availability_zone_list', READER_OR_ADMIN, 'List availability zones.', 'GET', '/os-availability-zone'),
  r('volume_extension:services:index', ADMIN, 'List all services.', 'GET', '/os-services'),
  r('scheduler_extension:scheduler_stats:get_pools', ADMIN, 'List all backend pools.', 'GET', '/scheduler-stats/get_pools'),
  r('volume_extension:capabilities', ADMIN, 'Show backend capabilities.', 'GET', '/capabilities/{host_name}'),
  r('volume_extension:list_manageable', ADMIN, 'List (in detail) of volumes which are available to manage.', 'GET', '/manageable_volumes'),
  r('volume_extension:volume_manage', ADMIN, 'Manage existing volumes.', 'POST', '/manageable_volumes'),
  r('volume_extension:volume_unmanage', ADMIN, 'Stop managing a volume.', 'POST', '/volumes/{volume_id}/action (os-unmanage)'),
  r('snapshot_extension:list_manageable', ADMIN, 'List (in detail) of snapshots which are available to manage.', 'GET', '/manageable_snapshots'),
  r('snapshot_extension:snapshot_manage', ADMIN, 'Manage an existing snapshot.', 'POST', '/manageable_snapshots'),
  r('snapshot_extension:snapshot_unmanage', ADMIN, 'Stop managing a snapshot.', 'POST', '/snapshots/{snapshot_id}/action (os-unmanage)'),
  r('workers:cleanup', ADMIN, 'Clean up workers.', 'POST', '/workers/cleanup'),
  r('volume_extension:services:update', ADMIN, 'Update service, including failover_host, thaw, freeze, disable, enable, set-log and get-log actions.', 'PUT', '/os-services/{action}'),
  r('volume:failover_host', ADMIN, 'Failover a replicating backend.', 'PUT', '/os-services/failover_host'),
  r('backup:get_all', READER_OR_ADMIN, 'List backups or show backup.', 'GET', '/backups'),
  r('backup:backup_project_attribute', ADMIN, 'List backups or show backup with project attributes.', 'GET', '/backups/{backup_id}'),
  r('backup:create', MEMBER_OR_ADMIN, 'Create backup.', 'POST', '/backups'),
  r('backup:get', READER_OR_ADMIN, 'Show backup.', 'GET', '/backups/{backup_id}'),
  r('backup:update', MEMBER_OR_ADMIN, 'Update backup.', 'PUT', '/backups/{backup_id}'),
  r('backup:delete', MEMBER_OR_ADMIN, 'Delete backup.', 'DELETE', '/backups/{backup_id}'),
  r('backup:restore', MEMBER_OR_ADMIN, 'Restore backup.', 'POST', '/backups/{backup_id}/restore'),
  r('backup:backup-import', ADMIN, 'Import backup.', 'POST', '/backups/{backup_id}/import_record'),
  r('backup:export-import', ADMIN, 'Export backup.', 'POST', '/backups/{backup_id}/export_record'),
  r('volume_extension:backup_admin_actions:reset_status', ADMIN, 'Reset status of a backup.', 'POST', '/backups/{backup_id}/action (os-reset_status)'),
  r('volume_extension:backup_admin_actions:force_delete', ADMIN, 'Force delete a backup.', 'POST', '/backups/{backup_id}/action (os-force_delete)'),
  r('volume:get_all_transfers', READER_OR_ADMIN, 'List volume transfer.', 'GET', '/volume-transfers'),
  r('volume:create_transfer', MEMBER_OR_ADMIN, 'Create a volume transfer.', 'POST', '/volume-transfers'),
  r('volume:get_transfer', READER_OR_ADMIN, 'Show one specified volume transfer.', 'GET', '/volume-transfers/{transfer_id}'),
  r('volume:accept_transfer', MEMBER_OR_ADMIN, 'Accept a volume transfer.', 'POST', '/volume-transfers/{transfer_id}/accept'),
  r('volume:delete_transfer', MEMBER_OR_ADMIN, 'Delete volume transfer.', 'DELETE', '/volume-transfers/{transfer_id}'),
  r('message:get_all', READER_OR_ADMIN, 'List messages.', 'GET', '/messages'),
  r('message:get', READER_OR_ADMIN, 'Show message.', 'GET', '/messages/{message_id}'),
  r('message:delete', MEMBER_OR_ADMIN, 'Delete message.', 'DELETE', '/messages/{message_id}'),
  r('volume:attachment_create', MEMBER_OR_ADMIN, 'Create attachment.', 'POST', '/attachments'),
  r('volume:attachment_update', MEMBER_OR_ADMIN, 'Update attachment.', 'PUT', '/attachments/{attachment_id}'),
  r('volume:attachment_delete', MEMBER_OR_ADMIN, 'Delete attachment.', 'DELETE', '/attachments/{attachment_id}'),
  r('volume:attachment_complete', MEMBER_OR_ADMIN, 'Mark a volume attachment process as completed (in-use)', 'POST', '/attachments/{attachment_id}/action'),
  r('volume:multiattach', MEMBER_OR_ADMIN, 'Allow multiattach of bootable volumes.', 'POST', '/attachments'),
  r('volume:attachment_get', READER_OR_ADMIN, 'Show attachment.', 'GET', '/attachments/{attachment_id}'),
  r('volume:attachment_get_all', READER_OR_ADMIN, 'List attachments.', 'GET', '/attachments'),
  ...groupPolicies,
];
