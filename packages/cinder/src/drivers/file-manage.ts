import { lstat, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { checkUntrustedFile } from '@onestack/core/images/untrusted-file.ts';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { invalidReference, sourceNameOf } from './existing-ref.ts';
import { GiB, type ExistingRef, type ManageableResource } from './volume-driver.ts';

/** What a file in the backend directory is, checked as an untrusted image of `format`. */
type Vetting = { virtualSize: number } | { reason: string; bytes: number };

const SNAPSHOT_NAME = /^snapshot-(.+)\.qcow2$/;

/**
 * The file driver's side of manage existing: any file a person put in the backend
 * directory may become a volume (or snapshot) of it. Such a file is as untrusted as
 * an image from a user: QEMU will open it as a disk, so it must be a regular file of
 * its own (no symlink, no second hard link to something elsewhere), of the backend's
 * format, and pass core's untrusted-image check (no backing or data file).
 */
export class ExistingFiles {
  constructor(
    private readonly o: {
      dir: string;
      logger: ExecLogger;
      /** Format of this backend's volume files. */
      format: string;
      /** The name of a volume's (snapshot's) file in the directory. */
      volumeName(id: string): string;
      snapshotName(id: string): string;
      resize(path: string, format: string, sizeGb: number): Promise<void>;
    },
  ) {}

  private async vet(path: string, format: string): Promise<Vetting> {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return { reason: 'no such file in the backend directory', bytes: 0 };
    if (st.isSymbolicLink()) return { reason: 'the file is a symbolic link', bytes: 0 };
    if (!st.isFile()) return { reason: 'not a regular file', bytes: 0 };
    if (st.nlink > 1) return { reason: 'the file has other hard links', bytes: st.size };
    const verdict = await checkUntrustedFile(path, format, { logger: this.o.logger });
    if ('unsafe' in verdict) return { reason: `not a safe ${format} image: ${verdict.unsafe}`, bytes: st.size };
    if (verdict.virtualSize <= 0) return { reason: 'the image is empty', bytes: st.size };
    return { virtualSize: verdict.virtualSize };
  }

  private async sizeOf(ref: ExistingRef, format: string): Promise<number> {
    const v = await this.vet(join(this.o.dir, sourceNameOf(ref)), format);
    if ('reason' in v) throw invalidReference(ref, v.reason);
    return Math.ceil(v.virtualSize / GiB);
  }

  /**
   * Renames the file to `destName` first, then checks it there: what is checked is what
   * the volume will use, whatever happens to the old name meanwhile. A refusal puts the
   * file back under its name.
   */
  private async take(ref: ExistingRef, destName: string, format: string, sizeGb: number): Promise<void> {
    const src = join(this.o.dir, sourceNameOf(ref));
    const dest = join(this.o.dir, destName);
    if (await lstat(dest).then(() => true, () => false)) throw invalidReference(ref, `${destName} already exists`);
    await rename(src, dest).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ENOENT' ? invalidReference(ref, 'no such file in the backend directory') : e;
    });
    try {
      const v = await this.vet(dest, format);
      if ('reason' in v) throw invalidReference(ref, v.reason);
      if (v.virtualSize < sizeGb * GiB) await this.o.resize(dest, format, sizeGb);
    } catch (e) {
      await rename(dest, src).catch(() => undefined);
      throw e;
    }
  }

  volumeSize(ref: ExistingRef): Promise<number> {
    return this.sizeOf(ref, this.o.format);
  }

  manageVolume(id: string, ref: ExistingRef, sizeGb: number): Promise<void> {
    return this.take(ref, this.o.volumeName(id), this.o.format, sizeGb);
  }

  snapshotSize(ref: ExistingRef): Promise<number> {
    return this.sizeOf(ref, 'qcow2');
  }

  manageSnapshot(id: string, ref: ExistingRef, sizeGb: number): Promise<void> {
    return this.take(ref, this.o.snapshotName(id), 'qcow2', sizeGb);
  }

  /** Every visible file but snapshot files (`snapshot-*.qcow2`, listed as snapshots). */
  manageableVolumes(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    const owners = new Map([...known].map(([name, cinderId]) => [this.o.volumeName(name), cinderId]));
    return this.list((f) => !SNAPSHOT_NAME.test(f), owners, this.o.format);
  }

  manageableSnapshots(known: ReadonlyMap<string, string>): Promise<ManageableResource[]> {
    const owners = new Map([...known].map(([name, cinderId]) => [this.o.snapshotName(name), cinderId]));
    // Snapshots here are standalone copies: nothing on disk says which volume one was taken from.
    return this.list((f) => SNAPSHOT_NAME.test(f), owners, 'qcow2').then((l) => l.map((e) => ({ ...e, sourceReference: null })));
  }

  private async list(wanted: (name: string) => boolean, owners: ReadonlyMap<string, string>, format: string): Promise<ManageableResource[]> {
    const out: ManageableResource[] = [];
    for (const name of (await readdir(this.o.dir)).sort()) {
      if (name.startsWith('.') || !wanted(name)) continue;
      const reference = { 'source-name': name };
      const cinderId = owners.get(name);
      const v = await this.vet(join(this.o.dir, name), format);
      const size = Math.ceil(('reason' in v ? v.bytes : v.virtualSize) / GiB);
      if (cinderId) out.push({ reference, size, safeToManage: false, reasonNotSafe: 'already managed', cinderId, extraInfo: null });
      else if ('reason' in v) out.push({ reference, size, safeToManage: false, reasonNotSafe: v.reason, cinderId: null, extraInfo: null });
      else out.push({ reference, size, safeToManage: true, reasonNotSafe: null, cinderId: null, extraInfo: null });
    }
    return out;
  }
}
