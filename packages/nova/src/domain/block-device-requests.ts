import { badRequest } from '@onestack/core/errors.ts';
import type { FlavorSnapshot, ImageSnapshot } from './instances.ts';
import type { CinderClient } from './service-clients.ts';

/** One requested block device mapping, as the API parsed it (upstream's BlockDeviceDict from_api). */
export interface RequestedBlockDevice {
  sourceType: 'volume' | 'image' | 'snapshot' | 'blank';
  destinationType: 'local' | 'volume';
  /** The volume, image or snapshot; absent for blank devices. */
  uuid?: string;
  /** 0: the boot disk; null or negative: not bootable. */
  bootIndex: number | null;
  /** GiB; filled from the volume or snapshot when not asked for. */
  volumeSize?: number;
  deleteOnTermination: boolean;
  guestFormat?: string;
  deviceName?: string;
  deviceType?: string;
  diskBus?: string;
  tag?: string;
  volumeType?: string;
  noDevice?: boolean;
}

const invalidBdm = (details: string) => badRequest(`Block Device Mapping is Invalid: ${details}`);

/** fields.DiskBus.ALL: a bus nova knows (the driver may still refuse it). */
const DISK_BUSES = ['fdc', 'ide', 'sata', 'scsi', 'usb', 'virtio', 'xen', 'lxc', 'uml'];

/** A volume's volume_image_metadata (what Cinder copied of the image it was made from) as the image Nova keeps. */
function imageFromVolumeMetadata(meta: Record<string, string>): ImageSnapshot {
  const core = new Set(['image_id', 'image_name', 'checksum', 'size', 'min_ram', 'min_disk', 'disk_format', 'container_format']);
  return {
    id: meta.image_id ?? '',
    name: meta.image_name ?? '',
    diskFormat: meta.disk_format ?? 'raw',
    containerFormat: meta.container_format ?? 'bare',
    properties: Object.fromEntries(Object.entries(meta).filter(([k]) => !core.has(k))),
    minRam: Number(meta.min_ram ?? 0),
    minDisk: Number(meta.min_disk ?? 0),
  };
}

export interface BdmCheckContext {
  token: string;
  projectId: string;
  cinder: CinderClient;
  /** The image by id (400 "Image … could not be found." or inactive refused by the caller's lookup). */
  image(id: string): Promise<ImageSnapshot>;
  flavor: FlavorSnapshot;
  imageRef?: string;
  maxCount: number;
  /** 2.60: multiattach volumes may be used. */
  multiattach: boolean;
  /** [DEFAULT] max_local_block_devices; negative: no limit. */
  maxLocal: number;
}

/**
 * _merge_bdms_lists: the image's mappings join the request's, unless the request maps their
 * device; when the image has a boot disk (a volume-backed server's snapshot) the request's
 * image boot disk goes, as _check_and_transform_bdm drops it.
 */
function mergeImageDefined(requested: RequestedBlockDevice[], imageDefined: RequestedBlockDevice[]): RequestedBlockDevice[] {
  if (!imageDefined.length) return requested;
  const rootInImage = imageDefined.some((b) => b.bootIndex === 0);
  const own = rootInImage ? requested.filter((b) => !(b.bootIndex === 0 && b.sourceType === 'image')) : requested;
  const names = new Set(own.map((b) => b.deviceName).filter((n) => n));
  return [...own, ...imageDefined.filter((b) => !b.deviceName || !names.has(b.deviceName))];
}

/**
 * compute/api.py's _check_and_transform_bdm and _validate_bdm: the image's own mappings are
 * merged in; the image becomes the boot disk when no mapping is; boot indexes run 0, 1, 2 …;
 * volumes, snapshots and images exist and can be used; sizes are known; swap, ephemeral and
 * local counts fit the flavor and the limit. Answers the mappings (sizes filled) and the
 * image the instance boots: the image asked for when its mappings boot it, else the boot
 * disk's image, or for a volume-backed server its volume's image metadata.
 */
