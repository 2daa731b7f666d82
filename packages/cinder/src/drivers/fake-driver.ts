import { QemuImg } from './qemu-img.ts';
import { GiB, VolumeDriverError, type BackendStats, type ConnectionInfo, type Connector, type LocalImage, type SnapshotRef, type VolumeDriver, type VolumeRef } from './volume-driver.ts';

/**
 * A fake backend in memory for functional tests of the API and manager: each
 * volume is a sparse map of written 4 KiB blocks, so data flows (snapshot,
 * clone, image) can be checked without a disk. Images are "copied" by
 * recording their path; nothing on the host is touched.
 */
export class FakeVolumeDriver implements VolumeDriver {
  readonly backendName: string;
  readonly capabilities = { thin_provisioning_support: true, multiattach: true, storage_protocol: 'fake' };
  private readonly volumes = new Map<string, { size: number; blocks: Map<number, Buffer> }>();
  private readonly snapshots = new Map<string, { size: number; blocks: Map<number, Buffer> }>();
  readonly connections = new Map<string, Connector[]>();
  /** Throws on the next call named here: how tests drive the error paths. */
  failNext = new Set<keyof VolumeDriver>();

  constructor(opts: { backendName?: string; totalGb?: number } = {}) {
    this.backendName = opts.backendName ?? 'fake';
    this.totalGb = opts.totalGb ?? 1000;
  }

  readonly totalGb: number;

  private maybeFail(op: keyof VolumeDriver): void {
    if (this.failNext.delete(op)) throw new VolumeDriverError(`fake driver: ${String(op)} failed as asked`);
  }

  private vol(id: string) {
    const v = this.volumes.get(id);
    if (!v) throw new VolumeDriverError(`volume ${id} does not exist on the fake backend`, 'not_found');
    return v;
  }

  async doSetup(): Promise<void> {}
  async checkForSetupError(): Promise<void> {}

  async getVolumeStats(): Promise<BackendStats> {
    const provisioned = [...this.volumes.values(), ...this.snapshots.values()].reduce((n, v) => n + v.size, 0);
    const used = [...this.volumes.values(), ...this.snapshots.values()].reduce((n, v) => n + v.blocks.size * 4096, 0) / GiB;
    return {
      volume_backend_name: this.backendName,
      vendor_name: 'Open Source',
      driver_version: '1.0',
      storage_protocol: 'fake',
      pools: [
        {
          pool_name: this.backendName,
          total_capacity_gb: this.totalGb,
          free_capacity_gb: this.totalGb - used,
          provisioned_capacity_gb: provisioned,
          allocated_capacity_gb: provisioned,
          max_over_subscription_ratio: 20,
          reserved_percentage: 0,
          thin_provisioning_support: true,
          thick_provisioning_support: false,
          multiattach: true,
          QoS_support: false,
        },
      ],
    };
  }

  async createVolume(volume: VolumeRef): Promise<void> {
    this.maybeFail('createVolume');
    this.volumes.set(volume.id, { size: volume.size, blocks: new Map() });
  }

  async deleteVolume(volume: VolumeRef): Promise<void> {
    this.maybeFail('deleteVolume');
    this.volumes.delete(volume.id);
  }

  async extendVolume(volume: VolumeRef, newSize: number): Promise<void> {
    this.maybeFail('extendVolume');
    this.vol(volume.id).size = newSize;
  }

  async createSnapshot(snapshot: SnapshotRef): Promise<void> {
    this.maybeFail('createSnapshot');
    const v = this.vol(snapshot.volumeId);
    this.snapshots.set(snapshot.id, { size: v.size, blocks: new Map(v.blocks) });
  }

  async deleteSnapshot(snapshot: SnapshotRef): Promise<void> {
    this.maybeFail('deleteSnapshot');
    this.snapshots.delete(snapshot.id);
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    this.maybeFail('createVolumeFromSnapshot');
    const s = this.snapshots.get(snapshot.id);
    if (!s) throw new VolumeDriverError(`snapshot ${snapshot.id} does not exist on the fake backend`, 'not_found');
    this.volumes.set(volume.id, { size: volume.size, blocks: new Map(s.blocks) });
  }

  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    this.maybeFail('revertToSnapshot');
    const s = this.snapshots.get(snapshot.id);
    if (!s) throw new VolumeDriverError(`snapshot ${snapshot.id} does not exist on the fake backend`, 'not_found');
    this.volumes.set(volume.id, { size: volume.size, blocks: new Map(s.blocks) });
  }

  async createClonedVolume(volume: VolumeRef, source: VolumeRef): Promise<void> {
    this.maybeFail('createClonedVolume');
    this.volumes.set(volume.id, { size: volume.size, blocks: new Map(this.vol(source.id).blocks) });
  }

  /** The image is inspected for real (qemu-img reads it): a fake must not accept what a real driver refuses. */
  async copyImageToVolume(volume: VolumeRef, image: LocalImage): Promise<void> {
    this.maybeFail('copyImageToVolume');
    const verdict = await new QemuImg(silent).inspectUntrusted(image.path, image.diskFormat);
    if ('unsafe' in verdict) throw new VolumeDriverError(`Image is unacceptable: ${verdict.unsafe}`, 'invalid_image');
    if (verdict.virtualSize > volume.size * GiB) throw new VolumeDriverError(`Image virtual size doesn't fit in a volume of size ${volume.size}GB.`, 'capacity');
    this.vol(volume.id).blocks.set(0, Buffer.from(`fake image ${image.diskFormat} ${image.path}`));
  }

  async copyVolumeToImage(volume: VolumeRef): Promise<void> {
    this.vol(volume.id);
  }

  async initializeConnection(volume: VolumeRef, connector: Connector): Promise<ConnectionInfo> {
    this.maybeFail('initializeConnection');
    this.vol(volume.id);
    this.connections.set(volume.id, [...(this.connections.get(volume.id) ?? []), connector]);
    return { driver_volume_type: 'file', data: { path: `/dev/fake/${volume.id}`, format: 'raw' } };
  }

  async terminateConnection(volume: VolumeRef, connector: Connector | undefined): Promise<void> {
    const left = (this.connections.get(volume.id) ?? []).filter((c) => connector && c.host !== connector.host);
    this.connections.set(volume.id, left);
  }

  async volumeUsage(volume: VolumeRef): Promise<number | undefined> {
    const v = this.volumes.get(volume.id);
    return v ? v.blocks.size * 4096 : undefined;
  }

  /** Test access to the bytes, at 4 KiB block granularity. */
  write(volumeId: string, block: number, data: Buffer): void {
    this.vol(volumeId).blocks.set(block, data);
  }

  read(volumeId: string, block: number): Buffer | undefined {
    return this.vol(volumeId).blocks.get(block);
  }

  has(volumeId: string): boolean {
    return this.volumes.has(volumeId);
  }
}

const silent = { info: () => undefined, warn: () => undefined };
