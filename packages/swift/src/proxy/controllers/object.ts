import type { Readable } from 'node:stream';
import { backendRequest, Putter, type BackendResponse } from '../backend-client.ts';
import { COLOCATED_HEADER, REPLICA_RESULTS_HEADER, replicaResults, type ReplicaTarget } from '../../common/colocated.ts';
import { checkDeleteHeaders, checkMetadata, checkObjectCreation } from '../constraints.ts';
import { guessType } from '../mime.ts';
import { discard, plainError, readBody, respond } from '../responses.ts';
import type { RingNode } from '../ring.ts';
import { formatTimestamp, httpDate, normalTimestamp } from '../timestamps.ts';
import type { Headers, SwiftRequest, SwiftResponse } from '../types.ts';
import { backendHeaders, backendPath, bestResponse, clientHeaders, getOrHead, iterNodes, makeRequests, quorumSize, type ProxyContext } from './base.ts';
import { containerInfo } from './container.ts';

/** Request headers that stay at the proxy (auth, hop-by-hop, framing the proxy redoes). */
const NOT_FORWARDED = new Set(['x-auth-token', 'x-storage-token', 'x-service-token', 'host', 'connection', 'keep-alive', 'expect', 'content-length', 'transfer-encoding', 'te', 'upgrade', 'proxy-authorization']);

function forwardHeaders(req: SwiftRequest): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!NOT_FORWARDED.has(k)) out[k] = v;
  return out;
}

/** Container update targets, spread over the object nodes so every container replica hears of the write. */
function containerUpdateHeaders(ctx: ProxyContext, account: string, container: string, count: number): Headers[] {
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const out: Headers[] = Array.from({ length: count }, () => ({}));
  const hosts: string[][] = Array.from({ length: count }, () => []);
  const devices: string[][] = Array.from({ length: count }, () => []);
  nodes.forEach((n, i) => {
    hosts[i % count].push(`${n.ip}:${n.port}`);
    devices[i % count].push(n.device);
  });
  for (let i = 0; i < count; i++) {
    if (!hosts[i].length) continue;
    out[i] = { 'x-container-host': hosts[i].join(','), 'x-container-partition': String(partition), 'x-container-device': devices[i].join(',') };
  }
  return out;
}

/** Authorizes against the container's ACL (read for GET/HEAD, write otherwise), as delay_denial does. */
async function authorizeObject(ctx: ProxyContext, req: SwiftRequest, account: string, container: string) {
  const info = await containerInfo(ctx, req, account, container);
  if (req.env.authorize) {
    req.env.acl = req.method === 'GET' || req.method === 'HEAD' ? info.readAcl : info.writeAcl;
    const denied = req.env.authorize(req);
    if (denied) return { denied, info };
  }
  return { info };
}

function requestTimestamp(req: SwiftRequest): string | SwiftResponse {
  const t = req.headers['x-timestamp'];
  if (t === undefined) return normalTimestamp();
  const n = Number(t);
  if (!Number.isFinite(n) || n < 0) return plainError(400, `X-Timestamp should be a UNIX timestamp float value; was '${t}'`);
  return formatTimestamp(n);
}

export async function objectGetOrHead(ctx: ProxyContext, req: SwiftRequest, account: string, container: string, obj: string): Promise<SwiftResponse> {
  const { denied } = await authorizeObject(ctx, req, account, container);
  if (denied) return denied;
  const { partition, nodes } = ctx.rings.object.getNodes(account, container, obj);
  const res = await getOrHead(ctx, ctx.rings.object, partition, nodes, req.method as 'GET' | 'HEAD', (n) => backendPath(n, partition, account, container, obj), backendHeaders(req, {
    ...forwardHeaders(req),
    'x-backend-storage-policy-index': '0',
  }));
  const h = clientHeaders(res.headers);
  if (res.status === 404 || res.status >= 500) {
    discard(res.body);
    return respond(res.status);
  }
  if (req.method === 'HEAD') discard(res.body);
  h['accept-ranges'] ??= 'bytes';
  return { status: res.status, headers: h, body: req.method === 'HEAD' ? undefined : res.body };
}

