/**
 * Upstream's replicated-policy disk layout and file lifecycle:
 *
 *   <devices>/<device>/objects[-<policy>]/<partition>/<suffix>/<hash>/<timestamp>.data|.meta|.ts
 *   <devices>/<device>/objects[-<policy>]/<partition>/hashes.json + hashes.invalid
 *   <devices>/<device>/async_pending[-<policy>]/<suffix>/<hash>-<timestamp>
 *   <devices>/<device>/tmp/…   (writes in progress; renamed into place)
 *   <devices>/<device>/quarantined/objects[-<policy>]/<hash>[-<n>]
 *
 * <hash> is hash_path(account, container, object), <suffix> its last three hex
 * digits. The newest .data or .ts in a hash dir decides whether the object
 * exists; a .meta newer than the .data carries the latest POSTed metadata.
 *
 * Hot-path I/O: only the calls that wait for the disk (fdatasync, fsync, large
 * writes, and creating the temp file, which waits for the ext4 journal while
 * other replicas' fsyncs commit) go through libuv's threadpool; the cheap
 * metadata calls (readdir, open, small writes, mkdir, rename, unlink, close)
 * are synchronous, as upstream's object server makes them. Each threadpool
 * round trip costs two thread wake-ups and a promise; on a busy 2-core host
 * that hand-off, not the syscall, dominated a small PUT (bench/swift/README.md
 * has the figures).
 */
import { appendFileSync, closeSync, constants, fdatasync, fsync, mkdirSync, open, openSync, readdirSync, renameSync, rmdirSync, unlinkSync, writev, writevSync } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { encodeTrailer, type ObjectMetadata } from './object-file.ts';
import { timestampSeconds } from './timestamp.ts';

export const RECLAIM_AGE_S = 7 * 24 * 3600;

export function policySuffix(policy: number): string {
  return policy ? `-${policy}` : '';
}

export function objectsDirName(policy: number): string {
  return `objects${policySuffix(policy)}`;
}

export function asyncDirName(policy: number): string {
  return `async_pending${policySuffix(policy)}`;
}

export interface HashLocation {
  devicePath: string;
  policy: number;
  partition: string;
  hash: string;
  suffix: string;
  partitionDir: string;
  suffixDir: string;
  hashDir: string;
}

export function hashLocation(devicePath: string, policy: number, partition: string, hash: string): HashLocation {
  const suffix = hash.slice(-3);
  const partitionDir = join(devicePath, objectsDirName(policy), partition);
  const suffixDir = join(partitionDir, suffix);
  return { devicePath, policy, partition, hash, suffix, partitionDir, suffixDir, hashDir: join(suffixDir, hash) };
}

export interface OnDiskFile {
  name: string;
  timestamp: string;
  ext: '.data' | '.meta' | '.ts';
}

export interface OnDiskState {
  data?: OnDiskFile;
  meta?: OnDiskFile;
  ts?: OnDiskFile;
  /** Files that no longer affect the object's state. */
  obsolete: string[];
}

export function parseFileName(name: string): OnDiskFile | undefined {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const ext = name.slice(dot);
  if (ext !== '.data' && ext !== '.meta' && ext !== '.ts') return undefined;
  return { name, timestamp: name.slice(0, dot), ext };
}

/**
 * Upstream's get_ondisk_files for replicated policies: newest first, the first
 * .data or .ts wins; .meta files count only when newer than the winning .data.
 * Tombstones older than reclaim age become obsolete too.
 */
export function classifyFiles(names: string[], nowS = Date.now() / 1000, reclaimAgeS = RECLAIM_AGE_S): OnDiskState {
  const files = names.map(parseFileName).filter((f): f is OnDiskFile => !!f);
  // Internal timestamps sort lexically; at one timestamp upstream prefers .ts over .data over .meta.
  const rank = { '.ts': 0, '.data': 1, '.meta': 2 } as const;
  files.sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : rank[a.ext] - rank[b.ext]));
  const state: OnDiskState = { obsolete: [] };
  for (const f of files) {
    if (state.data || state.ts) {
      state.obsolete.push(f.name);
      continue;
    }
    if (f.ext === '.meta') {
      if (state.meta) state.obsolete.push(f.name);
      else state.meta = f;
    } else if (f.ext === '.data') {
      state.data = f;
    } else {
      state.ts = f;
    }
  }
  if (state.ts) {
    if (state.meta) {
      state.obsolete.push(state.meta.name);
      state.meta = undefined;
    }
    if (nowS - timestampSeconds(state.ts.timestamp) > reclaimAgeS) {
      state.obsolete.push(state.ts.name);
      state.ts = undefined;
    }
  } else if (!state.data && state.meta) {
    // A .meta without any .data is useless (upstream removes it as well).
    state.obsolete.push(state.meta.name);
    state.meta = undefined;
  }
  return state;
}

