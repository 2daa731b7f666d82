/**
 * The on-disk format of one object file (.data, .meta, .ts).
 *
 * Upstream keeps an object's metadata in xattrs; Node has none, so each file
 * carries its metadata in a trailer after the body:
 *
 *   <body bytes> <metadata: UTF-8 JSON object> <uint32 BE: JSON length> <8 bytes: "OSWOBJ1\n">
 *
 * A trailer (not a header) lets a PUT stream the body once and append the
 * metadata when the ETag is known. The file is written under <device>/tmp,
 * fsynced, then renamed into its hash directory, so one rename publishes body
 * and metadata together: a file without a valid trailer, or whose
 * Content-Length disagrees with its size, never was a completed write and is
 * quarantined. .meta and .ts files are a bare trailer (empty body). The whole
 * hash directory is self-contained, so replication can copy it file by file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export const MAGIC = Buffer.from('OSWOBJ1\n', 'latin1');
export const TRAILER_FIXED = 4 + MAGIC.length;

export type ObjectMetadata = Record<string, string>;

export class CorruptObjectFile extends Error {}

export function encodeTrailer(meta: ObjectMetadata): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const out = Buffer.allocUnsafe(json.length + TRAILER_FIXED);
  json.copy(out, 0);
  out.writeUInt32BE(json.length, json.length);
  MAGIC.copy(out, json.length + 4);
  return out;
}

/** Parses a trailer at the end of `tail`, which holds the file's last bytes. Returns the metadata and the trailer's total length. */
export function decodeTrailer(tail: Buffer, fileSize: number): { meta: ObjectMetadata; trailerLength: number } | { need: number } {
  if (tail.length < TRAILER_FIXED) throw new CorruptObjectFile('file too short for a metadata trailer');
  if (!tail.subarray(tail.length - MAGIC.length).equals(MAGIC)) throw new CorruptObjectFile('no metadata trailer');
  const jsonLen = tail.readUInt32BE(tail.length - TRAILER_FIXED);
  const trailerLength = jsonLen + TRAILER_FIXED;
  if (trailerLength > fileSize) throw new CorruptObjectFile('metadata trailer longer than the file');
  if (trailerLength > tail.length) return { need: trailerLength };
  let meta: unknown;
  try {
    meta = JSON.parse(tail.subarray(tail.length - trailerLength, tail.length - TRAILER_FIXED).toString('utf8'));
  } catch {
    throw new CorruptObjectFile('unparsable metadata');
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw new CorruptObjectFile('metadata is not an object');
  return { meta: meta as ObjectMetadata, trailerLength };
}

/** Bodies up to this size are read with the trailer in one read (the common small-object GET). */
export const WHOLE_READ_LIMIT = 64 * 1024;

export interface OpenedObjectFile {
  meta: ObjectMetadata;
  bodyLength: number;
  /** The whole body when the file was small enough to read at once. */
  body?: Buffer;
}

export async function readObjectFile(fh: FileHandle): Promise<OpenedObjectFile> {
  const { size } = await fh.stat();
  const first = Math.min(size, WHOLE_READ_LIMIT);
  const buf = Buffer.allocUnsafe(first);
  await readFully(fh, buf, size - first);
  let decoded = decodeTrailer(buf, size);
  let whole = first === size ? buf : undefined;
  if ('need' in decoded) {
    const tail = Buffer.allocUnsafe(decoded.need);
    await readFully(fh, tail, size - decoded.need);
    decoded = decodeTrailer(tail, size) as { meta: ObjectMetadata; trailerLength: number };
    whole = undefined;
  }
  const bodyLength = size - decoded.trailerLength;
  const declared = decoded.meta['Content-Length'];
  if (declared !== undefined && Number(declared) !== bodyLength) throw new CorruptObjectFile(`Content-Length ${declared} but body is ${bodyLength} bytes`);
  return { meta: decoded.meta, bodyLength, body: whole?.subarray(0, bodyLength) };
}

/**
 * A file of at most WHOLE_READ_LIMIT bytes read whole with synchronous calls
 * (a small GET: open, fstat, one read of a page-cached file cost less than the
 * threadpool round trips of the async path); undefined when the file is
 * larger (use readObjectFile) or gone.
 */
export function readSmallObjectFileSync(path: string): OpenedObjectFile | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const { size } = fstatSync(fd);
    if (size > WHOLE_READ_LIMIT) return undefined;
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; ) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) throw new CorruptObjectFile('short read');
      off += n;
    }
    const decoded = decodeTrailer(buf, size) as { meta: ObjectMetadata; trailerLength: number };
    const bodyLength = size - decoded.trailerLength;
    const declared = decoded.meta['Content-Length'];
    if (declared !== undefined && Number(declared) !== bodyLength) throw new CorruptObjectFile(`Content-Length ${declared} but body is ${bodyLength} bytes`);
    return { meta: decoded.meta, bodyLength, body: buf.subarray(0, bodyLength) };
  } finally {
    closeSync(fd);
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) throw new CorruptObjectFile('short read');
    off += bytesRead;
  }
}
