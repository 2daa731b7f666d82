/**
 * upstream's legacy versioned_writes: a container with X-Versions-Location
 * (stack mode) or X-History-Location (history mode) names an archive
 * container. Overwriting an object first copies the current version there as
 * `<3-hex name length><name>/<timestamp>`. A DELETE in stack mode restores
 * the newest archived version in place (and removes it from the archive); in
 * history mode it archives the current version and a delete marker, then
 * deletes. The location is kept as container sysmeta with its mode.
 */
import { Readable } from 'node:stream';
import { internalTs, parseTimestamp } from '../../storage/timestamp.ts';
import type { ProxyContext } from '../controllers/base.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, plainError, readBody, respond } from '../responses.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { subRequest } from './segments.ts';

const DELETE_MARKER = 'application/x-deleted;swift_versions_deleted=1';
const SYSMETA_LOC = 'x-container-sysmeta-versions-location';
const SYSMETA_MODE = 'x-container-sysmeta-versions-mode';
/** Object headers an archived copy keeps (the rest are the response's own). */
const KEPT = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires', 'x-delete-at', 'x-object-manifest', 'x-static-large-object', 'etag'];

/** An error answer that ends the whole request (upstream raises HTTPException). */
class Abort extends Error {
  constructor(readonly response: SwiftResponse) {
    super('versioned writes aborted');
  }
}

const versionsPrefix = (obj: string) => `${Buffer.byteLength(obj, 'utf8').toString(16).padStart(3, '0')}${obj}/`;

function preAuthed(req: SwiftRequest, method: string, path: string, o: { headers?: Headers; query?: URLSearchParams; body?: SwiftRequest['body'] } = {}): SwiftRequest {
  const sub = subRequest(req, 'VW', method, path, o);
  sub.env.preAuthed = true;
  return sub;
}

/** A failed step: a client error is 412 to the caller, anything else 503 (_check_response_error). */
function check(res: SwiftResponse): void {
  if (isSuccess(res.status)) return;
  discard(res.body);
  throw new Abort(respond(res.status >= 400 && res.status < 500 ? 412 : 503));
}

