import type { FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import type { RequestedBlockDevice } from '../domain/block-device-requests.ts';
import { mv } from './context.ts';
import { bool, int, invalid, noExtra, obj, str, tag } from './validate.ts';

/** The schema's fields of a legacy mapping (block_device_mapping), which v2 mappings accept too. */
const LEGACY_KEYS = ['virtual_name', 'volume_id', 'snapshot_id', 'volume_size', 'device_name', 'delete_on_termination', 'no_device', 'connection_info'];
const V2_KEYS = [...LEGACY_KEYS, 'source_type', 'uuid', 'image_id', 'destination_type', 'guest_format', 'device_type', 'disk_bus', 'boot_index'];

const invalidBdm = (details: string) => badRequest(`Block Device Mapping is Invalid: ${details}`);

/** parameter_types.volume_size: an integer (or a string of digits) from 1 to 2^31-1. */
function volumeSize(v: unknown): number {
  if (typeof v === 'string' && !/^[0-9]+$/.test(v)) throw invalid('volume_size', v, `'${v}' does not match '^[0-9]+$'`);
  return int(v, 'volume_size', { min: 1, max: 0x7fffffff });
}

function bootIndex(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v === 'string' && !/^-?[0-9]+$/.test(v)) throw invalid('boot_index', v, `'${v}' does not match '^-?[0-9]+$'`);
  if (typeof v !== 'string' && (typeof v !== 'number' || !Number.isInteger(v))) throw invalid('boot_index', v, `${JSON.stringify(v)} is not of type 'integer', 'string', 'null'`);
  return Number(v);
}

/** The schema's checks shared by both syntaxes. */
function commonFields(o: Record<string, unknown>) {
  if (o.volume_id !== undefined && !/^[0-9a-fA-F-]{36}$/.test(String(o.volume_id))) throw invalid('volume_id', o.volume_id, `'${String(o.volume_id)}' is not a 'uuid'`);
  const deviceName = o.device_name === undefined ? undefined : str(o.device_name, 'device_name', { min: 1, max: 255, pattern: /^[a-zA-Z0-9._/-]*$/ });
  if (o.virtual_name !== undefined) str(o.virtual_name, 'virtual_name', { max: 255 });
  if (o.connection_info !== undefined) str(o.connection_info, 'connection_info', { max: 16777215 });
  return {
    deviceName,
    volumeSize: o.volume_size === undefined || o.volume_size === null ? undefined : volumeSize(o.volume_size),
    deleteOnTermination: o.delete_on_termination === undefined ? undefined : bool(o.delete_on_termination, 'delete_on_termination'),
  };
}

/**
 * One block_device_mapping_v2 entry: the request schema of the microversion (tag 2.32 only
 * and from 2.42, volume_type from 2.67), then block_device.py's from_api checks.
 */
