import { join } from 'node:path';
import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';

export const MIN_MICROVERSION = '3.0';
/** Highest microversion whose behaviour changes are all honoured (attachments API 3.27/3.44, 3.60 changes-since). */
export const MAX_MICROVERSION = '3.60';

/**
 * Cinder's options in the [cinder] section, named as upstream's cinder.conf
 * options ([DEFAULT] quota_volumes, default_volume_type …).
 */
export const cinderOptions = defineGroup('cinder', {
  port: opt.port({ default: 8776, help: 'Port of the Block Storage API.' }),
  database_connection: opt.string({ default: '', secret: true, help: 'Database URL. Empty: <state_dir>/cinder/cinder.db.' }),
  volume_driver: opt.string({ default: 'file', choices: ['file', 'fake'], help: 'Backend driver: file (thin qcow2 files) or fake (memory, tests only).' }),
  volumes_dir: opt.path({ help: 'Directory of the file driver. Empty: <state_dir>/cinder/volumes.' }),
  volume_backend_name: opt.string({ default: 'file', help: 'Backend name the scheduler reports (and volume types can ask for).' }),
  volume_format: opt.string({ default: 'qcow2', choices: ['qcow2', 'raw'], help: 'Format of the file driver\'s volume files.' }),
  enabled_backends: opt.string({ default: '', help: 'Several file-driver backends in this process, comma-separated name[:format] (e.g. fast:qcow2,bulk:raw), each in <volumes_dir>/<name>; volumes move between them by retype or migration. Empty: one backend, volume_backend_name in volumes_dir.' }),
  nbd_listen_address: opt.string({ default: '127.0.0.1', help: 'Address the NBD exports of volumes for other hosts listen on.' }),
  nbd_export: opt.string({ default: 'remote', choices: ['remote', 'always'], help: 'When a connection is an NBD export: for connectors of another host (remote) or for every connector (always).' }),
  glance_api_servers: opt.string({ default: '', help: 'Image API URL. Empty: the image endpoint of the caller\'s catalog.' }),
  default_volume_type: opt.string({ default: '__DEFAULT__', help: 'Type of volumes created without one.' }),
  default_group_type: opt.string({ default: '', help: 'Name of the group type GET /group_types/default answers (404 while unset or not found).' }),
  storage_availability_zone: opt.string({ default: 'nova', help: 'Availability zone of this volume host.' }),
  max_over_subscription_ratio: opt.int({ default: 20, min: 1, help: 'Thin provisioning over-subscription ratio.' }),
  reserved_percentage: opt.int({ default: 0, min: 0, help: 'Percentage of backend capacity kept free.' }),
  quota_volumes: opt.int({ default: 10, min: -1, help: 'Volumes per project; -1 is unlimited.' }),
  quota_snapshots: opt.int({ default: 10, min: -1, help: 'Snapshots per project; -1 is unlimited.' }),
  quota_gigabytes: opt.int({ default: 1000, min: -1, help: 'GiB of volumes and snapshots per project; -1 is unlimited.' }),
  quota_backups: opt.int({ default: 10, min: -1, help: 'Backups per project.' }),
  quota_backup_gigabytes: opt.int({ default: 1000, min: -1, help: 'GiB of backups per project.' }),
  quota_groups: opt.int({ default: 10, min: -1, help: 'Groups per project.' }),
  per_volume_size_limit: opt.int({ default: -1, min: -1, help: 'Largest single volume in GiB; -1 is unlimited.' }),
  backup_swift_url: opt.string({ default: '', help: "Swift account URL prefix the caller's project id is appended to (e.g. http://host:8080/v1/AUTH_). Empty: the object-store endpoint of the caller's catalog." }),
  backup_swift_container: opt.string({ default: 'volumebackups', help: 'Container of backups created without one.' }),
  backup_swift_object_size: opt.int({ default: 52428800, min: 65536, help: 'Bytes of volume data per backup object.' }),
  backup_swift_block_size: opt.int({ default: 32768, min: 512, help: 'Bytes per sha256 incremental backups compare; backup_swift_object_size must be a multiple of it.' }),
  assisted_snapshot_timeout: opt.int({ default: 600, min: 1, help: 'Seconds a snapshot of an in-use file volume waits for Nova to copy the running disk (os-assisted-volume-snapshots) before it ends in error; upstream\'s remotefs drivers wait 10 minutes.' }),
  osapi_max_limit: opt.int({ default: 1000, min: 1, help: 'Most items one list page returns.' }),
  ...serviceAuthOptions('cinder'),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/cinder/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: true, help: "Refuse tokens whose scope a rule does not list ([oslo_policy] enforce_scope)." }),
});

