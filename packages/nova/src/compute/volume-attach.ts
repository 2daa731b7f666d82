import type { Logger } from 'pino';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { InstanceActions } from '../domain/actions.ts';
import type { BlockDevice, BlockDevices } from '../domain/block-devices.ts';
import type { Instance, InstanceRepo } from '../domain/instances.ts';
import type { InstanceNotifier } from '../domain/notifier.ts';
import type { CinderClient } from '../domain/service-clients.ts';
import { NoFreeSlotError, type ComputeDriver } from '../virt/driver.ts';
import { refreshDeviceMetadata } from './device-metadata.ts';
import { connectVolume, disconnectVolume, type ConnectedVolume } from './volume-connect.ts';

export interface VolumeAttachDeps {
  host: string;
  driver: ComputeDriver;
  instances: InstanceRepo;
  blockDevices: BlockDevices;
  cinder: CinderClient;
  actions: InstanceActions;
  notifier: InstanceNotifier;
  logger: Logger;
  serviceToken(): Promise<string>;
}

export interface AttachVolumeArgs {
  uuid: string;
  /** The mapping the API made, with the attachment it reserved. */
  bdmUuid: string;
  requestId: string;
}

export interface DetachVolumeArgs {
  uuid: string;
  volumeId: string;
  requestId: string;
}

export interface SwapVolumeArgs {
  uuid: string;
  oldVolumeId: string;
  newVolumeId: string;
  /** The attachment of the new volume the API reserved for the instance. */
  newAttachmentId: string;
  requestId: string;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * nova-compute's volume hot-plug (upstream's attach_volume/detach_volume): the volume
 * is connected to this host through Cinder's attachments API, plugged into the guest
 * (or recorded for its next start when it is stopped) and marked in-use. A failure
 * unplugs it again, deletes the attachment (the volume is available again) and the
 * mapping, so nothing is left half-attached.
 */
