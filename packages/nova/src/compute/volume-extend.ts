import type { Logger } from 'pino';
import type { InstanceActions } from '../domain/actions.ts';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { InstanceRepo } from '../domain/instances.ts';
import type { CinderClient } from '../domain/service-clients.ts';
import type { ComputeDriver } from '../virt/driver.ts';

/** The payload of a volume-extended external event (os-server-external-events, 2.51): the tag is the volume. */
export interface VolumeExtendedEvent {
  server_uuid?: string;
  tag?: string;
}

interface VolumeExtendDeps {
  host: string;
  driver: ComputeDriver;
  instances: InstanceRepo;
  blockDevices: BlockDevices;
  cinder: CinderClient;
  actions: InstanceActions;
  logger: Pick<Logger, 'info' | 'warn'>;
  serviceToken(): Promise<string>;
}

const GiB = 1024 ** 3;

/**
 * volume-extended on the instance's host (upstream's extend_volume): Cinder grew an attached
 * volume on its backend; the mapping takes the volume's new size from Cinder and the driver
 * makes the running guest see it. The event `compute_extend_volume` of the `extend_volume`
 * action the API recorded; a failure is also the instance's fault. The volume itself stays
 * as Cinder made it: nothing here can undo an extend.
 */
export async function volumeExtended(d: VolumeExtendDeps, e: VolumeExtendedEvent, requestId: string): Promise<void> {
  if (!e.server_uuid || !e.tag) return;
  const inst = await d.instances.find(e.server_uuid);
  if (!inst || inst.host !== d.host) return;
  const volumeId = e.tag;
  try {
    await d.actions.event(inst.uuid, requestId, 'compute_extend_volume', d.host, async () => {
      const bdm = await d.blockDevices.byVolume(inst.uuid, volumeId);
      if (!bdm) {
        d.logger.warn({ instance: inst.uuid, volume: volumeId }, 'volume-extended for a volume not attached to the instance');
        return;
      }
      const volume = await d.cinder.getVolume(await d.serviceToken(), inst.projectId, volumeId);
      await d.blockDevices.update(bdm.uuid, { volumeSize: volume.size });
      d.logger.info({ instance: inst.uuid, volume: volumeId, size: volume.size }, 'Cinder extended the volume; the guest is told its new size');
      await d.driver.extendVolume(inst.uuid, volumeId, volume.size * GiB);
    });
  } catch (err) {
    // Recorded on the event and as the instance's fault; the notification is handled all the same (no redelivery).
    await d.instances.addFault(inst.uuid, { code: 500, message: (err as Error).message, details: (err as Error).stack, host: d.host });
  }
}