export async function checkBlockDevices(c: BdmCheckContext, requested: RequestedBlockDevice[], imageDefined: RequestedBlockDevice[] = []): Promise<{ bdms: RequestedBlockDevice[]; image: ImageSnapshot; volumeBacked: boolean }> {
  const bdms = mergeImageDefined(requested, imageDefined).map((b) => ({ ...b }));
  if (c.imageRef && !bdms.some((b) => b.bootIndex === 0)) {
    bdms.unshift({ sourceType: 'image', destinationType: 'local', uuid: c.imageRef, bootIndex: 0, deleteOnTermination: true });
  }
  if (c.maxCount > 1 && bdms.some((b) => b.sourceType === 'volume')) throw badRequest('Cannot attach one or more volumes to multiple instances');
  const boots = bdms.map((b) => b.bootIndex).filter((i): i is number => i !== null && i >= 0).sort((a, b) => a - b);
  if (!boots.length || boots.some((v, i) => v !== i)) throw invalidBdm('Boot sequence for the instance and image/block device mapping combination is not valid.');

  let types: { id: string; name: string }[] | undefined;
  const images = new Map<string, ImageSnapshot>();
  const volumes = new Map<string, Awaited<ReturnType<CinderClient['getVolume']>>>();
  for (const b of bdms) {
    if (b.volumeType) {
      types ??= ((await c.cinder.call(c.token, c.projectId, 'GET', '/types')).body?.volume_types ?? []) as { id: string; name: string }[];
      if (!types.some((t) => t.id === b.volumeType || t.name === b.volumeType)) throw badRequest(`Volume type ${b.volumeType} could not be found.`);
    }
    if (b.sourceType === 'image') {
      const id = b.uuid!;
      // The server's own image (imageRef) fails as imageRef does; an image only a mapping names, as _validate_bdm.
      if (!images.has(id)) images.set(id, id === c.imageRef ? await c.image(id) : await c.image(id).catch(() => Promise.reject(invalidBdm(`failed to get image ${id}.`))));
      if (b.destinationType === 'volume' && !b.volumeSize) throw badRequest("Images with destination_type 'volume' need to have a non-zero size specified");
    } else if (b.sourceType === 'volume') {
      const v = await c.cinder.getVolume(c.token, c.projectId, b.uuid!).catch(() => Promise.reject(invalidBdm(`failed to get volume ${b.uuid}.`)));
      if (v.multiattach && !c.multiattach) throw badRequest('Multiattach volumes are only supported starting with compute API version 2.60.');
      if (v.status !== 'available' && !(v.multiattach && v.status === 'in-use')) throw badRequest(`Invalid volume: volume '${v.id}' status must be 'available'. Currently in '${v.status}'`);
      volumes.set(v.id, v);
      b.volumeSize = v.size;
    } else if (b.sourceType === 'snapshot') {
      const r = await c.cinder.call(c.token, c.projectId, 'GET', `/snapshots/${encodeURIComponent(b.uuid!)}`);
      if (r.status !== 200) throw invalidBdm(`failed to get snapshot ${b.uuid}.`);
      b.volumeSize ||= Number(r.body.snapshot.size);
    } else if (b.destinationType === 'volume' && !b.volumeSize) {
      throw badRequest("Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size");
    }
    if (b.diskBus && !DISK_BUSES.includes(b.diskBus)) throw badRequest(`Block Device Mapping is invalid: The provided disk bus ${b.diskBus} is not valid.`);
  }
  const isEphemeral = (b: RequestedBlockDevice) => b.sourceType === 'blank' && b.destinationType === 'local' && b.guestFormat !== 'swap';
  const ephemeral = bdms.filter(isEphemeral).reduce((n, b) => n + (b.volumeSize ?? c.flavor.ephemeral), 0);
  if (ephemeral > c.flavor.ephemeral) throw badRequest('Ephemeral disks requested are larger than the instance type allows. If no size is given in one block device mapping, flavor ephemeral size will be used.');
  const swaps = bdms.filter((b) => b.sourceType === 'blank' && b.destinationType === 'local' && b.guestFormat === 'swap');
  if (swaps.length > 1) throw invalidBdm('More than one swap drive requested.');
  if (swaps.length && (swaps[0].volumeSize ?? 0) > c.flavor.swap) throw badRequest('Swap drive requested is larger than instance type allows.');
  if (c.maxLocal >= 0 && bdms.filter((b) => b.destinationType === 'local').length > c.maxLocal) throw invalidBdm('You specified more local devices than the limit allows');

  const root = bdms.find((b) => b.bootIndex === 0)!;
  const volumeBacked = root.destinationType === 'volume';
  // Booted by an image's own mappings: the image asked for is what the instance runs (upstream's boot_meta).
  const image = c.imageRef && imageDefined.some((b) => b.bootIndex === 0) ? await c.image(c.imageRef) : await rootImage(c, root, images, volumes);
  if (volumeBacked && root.volumeSize !== undefined && image.minDisk > root.volumeSize) {
    throw badRequest(`Volume is smaller than the minimum size specified in image metadata. Volume size is ${root.volumeSize * 2 ** 30} bytes, minimum size is ${image.minDisk * 2 ** 30} bytes.`);
  }
  return { bdms, image, volumeBacked };
}

/** _get_bdm_image_metadata: what the boot disk was made of. */
async function rootImage(c: BdmCheckContext, root: RequestedBlockDevice, images: Map<string, ImageSnapshot>, volumes: Map<string, Awaited<ReturnType<CinderClient['getVolume']>>>): Promise<ImageSnapshot> {
  if (root.sourceType === 'image') return images.get(root.uuid!)!;
  if (root.sourceType === 'volume') {
    const v = volumes.get(root.uuid!)!;
    if (String(v.bootable) !== 'true') throw badRequest(`Block Device ${v.id} is not bootable.`);
    return imageFromVolumeMetadata(v.volume_image_metadata ?? {});
  }
  if (root.sourceType === 'snapshot') {
    const snap = (await c.cinder.call(c.token, c.projectId, 'GET', `/snapshots/${encodeURIComponent(root.uuid!)}`)).body?.snapshot;
    const v = snap ? await c.cinder.getVolume(c.token, c.projectId, snap.volume_id).catch(() => undefined) : undefined;
    return imageFromVolumeMetadata(v?.volume_image_metadata ?? {});
  }
  return imageFromVolumeMetadata({});
}
