import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { positional, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { QemuImg } from './qemu-img.ts';
import { ExistingFiles } from './file-manage.ts';
import type { NbdExports } from './nbd-exports.ts';
import { GiB, VolumeDriverError, type BackendStats, type ConnectionInfo, type ConnectionOptions, type Connector, type ExistingRef, type LocalImage, type ManageableResource, type OnlineSnapshot, type OpenConnection, type SnapshotRef, type VolumeDriver, type VolumeRef } from './volume-driver.ts';

export interface FileDriverOptions {
  /** <state>/cinder/volumes by default. */
  dir: string;
  backendName?: string;
  logger: ExecLogger;
  maxOverSubscriptionRatio?: number;
  reservedPercentage?: number;
  /** Format of the volume files: qcow2 (thin, the default) or raw (sparse files). Snapshots are always qcow2. */
  format?: VolumeFormat;
  /** This volume host's name: a connector naming another host gets an NBD export. */
  host?: string;
  /** NBD exports for other hosts; without it every connection is the file's path. */
  nbd?: { exports: NbdExports; mode: 'remote' | 'always' };
}

export type VolumeFormat = 'qcow2' | 'raw';

/** Suffix of a snapshot's file while Nova writes it (assisted snapshots): never taken for a finished one. */
const NOVA_SUFFIX = '.nova';

/**
 * Volumes as thin qcow2 (or sparse raw) files in one directory:
 * `volume-<id>.qcow2` (`.raw`), and snapshots as `snapshot-<id>.qcow2`.
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
  readonly format: VolumeFormat;
  private readonly qemuImg: QemuImg;
  private readonly existing: ExistingFiles;

  constructor(private readonly opts: FileDriverOptions) {
    this.backendName = opts.backendName ?? 'file';
    this.format = opts.format ?? 'qcow2';
    this.qemuImg = new QemuImg(opts.logger);
    this.existing = new ExistingFiles({
      dir: opts.dir,
      logger: opts.logger,
      format: this.format,
      volumeName: (id) => `volume-${safeId(id)}.${this.format}`,
      snapshotName: (id) => `snapshot-${safeId(id)}.qcow2`,
      resize: (path, format, sizeGb) => this.qemuImg.run(['resize', '-q', '-f', format, '--', positional(path), `${sizeGb}G`]).then(() => undefined),
    });
  }

  volumePath(id: string): string {
    return join(this.opts.dir, `volume-${safeId(id)}.${this.format}`);
  }

  snapshotPath(id: string): string {
    return join(this.opts.dir, `snapshot-${safeId(id)}.qcow2`);
  }

  private partial(name: string): string {
    return join(this.opts.dir, '.partial', `${name}.${process.pid}.${Date.now()}`);
  }

  async doSetup(): Promise<void> {
    await mkdir(join(this.opts.dir, '.partial'), { recursive: true });
    // Only this driver writes there; anything left is from a crash mid-write.
    for (const f of await readdir(join(this.opts.dir, '.partial'))) await rm(join(this.opts.dir, '.partial', f), { force: true });
    // Copies Nova was writing for snapshots that a crash ended (their snapshots end in error).
    for (const f of await readdir(this.opts.dir)) if (f.endsWith(NOVA_SUFFIX)) await rm(join(this.opts.dir, f), { force: true });
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
      else if (f.endsWith('.raw')) provisioned += ((await stat(join(this.opts.dir, f)).catch(() => undefined))?.size ?? 0) / GiB;
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
    await this.place(this.volumePath(volume.id), (tmp) => this.qemuImg.run(['create', '-q', '-f', this.format, '--', positional(tmp), `${volume.size}G`]).then(() => undefined));
  }

  async deleteVolume(volume: VolumeRef): Promise<void> {
    await rm(this.volumePath(volume.id), { force: true });
  }

  async extendVolume(volume: VolumeRef, newSize: number, opts: { connectors?: (Connector | undefined)[] } = {}): Promise<void> {
    const path = this.volumePath(volume.id);
    await this.requireFile(path, `volume ${volume.id}`);
    // A guest's QEMU that opened the file holds its write lock: Nova's block_resize after the
    // volume-extended event grows the file, as upstream's Nova does for NFS volumes (libvirt's nfs.py).
    if (opts.connectors?.some((c) => c && !this.exportsFor(c))) return;
    await this.qemuImg.run(['resize', '-q', '-f', this.format, '--', positional(path), `${newSize}G`]);
  }

  /** Copies src into a new file of outFormat at dest of sizeGb (grown when larger than the source). */
  private async copyTo(src: string, srcFormat: string, dest: string, sizeGb: number, outFormat: VolumeFormat = this.format): Promise<void> {
    await this.place(dest, async (tmp) => {
      await this.qemuImg.run(['convert', '-q', '-f', srcFormat, '-O', outFormat, '--', positional(src), positional(tmp)]);
      const info = await this.qemuImg.info(tmp, outFormat);
      if ((info['virtual-size'] ?? 0) < sizeGb * GiB) await this.qemuImg.run(['resize', '-q', '-f', outFormat, '--', positional(tmp), `${sizeGb}G`]);
    });
  }

  /**
   * A guest on this host that opened the volume's file holds its write lock, so qemu-img cannot
   * read it: that guest's QEMU writes the copy instead, through Nova (upstream's remotefs
   * _create_snapshot_online). A volume exported over NBD is held by qemu-storage-daemon, which
   * nothing asks for a copy yet: such a snapshot still goes to qemu-img and fails on the lock.
   */
  async createSnapshot(snapshot: SnapshotRef, online?: OnlineSnapshot): Promise<void> {
    const src = this.volumePath(snapshot.volumeId);
    await this.requireFile(src, `volume ${snapshot.volumeId}`);
    const guest = online?.attachments.find((a) => a.instanceUuid && !this.exportsFor(a.connector));
    if (guest && online) return this.assistedSnapshot(snapshot, guest.instanceUuid!, online);
    await this.copyTo(src, this.format, this.snapshotPath(snapshot.id), snapshot.volumeSize, 'qcow2');
  }

  /**
   * Nova writes `snapshot-<id>.qcow2.nova` beside the volume (new_file is a name in the volume's
   * directory, as upstream's); once Nova reported it done, the file is checked to be what was
   * asked for (qcow2, standalone, the volume's size) and renamed into place. Any failure removes
   * it, as doSetup does with one a crash left.
   */
  private async assistedSnapshot(snapshot: SnapshotRef, instanceUuid: string, online: OnlineSnapshot): Promise<void> {
    const name = `snapshot-${safeId(snapshot.id)}.qcow2${NOVA_SUFFIX}`;
    const written = join(this.opts.dir, name);
    try {
      await online.assisted(instanceUuid, { snapshot_id: snapshot.id, type: 'qcow2', new_file: name, id: snapshot.id });
      // Vetted as an untrusted image would be: the hypervisor's host wrote it, not this driver.
      const verdict = await this.qemuImg.inspectUntrusted(written, 'qcow2');
      const unfit = 'unsafe' in verdict ? verdict.unsafe : verdict.virtualSize < snapshot.volumeSize * GiB ? `virtual size ${verdict.virtualSize} is below ${snapshot.volumeSize} GiB` : undefined;
      if (unfit) throw new VolumeDriverError(`Nova's copy of volume ${snapshot.volumeId} for snapshot ${snapshot.id} is unusable: ${unfit}`);
      await rename(written, this.snapshotPath(snapshot.id));
    } catch (err) {
      await rm(written, { force: true });
      throw err;
    }
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
    await this.copyTo(src, this.format, this.volumePath(volume.id), volume.size);
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
    await this.qemuImg.run(['convert', '-q', '-f', this.format, '-O', diskFormat, '--', positional(src), positional(destPath)]);
  }

  /**
   * A consumer on this host opens the file itself; one on another host (or every one,
   * nbd mode `always`) gets an NBD export of its own, raw whatever the file's format.
   */
  async initializeConnection(volume: VolumeRef, connector: Connector, opts: ConnectionOptions = {}): Promise<ConnectionInfo> {
    const path = this.volumePath(volume.id);
    await this.requireFile(path, `volume ${volume.id}`);
    const accessMode = opts.accessMode ?? 'rw';
    if (!this.exportsFor(connector)) {
      // The attachment moved to this host: an export it had would hold the image's lock.
      if (opts.attachmentId && this.opts.nbd) await this.opts.nbd.exports.stop(exportKey(volume, connector, opts));
      return { driver_volume_type: 'file', data: { path, format: this.format } };
    }
    const exp = await this.opts.nbd!.exports.start(exportKey(volume, connector, opts), { path, format: this.format, readOnly: accessMode === 'ro', exportName: `volume-${safeId(volume.id)}` });
    return { driver_volume_type: 'nbd', data: { host: exp.host, port: exp.port, export_name: exp.exportName, format: 'raw', access_mode: accessMode } };
  }

  private exportsFor(connector: Connector | undefined): boolean {
    const nbd = this.opts.nbd;
    return !!nbd && (nbd.mode === 'always' || (connector?.host !== undefined && connector.host !== this.opts.host));
  }

  /** An attachment's export ends whatever connector it was last updated with (stop is idempotent). */
  async terminateConnection(volume: VolumeRef, connector: Connector | undefined, opts: ConnectionOptions = {}): Promise<void> {
    if (this.opts.nbd && (opts.attachmentId || this.exportsFor(connector))) await this.opts.nbd.exports.stop(exportKey(volume, connector ?? {}, opts));
  }

  async restoreConnections(open: OpenConnection[]): Promise<void> {
    const nbd = this.opts.nbd;
    if (!nbd) return;
    const wanted = open.filter((c) => this.exportsFor(c.connector));
    await nbd.exports.reconcile(new Set(wanted.map((c) => exportKey(c.volume, c.connector, c))));
  }

  async close(): Promise<void> {
    await this.opts.nbd?.exports.suspendAll();
  }

  manageExistingGetSize(_volume: VolumeRef, ref: ExistingRef): Promise<number> {
    return this.existing.volumeSize(ref);
  }

  manageExisting(volume: VolumeRef, ref: ExistingRef): Promise<void> {
    return this.existing.manageVolume(volume.id, ref, volume.size);
  }

  getManageableVolumes(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    return this.existing.manageableVolumes(known);
  }

  /** The file keeps its name (as upstream's NFS driver): listed as manageable again, with no owner. */
  async unmanage(volume: VolumeRef): Promise<void> {
    safeId(volume.id);
  }

  manageExistingSnapshotGetSize(_snapshot: SnapshotRef, ref: ExistingRef): Promise<number> {
    return this.existing.snapshotSize(ref);
  }

  manageExistingSnapshot(snapshot: SnapshotRef, ref: ExistingRef): Promise<void> {
    return this.existing.manageSnapshot(snapshot.id, ref, snapshot.volumeSize);
  }

  getManageableSnapshots(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    return this.existing.manageableSnapshots(known);
  }

  async unmanageSnapshot(snapshot: SnapshotRef): Promise<void> {
    safeId(snapshot.id);
  }

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

/** An attachment's export is its own; the legacy actions (no attachment) have one per volume and connector host. */
function exportKey(volume: VolumeRef, connector: Connector, opts: ConnectionOptions): string {
  if (opts.attachmentId) return `attachment-${safeId(opts.attachmentId)}`;
  const host = String(connector.host ?? 'any').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40);
  return `volume-${safeId(volume.id)}-${host}`;
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
