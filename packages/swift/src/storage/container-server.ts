/**
 * The container server: upstream's backend protocol on
 * /<device>/<partition>/<account>/<container> (PUT DELETE HEAD GET POST) and
 * /<device>/<partition>/<account>/<container>/<object> (object row PUT/DELETE
 * from object servers), plus REPLICATE on /<device>/<partition>/<hash>.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type http from 'node:http';
import type { Logger } from 'pino';
import { hashPath, type HashPathConf } from '../common/hash-path.ts';
import type { LocalUpdate, RowUpdate, UpdateTarget } from './async-pending.ts';
import { ContainerBroker, type ContainerInfo, type ObjectRow } from './container-broker.ts';
import { reportContainer, sendAccountUpdates, type AccountUpdateOptions } from './container-updater.ts';
import { dbPath, visibleMetadata, type DbMetadata } from './db-file.ts';
import { backendVerb, drain, header, HttpError, query, readBody, send, sendError, splitBackendPath, updateTargets } from './http-util.ts';
import { CONTENT_TYPES, listingFormat, parseListingQuery, renderListing, type ListingItem } from './listing-format.ts';
import { createStorageHttpServer, devicePath, policyIndex, policyOf, requireTimestamp, timestampOf, titleCase } from './object-server.ts';
import { handleDbReplicate } from './db-replicate.ts';
import { isoOf, normalizeTimestamp, normalOf, nowTimestamp } from './timestamp.ts';

export interface ContainerServerOptions {
  devices: string;
  hashPath: HashPathConf;
  logger?: Logger;
  /** Accounts with this prefix are created on first use (upstream auto_create_account_prefix). */
  autoCreateAccountPrefix?: string;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  /** After object rows change, report the container's stats to its account this soon (ms); 0 disables (then only ContainerUpdater reports). */
  accountReportDelayMs?: number;
  accountNodes?: AccountUpdateOptions['accountNodes'];
  now?: () => number;
}

const SAVE_HEADERS = new Set(['x-container-read', 'x-container-write', 'x-container-sync-key', 'x-container-sync-to', 'x-versions-location', 'x-history-location']);

export function metadataFromHeaders(req: IncomingMessage, kind: 'container' | 'account', ts: string, extra: Set<string> = new Set()): DbMetadata {
  const md: DbMetadata = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (typeof v !== 'string') continue;
    if (k.startsWith(`x-${kind}-meta-`) || k.startsWith(`x-${kind}-sysmeta-`) || extra.has(k)) md[titleCase(k)] = [v, ts];
  }
  return md;
}

export function containerHeaders(i: ContainerInfo, md: DbMetadata): Record<string, string | number> {
  return {
    'X-Container-Object-Count': i.object_count,
    'X-Container-Bytes-Used': i.bytes_used,
    'X-Timestamp': normalOf(i.created_at),
    'X-PUT-Timestamp': normalOf(i.put_timestamp),
    'X-Backend-Timestamp': i.created_at,
    'X-Backend-Put-Timestamp': i.put_timestamp,
    'X-Backend-Delete-Timestamp': i.delete_timestamp,
    'X-Backend-Status-Changed-At': i.status_changed_at,
    'X-Backend-Storage-Policy-Index': i.storage_policy_index,
    'X-Backend-Sharding-State': 'unsharded',
    ...visibleMetadata(md),
  };
}

function deletedHeaders(i: ContainerInfo): Record<string, string> {
  return {
    'X-Backend-Timestamp': i.created_at,
    'X-Backend-Put-Timestamp': i.put_timestamp,
    'X-Backend-Delete-Timestamp': i.delete_timestamp,
    'X-Backend-Status-Changed-At': i.status_changed_at,
    'X-Backend-Storage-Policy-Index': String(i.storage_policy_index),
  };
}

/** A listing row as upstream renders it; "; swift_bytes=N" in the content type (SLO) overrides the size. */
export function objectListingItem(r: ObjectRow): ListingItem {
  let ct = r.content_type;
  let bytes = r.size;
  const m = /;\s*swift_bytes=(\d+)/.exec(ct);
  if (m) {
    bytes = Number(m[1]);
    ct = ct.replace(/;\s*swift_bytes=\d+/, '');
  }
  return {
    name: r.name,
    fields: [
      ['name', r.name],
      ['hash', r.etag],
      ['bytes', bytes],
      ['content_type', ct],
      ['last_modified', isoOf(r.created_at)],
    ],
  };
}

export function createContainerHandler(opts: ContainerServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return createContainerApp(opts).handle;
}

