import { join } from 'node:path';
import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';

/** Import methods this Glance can run; web-download and glance-download need outbound traffic and are not offered. */
export const IMPORT_METHODS = ['glance-direct', 'copy-image'] as const;
export type ImportMethod = (typeof IMPORT_METHODS)[number];

/**
 * Glance's options in the [glance] section, named as upstream's glance-api.conf
 * options where one exists ([DEFAULT] image_size_cap, [image_format]
 * disk_formats …), so an operator's knowledge carries over. The service_*
 * options are the service user of [keystone_authtoken] and [oslo_limit].
 */
export const glanceOptions = defineGroup('glance', {
  port: opt.port({ default: 9292, help: 'Port of the Image API.' }),
  database_connection: opt.string({
    default: '',
    secret: true,
    help: 'Database URL (sqlite:///path, postgresql://…, mysql://…). Empty: <state_dir>/glance/glance.db.',
  }),
  enabled_backends: opt.list({
    default: ['file:file'],
    help: 'Stores as <store id>:<store type> ([DEFAULT] enabled_backends); types: file, swift.',
  }),
  default_backend: opt.string({ default: '', help: 'Store new image data goes to ([glance_store] default_backend). Empty: the first enabled backend.' }),
  default_store: opt.string({
    default: '',
    choices: ['', 'file', 'swift'],
    help:
      'Type of store new image data goes to ([glance_store] default_store): the first enabled backend of that type, ' +
      'one with the type as its id added when none is enabled (so default_store = swift keeps the file store readable). Empty: default_backend decides.',
  }),
  swift_store_container: opt.string({ default: 'glance', help: 'Container of the swift stores, in the Glance service user\'s own account ([glance_store] swift_store_container).' }),
  swift_store_create_container_on_put: opt.bool({
    default: true,
    help: "Create the container when it is missing ([glance_store] swift_store_create_container_on_put; upstream's default is false).",
  }),
  swift_store_large_object_size: opt.int({
    default: 5120,
    min: 1,
    help: 'MiB from which an image is stored as segments and a static large object manifest ([glance_store] swift_store_large_object_size); images of unknown size are too.',
  }),
  swift_store_large_object_chunk_size: opt.int({ default: 200, min: 1, help: 'MiB per segment of a large image ([glance_store] swift_store_large_object_chunk_size).' }),
  swift_store_endpoint: opt.string({ default: '', help: "Account URL of the swift stores ([glance_store] swift_store_endpoint). Empty: the object-store endpoint in the service user's catalog." }),
  swift_store_endpoint_type: opt.string({
    default: 'publicURL',
    choices: ['publicURL', 'internalURL', 'adminURL'],
    help: 'Catalog interface of the Swift endpoint ([glance_store] swift_store_endpoint_type).',
  }),
  filesystem_store_datadir: opt.path({ help: 'Directory of the file stores, one subdirectory per store id. Empty: <state_dir>/glance/images.' }),
  image_size_cap: opt.int({ default: 1099511627776, min: 1, help: 'Largest image accepted, in bytes, enforced while the data streams in.' }),
  enabled_import_methods: opt.list({ default: [...IMPORT_METHODS], choices: IMPORT_METHODS, help: 'Interoperable import methods offered.' }),
  disk_formats: opt.list({
    default: ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'],
    help: "Values accepted for the 'disk_format' image attribute ([image_format] disk_formats).",
  }),
  container_formats: opt.list({
    default: ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'],
    help: "Values accepted for the 'container_format' image attribute ([image_format] container_formats).",
  }),
  require_image_format_match: opt.bool({
    default: true,
    help: 'Refuse uploads whose content does not match their disk_format ([image_format] require_image_format_match). Unsafe images are refused regardless.',
  }),
  limit_param_default: opt.int({ default: 25, min: 1, help: 'Images per page when a list asks for no limit.' }),
  api_limit_max: opt.int({ default: 1000, min: 1, help: 'Most images one list page returns.' }),
  image_member_quota: opt.int({ default: 128, min: -1, help: 'Members per image; -1 is unlimited.' }),
  image_property_quota: opt.int({ default: 128, min: -1, help: 'Additional properties per image; -1 is unlimited.' }),
  image_tag_quota: opt.int({ default: 128, min: -1, help: 'Tags per image; -1 is unlimited.' }),
  use_keystone_limits: opt.bool({
    default: false,
    help:
      'Enforce per-project quotas from Keystone unified limits (image_size_total, image_stage_total in MiB; ' +
      'image_count_total, image_count_uploading). Every one needs a registered limit for the image service: a missing one counts as 0.',
  }),
  limits_cache_time: opt.int({ default: 15, min: 0, help: 'Seconds limits read from Keystone are reused before asking again.' }),
  region_name: opt.string({ default: 'RegionOne', help: 'Region whose limits apply to this Glance ([oslo_limit] endpoint_region_name).' }),
  ...serviceAuthOptions('glance'),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/glance/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: true, help: 'Refuse tokens whose scope a rule does not list ([oslo_policy] enforce_scope); every image rule is project-scoped.' }),
});

