/**
 * The per-host cache of base images (upstream's `_base` directory): one standalone
 * qcow2 per Glance image id, shared read-only by the qcow2 overlays of every instance
 * booted from it on this host.
 *
 * The caller downloads from Glance (the driver does not talk to services): ensure()
 * gives it a temporary path to write to, then checks what arrived before anything
 * opens it as a disk (core's checkUntrustedFile): a qcow2 that names a backing file or
 * an external data file would make QEMU open a host file of the uploader's choosing
 * (the 2024 disk-image CVEs), so it is refused, as is content whose format is not the
 * declared one. Raw images are
 * converted to qcow2, so every base is qcow2 and overlays name it with `-F qcow2`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { positional, runCommand, which, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { checkUntrustedFile } from '@onestack/core/images/untrusted-file.ts';
import { ImageUnacceptableError } from './driver.ts';

export type DiskFormat = 'qcow2' | 'raw';

const IMAGE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** qemu-img parses hostile headers: bound its memory and CPU as Glance does. */
const QEMU_IMG_AS_BYTES = 1024 * 1024 * 1024;
const QEMU_IMG_CPU_SECONDS = 30;

export interface ImageCacheOptions {
  dir: string;
  logger: ExecLogger;
  timeoutMs?: number;
}

export class ImageCache {
  readonly dir: string;
  private readonly logger: ExecLogger;
  private readonly timeoutMs: number;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(opts: ImageCacheOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    mkdirSync(join(this.dir, '.partial'), { recursive: true, mode: 0o700 });
  }

  pathFor(imageId: string): string {
    if (!IMAGE_ID.test(imageId)) throw new ImageUnacceptableError(`invalid image id ${JSON.stringify(imageId)}`);
    return join(this.dir, imageId);
  }

  /**
   * The cached base of `imageId`, fetching it first when absent: `fetch` writes the
   * image's bytes to the path it is given. Concurrent calls for one image share one
   * fetch. On any failure (fetch, unsafe or mismatched content) nothing is cached and
   * the temporary files are gone.
   */
  ensure(imageId: string, diskFormat: DiskFormat, fetch: (dest: string) => Promise<void>): Promise<string> {
    let path: string;
    try {
      path = this.pathFor(imageId);
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.inflight.get(imageId);
    if (running) return running;
    const p = this.fill(imageId, path, diskFormat, fetch).finally(() => this.inflight.delete(imageId));
    this.inflight.set(imageId, p);
    return p;
  }

  private async fill(imageId: string, path: string, diskFormat: DiskFormat, fetch: (dest: string) => Promise<void>): Promise<string> {
    if (await exists(path)) {
      const now = new Date();
      await utimes(path, now, now); // last use, for a future age-based cleanup
      return path;
    }
    const tag = `${imageId}.${randomBytes(4).toString('hex')}`;
    const download = join(this.dir, '.partial', `${tag}.download`);
    const converted = join(this.dir, '.partial', `${tag}.qcow2`);
    try {
      await fetch(download);
      const verdict = await checkUntrustedFile(download, diskFormat, { logger: this.logger, timeoutMs: this.timeoutMs });
      if ('unsafe' in verdict) throw new ImageUnacceptableError(`image ${imageId}: ${verdict.unsafe}`);
      if (diskFormat === 'qcow2') {
        await this.qemuImg(['check', '-q', '-f', 'qcow2', positional(download)]).catch((err) => {
          throw new ImageUnacceptableError(`image ${imageId}: qcow2 check failed`, { cause: err });
        });
        await rename(download, path);
      } else {
        await this.qemuImg(['convert', '-q', '-f', 'raw', '-O', 'qcow2', positional(download), positional(converted)]);
        await rename(converted, path);
      }
      return path;
    } finally {
      await rm(download, { force: true });
      await rm(converted, { force: true });
    }
  }

  /** A qcow2 overlay on a cached base, `sizeGb` large (never smaller than the base). */
  async createOverlay(basePath: string, overlayPath: string, sizeGb: number): Promise<void> {
    const info = await this.qemuImgInfo(basePath, 'qcow2');
    const bytes = Math.max(sizeGb * 1024 ** 3, info['virtual-size']);
    await this.qemuImg(['create', '-q', '-f', 'qcow2', '-b', positional(basePath), '-F', 'qcow2', positional(overlayPath), String(bytes)]);
  }

  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((n) => IMAGE_ID.test(n));
  }

  async remove(imageId: string): Promise<void> {
    await rm(this.pathFor(imageId), { force: true });
  }

  async qemuImgInfo(path: string, format: DiskFormat): Promise<QemuImgInfo> {
    const r = await this.qemuImg(['info', '--output=json', '-f', format, positional(path)]);
    return JSON.parse(r.stdout) as QemuImgInfo;
  }

  private qemuImg(args: Parameters<typeof runCommand>[1]) {
    return qemuImg(args, this.logger, this.timeoutMs);
  }
}

export interface QemuImgInfo {
  'virtual-size': number;
  format: string;
  'backing-filename'?: string;
  'format-specific'?: { data?: { 'data-file'?: string } };
}

/** qemu-img under prlimit (when present): a hostile header must not eat the host. */
export function qemuImg(args: Parameters<typeof runCommand>[1], logger: ExecLogger, timeoutMs: number) {
  if (which('prlimit') && args[0] === 'info') {
    return runCommand('prlimit', [`--as=${QEMU_IMG_AS_BYTES}`, `--cpu=${QEMU_IMG_CPU_SECONDS}`, 'qemu-img', ...args], { logger, timeoutMs });
  }
  return runCommand('qemu-img', args, { logger, timeoutMs });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
