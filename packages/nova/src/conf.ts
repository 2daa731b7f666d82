import { join } from 'node:path';
import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';

/**
 * Highest compute microversion whose request and response changes this Nova implements for every API it
 * serves (upstream's rest_api_version_history.rst, checked change by change up to here). APIs not served
 * answer 404 at every version and bring their per-version changes with them. docs/nova-microversions.md
 * lists, version by version, what is done and what the next one needs.
 */
export const MAX_MICROVERSION = '2.92';
export const MIN_MICROVERSION = '2.1';

/**
 * Nova's options in the [nova] section, named after upstream's nova.conf
 * options ([DEFAULT] host, [quota] instances, [compute] …) so an operator's
 * knowledge carries over.
 */
export const novaOptions = defineGroup('nova', {
  port: opt.port({ default: 8774, help: 'Port of the Compute API.' }),
  database_connection: opt.string({ default: '', secret: true, help: 'Database URL. Empty: <state_dir>/nova/nova.db.' }),
  host: opt.string({ default: '', help: "This compute host's name ([DEFAULT] host). Empty: the machine's hostname." }),
  run_compute: opt.bool({ default: true, help: 'Run nova-compute for this host inside the nova service (the all-in-one).' }),
  compute_driver: opt.string({ default: 'qemu', choices: ['qemu', 'fake'], help: 'qemu runs guests; fake only records them (control-plane tests).' }),
  instances_path: opt.path({ help: 'Instance directories. Empty: <state_dir>/nova/instances.' }),
  compute_netns: opt.string({ default: '', help: 'Network namespace QEMU runs in (where Neutron wires the taps). Empty: [neutron_agent] host_namespace in the all-in-one, else the host namespace.' }),
  default_availability_zone: opt.string({ default: 'nova', help: 'Availability zone of compute hosts in no aggregate.' }),
  report_interval: opt.int({ default: 10, min: 1, help: 'Seconds between compute service heartbeats.' }),
  service_down_time: opt.int({ default: 60, min: 1, help: 'A service with no heartbeat for this long is down.' }),
  sync_power_state_interval: opt.int({ default: 60, min: 0, help: 'Seconds between power state syncs with the driver; 0 disables them.' }),
  vif_plugging_timeout: opt.int({ default: 30, min: 0, help: 'Seconds to wait for network-vif-plugged before a boot goes on anyway (or fails, see vif_plugging_is_fatal).' }),
  vif_plugging_is_fatal: opt.bool({ default: false, help: 'Fail the boot when network-vif-plugged does not arrive in time.' }),
  allow_resize_to_same_host: opt.bool({ default: true, help: "A resize may pick the server's own host (upstream's default is off; an all-in-one has no other host)." }),
  shelved_offload_time: opt.int({ default: 0, min: -1, help: "[DEFAULT] shelved_offload_time: 0 offloads a shelved server at once (upstream's default); -1 (any negative) never, until shelveOffload; N: its host offloads it once shelved longer than N seconds (checked every shelved_poll_interval)." }),
  shelved_poll_interval: opt.int({ default: 3600, help: '[DEFAULT] shelved_poll_interval: seconds between a compute host\'s checks for shelved servers to offload (shelved_offload_time > 0); 0 or less: never.' }),
  force_config_drive: opt.bool({ default: false, help: 'Every instance gets a config drive.' }),
  glance_url: opt.string({ default: '', help: 'Image API base URL. Empty: from the service catalog.' }),
  neutron_url: opt.string({ default: '', help: 'Networking API base URL. Empty: from the service catalog.' }),
  placement_url: opt.string({ default: '', help: 'Placement API base URL. Empty: from the service catalog.' }),
  cinder_url: opt.string({ default: '', help: 'Block Storage API base URL, without the project (http://host:8776). Empty: from the service catalog.' }),
  quota_instances: opt.int({ default: 10, min: -1, help: '[quota] instances' }),
  quota_cores: opt.int({ default: 20, min: -1, help: '[quota] cores' }),
  quota_ram: opt.int({ default: 51200, min: -1, help: '[quota] ram (MiB)' }),
  quota_key_pairs: opt.int({ default: 100, min: -1, help: '[quota] key_pairs (per user)' }),
  quota_metadata_items: opt.int({ default: 128, min: -1, help: '[quota] metadata_items' }),
  quota_server_groups: opt.int({ default: 10, min: -1, help: '[quota] server_groups' }),
  quota_server_group_members: opt.int({ default: 10, min: -1, help: '[quota] server_group_members' }),
  quota_injected_files: opt.int({ default: 5, min: -1, help: '[quota] injected_files' }),
  quota_injected_file_content_bytes: opt.int({ default: 10240, min: -1, help: '[quota] injected_file_content_bytes' }),
  quota_injected_file_path_length: opt.int({ default: 255, min: -1, help: '[quota] injected_file_path_length' }),
  metadata_listen_port: opt.int({ default: 8775, min: 0, max: 65535, help: '[DEFAULT] metadata_listen_port: the metadata API for guests (through Neutron\'s metadata proxy); 0: not served.' }),
  metadata_proxy_shared_secret: opt.string({ default: '', secret: true, help: '[neutron] metadata_proxy_shared_secret: verifies X-Instance-ID-Signature; the metadata agent must sign with the same.' }),
  default_floating_pool: opt.string({ default: 'public', help: "[neutron] default_floating_pool: the external network os-floating-ips allocates from when no pool is named (upstream's default is 'nova'; onestack's external network is 'public')." }),
  max_limit: opt.int({ default: 1000, min: 1, help: '[api] max_limit: most items one list page returns.' }),
  ...serviceAuthOptions('nova'),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/nova/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: true, help: '[oslo_policy] enforce_scope' }),
});

