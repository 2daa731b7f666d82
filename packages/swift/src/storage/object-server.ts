/**
 * The object server: upstream's backend protocol on
 * /<device>/<partition>/<account>/<container>/<object> (PUT GET HEAD POST
 * DELETE) and /<device>/<partition>[/<suffix>-<suffix>…] (REPLICATE, sent as
 * POST + X-Backend-Verb: REPLICATE: see backendVerb).
 * Disk layout in diskfile.ts, file format in object-file.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { md5ThreadFor } from '@onestack/core/md5-thread.ts';
import { hashPath, type HashPathConf } from '../common/hash-path.ts';
import { updateContainers, type LocalUpdate, type UpdateTarget } from './async-pending.ts';
import { cleanupHashDir, hashLocation, invalidateSuffix, ObjectWriter, objectsDirName, quarantineHashDir, readState, writeMarker, type HashLocation, type OnDiskState } from './diskfile.ts';
import { backendVerb, drain, header, HttpError, send, sendError, splitBackendPath, updateTargets, type BackendPath } from './http-util.ts';
import { CorruptObjectFile, readObjectFile, readSmallObjectFileSync, type ObjectMetadata } from './object-file.ts';
import { conditionalStatus, parseRange, type ByteRange } from './ranges.ts';
import { getSuffixHashes } from './suffix-hashes.ts';
import { colocatedReplicas, COLOCATED_HEADER, REPLICA_RESULTS_HEADER, type ReplicaTarget } from '../common/colocated.ts';
import { handleReplicateList, handleReplicatePush } from '../replication/object-receiver.ts';
import { LIST_VERB, PUSH_VERB } from '../replication/transfer.ts';
import { httpDateOf, InvalidTimestamp, normalizeTimestamp, normalOf, timestampSeconds } from './timestamp.ts';

export const MAX_FILE_SIZE = 5 * 1024 * 1024 * 1024 + 2;

/** Upstream's default allowed_headers: what a PUT or POST may set besides metadata. */
export const DEFAULT_ALLOWED_HEADERS = [
  'content-disposition',
  'content-encoding',
  'x-delete-at',
  'x-object-manifest',
  'x-static-large-object',
  'cache-control',
  'content-language',
  'expires',
  'x-robots-tag',
];

