/** Row types of Cinder's schema (see migrations/001-initial.ts). Times are epoch ms, booleans 0/1. */
export interface VolumeRow {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  size: number;
  status: string;
  attach_status: string;
  migration_status: string | null;
  /** The backend name of the volume's data after a migration (upstream's _name_id); null: the id. */
  name_id: string | null;
  previous_status: string | null;
  error: string | null;
  availability_zone: string;
  volume_type_id: string;
  host: string | null;
  snapshot_id: string | null;
  source_volid: string | null;
  image_id: string | null;
  bootable: number;
  multiattach: number;
  encrypted: number;
  consistencygroup_id: string | null;
  group_id: string | null;
  created_at: number;
  updated_at: number | null;
  launched_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface VolumeMetadataRow {
  volume_id: string;
  kind: 'user' | 'admin' | 'image';
  key: string;
  value: string;
}
export interface VolumeTypeRow {
  id: string;
  name: string;
  description: string | null;
  is_public: number;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface ExtraSpecRow {
  volume_type_id: string;
  key: string;
  value: string;
}
export interface TypeProjectRow {
  volume_type_id: string;
  project_id: string;
}
export interface SnapshotRow {
  id: string;
  volume_id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  volume_size: number;
  status: string;
  progress: string | null;
  error: string | null;
  metadata: string | null;
  /** The group snapshot this snapshot was taken for (3.14); such a snapshot is deleted only with it. */
  group_snapshot_id: string | null;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface AttachmentRow {
  id: string;
  volume_id: string;
  instance_uuid: string | null;
  attached_host: string | null;
  mountpoint: string | null;
  attach_mode: string;
  attach_status: string;
  connector: string | null;
  connection_info: string | null;
  attach_time: number | null;
  detach_time: number | null;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface QuotaRow {
  project_id: string;
  resource: string;
  hard_limit: number;
}
export interface ServiceRow {
  id: string;
  host: string;
  binary: string;
  topic: string;
  availability_zone: string;
  disabled: number;
  disabled_reason: string | null;
  report_count: number;
  frozen: number;
  created_at: number;
  updated_at: number | null;
}
export interface BackupRow {
  id: string;
  volume_id: string;
  snapshot_id: string | null;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  size: number;
  object_count: number;
  status: string;
  fail_reason: string | null;
  container: string | null;
  parent_id: string | null;
  service: string | null;
  availability_zone: string | null;
  /** Object name prefix of the chunked drivers. */
  service_metadata: string | null;
  data_timestamp: number | null;
  num_dependent_backups: number;
  /** JSON object of the backup's metadata (3.43); null is {}. */
  metadata: string | null;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}

export interface TransferRow {
  id: string;
  volume_id: string;
  display_name: string | null;
  salt: string;
  crypt_hash: string;
  no_snapshots: number;
  source_project_id: string;
  destination_project_id: string | null;
  accepted: number;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}

export interface MessageRow {
  id: string;
  project_id: string;
  request_id: string | null;
  resource_type: string | null;
  resource_uuid: string | null;
  event_id: string;
  action_id: string | null;
  detail_id: string | null;
  message_level: string | null;
  created_at: number;
  expires_at: number | null;
  deleted: number;
}
export interface GroupTypeRow {
  id: string;
  name: string;
  description: string | null;
  is_public: number;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface GroupTypeSpecRow {
  group_type_id: string;
  key: string;
  value: string;
}
export interface GroupRow {
  id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  status: string;
  availability_zone: string;
  group_type_id: string;
  host: string | null;
  group_snapshot_id: string | null;
  source_group_id: string | null;
  replication_status: string | null;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface GroupVolumeTypeRow {
  group_id: string;
  volume_type_id: string;
}
export interface GroupSnapshotRow {
  id: string;
  group_id: string;
  project_id: string;
  user_id: string;
  name: string | null;
  description: string | null;
  status: string;
  group_type_id: string;
  created_at: number;
  updated_at: number | null;
  deleted: number;
  deleted_at: number | null;
}
export interface CinderDB {
  volumes: VolumeRow;
  volume_metadata: VolumeMetadataRow;
  volume_types: VolumeTypeRow;
  volume_type_extra_specs: ExtraSpecRow;
  volume_type_projects: TypeProjectRow;
  snapshots: SnapshotRow;
  volume_attachment: AttachmentRow;
  quotas: QuotaRow;
  services: ServiceRow;
  backups: BackupRow;
  transfers: TransferRow;
  messages: MessageRow;
  group_types: GroupTypeRow;
  group_type_specs: GroupTypeSpecRow;
  groups: GroupRow;
  group_volume_type_mapping: GroupVolumeTypeRow;
  group_snapshots: GroupSnapshotRow;
}
