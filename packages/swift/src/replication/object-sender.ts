/**
 * The sending side of object replication: asks a remote object server for
 * its suffix hashes and file listings, and streams the files it lacks
 * (wire format in transfer.ts).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RingDevice } from '../ring/ring-data.ts';
import { classifyFiles, hashLocation, quarantineHashDir } from '../storage/diskfile.ts';
import { backendRequest } from '../storage/http-util.ts';
import { CorruptObjectFile, readObjectFile } from '../storage/object-file.ts';
import type { SuffixHashes } from '../storage/suffix-hashes.ts';
import { LIST_VERB, PUSH_VERB, frameHeader, type SuffixListing } from './transfer.ts';

export interface SenderOptions {
  connTimeoutMs: number;
  nodeTimeoutMs: number;
  policy: number;
  logger?: Logger;
}

export class RemoteError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function hostOf(node: RingDevice): string {
  const ip = node.replication_ip ?? node.ip;
  return `${ip.includes(':') ? `[${ip}]` : ip}:${node.replication_port ?? node.port}`;
}

async function verbRequest(node: RingDevice, partition: number, verb: string, path: string, body: Buffer | undefined, o: SenderOptions) {
  const r = await backendRequest({
    host: hostOf(node),
    device: node.device,
    partition: String(partition),
    method: 'POST',
    path,
    headers: { 'X-Backend-Verb': verb, 'X-Backend-Server-Type': 'object', 'X-Backend-Storage-Policy-Index': String(o.policy), 'User-Agent': `object-replicator ${process.pid}` },
    body,
    connTimeoutMs: o.connTimeoutMs,
    nodeTimeoutMs: o.nodeTimeoutMs,
  });
  if (r.status !== 200) throw new RemoteError(r.status, `${verb} ${hostOf(node)}/${node.device}/${partition}${path}: ${r.status}`);
  return JSON.parse(r.body.toString('utf8')) as unknown;
}

/** REPLICATE: the remote's suffix hashes, recomputing `recalculate` first. */
export function remoteHashes(node: RingDevice, partition: number, recalculate: readonly string[], o: SenderOptions): Promise<SuffixHashes> {
  return verbRequest(node, partition, 'REPLICATE', recalculate.length ? `/${recalculate.join('-')}` : '', undefined, o) as Promise<SuffixHashes>;
}

export function remoteListing(node: RingDevice, partition: number, suffixes: readonly string[], o: SenderOptions): Promise<SuffixListing> {
  return verbRequest(node, partition, LIST_VERB, '', Buffer.from(JSON.stringify(suffixes)), o) as Promise<SuffixListing>;
}

export interface OutgoingFile {
  suffix: string;
  hash: string;
  name: string;
}

/** Local files the remote neither has nor has made obsolete by something newer. */
export function filesToSend(local: SuffixListing, remote: SuffixListing): OutgoingFile[] {
  const out: OutgoingFile[] = [];
  for (const [suffix, hashes] of Object.entries(local)) {
    for (const [hash, names] of Object.entries(hashes)) {
      const theirs = remote[suffix]?.[hash] ?? [];
      for (const name of names) {
        if (theirs.includes(name)) continue;
        if (classifyFiles([...theirs, name]).obsolete.includes(name)) continue;
        out.push({ suffix, hash, name });
      }
    }
  }
  return out;
}

/** Streams one local file into the request, checking a .data body against its ETag as it goes. */
async function streamFile(req: http.ClientRequest, partitionDir: string, f: OutgoingFile): Promise<number> {
  const fh = await open(join(partitionDir, f.suffix, f.hash, f.name), 'r');
  try {
    const { size } = await fh.stat();
    const opened = await readObjectFile(fh);
    const md5 = f.name.endsWith('.data') ? createHash('md5') : undefined;
    if (!(await write(req, frameHeader(f.suffix, f.hash, f.name, size)))) return 0;
    let pos = 0;
    for await (const chunk of fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      if (md5 && pos < opened.bodyLength) md5.update(chunk.subarray(0, Math.max(0, opened.bodyLength - pos)));
      pos += chunk.length;
      if (md5 && pos >= size && md5.digest('hex') !== opened.meta.ETag) throw new CorruptObjectFile(`ETag mismatch in ${f.hash}/${f.name}`);
      if (!(await write(req, chunk))) return 0;
    }
    return size;
  } finally {
    await fh.close();
  }
}

function write(req: http.ClientRequest, buf: Buffer): Promise<boolean> {
  if (req.destroyed) return Promise.resolve(false);
  if (req.write(buf)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      req.off('drain', onDrain);
      req.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    req.on('drain', onDrain);
    req.on('close', onClose);
  });
}

export interface PushResult {
  files: number;
  bytes: number;
}

/**
 * REPLICATE-PUSH of `files`. A local .data found corrupt on the way is
 * quarantined and the push aborted (the files before it stay delivered).
 */
export async function pushFiles(node: RingDevice, partition: number, partitionDir: string, devicePath: string, files: OutgoingFile[], o: SenderOptions): Promise<PushResult> {
  if (!files.length) return { files: 0, bytes: 0 };
  const host = hostOf(node);
  const colon = host.lastIndexOf(':');
  const req = http.request({
    hostname: host.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(host.slice(colon + 1)),
    method: 'POST',
    path: `/${encodeURIComponent(node.device)}/${partition}`,
    headers: { 'X-Backend-Verb': PUSH_VERB, 'X-Backend-Server-Type': 'object', 'X-Backend-Storage-Policy-Index': String(o.policy), 'Transfer-Encoding': 'chunked', 'User-Agent': `object-replicator ${process.pid}` },
  });
  req.setTimeout(o.connTimeoutMs + o.nodeTimeoutMs, () => req.destroy(new Error('node timeout')));
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  response.catch(() => undefined);
  let bytes = 0;
  for (const f of files) {
    try {
      bytes += await streamFile(req, partitionDir, f);
    } catch (e) {
      // Replaced or removed since the listing (open fails before a byte is sent): the next pass sees the new state.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      req.destroy();
      if (e instanceof CorruptObjectFile) {
        const to = await quarantineHashDir(hashLocation(devicePath, o.policy, String(partition), f.hash)).catch(() => undefined);
        o.logger?.warn({ hash: f.hash, quarantinedTo: to, reason: e.message }, 'replicator quarantined a corrupt object');
      }
      throw e;
    }
    if (req.destroyed) break;
  }
  req.end();
  const r = await response;
  if (r.status !== 200) throw new RemoteError(r.status, `${PUSH_VERB} ${host}/${node.device}/${partition}: ${r.status} ${r.body.slice(0, 200)}`);
  return { files: (JSON.parse(r.body) as { written: number }).written, bytes };
}
