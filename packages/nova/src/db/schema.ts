/** Row types of Nova's database (see migrations/001-initial.ts): times in ms, booleans 0/1, JSON as text. */
export interface InstanceRow {
  uuid: string;
  project_id: string;
  user_id: string;
  display_name: string;
  display_description: string | null;
  hostname: string;
  image_ref: string;
  flavor: string;
  vcpus: number;
  memory_mb: number;
  root_gb: number;
  vm_state: string;
  task_state: string | null;
  power_state: number;
  host: string | null;
  node: string | null;
  availability_zone: string | null;
  key_name: string | null;
  key_data: string | null;
  user_data: string | null;
  config_drive: number;
  access_ip_v4: string | null;
  access_ip_v6: string | null;
  reservation_id: string;
  launch_index: number;
  locked_by: string | null;
  locked_reason: string | null;
  network_info: string;
  request_spec: string;
  system_metadata: string;
  /** JSON DeviceMetadata[] (domain/metadata-content.ts); NULL until a host recorded it. */
  device_metadata: string | null;
  progress: number;
  created_at: number;
  updated_at: number;
  launched_at: number | null;
  terminated_at: number | null;
  deleted_at: number | null;
  deleted: number;
}

export interface FlavorRow {
  flavorid: string;
  name: string;
  memory_mb: number;
  vcpus: number;
  root_gb: number;
  ephemeral_gb: number;
  swap: number;
  rxtx_factor: number;
  is_public: number;
  disabled: number;
  description: string | null;
  extra_specs: string;
  created_at: number;
  updated_at: number;
}

export interface KeyPairRow {
  id: string;
  name: string;
  user_id: string;
  fingerprint: string;
  public_key: string;
  type: string;
  created_at: number;
}

export interface ServiceRow {
  uuid: string;
  host: string;
  binary: string;
  topic: string | null;
  disabled: number;
  disabled_reason: string | null;
  forced_down: number;
  last_seen_up: number | null;
  report_count: number;
  hypervisor: string | null;
  /** Moved on with every write of `hypervisor`. */
  hypervisor_generation: number;
  created_at: number;
  updated_at: number;
}

export interface ActionRow {
  id: string;
  instance_uuid: string;
  action: string;
  request_id: string;
  project_id: string | null;
  user_id: string | null;
  message: string | null;
  start_time: number;
  finish_time: number | null;
  updated_at: number;
}

export interface ActionEventRow {
  id: string;
  action_id: string;
  event: string;
  start_time: number;
  finish_time: number | null;
  result: string | null;
  traceback: string | null;
  host: string | null;
  details: string | null;
}

export interface FaultRow {
  id: string;
  instance_uuid: string;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  created_at: number;
}

export interface ServerGroupRow {
  uuid: string;
  name: string;
  project_id: string;
  user_id: string;
  policy: string;
  rules: string;
  created_at: number;
}

export interface AggregateRow {
  id: number;
  uuid: string;
  name: string;
  created_at: number;
  updated_at: number | null;
}

export interface MigrationRow {
  id: number;
  uuid: string;
  instance_uuid: string;
  migration_type: string;
  status: string;
  source_compute: string | null;
  source_node: string | null;
  dest_compute: string | null;
  dest_node: string | null;
  dest_host: string | null;
  old_flavor_id: string;
  new_flavor_id: string;
  project_id: string | null;
  user_id: string | null;
  created_at: number;
  updated_at: number | null;
}

export interface NovaDB {
  instances: InstanceRow;
  instance_metadata: { instance_uuid: string; key: string; value: string };
  tags: { resource_id: string; tag: string };
  instance_faults: FaultRow;
  instance_actions: ActionRow;
  instance_action_events: ActionEventRow;
  block_device_mapping: BlockDeviceMappingRow;
  flavors: FlavorRow;
  flavor_projects: { flavorid: string; project_id: string };
  key_pairs: KeyPairRow;
  quotas: { project_id: string; user_id: string; resource: string; hard_limit: number };
  services: ServiceRow;
  server_groups: ServerGroupRow;
  server_group_members: { group_uuid: string; instance_uuid: string };
  aggregates: AggregateRow;
  aggregate_hosts: { aggregate_id: number; host: string };
  aggregate_metadata: { aggregate_id: number; key: string; value: string };
  quota_classes: { class_name: string; resource: string; hard_limit: number };
  migrations: MigrationRow;
  console_auth_tokens: ConsoleAuthTokenRow;
}

export interface ConsoleAuthTokenRow {
  token_hash: string;
  console_type: string;
  instance_uuid: string;
  host: string | null;
  port: number | null;
  internal_access_path: string | null;
  netns: string | null;
  access_url_base: string;
  expires: number;
  created_at: number;
}

/** Upstream's block_device_mapping; `id` is the BDM's uuid (2.89 shows it as bdm_uuid). */
export interface BlockDeviceMappingRow {
  id: string;
  instance_uuid: string;
  source_type: string;
  destination_type: string;
  boot_index: number | null;
  device_name: string | null;
  volume_id: string | null;
  image_id: string | null;
  snapshot_id: string | null;
  volume_size: number | null;
  delete_on_termination: number;
  tag: string | null;
  attachment_id: string | null;
  /** JSON: the connection_info Cinder answered for this host (absent until connected). */
  connection_info: string | null;
  volume_type: string | null;
  disk_bus: string | null;
  device_type: string | null;
  guest_format: string | null;
  created_at: number;
  updated_at: number | null;
}
