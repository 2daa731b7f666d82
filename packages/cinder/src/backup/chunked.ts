import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { deflate, inflate } from 'node:zlib';
import type { SwiftClient } from '@onestack/core/swift-client.ts';

/** What the chunked driver asks of Swift (upstream's swiftclient Connection with preauthurl/preauthtoken). */
export type ObjectStore = Pick<SwiftClient, 'ensureContainer' | 'put' | 'getBytes' | 'delete' | 'list'>;

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);

/** upstream's ChunkedBackupDriver.DRIVER_VERSION: restores refuse other layouts. */
export const DRIVER_VERSION = '1.0.0';

export interface ChunkOptions {
  /** backup_swift_object_size: bytes per object of a full backup. */
  chunkSize: number;
  /** backup_swift_block_size: bytes per sha256 (the unit incrementals compare). */
  blockSize: number;
}

/** Where one backup's objects are: service_metadata is the prefix of every name. */
export interface BackupLocation {
  container: string;
  prefix: string;
}

export interface BackupDescription {
  backup_id: string;
  volume_id: string;
  backup_name: string | null;
  backup_description: string | null;
  created_at: string;
  parent_id: string | null;
}

interface ObjectEntry {
  offset: number;
  length: number;
  compression: 'zlib' | 'none';
  md5: string;
}

/** Names as upstream's swift driver makes them: volume_<id>/<UTC timestamp>/az_<az>_backup_<id>. */
export function objectPrefix(o: { volumeId: string; backupId: string; az: string; now: Date }): string {
  const stamp = o.now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `volume_${o.volumeId}/${stamp}/az_${o.az}_backup_${o.backupId}`;
}

const metadataName = (p: string) => `${p}_metadata`;
const sha256Name = (p: string) => `${p}_sha256file`;

export async function readSha256s(store: ObjectStore, loc: BackupLocation, blockSize: number): Promise<string[]> {
  const file = JSON.parse((await store.getBytes(loc.container, sha256Name(loc.prefix))).toString('utf8')) as { chunk_size: number; sha256s: string[] };
  if (file.chunk_size !== blockSize) {
    throw new Error(`Hash block size has changed since the last backup. New hash block size: ${blockSize}. Old hash block size: ${file.chunk_size}. Do a full backup.`);
  }
  return file.sha256s;
}

/**
 * Upstream's ChunkedBackupDriver.backup: the raw volume image in chunkSize
 * pieces, a sha256 per blockSize; a full backup stores every chunk, an
 * incremental (parentShas given) only the runs of blocks whose sha256 differs
 * from the parent's. Each object zlib-compressed unless that does not shrink it.
 * Answers the number of objects written (the metadata and sha256 files included).
 */
export async function backupFile(store: ObjectStore, loc: BackupLocation, path: string, o: ChunkOptions & { desc: BackupDescription; parentShas?: string[]; volumeMeta?: unknown }): Promise<number> {
  if (o.chunkSize % o.blockSize) throw new Error('Chunk size is not multiple of block size for creating hash.');
  await store.ensureContainer(loc.container);
  const objects: Record<string, ObjectEntry>[] = [];
  const shas: string[] = [];
  const put = async (data: Buffer, offset: number) => {
    const name = `${loc.prefix}-${String(objects.length + 1).padStart(5, '0')}`;
    const compressed = await deflateAsync(data);
    const useZlib = compressed.length < data.length;
    await store.put(loc.container, name, useZlib ? compressed : data);
    objects.push({ [name]: { offset, length: data.length, compression: useZlib ? 'zlib' : 'none', md5: createHash('md5').update(data).digest('hex') } });
  };
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(o.chunkSize);
    for (let offset = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, o.chunkSize, offset);
      if (bytesRead === 0) break;
      const data = buf.subarray(0, bytesRead);
      const first = shas.length;
      for (let b = 0; b < bytesRead; b += o.blockSize) shas.push(createHash('sha256').update(data.subarray(b, b + o.blockSize)).digest('hex'));
      // put() is done with the bytes (compressed, stored, hashed) before the next read reuses buf: no copy.
      if (!o.parentShas) await put(data, offset);
      else for (const [start, end] of changedRuns(shas.slice(first), o.parentShas.slice(first))) await put(data.subarray(start * o.blockSize, Math.min(end * o.blockSize, bytesRead)), offset + start * o.blockSize);
      offset += bytesRead;
    }
  } finally {
    await fh.close();
  }
  const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 2), 'utf8');
  await store.put(loc.container, sha256Name(loc.prefix), json({ version: DRIVER_VERSION, ...pick(o.desc), chunk_size: o.blockSize, sha256s: shas }));
  await store.put(loc.container, metadataName(loc.prefix), json({ version: DRIVER_VERSION, ...pick(o.desc), objects, parent_id: o.desc.parent_id, volume_meta: o.volumeMeta ?? null }));
  return objects.length + 2;
}

function pick(d: BackupDescription) {
  return { backup_id: d.backup_id, volume_id: d.volume_id, backup_name: d.backup_name, backup_description: d.backup_description, created_at: d.created_at };
}

/** [first, end) block index runs where the sha256s differ (a block the parent lacks differs). */
function changedRuns(now: string[], before: string[]): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= now.length; i++) {
    const changed = i < now.length && now[i] !== before[i];
    if (changed && start < 0) start = i;
    if (!changed && start >= 0) {
      runs.push([start, i]);
      start = -1;
    }
  }
  return runs;
}

/**
 * Upstream's restore: the full backup first, then each incremental of the chain
 * in order, every object written at its offset into a raw file (which the
 * caller has just made, sparse, of the volume's size: as upstream's
 * _write_nonzero for a new volume, the full backup's zeroes are left as holes).
 */
export async function restoreChain(store: ObjectStore, chain: BackupLocation[], path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (const [layer, loc] of chain.entries()) {
      const meta = JSON.parse((await store.getBytes(loc.container, metadataName(loc.prefix))).toString('utf8')) as { version: string; objects: Record<string, ObjectEntry>[] };
      if (meta.version !== DRIVER_VERSION) throw new Error(`No support to restore backup version ${meta.version}`);
      for (const entry of meta.objects) {
        const [name, obj] = Object.entries(entry)[0];
        const body = await store.getBytes(loc.container, name);
        const data = obj.compression === 'zlib' ? await inflateAsync(body) : body;
        // Length only, as upstream: Swift's ETag already vouched for each object's bytes when it was written.
        if (data.length !== obj.length) throw new Error(`object ${name} of the backup is corrupt`);
        if (layer === 0) await writeNonZero(fh, data, obj.offset);
        else await fh.write(data, 0, data.length, obj.offset);
      }
    }
  } finally {
    await fh.close();
  }
}

const ZERO_RUN = 1024 * 1024;
const zeroes = Buffer.alloc(ZERO_RUN);

async function writeNonZero(fh: FileHandle, data: Buffer, offset: number): Promise<void> {
  for (let at = 0; at < data.length; at += ZERO_RUN) {
    const piece = data.subarray(at, at + ZERO_RUN);
    if (piece.equals(zeroes.subarray(0, piece.length))) continue;
    await fh.write(piece, 0, piece.length, offset + at);
  }
}

/** Every object of one backup (upstream's delete_backup lists by prefix, so half-written backups go too). */
export async function deleteObjects(store: ObjectStore, loc: BackupLocation): Promise<void> {
  for (const name of await store.list(loc.container, loc.prefix)) await store.delete(loc.container, name);
}