async function authorizeWrite(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<void> {
  if (!req.env.authorize || req.env.preAuthed) return;
  const info = await containerInfo(ctx, req, account, container);
  req.env.acl = info.writeAcl;
  const denied = req.env.authorize(req);
  if (denied) throw new Abort(denied);
}

/** Copies the object at `from` to the path `to` names from its headers (both pre-authorized); false when `from` does not exist. */
async function copyObject(next: Handler, req: SwiftRequest, from: string, to: (src: Headers) => string): Promise<boolean> {
  const src = await next(preAuthed(req, 'GET', from));
  if (src.status === 404) {
    discard(src.body);
    return false;
  }
  check(src);
  const headers: Headers = {};
  for (const [k, v] of Object.entries(src.headers)) if (KEPT.includes(k) || k.startsWith('x-object-meta-') || k.startsWith('x-object-sysmeta-') || k.startsWith('x-object-transient-sysmeta-')) headers[k] = v;
  if (headers['x-object-sysmeta-slo-size']) headers['content-type'] = `${headers['content-type']};swift_bytes=${headers['x-object-sysmeta-slo-size']}`;
  if (src.headers['content-length'] !== undefined) headers['content-length'] = src.headers['content-length'];
  else headers['transfer-encoding'] = 'chunked';
  const body = src.body === undefined || src.body instanceof Readable ? src.body : Readable.from([Buffer.from(src.body)]);
  const put = await next(preAuthed(req, 'PUT', to(src.headers), { headers, body }));
  check(put);
  discard(put.body);
  return true;
}

/** Archives the current object under its own timestamp; nothing when there is none. */
async function archiveCurrent(ctx: ProxyContext, next: Handler, req: SwiftRequest, t: Target): Promise<void> {
  await authorizeWrite(ctx, req, t.account, t.container);
  await copyObject(next, req, req.path, (h) => {
    const ts = h['x-timestamp'] ?? String(Date.parse(h['last-modified'] ?? '') / 1000);
    return `${t.base}/${t.versions}/${versionsPrefix(t.obj)}${internalTs(parseTimestamp(ts))}`;
  });
}

/** Where a versioned object's archive lives. */
interface Target {
  base: string;
  account: string;
  container: string;
  obj: string;
  versions: string;
}

async function listVersions(next: Handler, req: SwiftRequest, t: Target): Promise<{ name: string; content_type: string }[]> {
  const out: { name: string; content_type: string }[] = [];
  let marker = '';
  for (;;) {
    const query = new URLSearchParams({ format: 'json', prefix: versionsPrefix(t.obj), reverse: 'on' });
    if (marker) query.set('marker', marker);
    const res = await next(preAuthed(req, 'GET', `${t.base}/${t.versions}`, { query }));
    if (res.status === 404) {
      discard(res.body);
      return out;
    }
    check(res);
    const body = await readBody(res.body);
    const page = body.length ? (JSON.parse(body.toString('utf8')) as { name: string; content_type: string }[]) : [];
    if (!page.length) return out;
    out.push(...page);
    marker = page[page.length - 1].name;
  }
}

/** Stack mode: the newest archived version goes back in place (over a delete marker, the one before it). */
async function deletePop(ctx: ProxyContext, next: Handler, req: SwiftRequest, t: Target): Promise<SwiftResponse> {
  const items = await listVersions(next, req, t);
  if (!items.length) return next(req);
  await authorizeWrite(ctx, req, t.account, t.container);
  const archived = (name: string) => `${t.base}/${t.versions}/${name}`;
  const inPlace = () => req.path;
  const [newest, ...older] = items;
  if (newest.content_type === DELETE_MARKER) {
    const head = await next(preAuthed(req, 'HEAD', req.path));
    discard(head.body);
    if (head.status !== 404) {
      check(head);
      return next(req);
    }
    for (const v of older) {
      if (v.content_type === DELETE_MARKER) break;
      if (!(await copyObject(next, req, archived(v.name), inPlace))) continue;
      const del = await next(preAuthed(req, 'DELETE', archived(v.name)));
      discard(del.body);
      if (del.status !== 404) check(del);
      break;
    }
    return next(preAuthed(req, 'DELETE', archived(newest.name)));
  }
  for (const v of items) {
    if (v.content_type === DELETE_MARKER) break;
    if (await copyObject(next, req, archived(v.name), inPlace)) return next(preAuthed(req, 'DELETE', archived(v.name)));
  }
  return next(req);
}

/** History mode: archive the current version and a delete marker, then delete. */
async function deletePush(ctx: ProxyContext, next: Handler, req: SwiftRequest, t: Target): Promise<SwiftResponse> {
  await archiveCurrent(ctx, next, req, t);
  const marker = await next(preAuthed(req, 'PUT', `${t.base}/${t.versions}/${versionsPrefix(t.obj)}${internalTs(parseTimestamp(Date.now() / 1000))}`, { headers: { 'content-type': DELETE_MARKER, 'content-length': '0' } }));
  check(marker);
  discard(marker.body);
  return next(req);
}

/** X-Versions-Location / X-History-Location on a container PUT or POST become sysmeta (container_request). */
function translateContainerHeaders(req: SwiftRequest): SwiftResponse | undefined {
  const h = req.headers;
  if (h['x-versions-location'] !== undefined && h['x-history-location'] !== undefined) {
    if (!h['x-history-location']) delete h['x-history-location'];
    else if (h['x-versions-location']) return plainError(400, 'Only one of x-versions-location or x-history-location may be specified');
    else delete h['x-versions-location'];
  }
  const stack = h['x-versions-location'];
  const value = stack ?? h['x-history-location'];
  if (value !== undefined) {
    if (!value) h['x-remove-versions-location'] = 'x';
    else {
      if (value.includes('/')) return plainError(412, 'Container name cannot contain slashes');
      h[SYSMETA_LOC] = value;
      h[SYSMETA_MODE] = stack !== undefined ? 'stack' : 'history';
      h['x-versions-location'] = '';
      delete h['x-history-location'];
      delete h['x-remove-versions-location'];
      delete h['x-remove-history-location'];
    }
  }
  if (h['x-remove-versions-location'] || h['x-remove-history-location']) {
    Object.assign(h, { 'x-versions-location': '', [SYSMETA_LOC]: '', [SYSMETA_MODE]: '' });
    delete h['x-remove-versions-location'];
    delete h['x-remove-history-location'];
    delete h['x-history-location'];
  }
  return undefined;
}

export function versionedWrites(ctx: ProxyContext, info: InfoRegistry): Middleware {
  info.register('versioned_writes', { allowed_flags: ['x-versions-location', 'x-history-location'] });
  return (next) => async (req) => {
    const p = splitSwiftPath(req.path);
    if (!p?.account || !p.container) return next(req);
    if (!p.obj) {
      if (req.method === 'PUT' || req.method === 'POST') {
        const bad = translateContainerHeaders(req);
        if (bad) return bad;
      }
      const res = await next(req);
      const loc = res.headers[SYSMETA_LOC];
      if (loc) res.headers[res.headers[SYSMETA_MODE] === 'history' ? 'x-history-location' : 'x-versions-location'] = loc;
      return res;
    }
    if (req.method !== 'PUT' && req.method !== 'DELETE') return next(req);
    const c = await containerInfo(ctx, req, p.account, p.container);
    const versions = c.sysmeta['versions-location'] || c.versionsLocation;
    if (!versions) return next(req);
    const t: Target = { base: `/${p.version}/${p.account}`, account: p.account, container: p.container, obj: p.obj, versions };
    try {
      if (req.method === 'PUT') {
        await archiveCurrent(ctx, next, req, t);
        return await next(req);
      }
      if (c.sysmeta['versions-mode'] === 'history') return await deletePush(ctx, next, req, t);
      return await deletePop(ctx, next, req, t);
    } catch (e) {
      if (e instanceof Abort) return e.response;
      throw e;
    }
  };
}
