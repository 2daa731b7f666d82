/**
 * The account server: upstream's backend protocol on
 * /<device>/<partition>/<account> (PUT DELETE HEAD GET POST),
 * /<device>/<partition>/<account>/<container> (container row PUT from
 * container servers, with X-Put-Timestamp, X-Delete-Timestamp,
 * X-Object-Count, X-Bytes-Used), and REPLICATE on /<device>/<partition>/<hash>.
 */
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { hashPath, type HashPathConf } from '../common/hash-path.ts';
import { AccountBroker, type AccountInfo, type ContainerRow } from './account-broker.ts';
import { metadataFromHeaders } from './container-server.ts';
import { dbPath, visibleMetadata, type DbMetadata } from './db-file.ts';
import { handleDbReplicate } from './db-replicate.ts';
import { backendVerb, drain, header, HttpError, query, readBody, send, sendError, splitBackendPath } from './http-util.ts';
import { CONTENT_TYPES, listingFormat, parseListingQuery, renderListing, type ListingItem } from './listing-format.ts';
import { createStorageHttpServer, devicePath, policyIndex, requireTimestamp } from './object-server.ts';
import { InvalidTimestamp, isoOf, normalizeTimestamp, normalOf, nowTimestamp } from './timestamp.ts';

export interface AccountServerOptions {
  devices: string;
  hashPath: HashPathConf;
  logger?: Logger;
  /** Accounts with this prefix are created by their first container row (upstream auto_create_account_prefix). */
  autoCreateAccountPrefix?: string;
  now?: () => number;
}

export function accountHeaders(i: AccountInfo, md: DbMetadata): Record<string, string | number> {
  return {
    'X-Account-Container-Count': i.container_count,
    'X-Account-Object-Count': i.object_count,
    'X-Account-Bytes-Used': i.bytes_used,
    'X-Timestamp': normalOf(i.created_at),
    'X-PUT-Timestamp': normalOf(i.put_timestamp),
    'X-Backend-Timestamp': i.created_at,
    'X-Backend-Put-Timestamp': i.put_timestamp,
    'X-Backend-Delete-Timestamp': i.delete_timestamp,
    'X-Backend-Status-Changed-At': i.status_changed_at,
    ...visibleMetadata(md),
  };
}

export function containerListingItem(r: ContainerRow): ListingItem {
  return {
    name: r.name,
    fields: [
      ['name', r.name],
      ['count', r.object_count],
      ['bytes', r.bytes_used],
      ['last_modified', isoOf(r.put_timestamp)],
    ],
  };
}

function tsHeader(req: IncomingMessage, name: string): string {
  const raw = header(req, name);
  if (!raw) return '0000000000.00000';
  try {
    return normalizeTimestamp(raw);
  } catch (e) {
    if (e instanceof InvalidTimestamp) throw new HttpError(400, `Invalid ${name}`);
    throw e;
  }
}

export function createAccountHandler(opts: AccountServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const now = opts.now ?? Date.now;
  const autoPrefix = opts.autoCreateAccountPrefix ?? '.';

  function locate(req: IncomingMessage) {
    const p = splitBackendPath(req.url ?? '/', 3, 4);
    const dev = devicePath(opts.devices, p.device);
    const hash = hashPath(opts.hashPath, p.account!);
    return { ...p, account: p.account!, dev, path: dbPath(dev, 'accounts', p.partition, hash) };
  }

  function openLive(path: string): AccountBroker {
    const broker = AccountBroker.open(path);
    if (!broker) throw new HttpError(404);
    if (broker.isDeleted()) throw new HttpError(404, '', broker.isStatusDeleted() ? { 'X-Account-Status': 'Deleted' } : {});
    return broker;
  }

  async function put(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    drain(req);
    if (a.container) {
      const ts = header(req, 'x-timestamp') ? requireTimestamp(req) : nowTimestamp(now());
      let broker = AccountBroker.open(a.path);
      if (!broker && a.account.startsWith(autoPrefix)) broker = AccountBroker.openOrCreate(a.path, { account: a.account, putTimestamp: ts, now: nowTimestamp(now()) }).broker;
      if (!broker) throw new HttpError(404);
      if (broker.isDeleted() && header(req, 'x-account-override-deleted') !== 'yes') throw new HttpError(404);
      const putTs = tsHeader(req, 'x-put-timestamp');
      const delTs = tsHeader(req, 'x-delete-timestamp');
      broker.putContainer({
        name: a.container,
        put_timestamp: putTs,
        delete_timestamp: delTs,
        object_count: Number(header(req, 'x-object-count') ?? 0) || 0,
        bytes_used: Number(header(req, 'x-bytes-used') ?? 0) || 0,
        storage_policy_index: policyIndex(req),
      });
      send(res, delTs > putTs ? 204 : 201);
      return;
    }
    const ts = requireTimestamp(req);
    const { broker, created: fresh } = AccountBroker.openOrCreate(a.path, { account: a.account, putTimestamp: ts, now: nowTimestamp(now()) });
    let created = fresh;
    if (!fresh) {
      if (broker.isStatusDeleted()) throw new HttpError(403, 'Recently deleted');
      created = broker.isDeleted();
      broker.updatePutTimestamp(ts);
      if (broker.isDeleted()) throw new HttpError(409);
    }
    broker.updateMetadata(metadataFromHeaders(req, 'account', ts));
    send(res, created ? 201 : 202);
  }

  async function del(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    drain(req);
    if (a.container) throw new HttpError(400, 'Invalid path');
    const ts = requireTimestamp(req);
    const broker = openLive(a.path);
    broker.deleteDb(ts);
    send(res, 204);
  }

  async function headOrGet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const a = locate(req);
    drain(req);
    if (a.container) throw new HttpError(400, 'Invalid path');
    const q = query(req.url ?? '');
    const format = listingFormat(req, q);
    const broker = openLive(a.path);
    const h = accountHeaders(broker.info(), broker.metadata());
    if (req.method === 'HEAD') {
      res.writeHead(204, { ...h, 'Content-Type': CONTENT_TYPES[format], 'Content-Length': 0 });
      res.end();
      return;
    }
    const items = broker.list({ ...parseListingQuery(q), allowReserved: header(req, 'x-backend-allow-reserved-names')?.toLowerCase() === 'true' }).map((e) => ('subdir' in e ? e : containerListingItem(e.row)));
    const body = renderListing(format, 'account', a.account, items);
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
    if (a.container) throw new HttpError(400, 'Invalid path');
    const broker = openLive(a.path);
    broker.updateMetadata(metadataFromHeaders(req, 'account', ts));
    send(res, 204);
  }

  async function replicate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = splitBackendPath(req.url ?? '/', 3, 3);
    const dev = devicePath(opts.devices, p.device);
    const body = await readBody(req, 64 * 1024 * 1024);
    const out = handleDbReplicate('account', dbPath(dev, 'accounts', p.partition, p.account!), body);
    send(res, out.status, JSON.stringify(out.body), { 'Content-Type': 'application/json' });
  }

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = { PUT: put, DELETE: del, HEAD: headOrGet, GET: headOrGet, POST: post, REPLICATE: replicate };

  return (req, res) => {
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
}

export function createAccountServer(opts: AccountServerOptions): http.Server {
  return createStorageHttpServer(createAccountHandler(opts));
}