export async function objectPost(ctx: ProxyContext, req: SwiftRequest, account: string, container: string, obj: string): Promise<SwiftResponse> {
  const { denied, info } = await authorizeObject(ctx, req, account, container);
  if (denied) return denied;
  if (info.status === 404) return respond(404);
  const bad = checkMetadata(ctx.constraints, req, 'object') ?? checkDeleteHeaders(req, Date.now() / 1000);
  if (bad) return bad;
  const ts = requestTimestamp(req);
  if (typeof ts !== 'string') return ts;
  const { partition, nodes } = ctx.rings.object.getNodes(account, container, obj);
  const cu = containerUpdateHeaders(ctx, account, container, nodes.length);
  const fwd = forwardHeaders(req);
  const r = await makeRequests(ctx, ctx.rings.object, partition, nodes, 'POST', (n) => backendPath(n, partition, account, container, obj), (i) =>
    backendHeaders(req, { ...fwd, ...cu[i], 'x-timestamp': ts, 'x-backend-storage-policy-index': '0' }),
  );
  // The object's sysmeta goes back up the pipeline (symlink answers a POST to a link with 307); gatekeeper keeps it from the client.
  const sysmeta = Object.fromEntries(Object.entries(r.headers).filter(([k]) => k.startsWith('x-object-sysmeta-')));
  return respond(r.status, undefined, sysmeta);
}

export async function objectDelete(ctx: ProxyContext, req: SwiftRequest, account: string, container: string, obj: string): Promise<SwiftResponse> {
  const { denied, info } = await authorizeObject(ctx, req, account, container);
  if (denied) return denied;
  if (info.status === 404) return respond(404);
  const ts = requestTimestamp(req);
  if (typeof ts !== 'string') return ts;
  const { partition, nodes } = ctx.rings.object.getNodes(account, container, obj);
  const cu = containerUpdateHeaders(ctx, account, container, nodes.length);
  const r = await makeRequests(ctx, ctx.rings.object, partition, nodes, 'DELETE', (n) => backendPath(n, partition, account, container, obj), (i) =>
    backendHeaders(req, { ...cu[i], 'x-timestamp': ts, 'x-backend-storage-policy-index': '0' }),
  );
  return respond(r.status);
}

/** Sets Content-Type from the name when missing or asked to detect (_update_content_type). */
function updateContentType(req: SwiftRequest, obj: string): void {
  const detect = (req.headers['x-detect-content-type'] ?? '').toLowerCase();
  if (req.headers['content-type'] === undefined || ['true', '1', 'yes', 'on', 't', 'y'].includes(detect)) {
    req.headers['content-type'] = guessType(obj) ?? 'application/octet-stream';
  }
  delete req.headers['x-detect-content-type'];
}

/** Opens PUTs to the primaries, each refused node replaced by a handoff (_connect_put_node); co-located primaries share one grouped PUT. */
async function openPutters(ctx: ProxyContext, primaries: RingNode[], groups: number[][], nodes: Iterator<RingNode>, path: (n: RingNode) => string, headersFor: (i: number) => Headers): Promise<{ putters: Putter[]; refusals: BackendResponse[] }> {
  const refusals: BackendResponse[] = [];
  /** False when the node will not take this PUT; its refusal is noted for each replica it stood for. */
  const connected = async (p: Putter): Promise<boolean> => {
    if (await p.ready) return true;
    if (p.early) {
      // An answer before 100 Continue: the node will not take the object (507, 409 …).
      for (const n of p.replicas) {
        if (p.early.status === 507) ctx.limiter.limitNow(n);
        else if (p.early.status >= 500) ctx.limiter.record(n);
      }
      discard(p.early.body);
      if (p.early.status < 500) for (let k = 0; k < p.replicas.length; k++) refusals.push(p.early);
    } else for (const n of p.replicas) ctx.limiter.record(n);
    p.abort();
    return false;
  };
  const open = async (i: number): Promise<Putter | undefined> => {
    for (;;) {
      const next = nodes.next();
      if (next.done) return undefined;
      const p = new Putter(next.value, path(next.value), headersFor(i), ctx.timeouts);
      if (await connected(p)) return p;
    }
  };
  const openGroup = async (g: number[]): Promise<(Putter | undefined)[]> => {
    const [first, ...rest] = g.map((i) => primaries[i]);
    const extra: ReplicaTarget[] = rest.map((n, k) => {
      const h = headersFor(g[k + 1]);
      return { device: n.device, containerHost: h['x-container-host'], containerDevice: h['x-container-device'], containerPartition: h['x-container-partition'] };
    });
    const p = new Putter(first, path(first), { ...headersFor(g[0]), [COLOCATED_HEADER]: JSON.stringify(extra) }, ctx.timeouts, [first, ...rest]);
    if (await connected(p)) return [p];
    // The node is unreachable or refused: each of its replicas goes on alone, to the next handoffs.
    return Promise.all(g.map((i) => open(i)));
  };
  const grouped = new Set(groups.flat());
  const singles = primaries.map((_, i) => i).filter((i) => !grouped.has(i));
  const all = await Promise.all([...groups.map(openGroup), ...singles.map(async (i) => [await open(i)])]);
  return { putters: all.flat().filter((p): p is Putter => p !== undefined), refusals };
}

