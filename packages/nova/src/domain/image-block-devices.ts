import { badRequest } from '@onestack/core/errors.ts';
import type { RequestedBlockDevice } from './block-device-requests.ts';
import type { BlockDevice } from './block-devices.ts';
import type { ImageSnapshot } from './instances.ts';

/**
 * Block device mappings carried by an image (its `block_device_mapping` property), as upstream's
 * snapshot of a volume-backed server writes them and server create reads them back
 * (nova/block_device.py: snapshot_from_bdm, get_image_mapping, from_legacy_mapping).
 */

/** bdm_new_fields without connection_info: every mapping an image carries has each of them. */
const MAPPING_KEYS = [
  'source_type',
  'destination_type',
  'guest_format',
  'device_type',
  'disk_bus',
  'boot_index',
  'device_name',
  'delete_on_termination',
  'snapshot_id',
  'volume_id',
  'volume_size',
  'image_id',
  'no_device',
  'tag',
  'volume_type',
  'encrypted',
  'encryption_secret_uuid',
  'encryption_format',
  'encryption_options',
] as const;

/** Fields of the database row an image mapping may still hold (upstream tolerates them). */
const DB_ONLY_KEYS = ['id', 'instance_uuid', 'attachment_id', 'uuid', 'connection_info', 'created_at', 'updated_at', 'deleted_at', 'deleted'];

/** bdm_legacy_fields: what an image of the old format (no bdm_v2) may say. */
const LEGACY_KEYS = ['virtual_name', 'volume_id', 'snapshot_id', 'volume_size', 'device_name', 'delete_on_termination', 'no_device'];

export type ImageMapping = Record<(typeof MAPPING_KEYS)[number], string | number | boolean | null>;

const invalidBdm = (details: string) => badRequest(`Block Device Mapping is Invalid: ${details}`);

const prependDev = (name: string | null): string | null => (name ? `/dev/${name.replace(/^\/dev\//, '')}` : name);

const emptyMapping = (): ImageMapping => Object.fromEntries(MAPPING_KEYS.map((k) => [k, null])) as ImageMapping;

/** get_image_mapping of a mapping that is not a volume (swap, ephemeral, a local image). */
export function imageMapping(b: BlockDevice): ImageMapping {
  return {
    ...emptyMapping(),
    source_type: b.sourceType,
    destination_type: b.destinationType,
    guest_format: b.guestFormat,
    device_type: b.deviceType,
    disk_bus: b.diskBus,
    boot_index: b.bootIndex,
    device_name: prependDev(b.deviceName),
    delete_on_termination: b.deleteOnTermination,
    snapshot_id: b.snapshotId ?? null,
    volume_id: b.volumeId,
    volume_size: b.volumeSize,
    image_id: b.imageId,
    tag: b.tag,
    volume_type: b.volumeType,
  };
}

/** snapshot_from_bdm(...).get_image_mapping(): a volume's mapping as the snapshot of it an image boots from. */
export function snapshotImageMapping(snapshotId: string, b: BlockDevice): ImageMapping {
  return {
    ...emptyMapping(),
    source_type: 'snapshot',
    destination_type: 'volume',
    snapshot_id: snapshotId,
    disk_bus: b.diskBus,
    device_type: b.deviceType,
    boot_index: b.bootIndex,
    delete_on_termination: b.deleteOnTermination,
    volume_size: b.volumeSize,
    device_name: prependDev(b.deviceName),
  };
}

