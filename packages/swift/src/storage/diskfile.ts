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
 */
import { constants } from 'node:fs';
import { appendFile, mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
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
  try {
    return await readdir(hashDir);
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
  const names = await listHashDir(hashDir);
  const state = classifyFiles(names);
  await Promise.all(state.obsolete.map((n) => unlink(join(hashDir, n)).catch(() => undefined)));
  if (!state.data && !state.ts && !state.meta && names.length === state.obsolete.length && names.length) {
    await rm(hashDir, { recursive: false }).catch(() => undefined);
  }
  return state;
}

/** Marks a suffix's hash stale for REPLICATE (upstream's hashes.invalid). */
export async function invalidateSuffix(loc: HashLocation): Promise<void> {
  await appendFile(join(loc.partitionDir, 'hashes.invalid'), `${loc.suffix}\n`).catch(() => undefined);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

let tmpSeq = 0;
export function tmpName(devicePath: string): string {
  return join(devicePath, 'tmp', `${process.pid}.${Date.now().toString(36)}.${(++tmpSeq).toString(36)}`);
}

const knownTmpDirs = new Set<string>();
async function ensureTmpDir(devicePath: string): Promise<void> {
  if (knownTmpDirs.has(devicePath)) return;
  await mkdir(join(devicePath, 'tmp'), { recursive: true });
  knownTmpDirs.add(devicePath);
}

/**
 * Renames a completed, fsynced temp file into the hash dir and makes the rename
 * durable: the hash dir and every directory this call created are fsynced
 * (upstream's renamer(fsync=True)).
 */
export async function publish(tmp: string, loc: HashLocation, fileName: string): Promise<void> {
  const created = await mkdir(loc.hashDir, { recursive: true });
  await rename(tmp, join(loc.hashDir, fileName));
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
 * writes, then the trailer, fdatasync, and publish.
 */
export class ObjectWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  written = 0;
  private constructor(
    private readonly fh: import('node:fs/promises').FileHandle,
    readonly tmpPath: string,
  ) {}

  static async create(devicePath: string): Promise<ObjectWriter> {
    await ensureTmpDir(devicePath);
    const path = tmpName(devicePath);
    return new ObjectWriter(await open(path, 'wx', 0o644), path);
  }

  async write(chunk: Buffer): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.written += chunk.length;
    if (this.pendingBytes >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.pending.length) return;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const buf = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
    for (let off = 0; off < buf.length; ) off += (await this.fh.write(buf, off, buf.length - off, null)).bytesWritten;
  }

  /** Appends the trailer, makes the file durable and moves it into the hash dir as <timestamp><ext>. */
  async commit(meta: ObjectMetadata, loc: HashLocation, fileName: string): Promise<void> {
    this.pending.push(encodeTrailer(meta));
    this.pendingBytes = Infinity;
    await this.flush();
    await this.fh.datasync();
    await this.fh.close();
    await publish(this.tmpPath, loc, fileName);
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

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
