import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * A device as upstream's ring file stores it; key names are upstream's so a
 * node dict can be handed to the backend protocol (and to upstream) unchanged.
 */
export interface RingDevice {
  id: number;
  region: number;
  zone: number;
  ip: string;
  port: number;
  replication_ip: string;
  replication_port: number;
  device: string;
  weight: number;
  meta: string;
  [extra: string]: unknown;
}

/** What a ring.gz holds: the devices (holes are null) and the replica → partition → device id table. */
export interface RingData {
  devs: (RingDevice | null)[];
  replica2part2dev: Uint16Array[];
  partShift: number;
  version?: number;
  nextPartPower?: number;
}

/** The partition's slot when no device holds it (upstream's NONE_DEV for 2-byte ids). */
export const NONE_DEV = 0xffff;

const MAGIC = Buffer.from('R1NG', 'ascii');
const FORMAT_VERSION = 1;

/** Upstream's replication_ip/port default to the data ip/port when an old ring lacks them. */
export function normalizeDevice(dev: Record<string, unknown>): RingDevice {
  const d = { ...dev } as RingDevice;
  d.region ??= 1;
  d.meta ??= '';
  if (d.ip !== undefined) d.replication_ip ??= d.ip;
  if (d.port !== undefined) d.replication_port ??= d.port;
  return d;
}

/** The number of partitions assigned, counting a short last row as a fraction (upstream's fractional replicas). */
export function replicaCountOf(r2p2d: Uint16Array[]): number {
  if (!r2p2d.length) return 0;
  return r2p2d.length - 1 + r2p2d[r2p2d.length - 1].length / r2p2d[0].length;
}

/**
 * Parses a ring file in upstream's v1 format: gzip of 'R1NG', a big-endian
 * u16 version (1), a big-endian u32 length, that much JSON metadata, then
 * replica_count arrays of 2^part_power unsigned 16-bit device ids in the
 * JSON's `byteorder`.
 */
export function parseRing(gz: Buffer): RingData {
  const raw = gunzipSync(gz);
  if (raw.length < 10 || !raw.subarray(0, 4).equals(MAGIC)) throw new Error('not a ring file (pickled rings from before Swift 1.7 are not supported)');
  const version = raw.readUInt16BE(4);
  if (version !== FORMAT_VERSION) throw new Error(`unknown ring format version ${version}`);
  const jsonLen = raw.readUInt32BE(6);
  const meta = JSON.parse(raw.subarray(10, 10 + jsonLen).toString('utf8')) as {
    devs: (Record<string, unknown> | null)[];
    part_shift: number;
    replica_count: number;
    byteorder?: string;
    version?: number;
    next_part_power?: number;
  };
  const parts = 2 ** (32 - meta.part_shift);
  const little = (meta.byteorder ?? 'little') === 'little';
  let off = 10 + jsonLen;
  const replica2part2dev: Uint16Array[] = [];
  for (let r = 0; r < meta.replica_count; r++) {
    // Upstream reads 2*parts bytes per row; a short final read makes a short row (fractional replicas).
    const n = Math.min(parts, Math.floor((raw.length - off) / 2));
    const row = new Uint16Array(n);
    for (let p = 0; p < n; p++) row[p] = little ? raw.readUInt16LE(off + 2 * p) : raw.readUInt16BE(off + 2 * p);
    off += 2 * n;
    replica2part2dev.push(row);
  }
  return {
    devs: meta.devs.map((d) => (d ? normalizeDevice(d) : null)),
    replica2part2dev,
    partShift: meta.part_shift,
    ...(meta.version !== undefined ? { version: meta.version } : {}),
    ...(meta.next_part_power != null ? { nextPartPower: meta.next_part_power } : {}),
  };
}

/** Python's json.dumps(sort_keys=True, ensure_ascii=True): sorted keys, ASCII only, so equal rings give equal bytes. */
function sortedAsciiJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]));
    return x;
  };
  return JSON.stringify(sort(v)).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function serializeRing(data: RingData): Buffer {
  const meta: Record<string, unknown> = {
    devs: data.devs,
    part_shift: data.partShift,
    replica_count: data.replica2part2dev.length,
    byteorder: 'little',
  };
  if (data.version !== undefined) meta.version = data.version;
  if (data.nextPartPower !== undefined) meta.next_part_power = data.nextPartPower;
  const json = Buffer.from(sortedAsciiJson(meta), 'ascii');
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head.writeUInt16BE(FORMAT_VERSION, 4);
  head.writeUInt32BE(json.length, 6);
  const rows = data.replica2part2dev.map((row) => {
    const b = Buffer.alloc(row.length * 2);
    for (let p = 0; p < row.length; p++) b.writeUInt16LE(row[p], 2 * p);
    return b;
  });
  return gzipSync(Buffer.concat([head, json, ...rows]));
}

export function readRingFile(path: string): RingData {
  return parseRing(readFileSync(path));
}

/** Written to a temp file, fsynced and renamed, so a server reloading on mtime never sees half a ring. */
export function writeRingFile(path: string, data: RingData): void {
  writeFileAtomic(path, serializeRing(data), 0o644);
}

export function writeFileAtomic(path: string, body: Buffer | string, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof body === 'string' ? Buffer.from(body) : body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
