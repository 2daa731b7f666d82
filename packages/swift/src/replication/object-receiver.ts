/**
 * The receiving side of object replication (see transfer.ts for the wire
 * format): REPLICATE-LIST and REPLICATE-PUSH on the object server.
 */
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { cleanupHashDir, hashLocation, invalidateSuffix, objectsDirName, publish, tmpName } from '../storage/diskfile.ts';
import { HttpError, readBody, send, splitBackendPath } from '../storage/http-util.ts';
import { readObjectFile } from '../storage/object-file.ts';
import { devicePath, policyIndex } from '../storage/object-server.ts';
import { HASH_RE, parseFrameHeader, SUFFIX_RE, type SuffixListing } from './transfer.ts';

/** Live files of the given suffixes of one partition dir (cleaning up obsolete ones on the way). */
export async function listSuffixes(partitionDir: string, suffixes: readonly string[]): Promise<SuffixListing> {
  const out: SuffixListing = {};
  for (const suffix of suffixes) {
    if (!SUFFIX_RE.test(suffix)) continue;
    const suffixDir = join(partitionDir, suffix);
    const hashes = await readdir(suffixDir).catch(() => [] as string[]);
    const entry: Record<string, string[]> = {};
    for (const hash of hashes) {
      if (!HASH_RE.test(hash)) continue;
      const state = await cleanupHashDir(join(suffixDir, hash));
      const names = [state.data, state.meta, state.ts].filter((f) => !!f).map((f) => f!.name);
      if (names.length) entry[hash] = names;
    }
    out[suffix] = entry;
  }
  return out;
}

function locatePartition(devices: string, req: IncomingMessage) {
  const p = splitBackendPath(req.url ?? '/', 2, 2);
  const dev = devicePath(devices, p.device);
  const policy = policyIndex(req);
  return { dev, policy, partition: p.partition, partitionDir: join(dev, objectsDirName(policy), p.partition) };
}

export async function handleReplicateList(devices: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const where = locatePartition(devices, req);
  let suffixes: unknown;
  try {
    suffixes = JSON.parse((await readBody(req)).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body must be a JSON array of suffixes');
  }
  if (!Array.isArray(suffixes) || suffixes.some((s) => typeof s !== 'string')) throw new HttpError(400, 'body must be a JSON array of suffixes');
  send(res, 200, JSON.stringify(await listSuffixes(where.partitionDir, suffixes as string[])), { 'Content-Type': 'application/json' });
}

/** One file being received: a temp file under <device>/tmp until it is complete. */
class IncomingFile {
  remaining: number;
  private constructor(
    readonly fh: FileHandle,
    readonly tmp: string,
    readonly frame: ReturnType<typeof parseFrameHeader>,
  ) {
    this.remaining = frame.size;
  }

  static async open(devicePath: string, frame: ReturnType<typeof parseFrameHeader>): Promise<IncomingFile> {
    await mkdir(join(devicePath, 'tmp'), { recursive: true });
    const tmp = tmpName(devicePath);
    return new IncomingFile(await open(tmp, 'wx+', 0o644), tmp, frame);
  }

  async write(buf: Buffer): Promise<void> {
    for (let off = 0; off < buf.length; ) off += (await this.fh.write(buf, off, buf.length - off, null)).bytesWritten;
    this.remaining -= buf.length;
  }

  /** Checks the trailer (a torn or foreign file is refused), then makes the file durable and publishes it. */
  async commit(devPath: string, policy: number, partition: string): Promise<void> {
    await readObjectFile(this.fh);
    await this.fh.datasync();
    await this.fh.close();
    await publish(this.tmp, hashLocation(devPath, policy, partition, this.frame.hash), this.frame.name);
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.tmp).catch(() => undefined);
  }
}

export async function handleReplicatePush(devices: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const where = locatePartition(devices, req);
  const touched = new Map<string, string>(); // hashDir → suffix
  let written = 0;
  let pending: Buffer = Buffer.alloc(0);
  let file: IncomingFile | undefined;
  const finishFile = async () => {
    const f = file!;
    file = undefined;
    try {
      await f.commit(where.dev, where.policy, where.partition);
    } catch (e) {
      await f.abort();
      throw new HttpError(422, `refused ${f.frame.suffix}/${f.frame.hash}/${f.frame.name}: ${(e as Error).message}`);
    }
    touched.set(join(where.partitionDir, f.frame.suffix, f.frame.hash), f.frame.suffix);
    written++;
  };
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length) {
        if (file) {
          const take = Math.min(file.remaining, pending.length);
          await file.write(pending.subarray(0, take));
          pending = pending.subarray(take);
          if (file.remaining === 0) await finishFile();
          continue;
        }
        const nl = pending.indexOf(10);
        if (nl < 0) {
          if (pending.length > 4096) throw new HttpError(400, 'frame header too long');
          break;
        }
        let frame;
        try {
          frame = parseFrameHeader(pending.subarray(0, nl).toString('utf8'));
        } catch (e) {
          throw new HttpError(400, (e as Error).message);
        }
        pending = pending.subarray(nl + 1);
        file = await IncomingFile.open(where.dev, frame);
        if (frame.size === 0) await finishFile();
      }
    }
    if (file || pending.length) throw new HttpError(400, 'stream ended inside a frame');
  } finally {
    await file?.abort();
    // Whatever arrived is durable: fold it into the hash dirs and the suffix hashes.
    for (const [hashDir, suffix] of touched) {
      await cleanupHashDir(hashDir);
      await invalidateSuffix({ partitionDir: where.partitionDir, suffix } as Parameters<typeof invalidateSuffix>[0]);
    }
  }
  send(res, 200, JSON.stringify({ written }), { 'Content-Type': 'application/json' });
}
