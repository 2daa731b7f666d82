import type { Logger } from 'pino';
import { backendPath, backendRequest, type BackendResponse, type BackendTimeouts, type ErrorLimiter } from '../backend-client.ts';
import type { Constraints } from '../constraints.ts';
import { discard, readBody, respond } from '../responses.ts';
import type { ProxyRing, ProxyRings, RingNode } from '../ring.ts';
import type { Headers, SwiftRequest, SwiftResponse } from '../types.ts';

/** What every controller needs: rings, timeouts, limits, and the info caches. */
export interface ProxyContext {
  rings: ProxyRings;
  timeouts: BackendTimeouts;
  limiter: ErrorLimiter;
  constraints: Constraints;
  accountAutocreate: boolean;
  /** Headers only the account owner may see or set (swift_owner_headers). */
  ownerHeaders: Set<string>;
  infoCache: InfoCache;
  logger: Logger;
  /** Seconds info stays cached (recheck_*_existence). */
  recheckMs: number;
  /** The single storage policy's name. */
  policyName: string;
}

export interface AccountInfo {
  status: number;
  containerCount: number;
  objectCount: number;
  bytes: number;
  meta: Headers;
  /** x-account-sysmeta-* without the prefix. */
  sysmeta: Headers;
  headers: Headers;
}

export interface ContainerInfo {
  status: number;
  readAcl?: string;
  writeAcl?: string;
  objectCount: number;
  bytes: number;
  /** x-container-meta-* without the prefix. */
  meta: Headers;
  sysmeta: Headers;
  headers: Headers;
  versionsLocation?: string;
  historyLocation?: string;
}

/**
 * Account and container info as upstream's get_info keeps it in memcache:
 * found ones briefly, so a burst of object requests does not HEAD the
 * container each time; this process's own writes drop their entry at once.
 */
export class InfoCache {
  private entries = new Map<string, { at: number; value: AccountInfo | ContainerInfo }>();
  constructor(private ttlMs: number) {}
  get<T extends AccountInfo | ContainerInfo>(key: string): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (Date.now() - e.at > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }
  set(key: string, value: AccountInfo | ContainerInfo): void {
    if (this.entries.size > 10000) this.entries.clear();
    this.entries.set(key, { at: Date.now(), value });
  }
  clear(key: string): void {
    this.entries.delete(key);
  }
}

export const accountKey = (a: string) => `a/${a}`;
export const containerKey = (a: string, c: string) => `c/${a}/${c}`;

/** Primaries first, then handoffs, skipping error-limited devices, at most 2 × replicas (request_node_count). */
export function* iterNodes(ctx: ProxyContext, ring: ProxyRing, partition: number, primaries: RingNode[]): Generator<RingNode> {
  const max = ring.replicaCount * 2;
  let n = 0;
  for (const node of primaries) {
    if (ctx.limiter.isLimited(node)) continue;
    if (n++ >= max) return;
    yield node;
  }
  for (const node of ring.getMoreNodes(partition)) {
    if (ctx.limiter.isLimited(node)) continue;
    if (n++ >= max) return;
    yield node;
  }
}

export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The headers every backend request carries (generate_request_headers). */
export function backendHeaders(req: SwiftRequest, extra: Headers = {}): Headers {
  return {
    'x-trans-id': req.env.transId,
    'user-agent': `proxy-server ${process.pid}`,
    ...(req.headers.referer ? { referer: `${req.method} ${req.path}` } : {}),
    // Only the pipeline sets it (gatekeeper strips it from clients): listings then include reserved names.
    ...(req.headers['x-backend-allow-reserved-names'] ? { 'x-backend-allow-reserved-names': req.headers['x-backend-allow-reserved-names'] } : {}),
    ...extra,
  };
}

export function isServerError(status: number): boolean {
  return status >= 500;
}

/**
 * Reads from the first node that answers, as GETorHEAD_base: primaries, then
 * handoffs; a 404 or an error moves on; devices that fail are error-limited.
 * The winning response's body is left unread for the caller to stream.
 */
