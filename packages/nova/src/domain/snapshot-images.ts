import type { Logger } from 'pino';
import { badRequest, forbidden, isApiError, notFound } from '@onestack/core/errors.ts';
import type { InstanceActions } from './actions.ts';
import type { BlockDevices } from './block-devices.ts';
import { invalidState } from './errors.ts';
import { imageMapping, mappingsProperty, snapshotImageMapping, type ImageMapping } from './image-block-devices.ts';
import type { Instance } from './instances.ts';
import type { Caller } from './servers.ts';
import type { CinderClient, GlanceClient } from './service-clients.ts';
import { VmState } from './states.ts';

/** Image properties that name large structured data, never kept with the instance (utils.SM_SKIP_KEYS). */
const SKIPPED_PROPERTIES = ['mappings', 'block_device_mapping', 'img_mappings', 'img_block_device_mapping'];
/** compute/utils.py NON_INHERITABLE_IMAGE_PROPERTIES: a snapshot must not claim the base image's key or signature. */
const NON_INHERITABLE = ['cinder_encryption_key_id', 'cinder_encryption_key_deletion_policy', 'img_signature', 'img_signature_hash_method', 'img_signature_key_type', 'img_signature_certificate_uuid'];
/** The properties upstream's snapshot_volume_backed writes itself, whatever the base image or the caller said. */
const VOLUME_BACKED_KEYS = ['block_device_mapping', 'bdm_v2', 'root_device_name'];

const SNAPSHOTTABLE = [VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED] as string[];

/** What a new snapshot image is created with, and the project to share it with. */
export interface SnapshotImageMeta {
  body: Record<string, unknown>;
  /** instance_owner: the server's project when someone else's project snapshots it. */
  shareWith?: string;
}

/**
 * initialize_instance_snapshot_metadata: the instance's image facts (its min_ram, its
 * min_disk grown to the flavor's disk, its properties but the non-inheritable ones and
 * those in `drop`), private to the caller's project or shared with the server's, then the
 * extra properties on top.
 */
export function instanceSnapshotMeta(caller: Caller, inst: Instance, name: string, extra: Record<string, unknown>, drop: string[] = []): SnapshotImageMeta {
  const base = inst.requestSpec.image;
  const inherited = Object.entries(base.properties).filter(([k]) => !SKIPPED_PROPERTIES.includes(k) && !NON_INHERITABLE.includes(k) && !k.startsWith('os_glance') && !drop.includes(k));
  const foreign = caller.projectId !== inst.projectId;
  return {
    body: { name, visibility: foreign ? 'shared' : 'private', min_ram: Math.max(base.minRam, 0), min_disk: Math.max(inst.flavor.disk, base.minDisk), ...Object.fromEntries(inherited), ...extra },
    ...(foreign ? { shareWith: inst.projectId } : {}),
  };
}

/**
 * image_api.create with the caller's token, so the caller's project owns the image; the
 * server's own project becomes a member of a shared one. `activate`: an image without
 * data, made active by an upload of zero bytes as upstream's _create_v2 does (raw/bare).
 */
export async function createSnapshotImage(glance: GlanceClient, caller: Caller, meta: SnapshotImageMeta, o: { activate?: boolean } = {}): Promise<string> {
  const body = o.activate ? { disk_format: 'raw', container_format: 'bare', ...meta.body } : meta.body;
  const r = await glance.createImage(caller.token, body);
  if (r.status === 413) throw forbidden('Quota exceeded for images.');
  if (r.status >= 400 && r.status < 500) throw badRequest(String((r.body as { message?: string })?.message ?? `glance answered ${r.status}`));
  if (r.status !== 201) throw new Error(`glance answered ${r.status} creating the snapshot image`);
  const id = String((r.body as { id: string }).id);
  try {
    if (meta.shareWith) {
      const m = await glance.addMember(caller.token, id, meta.shareWith);
      if (m.status !== 200) throw new Error(`glance answered ${m.status} sharing image ${id} with project ${meta.shareWith}`);
    }
    if (o.activate) {
      const status = await glance.upload(caller.token, id, new Uint8Array(0));
      if (status !== 204) throw new Error(`glance answered ${status} to the empty upload that activates image ${id}`);
    }
  } catch (e) {
    await glance.deleteImage(caller.token, id).catch(() => undefined);
    throw e;
  }
  return id;
}

export interface VolumeBackedSnapshotDeps {
  glance: GlanceClient;
  cinder: CinderClient;
  blockDevices: BlockDevices;
  actions: InstanceActions;
  logger: Logger;
  /** This API service's host, as upstream records it on the api_ event. */
  host: string;
  /** How long a failed createImage waits for a snapshot Cinder is still making before deleting it. */
  snapshotSettleMs?: number;
}

const TRUE = ['1', 't', 'true', 'on', 'y', 'yes'];