export interface ObjectServerOptions {
  /** Directory holding one directory per device. */
  devices: string;
  hashPath: HashPathConf;
  logger?: Logger;
  /** How long a PUT/DELETE waits for container updates before answering (upstream container_update_timeout, 1 s); they continue afterwards. */
  containerUpdateTimeoutMs?: number;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  allowedHeaders?: string[];
  maxFileSize?: number;
  /** Milliseconds since the epoch; injectable for X-Delete-At tests. */
  now?: () => number;
  /** A container server in this process (the all-in-one storage node) that takes row updates addressed to it without HTTP. */
  localContainerUpdate?: LocalUpdate;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Title-cases a header name the way swob stores metadata keys ("x-object-meta-color" → "X-Object-Meta-Color"). */
export function titleCase(name: string): string {
  return name
    .split('-')
    .map((p) => (p ? p[0].toUpperCase() + p.slice(1).toLowerCase() : p))
    .join('-');
}

function isUserOrSysMeta(lower: string): boolean {
  return lower.startsWith('x-object-meta-') || lower.startsWith('x-object-sysmeta-') || lower.startsWith('x-object-transient-sysmeta-');
}

export function requireTimestamp(req: IncomingMessage): string {
  return timestampOf(header(req, 'x-timestamp'));
}

/** An X-Timestamp header's value, normalized; 400 when missing or malformed. */
export function timestampOf(raw: string | undefined): string {
  if (!raw) throw new HttpError(400, 'Missing timestamp');
  try {
    return normalizeTimestamp(raw);
  } catch (e) {
    if (e instanceof InvalidTimestamp) throw new HttpError(400, `X-Timestamp should be a UNIX timestamp float value; was ${JSON.stringify(raw)}`);
    throw e;
  }
}

export function policyIndex(req: IncomingMessage): number {
  return policyOf(header(req, 'x-backend-storage-policy-index'));
}

/** An X-Backend-Storage-Policy-Index header's value (0 when absent); 400 when not a number. */
export function policyOf(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0;
  if (!/^\d+$/.test(raw.trim())) throw new HttpError(400, `Invalid X-Backend-Storage-Policy-Index ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** mount_check is off: a device is usable when its directory exists (else 507, as upstream). */
export function devicePath(devices: string, device: string): string {
  const p = join(devices, device);
  let ok = false;
  try {
    ok = statSync(p).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new HttpError(507, `<html><h1>Insufficient Storage</h1><p>There was not enough space to save the resource. Drive: ${device}</p></html>`);
  return p;
}

interface OpenObject {
  state: OnDiskState;
  /** Data file metadata merged with the newest .meta (upstream's rules). */
  meta: ObjectMetadata;
  dataTimestamp: string;
  bodyLength: number;
  body?: Buffer;
  /** Open only for a body too large to have been read whole. */
  fh?: import('node:fs/promises').FileHandle;
}

/** Keys of the .data metadata that a .meta cannot replace (upstream RESERVED_DATAFILE_META + DATAFILE_SYSTEM_META + object sysmeta). */
function keepFromData(key: string): boolean {
  const k = key.toLowerCase();
  return k === 'content-length' || k === 'etag' || k === 'deleted' || k === 'name' || k === 'x-static-large-object' || k.startsWith('x-object-sysmeta-');
}

export function mergeMeta(data: ObjectMetadata, meta: ObjectMetadata | undefined): ObjectMetadata {
  if (!meta) return data;
  const out: ObjectMetadata = { ...meta };
  for (const [k, v] of Object.entries(data)) if (keepFromData(k)) out[k] = v;
  if (!('Content-Type' in meta) && data['Content-Type'] !== undefined) out['Content-Type'] = data['Content-Type'];
  return out;
}

/**
 * Bodies from this size (or of unknown length) are hashed on the md5 thread: one
 * storage node takes every replica's socket reads, writes and md5s, and md5 alone
 * was half of its main thread's CPU per MiB; below it the thread's round trip
 * costs more than the hash.
 */
const THREAD_MD5_BYTES = 4 * 1024 * 1024;

interface BodyHash {
  /** A promise only when the md5 thread is too far behind (backpressure). */
  update(chunk: Buffer): Promise<void> | undefined;
  digest(): Promise<string>;
  drop(): void;
}

function bodyHash(contentLength: number | undefined): BodyHash {
  if (contentLength !== undefined && contentLength < THREAD_MD5_BYTES) {
    const h = createHash('md5');
    return { update: (c) => void h.update(c), digest: async () => h.digest('hex'), drop: () => undefined };
  }
  const thread = md5ThreadFor();
  const job = thread.open();
  return { update: (c) => thread.update(job, c), digest: () => thread.digest(job), drop: () => thread.drop(job) };
}

interface ContainerTargetHeaders {
  host?: string;
  device?: string;
  partition?: string;
}

interface PutReplica {
  target: ReplicaTarget;
  a?: { account: string; container: string; object: string; policy: number; partition: string; loc: HashLocation };
  writer?: ObjectWriter;
  /** 0 while the replica is still being written; its answer once decided. */
  status: number;
  headers: Record<string, string>;
}

function containerTargetsOf(req: IncomingMessage): ContainerTargetHeaders {
  return { host: header(req, 'x-container-host'), device: header(req, 'x-container-device'), partition: header(req, 'x-container-partition') };
}

/** The co-located replicas a grouped PUT names besides its path's device; 400 when malformed. */
function parseColocated(raw: string | undefined): ReplicaTarget[] {
  const list = colocatedReplicas(raw);
  if (!list) throw new HttpError(400, `Invalid ${COLOCATED_HEADER}`);
  return list;
}

function replicaError(r: PutReplica): HttpError {
  return new HttpError(r.status, '', r.headers);
}

/** Each replica's answer, in the order the request named them: [{device, status, timestamp?}]. */
function resultsHeader(replicas: PutReplica[]): string {
  return JSON.stringify(replicas.map((r) => ({ device: r.target.device, status: r.status || 500, ...(r.headers['X-Backend-Timestamp'] ? { timestamp: r.headers['X-Backend-Timestamp'] } : {}) })));
}

/** The container row a PUT sends: SLO and others report the manifest's logical size/etag (upstream X-Backend-Container-Update-Override-*). */
function rowUpdate(req: IncomingMessage, meta: ObjectMetadata, contentType: string, ts: string, etag: string): Record<string, string> {
  const up: Record<string, string> = {
    'x-size': meta['Content-Length'],
    'x-content-type': contentType,
    'x-timestamp': ts,
    'x-etag': etag,
    'x-content-type-timestamp': ts,
    'x-meta-timestamp': ts,
  };
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith('x-backend-container-update-override-') && typeof v === 'string') up[`x-${k.slice('x-backend-container-update-override-'.length)}`] = v;
  }
  return up;
}

export function createObjectHandler(opts: ObjectServerOptions): Handler {
  const now = opts.now ?? Date.now;
  const allowed = new Set((opts.allowedHeaders ?? DEFAULT_ALLOWED_HEADERS).map((h) => h.toLowerCase()));
  const maxFileSize = opts.maxFileSize ?? MAX_FILE_SIZE;
  const updateOpts = { connTimeoutMs: opts.connTimeoutMs ?? 500, nodeTimeoutMs: opts.nodeTimeoutMs ?? 3000, logger: opts.logger, local: opts.localContainerUpdate };
  const updateTimeout = opts.containerUpdateTimeoutMs ?? 1000;

  function locate(req: IncomingMessage) {
    const p = splitBackendPath(req.url ?? '/', 5, 5);
    const dev = devicePath(opts.devices, p.device);
    const policy = policyIndex(req);
    const hash = hashPath(opts.hashPath, p.account!, p.container!, p.object!);
    return { ...p, account: p.account!, container: p.container!, object: p.object!, policy, loc: hashLocation(dev, policy, p.partition, hash) };
  }

  /** Opens the object's current .data (and .meta), quarantining files that never completed. */
  async function openObject(loc: HashLocation, state: OnDiskState): Promise<OpenObject | undefined> {
    if (!state.data) return undefined;
    let fh: import('node:fs/promises').FileHandle | undefined;
    try {
      const dataPath = join(loc.hashDir, state.data.name);
      let data = readSmallObjectFileSync(dataPath);
      if (!data) {
        fh = await open(dataPath, 'r').catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return undefined;
          throw e;
        });
        if (!fh) return undefined;
        data = await readObjectFile(fh);
      }
      let metaMeta: ObjectMetadata | undefined;
      if (state.meta) {
        const metaPath = join(loc.hashDir, state.meta.name);
        const small = readSmallObjectFileSync(metaPath);
        if (small) metaMeta = small.meta;
        else {
          const mfh = await open(metaPath, 'r');
          try {
            metaMeta = (await readObjectFile(mfh)).meta;
          } finally {
            await mfh.close();
          }
        }
      }
      return { state, meta: mergeMeta(data.meta, metaMeta), dataTimestamp: state.data.timestamp, bodyLength: data.bodyLength, body: data.body, fh };
    } catch (e) {
      await fh?.close().catch(() => undefined);
      if (e instanceof CorruptObjectFile) {
        const to = await quarantineHashDir(loc).catch(() => undefined);
        opts.logger?.warn({ hashDir: loc.hashDir, quarantinedTo: to, reason: e.message }, 'quarantined object');
        return undefined;
      }
      throw e;
    }
  }

  function isExpired(meta: ObjectMetadata, req: IncomingMessage): boolean {
    const at = meta['X-Delete-At'];
    if (!at || header(req, 'x-backend-replication') === 'True') return false;
    return Number(at) <= now() / 1000;
  }

  function deleteAtHeader(req: IncomingMessage): string | undefined {
    const raw = header(req, 'x-delete-at');
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw.trim())) throw new HttpError(400, 'Non-integer X-Delete-At');
    if (Number(raw) < now() / 1000 && header(req, 'x-backend-replication') !== 'True') throw new HttpError(400, 'X-Delete-At in past');
    return raw.trim();
  }

  function metadataFromHeaders(req: IncomingMessage, base: ObjectMetadata): ObjectMetadata {
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      const val = Array.isArray(v) ? v.join(',') : v;
      if (isUserOrSysMeta(k) || allowed.has(k)) base[titleCase(k)] = val;
    }
    return base;
  }

  /** Runs container updates; answers after they finish or after container_update_timeout, whichever is first. */
  async function containerUpdate(req: IncomingMessage, op: string, a: { account: string; container: string; object: string; policy: number; loc: HashLocation }, ts: string, headersOut: Record<string, string>, to: ContainerTargetHeaders = containerTargetsOf(req)): Promise<void> {
    const targets = updateTargets(to.host, to.device, to.partition);
    if (targets === null) {
      opts.logger?.error({ hosts: to.host, devices: to.device }, 'ERROR Container update failed: different numbers of hosts and devices in request');
      return;
    }
    if (!targets.length) return;
    headersOut['x-trans-id'] = header(req, 'x-trans-id') ?? '-';
    headersOut['referer'] = `${req.method} http://localhost${req.url}`;
    headersOut['x-backend-storage-policy-index'] = String(a.policy);
    const containerPath = header(req, 'x-backend-container-path');
    const work = updateContainers(
      { op, account: a.account, container: a.container, obj: a.object, headers: headersOut, ...(containerPath ? { container_path: containerPath } : {}) },
      targets as UpdateTarget[],
      { devicePath: a.loc.devicePath, policy: a.policy, hash: a.loc.hash, timestamp: ts },
      updateOpts,
    ).catch((e: unknown) => opts.logger?.error({ err: e }, 'could not save async pending'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work, new Promise<void>((r) => (timer = setTimeout(r, updateTimeout)))]);
    clearTimeout(timer);
  }

  /** The replicas one PUT writes: the path's device, then the co-located ones the proxy named (see colocatedReplicas). */
  function putReplicas(req: IncomingMessage, p: BackendPath): PutReplica[] {
    const policy = policyIndex(req);
    const hash = hashPath(opts.hashPath, p.account!, p.container!, p.object!);
    const first: ReplicaTarget = { device: p.device, containerHost: header(req, 'x-container-host'), containerDevice: header(req, 'x-container-device'), containerPartition: header(req, 'x-container-partition') };
    const extra = parseColocated(header(req, COLOCATED_HEADER));
    // Two writers of one hash dir would publish the same file twice and count as two replicas.
    if (new Set([first, ...extra].map((t) => t.device)).size !== extra.length + 1) throw new HttpError(400, `Invalid ${COLOCATED_HEADER}: a device twice`);
    return [first, ...extra].map((t) => {
      const r: PutReplica = { target: t, status: 0, headers: {} };
      try {
        r.a = { ...p, account: p.account!, container: p.container!, object: p.object!, policy, loc: hashLocation(devicePath(opts.devices, t.device), policy, p.partition, hash) };
      } catch (e) {
        fail(r, e);
      }
      return r;
    });
  }

  /** Refuses a replica before any byte is written (If-None-Match, an older timestamp), as a single PUT does. */
  async function precheck(req: IncomingMessage, r: PutReplica, ts: string): Promise<void> {
    const state = await readState(r.a!.loc.hashDir);
    const origTs = state.data?.timestamp ?? state.ts?.timestamp;
    const ifNoneMatch = header(req, 'if-none-match');
    if (ifNoneMatch !== undefined && state.data) {
      const cur = await openObject(r.a!.loc, state);
      if (cur) {
        await cur.fh?.close();
        const etags = ifNoneMatch.split(',').map((s) => s.trim().replace(/^"|"$/g, ''));
        if (!isExpired(cur.meta, req) && (etags.includes('*') || etags.includes(cur.meta.ETag))) throw new HttpError(412);
      }
    }
    if (origTs !== undefined && origTs >= ts) throw new HttpError(409, '', { 'X-Backend-Timestamp': origTs });
  }

  /** Runs fn for every replica still in the running; a failure takes only that replica out. */
  async function eachLive(replicas: PutReplica[], fn: (r: PutReplica) => Promise<void>): Promise<void> {
    await Promise.all(replicas.filter((r) => !r.status).map((r) => fn(r).catch((e: unknown) => fail(r, e))));
  }

  function fail(r: PutReplica, e: unknown): void {
    if (e instanceof HttpError) {
      r.status = e.status;
      r.headers = e.headers;
      return;
    }
    const code = (e as NodeJS.ErrnoException).code;
    r.status = code === 'ENOSPC' || code === 'EDQUOT' ? 507 : 500;
    opts.logger?.error({ err: e, device: r.target.device }, 'ERROR object PUT failed on one device');
  }

  /** Hands a chunk to every live replica's writer; one that fails is dropped, the others go on. */
  function writeAll(replicas: PutReplica[], chunk: Buffer): Promise<void> | undefined {
    let waits: Promise<void>[] | undefined;
    for (const r of replicas) {
      if (r.status || !r.writer) continue;
      try {
        const full = r.writer.write(chunk);
        if (full) (waits ??= []).push(full.catch((e: unknown) => fail(r, e)));
      } catch (e) {
        fail(r, e);
      }
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  async function put(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = splitBackendPath(req.url ?? '/', 5, 5);
    const replicas = putReplicas(req, path);
    const grouped = replicas.length > 1;
    // A single PUT answers its device's error as it always did; a grouped one reports it per replica.
    if (!grouped && replicas[0].status) throw replicaError(replicas[0]);
    const ts = requireTimestamp(req);
    const contentType = header(req, 'content-type');
    if (!contentType) throw new HttpError(400, 'No content type');
    const clRaw = header(req, 'content-length');
    const chunked = /chunked/i.test(header(req, 'transfer-encoding') ?? '');
    if (clRaw === undefined && !chunked) throw new HttpError(411);
    const contentLength = clRaw === undefined || chunked ? undefined : Number(clRaw);
    if (contentLength !== undefined && !(contentLength >= 0)) throw new HttpError(400, 'Invalid Content-Length');
    if (contentLength !== undefined && contentLength > maxFileSize) throw new HttpError(413);
    const deleteAt = deleteAtHeader(req);
    await eachLive(replicas, (r) => precheck(req, r, ts));
    if (!grouped && replicas[0].status) throw replicaError(replicas[0]);
    await eachLive(replicas, async (r) => {
      r.writer = await ObjectWriter.create(r.a!.loc.devicePath);
    });
    if (!grouped && replicas[0].status) throw replicaError(replicas[0]);
    if (!replicas.some((r) => !r.status)) {
      drain(req);
      send(res, replicas[0].status, '', { [REPLICA_RESULTS_HEADER]: resultsHeader(replicas) });
      return;
    }
    const md5 = bodyHash(contentLength);
    try {
      let written = 0;
      try {
        for await (const chunk of req as AsyncIterable<Buffer>) {
          // One md5 for every replica: the bytes are the same.
          const hashing = md5.update(chunk);
          const full = writeAll(replicas, chunk);
          if (hashing) await hashing;
          if (full) await full;
          written += chunk.length;
          if (written > maxFileSize) throw new HttpError(413);
        }
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(499);
      }
      if (contentLength !== undefined && written !== contentLength) throw new HttpError(499);
      const etag = await md5.digest();
      const expected = header(req, 'etag');
      if (expected && expected.replace(/^"|"$/g, '').toLowerCase() !== etag) throw new HttpError(422);
      const meta = metadataFromHeaders(req, {
        name: `/${path.account}/${path.container}/${path.object}`,
        'X-Timestamp': ts,
        'Content-Type': contentType,
        ETag: etag,
        'Content-Length': String(written),
      });
      if (deleteAt !== undefined) meta['X-Delete-At'] = deleteAt;
      const up = rowUpdate(req, meta, contentType, ts, etag);
      await eachLive(replicas, async (r) => {
        await r.writer!.commit(meta, r.a!.loc, `${ts}.data`);
        r.writer = undefined;
        r.status = 201;
        const housekeeping = cleanupHashDir(r.a!.loc.hashDir).then(() => invalidateSuffix(r.a!.loc));
        const to = { host: r.target.containerHost, device: r.target.containerDevice, partition: r.target.containerPartition };
        await Promise.all([housekeeping, containerUpdate(req, 'PUT', r.a!, ts, { ...up }, to)]);
      });
      if (!grouped && replicas[0].status !== 201) throw replicaError(replicas[0]);
      const out: Record<string, string> = { ETag: etag, 'Last-Modified': httpDateOf(ts) };
      if (grouped) out[REPLICA_RESULTS_HEADER] = resultsHeader(replicas);
      send(res, grouped ? replicas[0].status || 500 : 201, '', out);
    } finally {
      md5.drop();
      await Promise.all(replicas.map((r) => r.writer?.abort()));
    }
  }

  function responseHeaders(o: OpenObject): Record<string, string | number> {
    const h: Record<string, string | number> = {
      'Content-Type': o.meta['Content-Type'] ?? 'application/octet-stream',
    };
    for (const [k, v] of Object.entries(o.meta)) {
      const l = k.toLowerCase();
      if (isUserOrSysMeta(l) || allowed.has(l)) h[k] = v;
    }
    const xts = o.meta['X-Timestamp'];
    h.ETag = o.meta.ETag;
    h['Last-Modified'] = httpDateOf(xts);
    h['X-Timestamp'] = normalOf(xts);
    h['X-Backend-Timestamp'] = xts;
    h['X-Backend-Data-Timestamp'] = o.dataTimestamp;
    h['X-Backend-Durable-Timestamp'] = o.dataTimestamp;
    h['Accept-Ranges'] = 'bytes';
    return h;
  }

  async function getOrHead(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const state = await readState(a.loc.hashDir);
    const o = await openObject(a.loc, state);
    if (!o) {
      const h: Record<string, string> = {};
      if (state.ts) h['X-Backend-Timestamp'] = state.ts.timestamp;
      throw new HttpError(404, '', h);
    }
    let closed = false;
    const close = () => {
      if (!closed) {
        closed = true;
        void o.fh?.close().catch(() => undefined);
      }
    };
    try {
      if (isExpired(o.meta, req)) throw new HttpError(404, '', { 'X-Backend-Timestamp': o.meta['X-Timestamp'] });
      const h = responseHeaders(o);
      const etagAt = header(req, 'x-backend-etag-is-at');
      const condEtag = (etagAt && etagAt.split(',').map((k) => o.meta[titleCase(k.trim())]).find((v) => v !== undefined)) || o.meta.ETag;
      const cond = conditionalStatus(
        req.method!,
        { ifMatch: header(req, 'if-match'), ifNoneMatch: header(req, 'if-none-match'), ifModifiedSince: header(req, 'if-modified-since'), ifUnmodifiedSince: header(req, 'if-unmodified-since') },
        condEtag,
        Math.ceil(timestampSeconds(o.meta['X-Timestamp'])),
      );
      if (cond) {
        delete h['Content-Type'];
        send(res, cond, '', h);
        return;
      }
      const ranges = req.method === 'GET' && !ignoresRange(req, o.meta) ? parseRange(header(req, 'range'), o.bodyLength) : null;
      if (ranges && ranges.length === 0) {
        send(res, 416, '', { 'Content-Range': `bytes */${o.bodyLength}`, 'Accept-Ranges': 'bytes', 'X-Timestamp': h['X-Timestamp'] as string });
        return;
      }
      if (req.method === 'HEAD') {
        res.writeHead(200, { ...h, 'Content-Length': o.bodyLength });
        res.end();
        return;
      }
      closed = true; // ownership of the handle passes to the body writer
      await sendBody(res, o, h, ranges);
    } finally {
      close();
    }
  }

  /** X-Backend-Ignore-Range-If-Metadata-Present: a symlink is served whole, so the proxy can follow it whatever the Range. */
  function ignoresRange(req: IncomingMessage, meta: ObjectMetadata): boolean {
    const names = (header(req, 'x-backend-ignore-range-if-metadata-present') ?? '').split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
    return names.length > 0 && Object.keys(meta).some((k) => names.includes(k.toLowerCase()));
  }

  async function sendBody(res: ServerResponse, o: OpenObject, h: Record<string, string | number>, ranges: ByteRange[] | null): Promise<void> {
    try {
      if (!ranges) {
        res.writeHead(200, { ...h, 'Content-Length': o.bodyLength });
        await writeSlice(res, o, 0, o.bodyLength - 1);
        res.end();
        return;
      }
      if (ranges.length === 1) {
        const [r] = ranges;
        res.writeHead(206, { ...h, 'Content-Length': r.end - r.start + 1, 'Content-Range': `bytes ${r.start}-${r.end}/${o.bodyLength}` });
        await writeSlice(res, o, r.start, r.end);
        res.end();
        return;
      }
      const boundary = randomBytes(16).toString('hex');
      const ctype = String(h['Content-Type']);
      const parts = ranges.map((r) => Buffer.from(`--${boundary}\r\nContent-Type: ${ctype}\r\nContent-Range: bytes ${r.start}-${r.end}/${o.bodyLength}\r\n\r\n`));
      const closing = Buffer.from(`--${boundary}--`);
      const total = ranges.reduce((n, r, i) => n + parts[i].length + (r.end - r.start + 1) + 2, 0) + closing.length;
      res.writeHead(206, { ...h, 'Content-Type': `multipart/byteranges;boundary=${boundary}`, 'Content-Length': total });
      for (let i = 0; i < ranges.length; i++) {
        res.write(parts[i]);
        await writeSlice(res, o, ranges[i].start, ranges[i].end);
        res.write('\r\n');
      }
      res.end(closing);
    } finally {
      await o.fh?.close().catch(() => undefined);
    }
  }

  async function writeSlice(res: ServerResponse, o: OpenObject, start: number, end: number): Promise<void> {
    if (end < start) return;
    if (o.body) {
      res.write(o.body.subarray(start, end + 1));
      return;
    }
    const stream = o.fh!.createReadStream({ start, end, autoClose: false, highWaterMark: 1 << 20 });
    for await (const chunk of stream) {
      if (!res.write(chunk)) await new Promise<void>((r, j) => {
        res.once('drain', r);
        res.once('close', () => j(new Error('client went away')));
      });
    }
  }

  async function post(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const ts = requireTimestamp(req);
    const deleteAt = deleteAtHeader(req);
    const state = await readState(a.loc.hashDir);
    const o = await openObject(a.loc, state);
    if (!o) throw new HttpError(404, '', state.ts ? { 'X-Backend-Timestamp': state.ts.timestamp } : {});
    await o.fh?.close();
    if (isExpired(o.meta, req)) throw new HttpError(404, '', { 'X-Backend-Timestamp': o.meta['X-Timestamp'] });
    const orig = o.meta['X-Timestamp'];
    if (orig >= ts) throw new HttpError(409, '', { 'X-Backend-Timestamp': orig });
    const meta = metadataFromHeaders(req, { name: o.meta.name, 'X-Timestamp': ts });
    if (deleteAt !== undefined) meta['X-Delete-At'] = deleteAt;
    const ctype = header(req, 'content-type');
    if (ctype) {
      meta['Content-Type'] = ctype;
      meta['Content-Type-Timestamp'] = ts;
    }
    await writeMarker(a.loc, `${ts}.meta`, meta);
    await cleanupHashDir(a.loc.hashDir);
    await invalidateSuffix(a.loc);
    if (ctype) {
      await containerUpdate(req, 'PUT', a, ts, {
        'x-size': o.meta['Content-Length'],
        'x-content-type': ctype,
        'x-timestamp': o.dataTimestamp,
        'x-etag': o.meta.ETag,
        'x-content-type-timestamp': ts,
        'x-meta-timestamp': ts,
      });
    }
    // The object's sysmeta answers too: the proxy's symlink middleware learns from it that the POST hit a link.
    const out: Record<string, string> = { 'X-Backend-Content-Type': ctype ?? o.meta['Content-Type'] ?? '' };
    for (const [k, v] of Object.entries(o.meta)) if (/^x-object-sysmeta-/i.test(k)) out[k] = String(v);
    send(res, 202, '', out);
  }

  async function del(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const ts = requireTimestamp(req);
    const state = await readState(a.loc.hashDir);
    let origTs: string | undefined;
    let origDeleteAt = '0';
    let status = 404;
    const o = await openObject(a.loc, state);
    if (o) {
      await o.fh?.close();
      origDeleteAt = o.meta['X-Delete-At'] ?? '0';
      if (isExpired(o.meta, req)) {
        origTs = o.meta['X-Timestamp'];
      } else {
        origTs = o.dataTimestamp;
        status = origTs < ts ? 204 : 409;
      }
    } else if (state.ts) {
      origTs = state.ts.timestamp;
    }
    const ifDeleteAt = header(req, 'x-if-delete-at');
    if (ifDeleteAt !== undefined) {
      if (!/^\d+(\.\d+)?$/.test(ifDeleteAt.trim())) throw new HttpError(400, 'Bad request: x-if-delete-at header must be a valid integer');
      if (origTs === undefined) throw new HttpError(404);
      if (origTs >= ts) throw new HttpError(409, '', { 'X-Backend-Timestamp': origTs });
      if (Number(origDeleteAt) !== Number(ifDeleteAt)) throw new HttpError(412, 'X-If-Delete-At and X-Delete-At do not match');
      status = 204;
    }
    if (origTs === undefined || origTs < ts) {
      await writeMarker(a.loc, `${ts}.ts`, { name: `/${a.account}/${a.container}/${a.object}`, 'X-Timestamp': ts });
      await cleanupHashDir(a.loc.hashDir);
      await invalidateSuffix(a.loc);
      await containerUpdate(req, 'DELETE', a, ts, { 'x-timestamp': ts });
    }
    const responseTs = origTs !== undefined && origTs > ts ? origTs : ts;
    send(res, status, '', { 'X-Backend-Timestamp': responseTs });
  }

  async function replicate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = splitBackendPath(req.url ?? '/', 2, 3);
    const dev = devicePath(opts.devices, p.device);
    const policy = policyIndex(req);
    const suffixes = p.account ? p.account.split('-').filter(Boolean) : [];
    const hashes = await getSuffixHashes(join(dev, objectsDirName(policy), p.partition), suffixes);
    send(res, 200, JSON.stringify(hashes), { 'Content-Type': 'application/json' });
  }

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    PUT: put,
    GET: getOrHead,
    HEAD: getOrHead,
    POST: post,
    DELETE: del,
    REPLICATE: replicate,
    // The object replicator's file transfer (rsync's job upstream): replication/transfer.ts.
    [LIST_VERB]: (req, res) => handleReplicateList(opts.devices, req, res),
    [PUSH_VERB]: (req, res) => handleReplicatePush(opts.devices, req, res),
  };

  return (req, res) => {
    const route = routes[backendVerb(req)];
    if (!route) {
      drain(req);
      sendError(res, 405, undefined, { Allow: Object.keys(routes).join(', ') });
      return;
    }
    route(req, res).catch((e: unknown) => {
      drain(req);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (e instanceof HttpError) {
        sendError(res, e.status, e.body || undefined, e.headers);
        return;
      }
      opts.logger?.error({ err: e, method: req.method, path: req.url }, 'ERROR __call__ error');
      sendError(res, 500);
    });
  };
}

export function createObjectServer(opts: ObjectServerOptions): http.Server {
  return createStorageHttpServer(createObjectHandler(opts));
}

/** node:http tuned for many small backend requests over keep-alive connections. */
export function createStorageHttpServer(handler: Handler): http.Server {
  const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000 }, handler);
  return server;
}