export async function getOrHead(
  ctx: ProxyContext,
  ring: ProxyRing,
  partition: number,
  primaries: RingNode[],
  method: 'GET' | 'HEAD',
  path: (n: RingNode) => string,
  headers: Headers,
): Promise<SwiftResponse & { backend?: BackendResponse }> {
  const statuses: number[] = [];
  let notFound: BackendResponse | undefined;
  for (const node of iterNodes(ctx, ring, partition, primaries)) {
    let res: BackendResponse;
    try {
      res = await backendRequest(node, method, path(node), headers, ctx.timeouts);
    } catch (e) {
      ctx.limiter.record(node);
      ctx.logger.warn({ err: (e as Error).message, node: `${node.ip}:${node.port}/${node.device}` }, 'backend read failed');
      continue;
    }
    statuses.push(res.status);
    if (res.status === 507) ctx.limiter.limitNow(node);
    if (res.status >= 500) {
      ctx.limiter.record(node);
      discard(res.body);
      continue;
    }
    if (res.status === 404) {
      // A tombstone answers like a missing object: keep the newest for its timestamp, try the others.
      if (notFound) discard(notFound.body);
      notFound = res;
      continue;
    }
    return { status: res.status, headers: res.headers, body: res.body, backend: res };
  }
  if (notFound) return { status: 404, headers: notFound.headers, body: notFound.body, backend: notFound };
  return respond(503);
}

export interface WriteResult {
  status: number;
  headers: Headers;
  body?: Buffer;
  responses: { status: number; headers: Headers }[];
}

/**
 * Sends one request per primary in parallel, each failed node replaced by
 * the next handoff (make_requests), and answers with the best response of
 * the quorum (best_response): the largest status of the first class that
 * reached quorum, else 503.
 */
export async function makeRequests(
  ctx: ProxyContext,
  ring: ProxyRing,
  partition: number,
  primaries: RingNode[],
  method: string,
  path: (n: RingNode) => string,
  headersFor: (i: number) => Headers,
  body?: Buffer,
): Promise<WriteResult> {
  const nodes = iterNodes(ctx, ring, partition, primaries);
  const want = primaries.length;
  const one = async (i: number): Promise<{ status: number; headers: Headers; body: Buffer } | undefined> => {
    for (;;) {
      const next = nodes.next();
      if (next.done) return undefined;
      const node = next.value;
      try {
        const res = await backendRequest(node, method, path(node), headersFor(i), ctx.timeouts, body);
        const b = await readBody(res.body, 1024 * 1024);
        if (res.status === 507) {
          ctx.limiter.limitNow(node);
          continue;
        }
        if (res.status >= 500) {
          ctx.limiter.record(node);
          continue;
        }
        return { status: res.status, headers: res.headers, body: b };
      } catch (e) {
        ctx.limiter.record(node);
        ctx.logger.warn({ err: (e as Error).message, node: `${node.ip}:${node.port}/${node.device}`, method }, 'backend write failed');
      }
    }
  };
  const results = await Promise.all(Array.from({ length: want }, (_, i) => one(i)));
  const responses = results.map((r) => r ?? { status: 503, headers: {}, body: Buffer.alloc(0) });
  return bestResponse(responses, quorumSize(want));
}

export function bestResponse(responses: { status: number; headers: Headers; body?: Buffer }[], quorum: number): WriteResult {
  for (const hundred of [100, 200, 300, 400]) {
    const inClass = responses.filter((r) => r.status >= hundred && r.status < hundred + 100);
    if (inClass.length >= quorum) {
      const best = inClass.reduce((a, b) => (b.status > a.status ? b : a));
      return { status: best.status, headers: best.headers, body: best.body, responses };
    }
  }
  return { status: 503, headers: {}, responses };
}

/** Metadata and owner headers a client may send on, with X-Remove-*-Meta-* turned into empty values. */
export function transferHeaders(req: SwiftRequest, target: 'account' | 'container'): Headers {
  const out: Headers = {};
  const meta = `x-${target}-meta-`;
  const remove = `x-remove-${target}-meta-`;
  const sysmeta = `x-${target}-sysmeta-`;
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith(meta) || k.startsWith(sysmeta)) out[k] = v;
    else if (k.startsWith(remove)) out[meta + k.slice(remove.length)] = '';
    else if (target === 'container' && ['x-container-read', 'x-container-write', 'x-versions-location', 'x-history-location', 'x-container-sync-to', 'x-container-sync-key'].includes(k)) out[k] = v;
    else if (target === 'container' && ['x-remove-container-read', 'x-remove-container-write', 'x-remove-versions-location', 'x-remove-history-location'].includes(k)) out[k.replace('x-remove-', 'x-')] = '';
    else if (target === 'account' && k === 'x-account-access-control') out[k] = v;
  }
  return out;
}

/** Drops headers a non-owner must not set or see. */
export function stripOwnerHeaders(ctx: ProxyContext, req: SwiftRequest, h: Headers): void {
  if (req.env.swiftOwner) return;
  for (const k of ctx.ownerHeaders) delete h[k];
}

/** Response headers of a backend answer the client may see (no X-Backend-*, sysmeta stays for middleware; gatekeeper strips it). */
export function clientHeaders(h: Headers): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith('x-backend-') || k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding' || k === 'date' || k === 'server') continue;
    out[k] = v;
  }
  return out;
}

export { backendPath };