/** The container server's HTTP handler, and its object row update for object servers in the same process. */
export function createContainerApp(opts: ContainerServerOptions): { handle: (req: IncomingMessage, res: ServerResponse) => void; objectUpdate: LocalUpdate } {
  const now = opts.now ?? Date.now;
  const autoPrefix = opts.autoCreateAccountPrefix ?? '.';
  const updOpts: AccountUpdateOptions = { connTimeoutMs: opts.connTimeoutMs ?? 500, nodeTimeoutMs: opts.nodeTimeoutMs ?? 3000, logger: opts.logger, accountNodes: opts.accountNodes };
  const reportDelay = opts.accountReportDelayMs ?? 1000;
  const scheduled = new Map<string, NodeJS.Timeout>();

  function locate(req: IncomingMessage) {
    const p = splitBackendPath(req.url ?? '/', 4, 5);
    return { ...p, ...dbLocation(p.device, p.partition, p.account!, p.container!) };
  }

  function dbLocation(device: string, partition: string, account: string, container: string) {
    const dev = devicePath(opts.devices, device);
    return { account, container, dev, path: dbPath(dev, 'containers', partition, hashPath(opts.hashPath, account, container)) };
  }

  /** An object server's row update (PUT or DELETE of one object's listing row); 404 when the container does not exist. */
  function objectRow(op: 'PUT' | 'DELETE', a: { account: string; container: string; path: string }, object: string, ts: string, get: (name: string) => string | undefined): void {
    const policy = policyOf(get('x-backend-storage-policy-index'));
    let broker = ContainerBroker.open(a.path);
    if (op === 'DELETE') {
      if (!broker) throw new HttpError(404);
      broker.deleteObject(object, ts, policy);
      scheduleReport(a.path);
      return;
    }
    if (!broker && a.account.startsWith(autoPrefix)) broker = ContainerBroker.openOrCreate(a.path, { account: a.account, container: a.container, putTimestamp: ts, policy, now: nowTimestamp(now()) }).broker;
    if (!broker) throw new HttpError(404);
    const ctypeTs = get('x-content-type-timestamp');
    const metaTs = get('x-meta-timestamp');
    broker.putObject({
      name: object,
      created_at: ts,
      size: Number(get('x-size') ?? 0) || 0,
      content_type: get('x-content-type') ?? '',
      etag: get('x-etag') ?? '',
      storage_policy_index: policy,
      ctype_timestamp: ctypeTs ? normalizeTimestamp(ctypeTs) : null,
      meta_timestamp: metaTs ? normalizeTimestamp(metaTs) : null,
    });
    scheduleReport(a.path);
  }

  /**
   * The same row update called in-process by an object server of this storage node (the all-in-one), instead of
   * an HTTP request to its own port: those loopback requests were a third of a small PUT's requests. Any failure
   * (no such device or container, a bad header, a DB error) is false, as a non-2xx answer is, so the caller
   * saves an async pending.
   */
  function localObjectUpdate(t: UpdateTarget, u: RowUpdate): boolean {
    try {
      const [account, container] = u.container_path ? u.container_path.split('/') : [u.account, u.container];
      if (!account || !container) throw new HttpError(400, `bad container path ${u.container_path}`);
      const get = (n: string) => u.headers[n];
      objectRow(u.op === 'DELETE' ? 'DELETE' : 'PUT', dbLocation(t.device, t.partition, account, container), u.obj, timestampOf(get('x-timestamp')), get);
      return true;
    } catch (e) {
      opts.logger?.error({ err: (e as Error).message, status: (e as HttpError).status, device: t.device }, 'ERROR Container update failed (saving for async update later)');
      return false;
    }
  }

  /** Debounced stats report to the account after object rows change. */
  function scheduleReport(path: string): void {
    if (!reportDelay || scheduled.has(path)) return;
    const t = setTimeout(() => {
      scheduled.delete(path);
      const b = ContainerBroker.open(path);
      if (b) void reportContainer(b, updOpts).catch(() => undefined);
    }, reportDelay);
    t.unref();
    scheduled.set(path, t);
  }

  function accountTargets(req: IncomingMessage): UpdateTarget[] {
    const t = updateTargets(header(req, 'x-account-host'), header(req, 'x-account-device'), header(req, 'x-account-partition'));
    if (t === null) throw new HttpError(400, `"X-Account-Host" (${header(req, 'x-account-host')}) and "X-Account-Device" (${header(req, 'x-account-device')}) differ in number`);
    return t;
  }

  /** Container PUT/DELETE update the account at once (upstream account_update); all 404s → the account does not exist. */
  async function accountUpdate(req: IncomingMessage, broker: ContainerBroker, targets: UpdateTarget[]): Promise<void> {
    if (!targets.length) return;
    broker.setAccountTargets(JSON.stringify(targets));
    const info = broker.info();
    const extra: Record<string, string> = { 'x-trans-id': header(req, 'x-trans-id') ?? '-' };
    if (header(req, 'x-account-override-deleted') === 'yes') extra['x-account-override-deleted'] = 'yes';
    const { ok, notFound } = await sendAccountUpdates(info, targets, extra, updOpts);
    if (ok === targets.length) broker.reported(info);
    if (notFound && notFound === targets.length) throw new HttpError(404);
  }

  async function put(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const ts = requireTimestamp(req);
    drain(req);
    if (a.object) {
      objectRow('PUT', a, a.object, ts, (n) => header(req, n));
      send(res, 201);
      return;
    }
    const targets = accountTargets(req);
    const policyHeader = header(req, 'x-backend-storage-policy-index');
    const policy = policyHeader !== undefined ? policyIndex(req) : Number(header(req, 'x-backend-storage-policy-default') ?? 0) || 0;
    const { broker, created: fresh } = ContainerBroker.openOrCreate(a.path, { account: a.account, container: a.container, putTimestamp: ts, policy, now: nowTimestamp(now()) });
    let created = fresh;
    if (!fresh) {
      const before = broker.info();
      const wasDeleted = ContainerBroker.isDeletedInfo(before);
      if (!wasDeleted && policyHeader !== undefined && policy !== before.storage_policy_index) {
        throw new HttpError(409, '', { 'X-Backend-Storage-Policy-Index': String(before.storage_policy_index) });
      }
      broker.updatePutTimestamp(ts);
      if (broker.isDeleted()) throw new HttpError(409);
      if (wasDeleted) {
        broker.setStoragePolicy(policy);
        created = true;
      }
    }
    broker.updateMetadata(metadataFromHeaders(req, 'container', ts, SAVE_HEADERS));
    await accountUpdate(req, broker, targets);
    send(res, created ? 201 : 202);
  }

  async function del(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const ts = requireTimestamp(req);
    drain(req);
    if (a.object) {
      objectRow('DELETE', a, a.object, ts, (n) => header(req, n));
      send(res, 204);
      return;
    }
    const broker = ContainerBroker.open(a.path);
    const targets = accountTargets(req);
    if (!broker) throw new HttpError(404);
    if (!broker.empty()) throw new HttpError(409);
    const existed = !broker.isDeleted();
    broker.deleteDb(ts);
    if (!broker.isDeleted()) throw new HttpError(409);
    await accountUpdate(req, broker, targets);
    if (!existed) throw new HttpError(404);
    send(res, 204);
  }

  function openLive(a: ReturnType<typeof locate>): ContainerBroker {
    const broker = ContainerBroker.open(a.path);
    if (!broker) throw new HttpError(404);
    const info = broker.info();
    if (ContainerBroker.isDeletedInfo(info)) throw new HttpError(404, '', deletedHeaders(info));
    return broker;
  }

  async function headOrGet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    drain(req);
    if (a.object) throw new HttpError(400, 'Invalid path');
    const q = query(req.url ?? '');
    const format = listingFormat(req, q);
    const broker = openLive(a);
    const h = containerHeaders(broker.info(), broker.metadata());
    if (req.method === 'HEAD') {
      res.writeHead(204, { ...h, 'Content-Type': CONTENT_TYPES[format], 'Content-Length': 0 });
      res.end();
      return;
    }
    const lq = { ...parseListingQuery(q), allowReserved: header(req, 'x-backend-allow-reserved-names')?.toLowerCase() === 'true' };
    const items = broker.list(lq).map((e) => ('subdir' in e ? e : objectListingItem(e.row)));
    const body = renderListing(format, 'container', a.container, items);
    if (body === undefined) {
      res.writeHead(204, { ...h, 'Content-Type': CONTENT_TYPES[format], 'Content-Length': 0 });
      res.end();
      return;
    }
    send(res, 200, body, { ...h, 'Content-Type': CONTENT_TYPES[format] });
  }

  async function post(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    const ts = requireTimestamp(req);
    drain(req);
    if (a.object) throw new HttpError(400, 'Invalid path');
    const broker = openLive(a);
    const ptype = header(req, 'x-backend-storage-policy-index');
    if (ptype !== undefined && Number(ptype) !== broker.info().storage_policy_index) throw new HttpError(409);
    broker.updateMetadata(metadataFromHeaders(req, 'container', ts, SAVE_HEADERS));
    send(res, 204);
  }

  async function replicate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = splitBackendPath(req.url ?? '/', 3, 3);
    const dev = devicePath(opts.devices, p.device);
    const body = await readBody(req, 64 * 1024 * 1024);
    const out = handleDbReplicate('container', dbPath(dev, 'containers', p.partition, p.account!), body);
    send(res, out.status, JSON.stringify(out.body), { 'Content-Type': 'application/json' });
  }

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = { PUT: put, DELETE: del, HEAD: headOrGet, GET: headOrGet, POST: post, REPLICATE: replicate };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const route = routes[backendVerb(req)];
    if (!route) {
      drain(req);
      sendError(res, 405, undefined, { Allow: Object.keys(routes).join(', ') });
      return;
    }
    route(req, res).catch((e: unknown) => {
      drain(req);
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) return sendError(res, e.status, e.body || undefined, e.headers);
      opts.logger?.error({ err: e, method: req.method, path: req.url }, 'ERROR __call__ error');
      sendError(res, 500);
    });
  };
  return { handle, objectUpdate: localObjectUpdate };
}

export function createContainerServer(opts: ContainerServerOptions): http.Server {
  return createStorageHttpServer(createContainerHandler(opts));
}