/**
 * Replica slots whose primaries are devices of one storage node (same ip:port):
 * one grouped PUT carries the body to all of them (common/colocated.ts), so the
 * node reads one socket and hashes once. Error-limited devices stay out.
 */
function colocatedGroups(ctx: ProxyContext, primaries: RingNode[]): number[][] {
  const byNode = new Map<string, number[]>();
  primaries.forEach((n, i) => {
    if (ctx.limiter.isLimited(n)) return;
    const key = `${n.ip}:${n.port}`;
    byNode.set(key, [...(byNode.get(key) ?? []), i]);
  });
  return [...byNode.values()].filter((g) => g.length > 1);
}

/** Primaries then handoffs as iterNodes, without the devices a grouped PUT already covers. */
function* nodesBesides(all: Iterator<RingNode>, covered: RingNode[]): Generator<RingNode> {
  const skip = new Set(covered.map((n) => `${n.ip}:${n.port}/${n.device}`));
  for (let next = all.next(); !next.done; next = all.next()) if (!skip.has(`${next.value.ip}:${next.value.port}/${next.value.device}`)) yield next.value;
}

/** One answer per replica a putter wrote: a grouped PUT's per-device results, else its status. */
async function putterResponses(ctx: ProxyContext, p: Putter): Promise<{ status: number; headers: Headers }[]> {
  let r: BackendResponse;
  try {
    r = await p.response;
    await readBody(r.body, 1024 * 1024);
  } catch {
    for (const n of p.replicas) ctx.limiter.record(n);
    return p.replicas.map(() => ({ status: 503, headers: {} }));
  }
  const results = p.replicas.length > 1 ? replicaResults(r.headers[REPLICA_RESULTS_HEADER]) : undefined;
  return p.replicas.map((n) => {
    const status = results?.find((x) => x.device === n.device)?.status ?? r.status;
    if (status === 507) ctx.limiter.limitNow(n);
    else if (status >= 500) ctx.limiter.record(n);
    return { status, headers: r.headers };
  });
}

export async function objectPut(ctx: ProxyContext, req: SwiftRequest, account: string, container: string, obj: string): Promise<SwiftResponse> {
  const { denied, info } = await authorizeObject(ctx, req, account, container);
  if (denied) return denied;
  if (info.status === 404) return respond(404);
  if (info.status < 200 || info.status >= 300) return respond(503);
  updateContentType(req, obj);
  const nowS = Date.now() / 1000;
  const bad = checkObjectCreation(ctx.constraints, req, obj, nowS);
  if (bad) return bad;
  const ts = requestTimestamp(req);
  if (typeof ts !== 'string') return ts;
  const { partition, nodes } = ctx.rings.object.getNodes(account, container, obj);
  const quorum = quorumSize(nodes.length);
  const cu = containerUpdateHeaders(ctx, account, container, nodes.length);
  const fwd = forwardHeaders(req);
  const contentLength = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
  const framing: Headers = contentLength !== undefined ? { 'content-length': String(contentLength) } : { 'transfer-encoding': 'chunked' };
  const iter = iterNodes(ctx, ctx.rings.object, partition, nodes);
  const pathFor = (n: RingNode) => backendPath(n, partition, account, container, obj);
  const headersFor = (i: number) => backendHeaders(req, { ...fwd, ...cu[i], ...framing, 'x-timestamp': ts, 'x-backend-storage-policy-index': '0' });
  if (contentLength !== undefined && contentLength <= WHOLE_PUT_LIMIT) {
    const body = await readBody(req.body, contentLength).catch(() => undefined);
    if (!body || body.length < contentLength) return respond(499);
    const whole = await putWhole(ctx, iter, nodes.length, pathFor, headersFor, body);
    const done = whole.filter((r) => r.status >= 200 && r.status < 300).length;
    // Every node already has this or a newer write (409 on an older timestamp; 202 when upstream sees the same), or If-None-Match failed.
    const refusals = whole.filter((r) => r.status === 409 || r.status === 412);
    if (done < quorum && refusals.length >= quorum) return respond(refusals.some((r) => r.status === 409) ? 202 : refusals[0].status);
    return putResult(ctx, req, whole, quorum, ts);
  }
  const groups = colocatedGroups(ctx, nodes);
  const covered = groups.flat().map((i) => nodes[i]);
  const { putters, refusals } = await openPutters(ctx, nodes, groups, nodesBesides(iter, covered), pathFor, headersFor);
  if (replicaCount(putters) < quorum) {
    for (const p of putters) p.abort();
    // Every node already has this or a newer write (409 on an older timestamp; 202 when upstream sees the same).
    if (refusals.length >= quorum) return respond(refusals.some((r) => r.status === 409) ? 202 : refusals[0].status);
    ctx.logger.error({ path: req.path, connected: putters.length, quorum }, 'object PUT: not enough nodes');
    return respond(503);
  }
  const sent = await streamToPutters(ctx, req.body, putters, quorum, contentLength);
  if (sent !== 'ok') {
    for (const p of putters) p.abort();
    return sent;
  }
  const responses = (await Promise.all(putters.map((p) => putterResponses(ctx, p)))).flat();
  while (responses.length < nodes.length) responses.push({ status: 503, headers: {} });
  return putResult(ctx, req, responses, quorum, ts);
}