/** Cinder's refusal as upstream's nova/volume/cinder.py translates it for the snapshot calls. */
function cinderFault(e: unknown, volumeId: string): unknown {
  if (!isApiError(e)) return e;
  if (e.status === 404) return notFound(`Volume ${volumeId} could not be found.`);
  if (e.status === 413) return forbidden('Quota exceeded for resources: snapshots');
  if (e.status === 400) return badRequest(`Invalid input received: ${e.message} (HTTP 400)`);
  if (e.status === 403) return forbidden(`${e.message} (HTTP 403)`);
  return e;
}

/**
 * compute/api.py's snapshot_volume_backed: the image of a volume-backed server is a bucket of
 * properties without data. Every volume of the server gets a Cinder snapshot (forced: the
 * volumes are in use) and the image says how to boot from them (block_device_mapping,
 * bdm_v2, root_device_name); no task_state, nothing on the host. Unlike upstream, a failure
 * part-way deletes the snapshots already made, so nothing is left behind.
 */
export async function snapshotVolumeBacked(d: VolumeBackedSnapshotDeps, caller: Caller, inst: Instance, name: string, metadata: Record<string, string>): Promise<string> {
  if (!SNAPSHOTTABLE.includes(inst.vmState)) throw invalidState(inst.uuid, 'vm_state', inst.vmState, 'createImage');
  if (inst.taskState !== null) throw invalidState(inst.uuid, 'task_state', inst.taskState, 'createImage');
  const meta = instanceSnapshotMeta(caller, inst, name, metadata);
  // Cleared before filling, the caller's metadata included, as upstream does.
  for (const k of VOLUME_BACKED_KEYS) delete meta.body[k];
  const bdms = await d.blockDevices.forInstance(inst.uuid);
  const root = bdms.find((b) => b.bootIndex === 0);
  if (root?.deviceName) meta.body.root_device_name = root.deviceName.startsWith('/dev/') ? root.deviceName : `/dev/${root.deviceName}`;
  const volumes = bdms.filter((b) => b.destinationType === 'volume' && b.volumeId);
  const mapping: ImageMapping[] = bdms.filter((b) => b.destinationType !== 'volume').map(imageMapping);

  if (volumes.length) {
    // Best effort, as upstream: a concurrent request can still run into Cinder's quota.
    const limits = await d.cinder.absoluteLimits(caller.token, caller.projectId);
    if (limits.maxTotalSnapshots > -1 && volumes.length + limits.totalSnapshotsUsed > limits.maxTotalSnapshots) throw forbidden('Quota exceeded for resources: snapshots');
  }
  if (inst.vmState === VmState.ACTIVE && TRUE.includes(String(inst.requestSpec.image.properties.os_require_quiesce ?? '').toLowerCase())) {
    // Quiescing needs a guest agent, which no driver here runs: the answer upstream's libvirt gives without one.
    const agent = TRUE.includes(String(inst.requestSpec.image.properties.hw_qemu_guest_agent ?? '').toLowerCase());
    throw badRequest(agent ? `Quiescing is not supported in instance ${inst.uuid}` : 'QEMU guest agent is not enabled');
  }

  await d.actions.start({ uuid: inst.uuid, action: 'createImage', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
  const made: string[] = [];
  try {
    await d.actions.event(inst.uuid, caller.requestId, 'api_snapshot_instance', d.host, async () => {
      for (const b of volumes) {
        try {
          const v = await d.cinder.getVolume(caller.token, caller.projectId, b.volumeId!);
          const s = await d.cinder.createSnapshot(caller.token, caller.projectId, v.id, `snapshot for ${name}`, v.description ?? null);
          made.push(s.id);
          mapping.push(snapshotImageMapping(s.id, b));
        } catch (e) {
          throw cinderFault(e, b.volumeId!);
        }
      }
    });
    if (mapping.length) Object.assign(meta.body, { block_device_mapping: mappingsProperty(mapping), bdm_v2: 'True' });
    return await createSnapshotImage(d.glance, caller, meta, { activate: true });
  } catch (e) {
    await deleteSnapshots(d, caller, made);
    throw e;
  }
}

/** Snapshots still being made cannot be deleted: each is awaited first. A failure is logged, not thrown over the error that caused it. */
async function deleteSnapshots(d: VolumeBackedSnapshotDeps, caller: Caller, ids: string[]): Promise<void> {
  for (const id of ids) {
    try {
      await d.cinder.settledSnapshot(caller.token, caller.projectId, id, d.snapshotSettleMs ?? 60_000);
      await d.cinder.deleteSnapshot(caller.token, caller.projectId, id);
    } catch (err) {
      d.logger.warn({ err, snapshot: id }, 'deleting a snapshot of a failed createImage failed');
    }
  }
}
