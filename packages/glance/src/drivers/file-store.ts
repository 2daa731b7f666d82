/**
 * glance_store's `file` backend: one file per image in a directory under the state
 * directory, located as `file://<dir>/<image id>` like upstream's locations.
 *
 * Writes go to a private temporary file in `<dir>/.partial/`, are synced, then
 * renamed over the final name (same filesystem, so the rename is atomic) and the
 * directory entry is synced: an image file is whole or absent, even across a crash.
 */
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { ingest } from './image-ingest.ts';
import {
  checkImageId,
  checkRange,
  isImageId,
  StoreFullError,
  StoreLocationError,
  StoreNotFoundError,
  type ImageStore,
  type StoreWriteResult,
} from './image-store.ts';

const SCHEME = 'file://';
const PARTIAL_DIR = '.partial';
/** Large reads keep downloads near disk speed; one buffer per download in flight. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** A write in progress touches its file continuously; one untouched this long belongs to a dead process. */
const DEFAULT_PARTIAL_AGE_MS = 60 * 60 * 1000;

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

async function writeAll(fh: FileHandle, batch: Buffer[]): Promise<void> {
  let pending = batch;
  while (pending.length > 0) {
    let { bytesWritten } = await fh.writev(pending);
    // writev may stop short; carry on from the first byte it did not take.
    const rest: Buffer[] = [];
    for (const buf of pending) {
      if (bytesWritten >= buf.length) bytesWritten -= buf.length;
      else {
        rest.push(bytesWritten > 0 ? buf.subarray(bytesWritten) : buf);
        bytesWritten = 0;
      }
    }
    pending = rest;
  }
}

/** Makes a rename or unlink in `dir` durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FileStore implements ImageStore {
  readonly id: string;
  readonly capabilities = { readRange: true, localPath: true } as const;
  readonly dir: string;
  private readonly partialDir: string;

  constructor(dir: string, opts: { id?: string } = {}) {
    this.dir = resolve(dir);
    this.partialDir = join(this.dir, PARTIAL_DIR);
    this.id = opts.id ?? 'file';
  }

  async write(imageId: string, data: NodeJS.ReadableStream, opts: { maxBytes: number; signal?: AbortSignal }): Promise<StoreWriteResult> {
    const path = join(this.dir, checkImageId(imageId));
    await mkdir(this.partialDir, { recursive: true, mode: 0o700 });
    const partial = join(this.partialDir, `${imageId}.${randomUUID()}`);
    const fh = await open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    let closed = false;
    try {
      const digest = await ingest(data, opts, (batch) => writeAll(fh, batch));
      await fh.sync();
      closed = true;
      await fh.close();
      await rename(partial, path);
      await syncDir(this.dir);
      return { location: SCHEME + path, ...digest };
    } catch (e) {
      if (!closed) await fh.close().catch(() => {});
      await rm(partial, { force: true });
      if (errno(e) === 'ENOSPC' || errno(e) === 'EDQUOT') throw new StoreFullError(this.id, e);
      throw e;
    }
  }

  async read(location: string, range?: { start: number; end: number }): Promise<{ stream: NodeJS.ReadableStream; size: number }> {
    const path = this.pathOf(location);
    let fh: FileHandle;
    try {
      // O_NOFOLLOW: a symlink planted in the store directory is not an image.
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if (errno(e) === 'ENOENT') throw new StoreNotFoundError(location);
      if (errno(e) === 'ELOOP') throw new StoreLocationError(location, 'not a regular file');
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new StoreLocationError(location, 'not a regular file');
      if (range) checkRange(range, st.size);
      const stream = fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: READ_CHUNK_BYTES });
      return { stream, size: st.size };
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  localPath(location: string): string {
    return this.pathOf(location);
  }

  async delete(location: string): Promise<void> {
    try {
      await unlink(this.pathOf(location));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
  }

  /**
   * Removes temporary files a killed process left behind; call at service start.
   * Files touched within `olderThanMs` are kept: another process sharing the
   * directory may be writing them. Returns how many were removed.
   */
  async removePartials(olderThanMs = DEFAULT_PARTIAL_AGE_MS): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.partialDir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return 0;
      throw e;
    }
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      const path = join(this.partialDir, name);
      const st = await stat(path).catch(() => undefined);
      if (st && st.mtimeMs <= cutoff) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** The file behind a location this store made; anything else (another directory, `..`, a temporary file) is refused. */
  private pathOf(location: string): string {
    if (!location.startsWith(SCHEME)) throw new StoreLocationError(location, `not a ${SCHEME} location`);
    const path = location.slice(SCHEME.length);
    if (!isAbsolute(path) || resolve(path) !== path || dirname(path) !== this.dir || !isImageId(basename(path))) {
      throw new StoreLocationError(location, `not an image of the ${this.id} store`);
    }
    return path;
  }
}
