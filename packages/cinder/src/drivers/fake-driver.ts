import { invalidReference, sourceNameOf } from './existing-ref.ts';
import { QemuImg } from './qemu-img.ts';
import { GiB, VolumeDriverError, type BackendStats, type ConnectionInfo, type Connector, type ExistingRef, type LocalImage, type ManageableResource, type SnapshotRef, type VolumeDriver, type VolumeRef } from './volume-driver.ts';

interface FakeObject {
  size: number;
  blocks: Map<number, Buffer>;
  /** Why a real driver would refuse it (what a hostile file is to the file driver). */
  unsafe?: string;
}

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
  /** Backend objects Cinder does not manage, by name (manage existing). */
  private readonly existing = new Map<string, FakeObject>();
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

  /** Puts an object Cinder does not manage on the fake backend (`unsafe`: it must be refused). */
  addExisting(name: string, sizeGb: number, opts: { blocks?: Map<number, Buffer>; unsafe?: string } = {}): void {
    this.existing.set(name, { size: sizeGb, blocks: opts.blocks ?? new Map(), unsafe: opts.unsafe });
  }

  private take(ref: ExistingRef): { name: string; obj: FakeObject } {
    const name = sourceNameOf(ref);
    const obj = this.existing.get(name);
    if (!obj) throw invalidReference(ref, 'no such object on the fake backend');
    if (obj.unsafe) throw invalidReference(ref, obj.unsafe);
    return { name, obj };
  }

  async manageExistingGetSize(_volume: VolumeRef, ref: ExistingRef): Promise<number> {
    this.maybeFail('manageExistingGetSize');
    return this.take(ref).obj.size;
  }

  async manageExisting(volume: VolumeRef, ref: ExistingRef): Promise<void> {
    this.maybeFail('manageExisting');
    const { name, obj } = this.take(ref);
    this.existing.delete(name);
    this.volumes.set(volume.id, { size: Math.max(volume.size, obj.size), blocks: obj.blocks });
  }

  private listing(prefix: string, mine: Map<string, { size: number }>, known: ReadonlyMap<string, string>): ManageableResource[] {
    const own = [...mine].map(([id, v]) => ({ name: `${prefix}-${id}`, size: v.size, cinderId: known.get(id) ?? null, unsafe: undefined as string | undefined }));
    const others = [...this.existing].filter(([name]) => name.startsWith('snapshot-') === (prefix === 'snapshot')).map(([name, o]) => ({ name, size: o.size, cinderId: null, unsafe: o.unsafe }));
    return [...own, ...others].map((e) => ({
      reference: { 'source-name': e.name },
      size: e.size,
      safeToManage: !e.cinderId && !e.unsafe,
      reasonNotSafe: e.cinderId ? 'already managed' : (e.unsafe ?? null),
      cinderId: e.cinderId,
      extraInfo: null,
      ...(prefix === 'snapshot' ? { sourceReference: null } : {}),
    }));
  }

  async getManageableVolumes(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    return this.listing('volume', this.volumes, known);
  }

  async unmanage(volume: VolumeRef): Promise<void> {
    this.maybeFail('unmanage');
    const v = this.volumes.get(volume.id);
    this.volumes.delete(volume.id);
    if (v) this.existing.set(`volume-${volume.id}`, v);
  }

  async manageExistingSnapshotGetSize(_snapshot: SnapshotRef, ref: ExistingRef): Promise<number> {
    return this.take(ref).obj.size;
  }

  async manageExistingSnapshot(snapshot: SnapshotRef, ref: ExistingRef): Promise<void> {
    const { name, obj } = this.take(ref);
    this.existing.delete(name);
    this.snapshots.set(snapshot.id, { size: Math.max(snapshot.volumeSize, obj.size), blocks: obj.blocks });
  }

  async getManageableSnapshots(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    return this.listing('snapshot', this.snapshots, known);
  }

  async unmanageSnapshot(snapshot: SnapshotRef): Promise<void> {
    const s = this.snapshots.get(snapshot.id);
    this.snapshots.delete(snapshot.id);
    if (s) this.existing.set(`snapshot-${snapshot.id}`, s);
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
