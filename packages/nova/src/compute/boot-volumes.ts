import type { Logger } from 'pino';
import type { BlockDevice, BlockDevices } from '../domain/block-devices.ts';
import { nextDeviceName } from '../domain/block-devices.ts';
import type { Instance } from '../domain/instances.ts';
import type { BlockDeviceSpec } from '../virt/driver.ts';
import { blockDeviceFromConnection, connectVolume, disconnectVolume, type VolumeConnectDeps } from './volume-connect.ts';

export interface BootVolumeDeps extends VolumeConnectDeps {
  blockDevices: BlockDevices;
  logger: Logger;
  /** How long a volume nova asked for may take to become available (upstream's block_device_allocate_retries × interval: 180 s). */
  volumeCreateTimeoutMs?: number;
}

const POLL_MS = 500;

class VolumeNotCreatedError extends Error {}

/** The volumes nova itself makes for a server (from an image, a snapshot or blank), unlike a volume the user gave. */
const madeByNova = (b: BlockDevice) => b.sourceType !== 'volume';

/** upstream's VolumeNotCreated wording, so the instance's fault reads the same. */
async function waitAvailable(d: BootVolumeDeps, token: string, projectId: string, volumeId: string): Promise<void> {
  const timeoutMs = d.volumeCreateTimeoutMs ?? 180_000;
  const start = Date.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    const v = await d.cinder.getVolume(token, projectId, volumeId);
    if (v.status === 'available') return;
    if (v.status === 'error' || Date.now() - start >= timeoutMs) {
      throw new VolumeNotCreatedError(`Volume ${volumeId} did not finish being created even after we waited ${Math.round((Date.now() - start) / 1000)} seconds or ${attempts} attempts. And its status is ${v.status}.`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * The build's block device step (upstream's _prep_block_device): every mapping to a volume
 * gets its volume (made in the user's project with the user's token when nova is to make
 * it, then awaited), connected to this host through Cinder's attachments API. Each step is
 * recorded on the mapping at once, so releaseVolumes can undo a build that fails half-way.
 */
export async function prepareVolumes(d: BootVolumeDeps, inst: Instance, userToken: string | undefined): Promise<void> {
  const bdms = await d.blockDevices.forInstance(inst.uuid);
  for (const b of bdms.filter((x) => x.destinationType === 'volume')) {
    let volumeId = b.volumeId;
    if (!volumeId) {
      if (!userToken) throw new Error(`volume of block device ${b.uuid} cannot be made without the user's token`);
      // Upstream names only blank volumes (`<instance>-blank-vol`); the others are nameless.
      const body: Record<string, unknown> = { size: b.volumeSize, name: b.sourceType === 'blank' ? `${inst.uuid}-blank-vol` : '' };
      if (b.sourceType === 'image') body.imageRef = b.imageId;
      if (b.sourceType === 'snapshot') {
        // The image of a volume-backed server is active before Cinder has finished its snapshots;
        // a volume cannot be made of one still `creating` (upstream's build would just fail).
        await d.cinder.settledSnapshot(userToken, inst.projectId, b.snapshotId!, d.volumeCreateTimeoutMs ?? 180_000);
        body.snapshot_id = b.snapshotId;
      }
      if (b.volumeType) body.volume_type = b.volumeType;
      const v = await d.cinder.createVolume(userToken, inst.projectId, body);
      volumeId = v.id;
      await d.blockDevices.update(b.uuid, { volumeId });
      await waitAvailable(d, userToken, inst.projectId, volumeId);
    }
    const deviceName = b.deviceName ?? nextDeviceName((await d.blockDevices.forInstance(inst.uuid)).map((x) => x.deviceName), inst.flavor);
    const c = await connectVolume(d, { projectId: inst.projectId, instanceUuid: inst.uuid, volumeId, attachmentId: b.attachmentId ?? undefined, mountpoint: deviceName, bootIndex: b.bootIndex ?? undefined });
    await d.blockDevices.update(b.uuid, { attachmentId: c.attachmentId, connectionInfo: c.connectionInfo, deviceName: deviceName ?? null });
  }
}

/** The connected volumes as the virt driver opens them; the one with boot index 0 is the boot disk. */
export async function volumeSpecs(d: Pick<BootVolumeDeps, 'blockDevices'>, uuid: string): Promise<BlockDeviceSpec[]> {
  return (await d.blockDevices.forInstance(uuid))
    .filter((b) => b.destinationType === 'volume' && b.volumeId && b.connectionInfo)
    .map((b) => blockDeviceFromConnection(b.volumeId!, b.connectionInfo!, { bootIndex: b.bootIndex === 0 ? 0 : undefined }));
}

/** The guest has its disks: Cinder marks the volumes in-use. */
export async function completeVolumes(d: BootVolumeDeps, inst: Instance): Promise<void> {
  const token = await d.serviceToken();
  for (const b of await d.blockDevices.forInstance(inst.uuid)) {
    if (b.attachmentId && b.connectionInfo) await d.cinder.completeAttachment(token, inst.projectId, b.attachmentId);
  }
}

/**
 * After a failed build: every attachment is deleted (the user's volumes are available
 * again) and the volumes nova made for the build are deleted; the mappings stay, emptied,
 * as the ERROR instance's record. Deleting the instance later is releaseInstanceVolumes'.
 */
export async function releaseFailedBuildVolumes(d: BootVolumeDeps, inst: Pick<Instance, 'uuid' | 'projectId'>): Promise<void> {
  const token = await d.serviceToken();
  const failures: unknown[] = [];
  for (const b of await d.blockDevices.forInstance(inst.uuid)) {
    try {
      if (b.attachmentId) await disconnectVolume(d, inst.projectId, b.attachmentId);
      const drop = !!b.volumeId && madeByNova(b);
      if (drop) await d.cinder.deleteVolume(token, inst.projectId, b.volumeId!);
      await d.blockDevices.update(b.uuid, { attachmentId: null, connectionInfo: null, ...(drop ? { volumeId: null } : {}) });
    } catch (err) {
      d.logger.warn({ err, instance: inst.uuid, volume: b.volumeId }, 'releasing a volume after a failed build failed');
      failures.push(err);
    }
  }
  if (failures.length) throw failures[0];
}