export type StoreConfig = { id: string; type: 'file'; dir: string } | ({ id: string; type: 'swift' } & SwiftStoreOptions);

/** Options shared by the swift stores (upstream's [glance_store] swift_store_*), sizes in bytes. */
export interface SwiftStoreOptions {
  container: string;
  createContainer: boolean;
  largeObjectSize: number;
  chunkSize: number;
  /** Empty: the catalog's. */
  endpoint: string;
  endpointType: string;
}

const STORE_TYPES = ['file', 'swift'] as const;
const MiB = 1024 * 1024;

export interface GlanceConfig {
  publicUrl: string;
  hostname: string;
  /** glance-direct imports are staged under <stateDir>/glance/staging. */
  stateDir: string;
  stores: StoreConfig[];
  defaultBackend: string;
  imageSizeCap: number;
  importMethods: ImportMethod[];
  diskFormats: string[];
  containerFormats: string[];
  requireImageFormatMatch: boolean;
  limitParamDefault: number;
  apiLimitMax: number;
  memberQuota: number;
  propertyQuota: number;
  tagQuota: number;
  useKeystoneLimits: boolean;
  limitsCacheMs: number;
  regionName: string;
  policyFile: string;
  enforceScope: boolean;
}

export type GlanceValues = { [K in keyof typeof glanceOptions.options]: unknown };

export function glanceConfig(v: GlanceValues, o: { stateDir: string; publicUrl: string; hostname: string }): GlanceConfig {
  const dir = join(o.stateDir, 'glance');
  const storeBase = String(v.filesystem_store_datadir || join(dir, 'images'));
  const swift = swiftStoreOptions(v);
  const store = (id: string, type: string | undefined, entry: string): StoreConfig => {
    if (!id || !/^[A-Za-z0-9_-]+$/.test(id) || id.startsWith('os_glance_')) throw new Error(`[glance] enabled_backends: invalid store id in "${entry}"`);
    if (type === 'file') return { id, type, dir: join(storeBase, id) };
    if (type === 'swift') return { id, type, ...swift };
    throw new Error(`[glance] enabled_backends: store ${id} has unsupported type "${type ?? ''}" (supported: ${STORE_TYPES.join(', ')})`);
  };
  const stores = (v.enabled_backends as string[]).map((entry) => {
    const [id, type] = entry.split(':').map((s) => s.trim());
    return store(id, type, entry);
  });
  if (stores.length === 0) throw new Error('[glance] enabled_backends: at least one store is needed');
  const defaultType = String(v.default_store);
  let byType = defaultType ? stores.find((s) => s.type === defaultType) : undefined;
  if (defaultType && !byType) {
    if (stores.some((s) => s.id === defaultType)) throw new Error(`[glance] default_store ${defaultType}: a store with that id has another type`);
    stores.push((byType = store(defaultType, defaultType, `${defaultType}:${defaultType}`)));
  }
  if (byType && v.default_backend && v.default_backend !== byType.id) throw new Error(`[glance] default_store ${defaultType} and default_backend ${String(v.default_backend)} disagree`);
  const defaultBackend = String(byType?.id || v.default_backend || stores[0].id);
  if (!stores.some((s) => s.id === defaultBackend)) throw new Error(`[glance] default_backend ${defaultBackend} is not among enabled_backends`);
  return {
    publicUrl: o.publicUrl,
    hostname: o.hostname,
    stateDir: o.stateDir,
    stores,
    defaultBackend,
    imageSizeCap: Number(v.image_size_cap),
    importMethods: [...(v.enabled_import_methods as ImportMethod[])],
    diskFormats: [...(v.disk_formats as string[])],
    containerFormats: [...(v.container_formats as string[])],
    requireImageFormatMatch: Boolean(v.require_image_format_match),
    limitParamDefault: Number(v.limit_param_default),
    apiLimitMax: Number(v.api_limit_max),
    memberQuota: Number(v.image_member_quota),
    propertyQuota: Number(v.image_property_quota),
    tagQuota: Number(v.image_tag_quota),
    useKeystoneLimits: Boolean(v.use_keystone_limits),
    limitsCacheMs: Number(v.limits_cache_time) * 1000,
    regionName: String(v.region_name),
    policyFile: String(v.policy_file || join(dir, 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
  };
}

function swiftStoreOptions(v: GlanceValues): SwiftStoreOptions {
  const container = String(v.swift_store_container);
  if (!container || container.includes('/') || Buffer.byteLength(container) > 256) throw new Error(`[glance] swift_store_container: invalid container name "${container}"`);
  return {
    container,
    createContainer: Boolean(v.swift_store_create_container_on_put),
    largeObjectSize: Number(v.swift_store_large_object_size) * MiB,
    chunkSize: Number(v.swift_store_large_object_chunk_size) * MiB,
    endpoint: String(v.swift_store_endpoint),
    endpointType: String(v.swift_store_endpoint_type),
  };
}

/** Defaults for tests and tools that build a Glance without a config file. */
export function defaultGlanceValues(): GlanceValues {
  return Object.fromEntries(Object.entries(glanceOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as GlanceValues;
}