export async function listHashDir(hashDir: string): Promise<string[]> {
  return listHashDirSync(hashDir);
}

function listHashDirSync(hashDir: string): string[] {
  try {
    return readdirSync(hashDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

export async function readState(hashDir: string): Promise<OnDiskState> {
  return classifyFiles(await listHashDir(hashDir));
}

/** Removes obsolete files, and the hash dir once empty. Failures are harmless: the next writer or the replicator retries. */
export async function cleanupHashDir(hashDir: string): Promise<OnDiskState> {
  const names = listHashDirSync(hashDir);
  const state = classifyFiles(names);
  // Freeing a large .data file's extents takes ext4 hundreds of ms: on the event loop that stalled
  // every other request's stream, so those go through the threadpool, side by side.
  const bodies = state.obsolete.filter((n) => n.endsWith('.data'));
  for (const n of state.obsolete) if (!n.endsWith('.data')) ignoreErrors(() => unlinkSync(join(hashDir, n)));
  await Promise.all(bodies.map((n) => unlink(join(hashDir, n)).catch(() => undefined)));
  if (!state.data && !state.ts && !state.meta && names.length === state.obsolete.length && names.length) {
    ignoreErrors(() => rmdirSync(hashDir));
  }
  return state;
}

function ignoreErrors(f: () => void): void {
  try {
    f();
  } catch {
    // harmless: see the callers
  }
}

/** Marks a suffix's hash stale for REPLICATE (upstream's hashes.invalid). */
export async function invalidateSuffix(loc: HashLocation): Promise<void> {
  ignoreErrors(() => appendFileSync(join(loc.partitionDir, 'hashes.invalid'), `${loc.suffix}\n`));
}

const fsyncFd = promisify(fsync);
const fdatasyncFd = promisify(fdatasync);
const writevFd = promisify(writev);
const openFile = promisify(open);

export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

let tmpSeq = 0;
export function tmpName(devicePath: string): string {
  return join(devicePath, 'tmp', `${process.pid}.${Date.now().toString(36)}.${(++tmpSeq).toString(36)}`);
}

const knownTmpDirs = new Set<string>();
function ensureTmpDir(devicePath: string): void {
  if (knownTmpDirs.has(devicePath)) return;
  mkdirSync(join(devicePath, 'tmp'), { recursive: true });
  knownTmpDirs.add(devicePath);
}

/**
 * Renames a completed, fsynced temp file into the hash dir and makes the rename
 * durable: the hash dir and every directory this call created are fsynced
 * (upstream's renamer(fsync=True)).
 */
export async function publish(tmp: string, loc: HashLocation, fileName: string): Promise<void> {
  const created = mkdirSync(loc.hashDir, { recursive: true });
  renameSync(tmp, join(loc.hashDir, fileName));
  const dirs = [loc.hashDir];
  if (created) {
    // Every directory from the first one created down to the hash dir is new: their parents need an fsync too.
    for (let d = loc.hashDir; d.length >= created.length; d = d.slice(0, d.lastIndexOf('/'))) {
      dirs.push(d.slice(0, d.lastIndexOf('/')));
    }
  }
  await Promise.all([...new Set(dirs)].map(fsyncDir));
}

/**
 * A write in progress: the body goes to a temp file under <device>/tmp in large
 * writes (small ones synchronously, larger ones through the threadpool so the
 * event loop never waits on dirty-page throttling), then the trailer,
 * fdatasync, and publish.
 */
export class ObjectWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  written = 0;
  private closed = false;
  private unsynced = 0;
  private syncing?: Promise<void>;
  private syncError?: unknown;
  private writing?: Promise<void>;
  private writeError?: unknown;
  private constructor(
    private readonly fd: number,
    readonly tmpPath: string,
  ) {}

  static async create(devicePath: string): Promise<ObjectWriter> {
    ensureTmpDir(devicePath);
    const path = tmpName(devicePath);
    return new ObjectWriter(await openFile(path, 'wx', 0o644), path);
  }

  /** Queues a chunk; only a full MiB returns a promise (the caller awaits it as backpressure). */
  write(chunk: Buffer): Promise<void> | undefined {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.written += chunk.length;
    return this.pendingBytes >= 1 << 20 ? this.flush() : undefined;
  }

  private async flush(): Promise<void> {
    if (!this.pending.length) return;
    // The socket's chunks go to the file as they are (writev): a Buffer.concat per MiB was a copy, and a
    // fresh 1 MiB allocation whose page faults and GC pressure cost more than the copy.
    const bufs = this.pending;
    const bytes = this.pendingBytes === Infinity ? bufs.reduce((n, b) => n + b.length, 0) : this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    // One large write stays in flight while the next MiB is read from the socket; writes append at the
    // file offset, so each waits for the one before.
    await this.writing;
    if (this.writeError) throw this.writeError;
    if (bytes <= SYNC_WRITE_LIMIT) {
      writeAllSync(this.fd, bufs);
      return;
    }
    this.writing = this.writeAll(bufs).catch((e: unknown) => {
      this.writeError ??= e;
    });
    this.unsynced += bytes;
    if (this.unsynced >= BACKGROUND_SYNC_BYTES && !this.syncing) {
      // Start writeback while the body still streams in, so the final fdatasync has only the tail to flush
      // (upstream's bytes_per_sync). Its error is kept: the kernel reports a writeback error to one fsync only.
      this.unsynced = 0;
      this.syncing = fdatasyncFd(this.fd).then(
        () => {
          this.syncing = undefined;
        },
        (e: unknown) => {
          this.syncing = undefined;
          this.syncError ??= e;
        },
      );
    }
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    for (let rest = bufs; rest.length; ) rest = remainder(rest, (await writevFd(this.fd, rest)).bytesWritten);
  }

  private closeFd(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  /** Appends the trailer, makes the file durable and moves it into the hash dir as <timestamp><ext>. */
  async commit(meta: ObjectMetadata, loc: HashLocation, fileName: string): Promise<void> {
    this.pending.push(encodeTrailer(meta));
    this.pendingBytes = Infinity;
    await this.flush();
    await this.writing;
    if (this.writeError) throw this.writeError;
    await this.syncing;
    if (this.syncError) throw this.syncError;
    await fdatasyncFd(this.fd);
    this.closeFd();
    await publish(this.tmpPath, loc, fileName);
  }

  async abort(): Promise<void> {
    await this.writing;
    await this.syncing;
    ignoreErrors(() => this.closeFd());
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

/** What is left of bufs after a short write of n bytes. */
function remainder(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
  if (i === bufs.length) return [];
  return n ? [bufs[i].subarray(n), ...bufs.slice(i + 1)] : bufs.slice(i);
}

function writeAllSync(fd: number, bufs: Buffer[]): void {
  for (let rest = bufs; rest.length; ) rest = remainder(rest, writevSync(fd, rest));
}

/** A large body starts an fdatasync in the background after every this many bytes. */
const BACKGROUND_SYNC_BYTES = 8 * 1024 * 1024;

/** Writes up to this size go straight to the page cache from the event loop. */
const SYNC_WRITE_LIMIT = 256 * 1024;

/** Writes a bodiless file (.meta or .ts) with the same durability as a .data. */
export async function writeMarker(loc: HashLocation, fileName: string, meta: ObjectMetadata): Promise<void> {
  const w = await ObjectWriter.create(loc.devicePath);
  try {
    await w.commit(meta, loc, fileName);
  } catch (e) {
    await w.abort();
    throw e;
  }
}

let quarantineSeq = 0;
/** Moves a hash dir aside so it is no longer served; replication brings a good copy back. */
export async function quarantineHashDir(loc: HashLocation): Promise<string> {
  const dir = join(loc.devicePath, 'quarantined', objectsDirName(loc.policy));
  await mkdir(dir, { recursive: true });
  const target = join(dir, `${loc.hash}-${Date.now().toString(36)}${++quarantineSeq}`);
  await rename(loc.hashDir, target);
  await invalidateSuffix(loc);
  return target;
}