export type NovaValues = { [K in keyof typeof novaOptions.options]: unknown };

export interface QuotaDefaults {
  instances: number;
  cores: number;
  ram: number;
  key_pairs: number;
  metadata_items: number;
  server_groups: number;
  server_group_members: number;
  injected_files: number;
  injected_file_content_bytes: number;
  injected_file_path_bytes: number;
}

export interface NovaConfig {
  stateDir: string;
  host: string;
  runCompute: boolean;
  computeDriver: 'qemu' | 'fake';
  instancesPath: string;
  computeNetns?: string;
  defaultAz: string;
  reportIntervalMs: number;
  serviceDownMs: number;
  syncPowerStateMs: number;
  vifPluggingTimeoutMs: number;
  vifPluggingIsFatal: boolean;
  forceConfigDrive: boolean;
  allowResizeToSameHost: boolean;
  /** Seconds; 0: offloaded at once; negative: never; positive: by the compute host's poll once shelved longer. */
  shelvedOffloadTime: number;
  /** How often a compute host looks for shelved instances to offload; 0: never. */
  shelvedPollIntervalMs: number;
  glanceUrl: string;
  neutronUrl: string;
  placementUrl: string;
  cinderUrl: string;
  quotas: QuotaDefaults;
  maxLimit: number;
  defaultFloatingPool: string;
  metadataPort: number;
  metadataSharedSecret: string;
  policyFile: string;
  enforceScope: boolean;
}

export function novaConfig(v: NovaValues, o: { stateDir: string; hostname: string }): NovaConfig {
  const dir = join(o.stateDir, 'nova');
  return {
    stateDir: o.stateDir,
    host: String(v.host || o.hostname),
    runCompute: Boolean(v.run_compute),
    computeDriver: v.compute_driver as 'qemu' | 'fake',
    instancesPath: String(v.instances_path || join(dir, 'instances')),
    computeNetns: v.compute_netns ? String(v.compute_netns) : undefined,
    defaultAz: String(v.default_availability_zone),
    reportIntervalMs: Number(v.report_interval) * 1000,
    serviceDownMs: Number(v.service_down_time) * 1000,
    syncPowerStateMs: Number(v.sync_power_state_interval) * 1000,
    vifPluggingTimeoutMs: Number(v.vif_plugging_timeout) * 1000,
    vifPluggingIsFatal: Boolean(v.vif_plugging_is_fatal),
    forceConfigDrive: Boolean(v.force_config_drive),
    allowResizeToSameHost: Boolean(v.allow_resize_to_same_host),
    shelvedOffloadTime: Number(v.shelved_offload_time),
    shelvedPollIntervalMs: Math.max(0, Number(v.shelved_poll_interval)) * 1000,
    glanceUrl: String(v.glance_url),
    neutronUrl: String(v.neutron_url),
    placementUrl: String(v.placement_url),
    cinderUrl: String(v.cinder_url),
    quotas: {
      instances: Number(v.quota_instances),
      cores: Number(v.quota_cores),
      ram: Number(v.quota_ram),
      key_pairs: Number(v.quota_key_pairs),
      metadata_items: Number(v.quota_metadata_items),
      server_groups: Number(v.quota_server_groups),
      server_group_members: Number(v.quota_server_group_members),
      injected_files: Number(v.quota_injected_files),
      injected_file_content_bytes: Number(v.quota_injected_file_content_bytes),
      injected_file_path_bytes: Number(v.quota_injected_file_path_length),
    },
    maxLimit: Number(v.max_limit),
    defaultFloatingPool: String(v.default_floating_pool),
    metadataPort: Number(v.metadata_listen_port),
    metadataSharedSecret: String(v.metadata_proxy_shared_secret ?? ''),
    policyFile: String(v.policy_file || join(dir, 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
  };
}

export function defaultNovaValues(): NovaValues {
  return Object.fromEntries(Object.entries(novaOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as NovaValues;
}