function parseV2(req: FastifyRequest, raw: unknown, imageGiven: boolean): RequestedBlockDevice {
  const o = obj(raw, 'block_device_mapping_v2');
  const keys = [...V2_KEYS];
  if (mv(req, '2.42') || (mv(req, '2.32') && !mv(req, '2.33'))) keys.push('tag');
  if (mv(req, '2.67')) keys.push('volume_type');
  noExtra(o, keys);
  const c = commonFields(o);
  const sourceType = o.source_type === undefined ? undefined : str(o.source_type, 'source_type');
  if (sourceType !== undefined && !['volume', 'image', 'snapshot', 'blank'].includes(sourceType)) throw invalid('source_type', sourceType, `'${sourceType}' is not one of ['volume', 'image', 'snapshot', 'blank']`);
  const destinationType = o.destination_type === undefined ? undefined : str(o.destination_type, 'destination_type');
  if (destinationType !== undefined && !['local', 'volume'].includes(destinationType)) throw invalid('destination_type', destinationType, `'${destinationType}' is not one of ['local', 'volume']`);
  const uuid = o.uuid === undefined ? undefined : str(o.uuid, 'uuid', { min: 1, max: 255, pattern: /^[a-zA-Z0-9._-]*$/ });
  for (const k of ['guest_format', 'device_type', 'disk_bus'] as const) if (o[k] !== undefined) str(o[k], k, { max: 255 });
  const volumeType = o.volume_type === undefined || o.volume_type === null ? undefined : str(o.volume_type, 'volume_type', { min: 0, max: 255 });
  const boot = o.boot_index === undefined ? null : bootIndex(o.boot_index);
  const noDevice = o.no_device !== undefined && o.no_device !== null && o.no_device !== false;
  if (!noDevice) {
    if (sourceType === 'blank' && uuid) throw invalidBdm('Invalid device UUID.');
    if (sourceType !== 'blank' && !uuid) throw invalidBdm('Missing device UUID.');
    if (sourceType === 'image' && destinationType === 'local' && !(imageGiven && boot === 0)) throw invalidBdm('Mapping image to local is not supported.');
    if (destinationType === 'local' && volumeType) throw invalidBdm('Specifying a volume_type with destination_type=local is not supported.');
    if (sourceType === 'volume' && volumeType) throw invalidBdm('Specifying volume type to existing volume is not supported.');
  }
  return {
    sourceType: (sourceType ?? 'blank') as RequestedBlockDevice['sourceType'],
    // Upstream's default destination: a volume for volumes and snapshots, the host for the rest.
    destinationType: (destinationType ?? (sourceType === 'volume' || sourceType === 'snapshot' ? 'volume' : 'local')) as RequestedBlockDevice['destinationType'],
    uuid: sourceType === 'blank' ? undefined : uuid,
    bootIndex: boot,
    volumeSize: c.volumeSize,
    deleteOnTermination: c.deleteOnTermination ?? false,
    guestFormat: o.guest_format === undefined ? undefined : String(o.guest_format),
    deviceName: c.deviceName,
    deviceType: o.device_type === undefined ? undefined : String(o.device_type),
    diskBus: o.disk_bus === undefined ? undefined : String(o.disk_bus),
    tag: o.tag === undefined ? undefined : tag(o.tag),
    volumeType,
    noDevice,
  };
}

/**
 * A legacy (v1) mapping becomes the v2 mapping upstream's from_legacy_mapping makes of it:
 * a volume or a snapshot mapped to a volume; without an image the one on the root device
 * (vda), else the first, is the boot disk.
 */
function parseLegacy(list: unknown[], imageGiven: boolean): RequestedBlockDevice[] {
  const out = list.map((raw) => {
    const o = obj(raw, 'block_device_mapping');
    noExtra(o, LEGACY_KEYS);
    const c = commonFields(o);
    if (o.snapshot_id !== undefined && !/^[0-9a-fA-F-]{36}$/.test(String(o.snapshot_id))) throw invalid('snapshot_id', o.snapshot_id, `'${String(o.snapshot_id)}' is not a 'uuid'`);
    const noDevice = o.no_device !== undefined && o.no_device !== null && o.no_device !== false;
    const sourceType: RequestedBlockDevice['sourceType'] = o.snapshot_id ? 'snapshot' : o.volume_id ? 'volume' : 'blank';
    if (!noDevice && sourceType === 'blank') throw invalidBdm('Missing device UUID.');
    return {
      sourceType,
      destinationType: 'volume' as const,
      uuid: (o.snapshot_id ?? o.volume_id) as string | undefined,
      bootIndex: -1 as number | null,
      volumeSize: c.volumeSize,
      deleteOnTermination: c.deleteOnTermination ?? false,
      deviceName: c.deviceName,
      noDevice,
    };
  });
  if (!imageGiven) {
    const root = out.find((b) => !b.noDevice && /^(\/dev\/)?[svx]?v?da$/.test(b.deviceName ?? '')) ?? out.find((b) => !b.noDevice);
    if (root) root.bootIndex = 0;
  }
  return out;
}

/**
 * servers.py _process_bdms_for_create: block_device_mapping_v2 or the legacy
 * block_device_mapping (never both), as the requested block devices; [] when none.
 */
export function parseBlockDeviceMappings(req: FastifyRequest, s: Record<string, unknown>): RequestedBlockDevice[] {
  const list = (k: string): unknown[] => {
    const v = s[k];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(k, v, `${JSON.stringify(v)} is not of type 'array'`);
    return v;
  };
  const legacy = list('block_device_mapping');
  const v2 = list('block_device_mapping_v2');
  if (legacy.length && v2.length) throw badRequest('Using different block_device_mapping syntaxes is not allowed in the same request.');
  const imageGiven = s.imageRef !== undefined && s.imageRef !== null && s.imageRef !== '';
  return (legacy.length ? parseLegacy(legacy, imageGiven) : v2.map((b) => parseV2(req, b, imageGiven))).filter((b) => !b.noDevice);
}