/** The client's answer from the nodes' answers: quorum status, one ETag. */
function putResult(ctx: ProxyContext, req: SwiftRequest, responses: { status: number; headers: Headers }[], quorum: number, ts: string): SwiftResponse {
  const best = bestResponse(responses, quorum);
  if (best.status !== 201) return respond(best.status);
  const etags = new Set(best.responses.filter((r) => r.status === 201 && r.headers.etag).map((r) => r.headers.etag.replace(/"/g, '')));
  if (etags.size > 1) {
    ctx.logger.error({ path: req.path, etags: [...etags] }, 'object servers returned mismatched etags');
    return respond(500);
  }
  const h: Headers = { 'last-modified': httpDate(Number(ts)) };
  const etag = [...etags][0];
  if (etag) h.etag = etag;
  return respond(201, undefined, { ...h, 'content-type': 'text/html; charset=UTF-8' });
}

/** Bodies up to this size with a Content-Length go to the nodes whole (putWhole) instead of streamed behind 100-continue. */
const WHOLE_PUT_LIMIT = 64 * 1024;

/**
 * A small body is read whole and sent to each node in one request without
 * `Expect: 100-continue`: for a 4 KiB object the continue round trip (one more
 * write and wake-up on both sides) cost more than the body. What 100-continue
 * buys a streamed PUT, trying a handoff when a primary cannot take the object,
 * still holds: a node that cannot be reached or answers 507 (a device the
 * object server refuses before reading the body) is replaced by the next node
 * with the same bytes. Any other answer counts, as after a streamed upload.
 */
async function putWhole(ctx: ProxyContext, nodes: Iterator<RingNode>, count: number, path: (n: RingNode) => string, headersFor: (i: number) => Headers, body: Buffer): Promise<{ status: number; headers: Headers }[]> {
  const one = async (i: number): Promise<{ status: number; headers: Headers }> => {
    for (;;) {
      const next = nodes.next();
      if (next.done) return { status: 503, headers: {} };
      const n = next.value;
      let r: BackendResponse;
      try {
        r = await backendRequest(n, 'PUT', path(n), headersFor(i), ctx.timeouts, body);
      } catch (e) {
        ctx.limiter.record(n);
        if (isConnectError(e)) continue;
        return { status: 503, headers: {} };
      }
      try {
        await readBody(r.body, 1024 * 1024);
      } catch {
        ctx.limiter.record(n);
        return { status: 503, headers: {} };
      }
      if (r.status === 507) {
        ctx.limiter.limitNow(n);
        continue;
      }
      if (r.status >= 500) ctx.limiter.record(n);
      return { status: r.status, headers: r.headers };
    }
  };
  return Promise.all(Array.from({ length: count }, (_, i) => one(i)));
}

function replicaCount(putters: Putter[]): number {
  return putters.reduce((n, p) => n + p.replicas.length, 0);
}

/** Errors that mean the node never saw the request. */
function isConnectError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ECONNRESET' || code === 'EADDRNOTAVAIL';
}

/**
 * Tees the client's body to every putter, each write waiting for the slowest
 * live node; a node that fails mid-stream is dropped while a quorum remains.
 */
async function streamToPutters(ctx: ProxyContext, body: Readable | undefined, putters: Putter[], quorum: number, contentLength: number | undefined): Promise<'ok' | SwiftResponse> {
  let live = [...putters];
  let bytes = 0;
  try {
    if (body) {
      for await (const c of body) {
        const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
        bytes += chunk.length;
        if (bytes > ctx.constraints.max_file_size) return plainError(413, 'Your request is too large.');
        if (contentLength !== undefined && bytes > contentLength) return respond(413);
        const results = await Promise.allSettled(live.map((p) => p.write(chunk)));
        live = live.filter((p, i) => {
          if (results[i].status === 'rejected') {
            for (const n of p.replicas) ctx.limiter.record(n);
            p.abort();
            return false;
          }
          return true;
        });
        if (replicaCount(live) < quorum) return respond(503);
      }
    }
  } catch {
    return respond(499);
  }
  if (contentLength !== undefined && bytes < contentLength) return respond(499);
  for (const p of live) p.end();
  return 'ok';
}