export function volumeAttachHandlers(d: VolumeAttachDeps) {
  const instance = async (uuid: string): Promise<Instance> => {
    const inst = await d.instances.find(uuid);
    if (!inst) throw notFound(`Instance ${uuid} could not be found.`);
    return inst;
  };

  const attach = async (inst: Instance, bdm: BlockDevice): Promise<void> => {
    const connected = await connectVolume(d, { projectId: inst.projectId, instanceUuid: inst.uuid, volumeId: bdm.volumeId!, attachmentId: bdm.attachmentId ?? undefined, mountpoint: bdm.deviceName ?? undefined });
    await d.blockDevices.update(bdm.uuid, { attachmentId: connected.attachmentId, connectionInfo: connected.connectionInfo });
    let plugged = false;
    try {
      await d.driver.attachVolume(inst.uuid, connected.device);
      plugged = true;
      await d.cinder.completeAttachment(await d.serviceToken(), inst.projectId, connected.attachmentId);
      await refreshDeviceMetadata(d, inst.uuid);
    } catch (e) {
      if (plugged) await d.driver.detachVolume(inst.uuid, bdm.volumeId!).catch((err) => d.logger.error({ err, instance: inst.uuid }, 'unplug after a failed attach failed'));
      if (e instanceof NoFreeSlotError) throw badRequest(`Failed to attach volume ${bdm.volumeId} to ${inst.uuid}: no free hot-plug slot`);
      throw e;
    }
  };

  /**
   * upstream's _swap_volume with new-style attachments: the new volume is connected with the
   * reserved attachment, the driver copies the guest's disk onto it and pivots, the attachment
   * completes and Cinder hears the outcome (os-migrate_volume_completion, error on failure,
   * after the new attachment is deleted again). Answers Cinder's save_volume_id and the new
   * connection.
   */
  const swap = async (inst: Instance, bdm: BlockDevice, a: SwapVolumeArgs): Promise<{ saveVolumeId: string; connected: ConnectedVolume }> => {
    const token = await d.serviceToken();
    let connected: ConnectedVolume;
    try {
      connected = await connectVolume(d, { projectId: inst.projectId, instanceUuid: inst.uuid, volumeId: a.newVolumeId, attachmentId: a.newAttachmentId, mountpoint: bdm.deviceName ?? undefined });
      await d.driver.swapVolume(inst.uuid, bdm.volumeId!, connected.device);
      await d.cinder.completeAttachment(token, inst.projectId, connected.attachmentId);
    } catch (e) {
      await disconnectVolume(d, inst.projectId, a.newAttachmentId).catch((err) => d.logger.error({ err, instance: inst.uuid }, 'deleting the new attachment after a failed swap failed'));
      await d.cinder.migrateVolumeCompletion(token, inst.projectId, a.oldVolumeId, a.newVolumeId, true).catch((err) => d.logger.error({ err, instance: inst.uuid }, 'telling Cinder the swap failed failed'));
      throw e;
    }
    const saveVolumeId = await d.cinder.migrateVolumeCompletion(token, inst.projectId, a.oldVolumeId, a.newVolumeId, false);
    return { saveVolumeId, connected };
  };

  return {
    attach_volume: async (a: AttachVolumeArgs): Promise<void> => {
      const inst = await instance(a.uuid);
      const bdm = await d.blockDevices.find(a.bdmUuid);
      if (!bdm?.volumeId) throw notFound(`No volume Block Device Mapping with id ${a.bdmUuid}.`);
      d.notifier.send(inst, 'volume_attach', 'start');
      try {
        await d.actions.event(inst.uuid, a.requestId, 'compute_attach_volume', d.host, () => attach(inst, bdm));
      } catch (e) {
        d.logger.warn({ err: e, instance: inst.uuid, volume: bdm.volumeId }, 'volume attach failed');
        const now = await d.blockDevices.find(bdm.uuid);
        if (now?.attachmentId) await disconnectVolume(d, inst.projectId, now.attachmentId).catch((err) => d.logger.error({ err, instance: inst.uuid }, 'attachment delete after a failed attach failed'));
        await d.blockDevices.delete(bdm.uuid);
        d.notifier.send(await instance(inst.uuid), 'volume_attach', 'error', { fault: { message: message(e) } });
        throw e;
      }
      d.notifier.send(await instance(inst.uuid), 'volume_attach', 'end');
    },

    /**
     * upstream's swap_volume: the mapping takes Cinder's save_volume_id, the new attachment
     * and its connection once the guest uses the new volume; the old attachment is deleted
     * (Cinder's completion may have ended it already). On failure the mapping is unchanged.
     */
    swap_volume: async (a: SwapVolumeArgs): Promise<void> => {
      const inst = await instance(a.uuid);
      const bdm = await d.blockDevices.byVolume(inst.uuid, a.oldVolumeId);
      if (!bdm) throw notFound(`Instance ${inst.uuid} is not attached to volume ${a.oldVolumeId}`);
      const payload = { name: 'InstanceActionVolumeSwapPayload', version: '1.8', fields: { old_volume_id: a.oldVolumeId, new_volume_id: a.newVolumeId } };
      d.notifier.send(inst, 'volume_swap', 'start', { payload });
      try {
        await d.actions.event(inst.uuid, a.requestId, 'compute_swap_volume', d.host, async () => {
          const done = await swap(inst, bdm, a);
          await d.blockDevices.update(bdm.uuid, { volumeId: done.saveVolumeId, attachmentId: done.connected.attachmentId, connectionInfo: done.connected.connectionInfo });
          if (bdm.attachmentId) await disconnectVolume(d, inst.projectId, bdm.attachmentId).catch((err) => d.logger.warn({ err, instance: inst.uuid }, 'deleting the old attachment after a swap failed'));
        });
      } catch (e) {
        d.logger.warn({ err: e, instance: inst.uuid, volume: a.oldVolumeId }, 'volume swap failed');
        d.notifier.send(await instance(inst.uuid), 'volume_swap', 'error', { fault: { message: message(e) }, payload });
        throw e;
      }
      d.notifier.send(await instance(inst.uuid), 'volume_swap', 'end', { payload });
    },

    detach_volume: async (a: DetachVolumeArgs): Promise<void> => {
      const inst = await instance(a.uuid);
      const bdm = await d.blockDevices.byVolume(inst.uuid, a.volumeId);
      if (!bdm) throw notFound(`Instance ${inst.uuid} is not attached to volume ${a.volumeId}`);
      d.notifier.send(inst, 'volume_detach', 'start');
      try {
        await d.actions.event(inst.uuid, a.requestId, 'compute_detach_volume', d.host, async () => {
          await d.driver.detachVolume(inst.uuid, a.volumeId);
          if (bdm.attachmentId) await disconnectVolume(d, inst.projectId, bdm.attachmentId);
          await d.blockDevices.delete(bdm.uuid);
          await refreshDeviceMetadata(d, inst.uuid);
        });
      } catch (e) {
        d.notifier.send(await instance(inst.uuid), 'volume_detach', 'error', { fault: { message: message(e) } });
        throw e;
      }
      d.notifier.send(await instance(inst.uuid), 'volume_detach', 'end');
    },
  };
}

/**
 * What deleting an instance does to its volumes (upstream's _cleanup_volumes after
 * _shutdown_instance): every attachment is deleted, so each volume is available again,
 * those marked delete_on_termination are deleted, and the mappings go. Called once the
 * guest is destroyed; a Cinder failure is logged and the rest carries on, as upstream.
 */
export async function releaseInstanceVolumes(d: Pick<VolumeAttachDeps, 'blockDevices' | 'cinder' | 'logger' | 'serviceToken'>, inst: Pick<Instance, 'uuid' | 'projectId'>): Promise<void> {
  const token = await d.serviceToken();
  for (const bdm of await d.blockDevices.forInstance(inst.uuid)) {
    if (!bdm.volumeId) continue;
    try {
      if (bdm.attachmentId) await d.cinder.deleteAttachment(token, inst.projectId, bdm.attachmentId);
      if (bdm.deleteOnTermination) await d.cinder.deleteVolume(token, inst.projectId, bdm.volumeId);
    } catch (err) {
      d.logger.warn({ err, instance: inst.uuid, volume: bdm.volumeId }, 'volume clean-up on delete failed');
    }
  }
  await d.blockDevices.deleteForInstance(inst.uuid);
}
