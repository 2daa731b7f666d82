import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyRing, RingNode } from '../src/proxy/ring.ts';

/**
 * A FAKE storage node for the proxy's tests until the real servers are
 * wired: in-memory accounts, containers and objects behind upstream's
 * backend paths and headers, enough for the proxy's logic (quorum, fallback,
 * listings, ACL headers). Container updates are applied directly, not sent.
 */
export class FakeStorageNode {
  objects = new Map<string, { data: Buffer; headers: Record<string, string>; ts: string }>();
  containers = new Map<string, Record<string, string>>();
  accounts = new Map<string, Record<string, string>>();
  server = http.createServer((req, res) => this.handle(req, res));
  port = 0;
  requests: string[] = [];

  async start(port = 0): Promise<this> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const [pathPart, q] = (req.url ?? '').split('?');
    const segs = pathPart.split('/').slice(1).map(decodeURIComponent);
    const [, , account, container] = segs;
    const obj = segs.length > 4 ? segs.slice(4).join('/') : undefined;
    this.requests.push(`${req.method} ${pathPart}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const h = req.headers as Record<string, string>;
      const send = (status: number, headers: Record<string, string> = {}, b = '') => {
        res.writeHead(status, { 'content-length': String(Buffer.byteLength(b)), ...headers });
        res.end(req.method === 'HEAD' ? undefined : b);
      };
      const meta = (src: Record<string, string>, prefix: string[]) => Object.fromEntries(Object.entries(src).filter(([k]) => prefix.some((p) => k.startsWith(p))));
      if (obj !== undefined) {
        const key = `${account}/${container}/${obj}`;
        const o = this.objects.get(key);
        if (req.method === 'PUT') {
          const etag = createHash('md5').update(body).digest('hex');
          if (h.etag && h.etag.replace(/"/g, '') !== etag) return send(422);
          this.objects.set(key, { data: body, ts: h['x-timestamp'], headers: { 'content-type': h['content-type'], etag, ...meta(h, ['x-object-meta-', 'content-disposition', 'x-delete-at', 'x-object-manifest', 'x-static-large-object', 'content-encoding']) } });
          return send(201, { etag });
        }
        if (!o) return send(404);
        if (req.method === 'DELETE') {
          this.objects.delete(key);
          return send(204);
        }
        if (req.method === 'POST') {
          o.headers = { 'content-type': h['content-type'] ?? o.headers['content-type'], etag: o.headers.etag, ...meta(h, ['x-object-meta-', 'content-disposition', 'x-delete-at']) };
          return send(202);
        }
        const base = { ...o.headers, 'x-timestamp': o.ts, 'last-modified': new Date(Math.ceil(Number(o.ts)) * 1000).toUTCString() };
        const range = /^bytes=(\d*)-(\d*)$/.exec(h.range ?? '');
        if (range) {
          const start = range[1] === '' ? o.data.length - Number(range[2]) : Number(range[1]);
          const end = range[1] === '' || range[2] === '' ? o.data.length - 1 : Math.min(Number(range[2]), o.data.length - 1);
          if (start >= o.data.length || start > end) return send(416, { 'content-range': `bytes */${o.data.length}` });
          res.writeHead(206, { ...base, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${o.data.length}` });
          return res.end(req.method === 'HEAD' ? undefined : o.data.subarray(start, end + 1));
        }
        res.writeHead(200, { ...base, 'content-length': String(o.data.length) });
        return res.end(req.method === 'HEAD' ? undefined : o.data);
      }
      if (container !== undefined) {
        const key = `${account}/${container}`;
        const c = this.containers.get(key);
        const objs = () => [...this.objects.entries()].filter(([k]) => k.startsWith(`${key}/`)).map(([k, v]) => ({ name: k.slice(key.length + 1), v })).sort((a, b) => (a.name < b.name ? -1 : 1));
        if (req.method === 'PUT') {
          const existed = Boolean(c);
          this.containers.set(key, { ...(c ?? {}), ...meta(h, ['x-container-meta-', 'x-container-read', 'x-container-write', 'x-versions-location', 'x-history-location', 'x-container-sysmeta-']) });
          return send(existed ? 202 : 201);
        }
        if (!c) return send(404);
        if (req.method === 'DELETE') {
          if (objs().length) return send(409);
          this.containers.delete(key);
          return send(204);
        }
        if (req.method === 'POST') {
          Object.assign(c, meta(h, ['x-container-meta-', 'x-container-read', 'x-container-write', 'x-versions-location', 'x-history-location', 'x-container-sysmeta-']));
          return send(204);
        }
        const list = objs();
        const stats = { 'x-container-object-count': String(list.length), 'x-container-bytes-used': String(list.reduce((n, o) => n + o.v.data.length, 0)), 'x-backend-storage-policy-index': '0' };
        const headers = Object.fromEntries(Object.entries({ ...c, ...stats }).filter(([, v]) => v !== ''));
        if (req.method === 'HEAD') return send(204, headers);
        const p = new URLSearchParams(q ?? '');
        const rows = listing(list.map((o) => o.name), p).map((n) =>
          typeof n === 'string' ? { name: n, hash: this.objects.get(`${key}/${n}`)!.headers.etag, bytes: this.objects.get(`${key}/${n}`)!.data.length, content_type: this.objects.get(`${key}/${n}`)!.headers['content-type'], last_modified: '2026-01-01T00:00:00.000000' } : n,
        );
        return send(200, { ...headers, 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(rows));
      }
      const a = this.accounts.get(account);
      if (req.method === 'PUT') {
        this.accounts.set(account, a ?? {});
        return send(a ? 202 : 201);
      }
      if (!a) return send(404);
      if (req.method === 'POST') {
        Object.assign(a, meta(h, ['x-account-meta-']));
        return send(204);
      }
      const conts = [...this.containers.keys()].filter((k) => k.startsWith(`${account}/`)).map((k) => k.slice(account.length + 1)).sort();
      const headers = { ...Object.fromEntries(Object.entries(a).filter(([, v]) => v !== '')), 'x-account-container-count': String(conts.length), 'x-account-object-count': '0', 'x-account-bytes-used': '0' };
      if (req.method === 'HEAD') return send(204, headers);
      const rows = listing(conts, new URLSearchParams(q ?? '')).map((n) => (typeof n === 'string' ? { name: n, count: 0, bytes: 0, last_modified: '2026-01-01T00:00:00.000000' } : n));
      return send(200, { ...headers, 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(rows));
    });
  }
}