/** The property's text as upstream's jsonutils.dumps writes it (Python's ", " and ": " separators). */
export function mappingsProperty(mappings: ImageMapping[]): string {
  const dump = (v: unknown): string => (Array.isArray(v) ? `[${v.map(dump).join(', ')}]` : v !== null && typeof v === 'object' ? `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${dump(x)}`).join(', ')}}` : JSON.stringify(v));
  return dump(mappings);
}

const text = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const isSwapOrEphemeral = (name: unknown) => typeof name === 'string' && (name === 'swap' || /^ephemeral\d+$/.test(name));

/** BlockDeviceDict of one v2 mapping of an image; undefined for a no_device entry. */
function fromV2(o: Record<string, unknown>): RequestedBlockDevice | undefined {
  const bogus = Object.keys(o).filter((k) => !(MAPPING_KEYS as readonly string[]).includes(k) && !DB_ONLY_KEYS.includes(k));
  if (bogus.length) throw invalidBdm(`Following fields are invalid: ${bogus.join(' ')}`);
  if (o.no_device) return undefined;
  if (o.source_type === undefined || o.source_type === null) throw invalidBdm('Some required fields are missing');
  const sourceType = String(o.source_type) as RequestedBlockDevice['sourceType'];
  if (!['volume', 'image', 'snapshot', 'blank'].includes(sourceType)) throw invalidBdm(`Invalid source_type field.`);
  const bootIndex = o.boot_index === null || o.boot_index === undefined ? null : Number(o.boot_index);
  if (bootIndex !== null && !Number.isInteger(bootIndex)) throw invalidBdm('Boot index is invalid.');
  const size = o.volume_size === null || o.volume_size === undefined ? undefined : Number(o.volume_size);
  if (size !== undefined && !(Number.isInteger(size) && size >= 0)) throw invalidBdm(`Invalid volume_size.`);
  return {
    sourceType,
    destinationType: (text(o.destination_type) ?? (sourceType === 'volume' || sourceType === 'snapshot' ? 'volume' : 'local')) as RequestedBlockDevice['destinationType'],
    uuid: text(sourceType === 'blank' ? undefined : o[`${sourceType}_id`]),
    bootIndex,
    volumeSize: size || undefined,
    deleteOnTermination: o.delete_on_termination === true || ['true', 'yes', '1', 'on', 't', 'y'].includes(String(o.delete_on_termination).toLowerCase()),
    guestFormat: text(o.guest_format),
    deviceName: text(o.device_name),
    deviceType: text(o.device_type),
    diskBus: text(o.disk_bus),
    tag: text(o.tag),
    volumeType: text(o.volume_type),
  };
}

/** from_legacy_mapping of an old image: the volume or snapshot on the root device boots, the rest does not. */
function fromLegacy(list: Record<string, unknown>[], rootDeviceName: string): RequestedBlockDevice[] {
  const strip = (n: unknown) => String(n ?? '').replace(/^\/dev\//, '');
  const out: RequestedBlockDevice[] = [];
  for (const o of list) {
    const bogus = Object.keys(o).filter((k) => !LEGACY_KEYS.includes(k) && !DB_ONLY_KEYS.includes(k));
    if (bogus.length) throw invalidBdm(`Following fields are invalid: ${bogus.join(' ')}`);
    const v2: Record<string, unknown> = { device_name: o.device_name, volume_size: o.volume_size, delete_on_termination: o.delete_on_termination };
    if (isSwapOrEphemeral(o.virtual_name)) Object.assign(v2, { source_type: 'blank', destination_type: 'local', delete_on_termination: true, guest_format: o.virtual_name === 'swap' ? 'swap' : undefined });
    else if (o.snapshot_id) Object.assign(v2, { source_type: 'snapshot', destination_type: 'volume', snapshot_id: o.snapshot_id });
    else if (o.volume_id) Object.assign(v2, { source_type: 'volume', destination_type: 'volume', volume_id: o.volume_id });
    else if (o.no_device) continue;
    else throw invalidBdm('Unrecognized legacy format.');
    v2.boot_index = v2.source_type !== 'blank' && strip(o.device_name) === strip(rootDeviceName) ? 0 : -1;
    out.push(fromV2(v2)!);
  }
  return out;
}

/** _get_image_defined_bdms: the mappings the image asks for (a volume-backed server's snapshot has them), [] for most images. */
export function imageDefinedBlockDevices(image: ImageSnapshot): RequestedBlockDevice[] {
  const raw = image.properties.block_device_mapping;
  if (!raw) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    throw invalidBdm(`the block_device_mapping property of image ${image.id} is not JSON.`);
  }
  if (!Array.isArray(list) || list.some((x) => x === null || typeof x !== 'object' || Array.isArray(x))) throw invalidBdm(`the block_device_mapping property of image ${image.id} is not a list of mappings.`);
  const dicts = list as Record<string, unknown>[];
  // Any bdm_v2 text counts, as upstream tests the property's truth without parsing it.
  if (image.properties.bdm_v2) return dicts.map(fromV2).filter((b): b is RequestedBlockDevice => !!b);
  return fromLegacy(dicts, image.properties.root_device_name || 'vda');
}