export type CinderValues = { [K in keyof typeof cinderOptions.options]: unknown };

export interface QuotaDefaults {
  volumes: number;
  snapshots: number;
  gigabytes: number;
  backups: number;
  backup_gigabytes: number;
  groups: number;
  per_volume_gigabytes: number;
}

export interface CinderConfig {
  stateDir: string;
  host: string;
  volumeDriver: 'file' | 'fake';
  glanceUrl: string;
  volumesDir: string;
  backendName: string;
  /** The file-driver backends of this process (one unless enabled_backends names several). */
  backends: { name: string; format: 'qcow2' | 'raw'; dir: string }[];
  nbd: { listenAddress: string; mode: 'remote' | 'always' };
  defaultVolumeType: string;
  defaultGroupType: string;
  availabilityZone: string;
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
  quotas: QuotaDefaults;
  maxLimit: number;
  /** How long a snapshot of an in-use volume waits for Nova's os-update_snapshot_status. */
  assistedSnapshotTimeoutMs: number;
  backup: { swiftUrl: string; container: string; objectSize: number; blockSize: number };
  policyFile: string;
  enforceScope: boolean;
}

export function cinderConfig(v: CinderValues, o: { stateDir: string; hostname: string }): CinderConfig {
  const dir = join(o.stateDir, 'cinder');
  return {
    stateDir: o.stateDir,
    host: o.hostname,
    volumeDriver: v.volume_driver as 'file' | 'fake',
    glanceUrl: String(v.glance_api_servers),
    volumesDir: String(v.volumes_dir || join(dir, 'volumes')),
    backendName: String(v.volume_backend_name),
    backends: backendsOf(v, String(v.volumes_dir || join(dir, 'volumes'))),
    nbd: { listenAddress: String(v.nbd_listen_address), mode: v.nbd_export as 'remote' | 'always' },
    defaultVolumeType: String(v.default_volume_type),
    defaultGroupType: String(v.default_group_type),
    availabilityZone: String(v.storage_availability_zone),
    maxOverSubscriptionRatio: Number(v.max_over_subscription_ratio),
    reservedPercentage: Number(v.reserved_percentage),
    quotas: {
      volumes: Number(v.quota_volumes),
      snapshots: Number(v.quota_snapshots),
      gigabytes: Number(v.quota_gigabytes),
      backups: Number(v.quota_backups),
      backup_gigabytes: Number(v.quota_backup_gigabytes),
      groups: Number(v.quota_groups),
      per_volume_gigabytes: Number(v.per_volume_size_limit),
    },
    maxLimit: Number(v.osapi_max_limit),
    assistedSnapshotTimeoutMs: Number(v.assisted_snapshot_timeout) * 1000,
    backup: { swiftUrl: String(v.backup_swift_url), container: String(v.backup_swift_container), objectSize: Number(v.backup_swift_object_size), blockSize: Number(v.backup_swift_block_size) },
    policyFile: String(v.policy_file || join(dir, 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
  };
}

function backendsOf(v: CinderValues, volumesDir: string): CinderConfig['backends'] {
  const list = String(v.enabled_backends).split(',').map((x) => x.trim()).filter(Boolean);
  if (!list.length) return [{ name: String(v.volume_backend_name), format: v.volume_format as 'qcow2' | 'raw', dir: volumesDir }];
  return list.map((entry) => {
    const [name, format = 'qcow2'] = entry.split(':');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new Error(`[cinder] enabled_backends: invalid backend name ${JSON.stringify(name)}`);
    if (format !== 'qcow2' && format !== 'raw') throw new Error(`[cinder] enabled_backends: backend ${name} has format ${format}, not qcow2 or raw`);
    return { name, format, dir: join(volumesDir, name) };
  });
}

export function defaultCinderValues(): CinderValues {
  return Object.fromEntries(Object.entries(cinderOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as CinderValues;
}