function listing(names: string[], p: URLSearchParams): (string | { subdir: string })[] {
  const prefix = p.get('prefix') ?? '';
  const delimiter = p.get('delimiter');
  const marker = p.get('marker') ?? '';
  const end = p.get('end_marker');
  const limit = Number(p.get('limit') ?? 10000);
  let list = names.filter((n) => n.startsWith(prefix) && n > marker && (end === null || n < end));
  if (p.get('reverse') === 'true') list = list.reverse();
  const out: (string | { subdir: string })[] = [];
  for (const n of list) {
    if (delimiter) {
      const i = n.indexOf(delimiter, prefix.length);
      if (i >= 0) {
        const sub = n.slice(0, i + 1);
        if (!out.some((o) => typeof o !== 'string' && o.subdir === sub)) out.push({ subdir: sub });
        continue;
      }
    }
    out.push(n);
  }
  return out.slice(0, limit);
}

/** A FAKE ring: every path on partition 0, the first `replicas` nodes primaries, the rest handoffs in order. */
export function fakeRing(nodes: RingNode[], replicas = 3): ProxyRing {
  return {
    replicaCount: replicas,
    getNodes: () => ({ partition: 0, nodes: nodes.slice(0, replicas) }),
    getMoreNodes: () => nodes.slice(replicas),
  };
}
