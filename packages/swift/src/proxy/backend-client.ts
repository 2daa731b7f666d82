import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { RingNode } from './ring.ts';
import type { Headers } from './types.ts';
import { quote } from './wsgi-strings.ts';

export interface BackendTimeouts {
  /** Until a connection is up (conn_timeout). */
  connMs: number;
  /** Until response headers arrive, and between body chunks (node_timeout). */
  nodeMs: number;
}

export interface BackendResponse {
  status: number;
  headers: Headers;
  body: IncomingMessage;
  node: RingNode;
}

/**
 * Counts errors per device as upstream's error_limit: a device with more than
 * `limit` errors within `intervalMs` of the last one is skipped.
 */
export class ErrorLimiter {
  private errors = new Map<string, { count: number; last: number }>();
  constructor(
    private limit = 10,
    private intervalMs = 60_000,
  ) {}

  private key(n: RingNode): string {
    return `${n.ip}:${n.port}/${n.device}`;
  }

  record(n: RingNode): void {
    const e = this.errors.get(this.key(n)) ?? { count: 0, last: 0 };
    if (Date.now() - e.last > this.intervalMs) e.count = 0;
    e.count++;
    e.last = Date.now();
    this.errors.set(this.key(n), e);
  }

  /** A 507 takes the device out at once (upstream's error_limit). */
  limitNow(n: RingNode): void {
    this.errors.set(this.key(n), { count: this.limit + 1, last: Date.now() });
  }

  isLimited(n: RingNode): boolean {
    const e = this.errors.get(this.key(n));
    if (!e) return false;
    if (Date.now() - e.last > this.intervalMs) {
      this.errors.delete(this.key(n));
      return false;
    }
    return e.count > this.limit;
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

/** `/<device>/<partition>/<account>[/<container>[/<object>]]`, quoted as upstream. */
export function backendPath(node: RingNode, partition: number, account: string, container?: string, obj?: string): string {
  let p = `/${node.device}/${partition}/${quote(account)}`;
  if (container !== undefined) p += `/${quote(container)}`;
  if (obj !== undefined) p += `/${quote(obj)}`;
  return p;
}

function toHeaders(h: IncomingMessage['headers']): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** One request to a storage server with a small body (or none); rejects on connection errors and timeouts. */
export function backendRequest(
  node: RingNode,
  method: string,
  path: string,
  headers: Headers,
  timeouts: BackendTimeouts,
  body?: Buffer,
): Promise<BackendResponse> {
  return new Promise((resolve, reject) => {
    const h: Headers = { ...headers };
    if (body) h['content-length'] = String(body.length);
    else if (method === 'PUT' || method === 'POST') h['content-length'] ??= '0';
    const req = httpRequest({ host: node.ip, port: node.port, method, path, headers: h, agent });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`timeout talking to ${node.ip}:${node.port}/${node.device}`), { code: 'ETIMEDOUT' })), timeouts.nodeMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 500, headers: toHeaders(res.headers), body: res, node });
    });
    req.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}

/**
 * An object PUT to one node, opened with `Expect: 100-continue` as upstream's
 * proxy does, so a node that cannot take the object answers before any data is
 * sent and a handoff can take its place.
 */
export class Putter {
  private req;
  readonly response: Promise<BackendResponse>;
  /** Resolves true once the node said 100 Continue, false when it answered or failed first. */
  readonly ready: Promise<boolean>;
  failed = false;
  early?: BackendResponse;

  constructor(
    readonly node: RingNode,
    path: string,
    headers: Headers,
    private timeouts: BackendTimeouts,
    /** The replicas this PUT writes: the node's device, and the co-located devices of a grouped PUT. */
    readonly replicas: RingNode[] = [node],
  ) {
    this.req = httpRequest({ host: node.ip, port: node.port, method: 'PUT', path, headers: { ...headers, expect: '100-continue' }, agent });
    let readyResolve!: (v: boolean) => void;
    this.ready = new Promise((r) => (readyResolve = r));
    const connTimer = setTimeout(() => {
      this.failed = true;
      readyResolve(false);
      this.req.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, timeouts.connMs + timeouts.nodeMs);
    this.req.once('continue', () => {
      clearTimeout(connTimer);
      readyResolve(true);
    });
    this.response = new Promise((resolve, reject) => {
      this.req.once('response', (res) => {
        clearTimeout(connTimer);
        const r = { status: res.statusCode ?? 500, headers: toHeaders(res.headers), body: res, node };
        if (!this.early && res.statusCode !== 100) this.early = r;
        readyResolve(false);
        resolve(r);
      });
      this.req.once('error', (e) => {
        clearTimeout(connTimer);
        this.failed = true;
        readyResolve(false);
        reject(e);
      });
    });
    this.response.catch(() => undefined);
    this.req.flushHeaders();
  }

  /** Writes a chunk, resolving when the socket takes more (or rejecting when the node is gone). */
  write(chunk: Buffer): Promise<void> {
    if (this.failed) return Promise.reject(new Error('putter failed'));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.failed = true;
        this.req.destroy();
        reject(new Error('write timeout'));
      }, this.timeouts.nodeMs);
      this.req.write(chunk, (err) => {
        clearTimeout(t);
        if (err) {
          this.failed = true;
          reject(err);
        } else resolve();
      });
    });
  }

  end(): void {
    if (!this.failed) this.req.end();
  }

  abort(): void {
    this.failed = true;
    this.req.destroy();
  }
}

export type { Readable };
