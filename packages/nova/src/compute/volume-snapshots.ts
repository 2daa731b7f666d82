import type { Logger } from 'pino';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { InstanceRepo } from '../domain/instances.ts';
import type { CinderClient } from '../domain/service-clients.ts';
import type { ComputeDriver } from '../virt/driver.ts';

/** create_info of os-assisted-volume-snapshots, as the API validated it. */
export interface AssistedCreateInfo {
  snapshot_id: string;
  type: 'qcow2';
  new_file: string;
  id?: string;
}

export interface VolumeSnapshotArgs {
  uuid: string;
  /** The instance's project: the project Nova's calls to Cinder name (Cinder's snapshot is the volume's). */
  projectId: string;
  volumeId: string;
  createInfo: AssistedCreateInfo;
}

interface VolumeSnapshotDeps {
  host: string;
  driver: ComputeDriver;
  instances: InstanceRepo;
  blockDevices: BlockDevices;
  cinder: CinderClient;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  serviceToken(): Promise<string>;
}

/** Upstream's fixed progress for "Nova's part is done" (Cinder's remotefs driver waits for exactly it). */
const DONE_PROGRESS = '90%';

/**
 * volume_snapshot_create on the instance's host (upstream's compute manager and libvirt
 * driver): the driver writes the copy, then Cinder hears the outcome through
 * os-update_snapshot_status, as Nova's service user: `creating` (Cinder completes the
 * snapshot) or `error`, both with progress 90% as upstream's update_snapshot_status. Cinder waits for that answer, so even a failure before the driver ran
 * (instance gone, volume no longer attached) is reported.
 */
export function volumeSnapshotHandlers(d: VolumeSnapshotDeps, background: (fn: () => Promise<void>) => void) {
  const report = async (projectId: string, snapshotId: string, status: 'creating' | 'error') => {
    // Upstream sends 90% with `error` too: Nova's part is over either way.
    await d.cinder.updateSnapshotStatus(await d.serviceToken(), projectId, snapshotId, status, DONE_PROGRESS);
  };
  return {
    volume_snapshot_create: async (a: VolumeSnapshotArgs): Promise<void> =>
      background(async () => {
        const inst = await d.instances.find(a.uuid);
        const projectId = a.projectId;
        try {
          if (!inst || inst.host !== d.host) throw new Error(`instance ${a.uuid} is not on host ${d.host}`);
          if (!(await d.blockDevices.byVolume(inst.uuid, a.volumeId))) throw new Error(`volume ${a.volumeId} is not attached to instance ${inst.uuid}`);
          await d.driver.volumeSnapshotCreate(inst.uuid, a.volumeId, a.createInfo.new_file);
        } catch (err) {
          d.logger.warn({ err, instance: a.uuid, volume: a.volumeId, snapshot: a.createInfo.snapshot_id }, 'assisted volume snapshot failed');
          await report(projectId, a.createInfo.snapshot_id, 'error').catch((e) => d.logger.error({ err: e, snapshot: a.createInfo.snapshot_id }, 'telling Cinder the snapshot failed failed'));
          return;
        }
        d.logger.info({ instance: a.uuid, volume: a.volumeId, snapshot: a.createInfo.snapshot_id }, 'assisted volume snapshot written');
        await report(projectId, a.createInfo.snapshot_id, 'creating');
      }),
  };
}
