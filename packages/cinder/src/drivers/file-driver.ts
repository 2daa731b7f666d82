import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { positional, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { QemuImg } from './qemu-img.ts';
import { GiB, VolumeDriverError, type BackendStats, type ConnectionInfo, type Connector, type LocalImage, type SnapshotRef, type VolumeDriver, type VolumeRef } from './volume-driver.ts';

export interface FileDriverOptions {
  /** <state>/cinder/volumes by default. */
  dir: string;
  backendName?: string;
  logger: ExecLogger;
  maxOverSubscriptionRatio?: number;
  reservedPercentage?: number;
}

/**
 * Volumes as thin qcow2 files in one directory: `volume-<id>.qcow2`, and
 * snapshots as `snapshot-<id>.qcow2`.
 *
 * Snapshots are independent copies (`qemu-img convert`), not overlay chains:
 * a chain would tie the volume file to its snapshots (the volume's data would
 * move into the overlay, deleting a snapshot would need a block-commit, and a
 * running guest's open file would have to be swapped through QMP). Copies keep
 * every file standalone, so delete in any order is a plain unlink; the price is
 * the copy's time and space, which thin qcow2 keeps to the written blocks.
 *
 * Every file is first written under `.partial/` and renamed into place, so a
 * crash never leaves a half-written volume looking complete.
 */
export class FileVolumeDriver implements VolumeDriver {
  readonly backendName: string;
  readonly capabilities = { thin_provisioning_support: true, multiattach: true, storage_protocol: 'file' };
  private readonly qemuImg: QemuImg;

  constructor(private readonly opts: FileDriverOptions) {
    this.backendName = opts.backendName ?? 'file';
    this.qemuImg = new QemuImg(opts.logger);
  }

  volumePath(id: string): string {
    return join(this.opts.dir, `volume-${safeId(id)}.qcow2`);
  }

  snapshotPath(id: string): string {
    return join(this.opts.dir, `snapshot-${safeId(id)}.qcow2`);
  }

  private partial(name: string): string {
    return join(this.opts.dir, '.partial', `${name}.${process.pid}.${Date.now()}.qcow2`);
  }

  async doSetup(): Promise<void> {
    await mkdir(join(this.opts.dir, '.partial'), { recursive: true });
    // Only this driver writes there; anything left is from a crash mid-write.
    for (const f of await readdir(join(this.opts.dir, '.partial'))) await rm(join(this.opts.dir, '.partial', f), { force: true });
  }

  async checkForSetupError(): Promise<void> {
    try {
      await this.qemuImg.run(['--version'], 10_000);
    } catch (e) {
      throw new VolumeDriverError('qemu-img is not usable (Debian: qemu-utils)', 'setup', { cause: e });
    }
    const s = await stat(this.opts.dir).catch(() => undefined);
    if (!s?.isDirectory()) throw new VolumeDriverError(`volume directory ${this.opts.dir} does not exist`, 'setup');
  }

  async getVolumeStats(): Promise<BackendStats> {
    const fs = await statfs(this.opts.dir);
    let provisioned = 0;
    for (const f of await readdir(this.opts.dir)) {
      if (f.endsWith('.qcow2')) provisioned += (await qcow2VirtualSize(join(this.opts.dir, f))) / GiB;
    }
    const round = (n: number) => Math.round(n * 100) / 100;
    return {
      volume_backend_name: this.backendName,
      vendor_name: 'Open Source',
      driver_version: '1.0',
      storage_protocol: 'file',
      pools: [
        {
          pool_name: this.backendName,
          total_capacity_gb: round((fs.blocks * fs.bsize) / GiB),
          free_capacity_gb: round((fs.bavail * fs.bsize) / GiB),
          provisioned_capacity_gb: round(provisioned),
          allocated_capacity_gb: round(provisioned),
          max_over_subscription_ratio: this.opts.maxOverSubscriptionRatio ?? 20,
          reserved_percentage: this.opts.reservedPercentage ?? 0,
          thin_provisioning_support: true,
          thick_provisioning_support: false,
          multiattach: true,
          QoS_support: false,
        },
      ],
    };
  }

  /** Makes `produce(tmp)` write a file and moves it to dest only once complete. */
  private async place(dest: string, produce: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = this.partial(dest.split('/').pop()!);
    try {
      await produce(tmp);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  private async requireFile(path: string, what: string): Promise<void> {
    if (!(await exists(path))) throw new VolumeDriverError(`${what} does not exist on backend ${this.backendName}`, 'not_found');
  }

  async createVolume(volume: VolumeRef): Promise<void> {
    await this.place(this.volumePath(volume.id), (tmp) => this.qemuImg.run(['create', '-q', '-f', 'qcow2', '--', positional(tmp), `${volume.size}G`]).then(() => undefined));
  }

  async deleteVolume(volume: VolumeRef): Promise<void> {
    await rm(this.volumePath(volume.id), { force: true });
  }

  async extendVolume(volume: VolumeRef, newSize: number): Promise<void> {
    const path = this.volumePath(volume.id);
    await this.requireFile(path, `volume ${volume.id}`);
    await this.qemuImg.run(['resize', '-q', '-f', 'qcow2', '--', positional(path), `${newSize}G`]);
  }

  /** Copies src into a new qcow2 at dest of sizeGb (grown when larger than the source). */
  private async copyTo(src: string, srcFormat: string, dest: string, sizeGb: number): Promise<void> {
    await this.place(dest, async (tmp) => {
      await this.qemuImg.run(['convert', '-q', '-f', srcFormat, '-O', 'qcow2', '--', positional(src), positional(tmp)]);
      const info = await this.qemuImg.info(tmp);
      if ((info['virtual-size'] ?? 0) < sizeGb * GiB) await this.qemuImg.run(['resize', '-q', '-f', 'qcow2', '--', positional(tmp), `${sizeGb}G`]);
    });
  }

  async createSnapshot(snapshot: SnapshotRef): Promise<void> {
    const src = this.volumePath(snapshot.volumeId);
    await this.requireFile(src, `volume ${snapshot.volumeId}`);
    await this.copyTo(src, 'qcow2', this.snapshotPath(snapshot.id), snapshot.volumeSize);
  }

  async deleteSnapshot(snapshot: SnapshotRef): Promise<void> {
    await rm(this.snapshotPath(snapshot.id), { force: true });
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const src = this.snapshotPath(snapshot.id);
    await this.requireFile(src, `snapshot ${snapshot.id}`);
    await this.copyTo(src, 'qcow2', this.volumePath(volume.id), volume.size);
  }

  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const src = this.snapshotPath(snapshot.id);
    await this.requireFile(src, `snapshot ${snapshot.id}`);
    await this.copyTo(src, 'qcow2', this.volumePath(volume.id), volume.size);
  }

  async createClonedVolume(volume: VolumeRef, source: VolumeRef): Promise<void> {
    const src = this.volumePath(source.id);
    await this.requireFile(src, `volume ${source.id}`);
    await this.copyTo(src, 'qcow2', this.volumePath(volume.id), volume.size);
  }

  async copyImageToVolume(volume: VolumeRef, image: LocalImage): Promise<void> {
    const verdict = await this.qemuImg.inspectUntrusted(image.path, image.diskFormat);
    if ('unsafe' in verdict) throw new VolumeDriverError(`Image is unacceptable: ${verdict.unsafe}`, 'invalid_image');
    if (verdict.virtualSize > volume.size * GiB) {
      throw new VolumeDriverError(`Image virtual size is ${Math.ceil(verdict.virtualSize / GiB)}GB and doesn't fit in a volume of size ${volume.size}GB.`, 'capacity');
    }
    await this.copyTo(image.path, verdict.driver, this.volumePath(volume.id), volume.size);
  }

  async copyVolumeToImage(volume: VolumeRef, destPath: string, diskFormat: 'raw' | 'qcow2'): Promise<void> {
    const src = this.volumePath(volume.id);
    await this.requireFile(src, `volume ${volume.id}`);
    await this.qemuImg.run(['convert', '-q', '-f', 'qcow2', '-O', diskFormat, '--', positional(src), positional(destPath)]);
  }

  /** The all-in-one's connection: the compute host opens the file itself. */
  async initializeConnection(volume: VolumeRef, _connector: Connector): Promise<ConnectionInfo> {
    const path = this.volumePath(volume.id);
    await this.requireFile(path, `volume ${volume.id}`);
    return { driver_volume_type: 'file', data: { path, format: 'qcow2' } };
  }

  async terminateConnection(): Promise<void> {}

  async volumeUsage(volume: VolumeRef): Promise<number | undefined> {
    const s = await stat(this.volumePath(volume.id)).catch(() => undefined);
    return s ? s.blocks * 512 : undefined;
  }
}

/**
 * The virtual size from a qcow2 header this driver wrote (magic, then the size
 * as a big-endian u64 at offset 24): stats run before every placement, and a
 * qemu-img process per volume there would make scheduling O(volumes) spawns.
 */
async function qcow2VirtualSize(path: string): Promise<number> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return 0; // deleted meanwhile
  try {
    const head = Buffer.alloc(32);
    const { bytesRead } = await fh.read(head, 0, 32, 0);
    if (bytesRead < 32 || head.readUInt32BE(0) !== 0x514649fb) return 0;
    return Number(head.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}

/** Ids become file names: anything but a UUID-like token could walk out of the directory. */
function safeId(id: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new VolumeDriverError(`invalid id ${JSON.stringify(id)}`);
  return id;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
