/**
 * Account, container and object servers answering on one port (the
 * all-in-one's storage node). Upstream gives each its own port; on one port
 * a request is routed by `X-Backend-Server-Type: account|container|object`
 * when present (onestack's own updates always send it), else by its shape:
 *   3 segments → account; 4 → container, except a PUT carrying X-Put-Timestamp
 *   (a container server's row report) → account; 5 → object, except a PUT
 *   carrying X-Size or a request from an object server (User-Agent
 *   "object-server …": a row update) → container. REPLICATE: a 32-hex third
 *   segment is a DB (container unless the header says account), else object
 *   suffixes.
 */
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createAccountHandler, type AccountServerOptions } from './account-server.ts';
import type { LocalUpdate } from './async-pending.ts';
import { createContainerApp, type ContainerServerOptions } from './container-server.ts';
import { backendVerb, send } from './http-util.ts';
import { createObjectHandler, createStorageHttpServer, type ObjectServerOptions } from './object-server.ts';

export type StorageNodeOptions = ObjectServerOptions &
  ContainerServerOptions &
  AccountServerOptions & {
    /** "ip:port" this node appears as in the container ring: object servers apply row updates for it in-process. */
    selfHosts?: string[];
  };

export type ServerType = 'account' | 'container' | 'object';

export function routeStorageRequest(req: IncomingMessage): ServerType {
  const explicit = req.headers['x-backend-server-type'];
  if (explicit === 'account' || explicit === 'container' || explicit === 'object') return explicit;
  const url = req.url ?? '/';
  const path = url.split('?')[0];
  const segs = path.split('/').length - 1;
  const verb = backendVerb(req);
  if (verb === 'REPLICATE') {
    const third = path.split('/')[3] ?? '';
    return /^[0-9a-f]{32}$/.test(third) ? 'container' : 'object';
  }
  if (segs <= 3) return 'account';
  if (segs === 4) return verb === 'PUT' && req.headers['x-put-timestamp'] !== undefined ? 'account' : 'container';
  const ua = req.headers['user-agent'] ?? '';
  if (ua.startsWith('object-server') || (verb === 'PUT' && req.headers['x-size'] !== undefined && req.headers['x-container-host'] === undefined)) return 'container';
  return 'object';
}

export function createStorageNodeHandler(opts: StorageNodeOptions & { version?: string }): (req: IncomingMessage, res: ServerResponse) => void {
  const container = createContainerApp(opts);
  const self = new Set(opts.selfHosts ?? []);
  const localContainerUpdate: LocalUpdate = (t, p) => (self.has(t.host) ? container.objectUpdate(t, p) : undefined);
  const handlers = { object: createObjectHandler({ ...opts, localContainerUpdate }), container: container.handle, account: createAccountHandler(opts) };
  return (req, res) => {
    // Upstream's storage pipelines start with the healthcheck filter; `onestack status` reads it as JSON.
    if (req.url === '/healthcheck' && (req.method === 'GET' || req.method === 'HEAD')) return healthcheck(req, res, opts.version ?? '');
    handlers[routeStorageRequest(req)](req, res);
  };
}

export function createStorageNode(opts: StorageNodeOptions & { version?: string }): http.Server {
  return createStorageHttpServer(createStorageNodeHandler(opts));
}

function healthcheck(req: IncomingMessage, res: ServerResponse, version: string): void {
  if (!String(req.headers.accept ?? '').includes('application/json')) return send(res, 200, 'OK', { 'Content-Type': 'text/plain' });
  const mem = process.memoryUsage();
  const body = { service: 'swift_storage', status: 'up', version, pid: process.pid, uptime_s: Math.round(process.uptime()), memory: { rss: mem.rss, heap_used: mem.heapUsed } };
  send(res, 200, JSON.stringify(body), { 'Content-Type': 'application/json' });
}
