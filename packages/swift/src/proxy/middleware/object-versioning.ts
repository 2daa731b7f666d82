/**
 * upstream's object_versioning (the newer versioning, X-Versions-Enabled):
 * a versioned container `c` has a hidden container `\0versions\0c` in the
 * reserved namespace, which only the pipeline's own requests may name. Every
 * PUT writes the data there as `\0<obj>\0<inverted timestamp>` and puts a
 * static symlink (symlink.ts) to it in `c`; a DELETE writes a delete marker
 * there and removes the link. `?versions` lists both containers merged with
 * version_id and is_latest; `?version-id=` reads, deletes or restores one
 * version. The state is container sysmeta: versions-enabled and
 * versions-container.
 */
import { Readable, Transform } from 'node:stream';
import { parseTimestamp, normalTs, InvalidTimestamp, type Timestamp } from '../../storage/timestamp.ts';
import type { ProxyContext } from '../controllers/base.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { guessType } from '../mime.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, plainError, readBody, respond } from '../responses.ts';
import { formatTimestamp, normalTimestamp } from '../timestamps.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { quote, unquoteBytes } from '../wsgi-strings.ts';
import { rewriteListing, type ListingEntry } from './json-listing.ts';
import { subRequest } from './segments.ts';
import { ALLOW_RESERVED, ALLOW_RESERVED_BACKEND, SYMLOOP_EXTEND, SYS_TGT_BYTES, SYS_TGT_ETAG, TGT_ACCT, TGT_OBJ } from './symlink.ts';

const DELETE_MARKER = 'application/x-deleted;swift_versions_deleted=1';
const CLIENT_ENABLED = 'x-versions-enabled';
const SYS_ENABLED = 'x-container-sysmeta-versions-enabled';
const SYS_CONTAINER = 'x-container-sysmeta-versions-container';
const SYS_LEGACY_LOCATION = 'x-container-sysmeta-versions-location';
const SYS_VERSIONS_SYMLINK = 'x-object-sysmeta-versions-symlink';
const RESERVED = '\0';
const NO_VERSIONS_CONTAINER = 'The versions container does not exist. You may want to re-enable object versioning.';
const TRUE_VALUES = ['true', '1', 'yes', 'on', 't', 'y'];
const isTrue = (v: string | undefined) => TRUE_VALUES.includes((v ?? '').toLowerCase());

/** An error answer that ends the whole request (upstream raises HTTPException). */
class Abort extends Error {
  constructor(readonly response: SwiftResponse) {
    super('object versioning aborted');
  }
}

const abort = (r: SwiftResponse): never => {
  throw new Abort(r);
};

const reservedName = (...parts: string[]) => RESERVED + parts.join(RESERVED);
const versionsContainerName = (container: string) => reservedName('versions', container);

/** ~Timestamp: newer versions sort first in the versions container. */
function invert(ts: Timestamp): string {
  if (ts.offset) throw new InvalidTimestamp('Cannot invert timestamps with offsets');
  return normalTs({ ticks: 999999999999999 - ts.ticks, offset: 0 });
}

const versionObjectName = (obj: string, versionId: string) => reservedName(obj, invert(parseTimestamp(versionId)));

/** `\0<obj>\0<inverted>` back to the object's name and version id; no id for anything else. */
function parseVersionObjectName(name: string): { name: string; versionId?: string } {
  if (!name.startsWith(RESERVED)) return { name };
  const parts = name.slice(1).split(RESERVED);
  if (parts.length !== 2) return { name };
  try {
    return { name: parts[0], versionId: invert(parseTimestamp(parts[1])) };
  } catch {
    return { name };
  }
}

/** A timestamp as a version id (timestamp_to_version: the offset dropped). */
const toVersion = (ts: string) => normalTs(parseTimestamp(ts));

function validateVersion(version: string, allowNull: boolean): void {
  if (version === 'null' && allowNull) return;
  try {
    if (parseTimestamp(version).offset) throw new InvalidTimestamp(version);
  } catch {
    abort(respond(400, 'Invalid version parameter'));
  }
}

/** A step that failed: 404 is 412 to the caller, other client errors pass as they are, anything else 503 (_check_response_error). */
async function check(res: SwiftResponse): Promise<void> {
  if (isSuccess(res.status)) return;
  if (res.status >= 400 && res.status < 500) {
    if (res.status === 404) {
      discard(res.body);
      abort(respond(412));
    }
    abort({ status: res.status, headers: res.headers, body: await readBody(res.body).catch(() => Buffer.alloc(0)) });
  }
  discard(res.body);
  abort(respond(503));
}

/** make_pre_authed_request into the reserved namespace. */
function internal(req: SwiftRequest, method: string, path: string, o: { headers?: Headers; query?: URLSearchParams; body?: SwiftRequest['body'] } = {}): SwiftRequest {
  const sub = subRequest(req, 'OV', method, path, { ...o, headers: { ...(o.headers ?? {}), [ALLOW_RESERVED_BACKEND]: 'true' } });
  sub.env.preAuthed = true;
  return sub;
}

const drop = (res: SwiftResponse) => {
  discard(res.body);
  return res;
};

/** An object request in a container that is or was versioned (upstream's ObjectContext). */
class ObjectVersioning {
  private readonly vpath: (name: string) => string;

  constructor(
    private ctx: ProxyContext,
    private next: Handler,
    private p: { version: string; account: string; container: string; obj: string },
    private versionsCont: string,
    private enabled: boolean,
  ) {
    this.vpath = (name) => `/${p.version}/${p.account}/${versionsCont}/${name}`;
  }

  async handle(req: SwiftRequest): Promise<SwiftResponse> {
    const versionId = req.query.get('version-id');
    if (versionId) return this.withVersionId(req, versionId);
    if (!this.versionsCont) return this.next(req);
    if (req.method === 'PUT') return this.enabled ? this.put(req) : this.next(req);
    if (req.method === 'DELETE') return this.enabled ? this.delete(req) : this.next(req);
    if (req.method === 'POST') return this.post(req);
    return this.annotate(await this.next(req));
  }

  /** An object written before versioning was enabled is archived before it is replaced (_copy_current). */
  private async copyCurrent(req: SwiftRequest): Promise<void> {
    if (req.env.authorize && !req.env.preAuthed) {
      const info = await containerInfo(this.ctx, req, this.p.account, this.p.container);
      req.env.acl = info.writeAcl;
      const denied = req.env.authorize(req);
      if (denied) abort(denied);
    }
    const src = await this.next(internal(req, 'GET', req.path, { query: new URLSearchParams({ symlink: 'get' }), headers: { 'x-newest': 'true' } }));
    if (src.status === 404) return void discard(src.body);
    await check(src);
    if (src.headers[SYS_VERSIONS_SYMLINK] === 'true') return void discard(src.body);
    const length = src.headers['content-length'];
    if (length === undefined || Number(length) > this.ctx.constraints.max_file_size) {
      discard(src.body);
      abort(respond(413));
    }
    const ts = src.headers['x-timestamp'] ?? String(Date.parse(src.headers['last-modified'] ?? '') / 1000);
    const headers: Headers = {};
    for (const [k, v] of Object.entries(src.headers)) if (k !== 'x-timestamp') headers[k] = v;
    if (headers['x-object-sysmeta-slo-size']) headers['content-type'] += `; swift_bytes=${headers['x-object-sysmeta-slo-size']}`;
    const body = src.body === undefined || src.body instanceof Readable ? src.body : Readable.from([Buffer.from(src.body)]);
    const put = await this.next(internal(req, 'PUT', this.vpath(versionObjectName(this.p.obj, toVersion(ts))), { headers, body }));
    if (put.status === 404) abort(plainError(500, NO_VERSIONS_CONTAINER));
    await check(put);
    discard(put.body);
  }

  private ensureTimestamp(req: SwiftRequest): string {
    const t = req.headers['x-timestamp'];
    if (t !== undefined) {
      try {
        return normalTs(parseTimestamp(t));
      } catch {
        abort(plainError(400, `X-Timestamp should be a UNIX timestamp float value; was '${t}'`));
      }
    }
    const now = normalTimestamp();
    req.headers['x-timestamp'] = now;
    return now;
  }

  private async put(req: SwiftRequest): Promise<SwiftResponse> {
    await this.copyCurrent(req);
    const ts = this.ensureTimestamp(req);
    const versName = versionObjectName(this.p.obj, toVersion(ts));
    const headers: Headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (k !== 'x-delete-at' && k !== 'x-delete-after') headers[k] = v;
    // The data's name is the reserved one; its type is guessed from the name the user gave.
    if (headers['content-type'] === undefined || isTrue(headers['x-detect-content-type'])) headers['content-type'] = guessType(this.p.obj) ?? 'application/octet-stream';
    delete headers['x-detect-content-type'];
    let bytes = 0;
    const counted = req.body?.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      }),
    );
    req.body?.on('error', (e) => counted?.destroy(e));
    const put = await this.next(internal(req, 'PUT', this.vpath(versName), { headers, body: counted }));
    if (put.status === 404) {
      discard(put.body);
      abort(plainError(500, NO_VERSIONS_CONTAINER));
    }
    await check(put);
    discard(put.body);
    const size = headers['x-object-sysmeta-slo-size'] ?? String(bytes);
    return this.linkTo(req, versName, put.headers.etag ?? '', size, headers['content-type'].split(';')[0].trim());
  }

  /** The static link in the user's container that makes a version the current one (_put_symlink_to_version). */
  private async linkTo(req: SwiftRequest, versName: string, etag: string, bytes: string, contentType: string): Promise<SwiftResponse> {
    const ts = parseTimestamp(this.ensureTimestamp(req));
    const headers: Headers = { ...req.headers };
    for (const h of ['etag', 'x-if-delete-at', TGT_ACCT, 'x-object-manifest', 'x-static-large-object', 'x-object-sysmeta-slo-etag', 'x-object-sysmeta-slo-size', 'transfer-encoding']) delete headers[h];
    Object.assign(headers, {
      // Just after the data it links to (upstream: the same timestamp with offset 1).
      'x-timestamp': formatTimestamp((ts.ticks + 1) / 100000),
      [SYS_TGT_ETAG]: etag,
      [SYS_TGT_BYTES]: bytes,
      'content-type': contentType,
      'content-length': '0',
      [TGT_OBJ]: quote(`${this.versionsCont}/${versName}`),
      [SYS_VERSIONS_SYMLINK]: 'true',
      [SYMLOOP_EXTEND]: 'true',
      [ALLOW_RESERVED]: 'true',
      [ALLOW_RESERVED_BACKEND]: 'true',
    });
    const res = await this.next({ ...req, method: 'PUT', headers, body: undefined, query: new URLSearchParams(), env: { ...req.env, source: 'OV' } });
    res.headers.etag = etag;
    res.headers['x-object-version-id'] = parseVersionObjectName(versName).versionId!;
    return res;
  }

  private async delete(req: SwiftRequest): Promise<SwiftResponse> {
    await this.copyCurrent(req);
    const ts = this.ensureTimestamp(req);
    const markerName = versionObjectName(this.p.obj, toVersion(ts));
    const marker = await this.next(internal(req, 'PUT', this.vpath(markerName), { headers: { 'content-type': DELETE_MARKER, 'content-length': '0', 'x-timestamp': ts } }));
    await check(marker);
    discard(marker.body);
    const res = await this.next(req);
    if (isSuccess(res.status) || res.status === 404) res.headers['x-object-version-id'] = parseVersionObjectName(markerName).versionId!;
    return res;
  }

  /** A POST to the link lands on the version it points to. */
  private async post(req: SwiftRequest): Promise<SwiftResponse> {
    const headers: Headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (k !== 'x-delete-at' && k !== 'x-delete-after') headers[k] = v;
    const res = await this.next(req);
    if (res.status !== 307 || !isTrue(res.headers[SYS_VERSIONS_SYMLINK])) return res;
    const loc = unquoteBytes(res.headers.location ?? '').toString('utf8');
    const lp = splitSwiftPath(loc);
    if (lp?.account !== this.p.account || lp.container !== this.versionsCont || !lp.obj) return res;
    discard(res.body);
    return this.next(internal(req, 'POST', loc, { headers }));
  }

  /** X-Object-Version-Id on a GET or HEAD, and the link's target shown as the user's name with its version. */
  private annotate(res: SwiftResponse): SwiftResponse {
    res.headers['x-object-version-id'] = 'null';
    const loc = res.headers['content-location'];
    if (loc) {
      const lp = splitSwiftPath(unquoteBytes(loc).toString('utf8'));
      if (lp?.obj && lp.account === this.p.account && lp.container === this.versionsCont) {
        const v = parseVersionObjectName(lp.obj).versionId;
        if (v) {
          res.headers['x-object-version-id'] = v;
          res.headers['content-location'] = `${quote(`/${this.p.version}/${this.p.account}/${this.p.container}/${this.p.obj}`)}?version-id=${v}`;
        }
      }
    }
    const target = res.headers[TGT_OBJ];
    if (target) {
      const t = unquoteBytes(target).toString('utf8');
      const i = t.indexOf('/');
      if (i > 0 && t.slice(0, i) === this.versionsCont) {
        const v = parseVersionObjectName(t.slice(i + 1)).versionId;
        if (v) {
          res.headers['x-object-version-id'] = v;
          res.headers[TGT_OBJ] = `${quote(`${this.p.container}/${this.p.obj}`)}?version-id=${v}`;
        }
      }
    }
    return res;
  }

  private async withVersionId(req: SwiftRequest, versionId: string): Promise<SwiftResponse> {
    if (req.method === 'POST') abort(respond(400, 'POST to a specific version is not allowed'));
    if (!this.versionsCont && versionId !== 'null') abort(respond(400, 'version-aware operations require that the container is versioned'));
    validateVersion(versionId, true);
    if (req.method === 'OPTIONS') return this.next(req);
    if (req.method === 'DELETE') return this.deleteVersion(req, versionId);
    if (req.method === 'PUT') return this.restore(req, versionId);
    return versionId === 'null' ? this.readNull(req) : this.readVersion(req, versionId);
  }

  /** The current object's link target, or that there is none (_check_head). */
  private async currentLink(req: SwiftRequest): Promise<{ tombstone: boolean; target?: string }> {
    const head = await this.next(internal(req, 'HEAD', req.path, { query: new URLSearchParams({ symlink: 'get' }), headers: { 'x-newest': 'true' } }));
    discard(head.body);
    if (head.status === 404) return { tombstone: true };
    await check(head);
    return { tombstone: false, target: head.headers[SYS_VERSIONS_SYMLINK] === 'true' ? head.headers[TGT_OBJ] : undefined };
  }

  private async deleteVersion(req: SwiftRequest, versionId: string): Promise<SwiftResponse> {
    const asIs = { ...req, query: new URLSearchParams() };
    if (versionId === 'null') return this.next(asIs);
    const { tombstone, target } = await this.currentLink(req);
    const versName = versionObjectName(this.p.obj, versionId);
    const linkTarget = target !== undefined ? unquoteBytes(target).toString('utf8') : undefined;
    let current = 'null';
    if (linkTarget === `${this.versionsCont}/${versName}`) {
      // The newest version goes: its link first, then the data.
      const link = await this.next(asIs);
      await check(link);
      discard(link.body);
    } else if (!tombstone && linkTarget) current = parseVersionObjectName(linkTarget.slice(linkTarget.indexOf('/') + 1)).versionId ?? 'null';
    const res = await this.next({ ...asIs, path: this.vpath(versName), headers: { ...req.headers, [ALLOW_RESERVED_BACKEND]: 'true' } });
    res.headers['x-object-version-id'] = versionId;
    res.headers['x-object-current-version-id'] = current;
    return res;
  }

  /** PUT ?version-id: that version becomes the current one again. */
  private async restore(req: SwiftRequest, versionId: string): Promise<SwiftResponse> {
    validateVersion(versionId, false);
    const cl = req.headers['content-length'];
    let hasBody: boolean;
    if (cl === undefined) {
      if ((req.headers['transfer-encoding'] ?? '').toLowerCase() !== 'chunked') abort(respond(411));
      hasBody = (await readBody(req.body, 1).catch(() => Buffer.alloc(2))).length > 0;
    } else hasBody = cl !== '0';
    if (hasBody) abort(plainError(400, 'PUT version-id requests require a zero byte body'));
    const versName = versionObjectName(this.p.obj, versionId);
    const head = await this.next(internal(req, 'HEAD', this.vpath(versName), { query: new URLSearchParams({ symlink: 'get' }) }));
    discard(head.body);
    if (head.status === 404) {
      const vinfo = await containerInfo(this.ctx, internal(req, 'HEAD', this.vpath(versName)), this.p.account, this.versionsCont);
      abort(isSuccess(vinfo.status) ? plainError(404, 'The specified version does not exist') : plainError(500, NO_VERSIONS_CONTAINER));
    }
    await check(head);
    return this.linkTo(req, versName, head.headers.etag ?? '', head.headers['content-length'] ?? '0', head.headers['content-type'] ?? 'application/octet-stream');
  }

  private async readVersion(req: SwiftRequest, versionId: string): Promise<SwiftResponse> {
    const res = await this.next({ ...req, path: this.vpath(versionObjectName(this.p.obj, versionId)), query: new URLSearchParams(), headers: { ...req.headers, [ALLOW_RESERVED_BACKEND]: 'true' } });
    if (isSuccess(res.status)) res.headers['x-object-version-id'] = versionId;
    if ((res.headers['content-type'] ?? '') === DELETE_MARKER) {
      discard(res.body);
      return respond(404, undefined, { 'x-object-version-id': versionId, 'content-type': DELETE_MARKER });
    }
    return res;
  }

  private async readNull(req: SwiftRequest): Promise<SwiftResponse> {
    const res = await this.next({ ...req, query: new URLSearchParams() });
    if (!isSuccess(res.status)) return res;
    if (unquoteBytes(res.headers['content-location'] ?? '').toString('utf8').includes(reservedName('versions', ''))) {
      discard(res.body);
      return respond(404);
    }
    res.headers['x-object-version-id'] = 'null';
    return res;
  }
}

/** Container writes are the owner's: asked before any versions container is made or removed on the caller's behalf. */
function authorizeContainerWrite(req: SwiftRequest): SwiftResponse | undefined {
  if (!req.env.authorize || req.env.preAuthed) return undefined;
  req.env.acl = undefined;
  return req.env.authorize(req);
}

/** X-Versions-Enabled on a container PUT or POST (enable_versioning). */
async function enable(ctx: ProxyContext, next: Handler, req: SwiftRequest, p: { version: string; account: string; container: string }): Promise<SwiftResponse> {
  const denied = authorizeContainerWrite(req);
  if (denied) return denied;
  const info = await containerInfo(ctx, req, p.account, p.container);
  // The legacy middleware (left of this one) has already turned X-Versions-Location/X-History-Location into sysmeta.
  if (info.sysmeta['versions-location'] || info.versionsLocation || req.headers[SYS_LEGACY_LOCATION]) {
    return respond(400, 'Cannot enable object versioning on a container that is already using the legacy versioned writes feature.');
  }
  if (info.headers['x-container-sync-to']) return respond(400, 'Cannot enable object versioning on a container configured as source of container syncing.');
  const on = isTrue(req.headers[CLIENT_ENABLED]);
  delete req.headers[CLIENT_ENABLED];
  req.headers[SYS_ENABLED] = on ? 'True' : 'False';
  const vpath = `/${p.version}/${p.account}/${versionsContainerName(p.container)}`;
  let created = false;
  if (on) {
    const headers: Headers = req.method === 'PUT' && req.headers['x-storage-policy'] && !isSuccess(info.status) ? { 'x-storage-policy': req.headers['x-storage-policy'] } : {};
    const made = drop(await next(internal(req, 'PUT', vpath, { headers })));
    if (!isSuccess(made.status) && made.status !== 409) return respond(500, 'Error enabling object versioning');
    req.headers[SYS_CONTAINER] = quote(versionsContainerName(p.container));
    created = true;
  }
  const res = await next(req);
  if (!isSuccess(res.status) && created) drop(await next(internal(req, 'DELETE', vpath)));
  return res;
}

/** A versioned container goes only once its versions are gone; its versions container goes first. */
async function deleteContainer(ctx: ProxyContext, next: Handler, req: SwiftRequest, p: { version: string; account: string; container: string }): Promise<SwiftResponse> {
  const denied = authorizeContainerWrite(req);
  if (denied) return denied;
  const info = await containerInfo(ctx, req, p.account, p.container);
  const versionsCont = unquoteBytes(info.sysmeta['versions-container'] ?? '').toString('utf8');
  if (versionsCont) {
    const vpath = `/${p.version}/${p.account}/${versionsCont}`;
    const head = drop(await next(internal(req, 'HEAD', vpath)));
    if (isSuccess(head.status) && Number(head.headers['x-container-object-count'] ?? 0) > 0) return respond(409, 'Delete all versions before deleting container.');
    if (!isSuccess(head.status) && head.status !== 404) return respond(500, 'Error deleting versioned container');
    const del = drop(await next(internal(req, 'DELETE', vpath)));
    if (!isSuccess(del.status) && del.status !== 404) return respond(500, 'Error deleting versioned container');
  }
  return next(req);
}

/** A listing row that is a link to one of this container's versions: the version's size and etag (ContainerContext.handle_request). */
function resolveLink(e: ListingEntry, location: string, listVersions: boolean, p: { version: string; container: string }): void {
  if (typeof e.symlink_path !== 'string' || e.symlink_etag === undefined || e.symlink_bytes === undefined) return;
  const lp = splitSwiftPath(unquoteBytes(e.symlink_path).toString('utf8'));
  if (!lp?.obj || lp.container !== location) return;
  const params = typeof e.hash === 'string' ? e.hash.split(';').slice(1).join(';') : '';
  e.bytes = Number(e.symlink_bytes);
  e.version_symlink = true;
  e.hash = String(e.symlink_etag) + (params ? `;${params}` : '');
  delete e.symlink_bytes;
  delete e.symlink_etag;
  const { name, versionId } = parseVersionObjectName(lp.obj);
  if (versionId && !listVersions) e.symlink_path = `${quote(`/${p.version}/${lp.account}/${p.container}/${name}`)}?version-id=${versionId}`;
}

const acceptsJson = (req: SwiftRequest) => {
  const a = req.headers.accept;
  return !a || a.split(',').some((part) => /^\s*(application\/json|application\/\*|\*\/\*)\s*(;|$)/i.test(part) && !/;\s*q=0(\.0*)?\s*$/.test(part));
};

/** `?versions`: the user's container (current objects, version "null") merged with its versions container (_list_versions). */
async function listVersions(next: Handler, req: SwiftRequest, p: { version: string; account: string; container: string }, location: string, primary: ListingEntry[], res: SwiftResponse): Promise<SwiftResponse> {
  if (!acceptsJson(req)) return respond(406);
  const q = req.query;
  const params = new URLSearchParams();
  const marker = q.get('marker');
  const versionMarker = q.get('version_marker');
  if (marker !== null) {
    if (versionMarker === null) params.set('marker', `${reservedName(marker, '')}:`);
    else if (versionMarker === 'null') params.set('marker', reservedName(marker, ''));
    else {
      try {
        params.set('marker', versionObjectName(marker, versionMarker));
      } catch {
        return respond(400, 'invalid version_marker param');
      }
    }
  } else if (versionMarker !== null) return respond(400, 'version_marker param requires marker');
  const delimiter = q.get('delimiter') ?? '';
  if ([...delimiter].some((c) => '0123456789.\0'.includes(c))) return respond(400, 'invalid delimiter param');
  const limitRaw = q.get('limit');
  const limit = limitRaw && /^\d+$/.test(limitRaw) ? Math.min(Number(limitRaw), 10000) : 10000;
  const reverse = isTrue(q.get('reverse') ?? '');

  const nulls: ListingEntry[] = [];
  const subdirs = new Set<string>();
  const current = new Map<string, ListingEntry>();
  const latest = new Set<string>();
  for (const e of primary) {
    if (typeof e.name !== 'string') subdirs.add(String(e.subdir));
    else if (e.version_symlink) current.set(unquoteBytes(String(e.symlink_path)).toString('utf8'), e);
    else {
      nulls.push({ ...e, version_id: 'null', is_latest: true });
      latest.add(e.name);
    }
  }
  if (q.has('prefix')) params.set('prefix', reservedName(q.get('prefix') ?? ''));
  if (delimiter) params.set('delimiter', delimiter);
  if (limitRaw) params.set('limit', String(limit));
  if (reverse) params.set('reverse', 'true');
  params.set('format', 'json');
  const vres = await next(internal(req, 'GET', `/${p.version}/${p.account}/${location}`, { query: params }));
  const versions: ListingEntry[] = [];
  if (isSuccess(vres.status)) {
    const body = await readBody(vres.body);
    const listing = body.length ? (JSON.parse(body.toString('utf8')) as ListingEntry[]) : [];
    for (const e of listing) {
      if (typeof e.name !== 'string') {
        subdirs.add(String(e.subdir).slice(1).split(RESERVED)[0]);
        continue;
      }
      const { name, versionId } = parseVersionObjectName(e.name);
      if (!versionId) continue;
      const path = `/${p.version}/${p.account}/${location}/${e.name}`;
      if (current.has(path)) {
        e.is_latest = true;
        latest.add(name);
        current.delete(path);
      } else if (e.content_type === DELETE_MARKER && !latest.has(name)) {
        e.is_latest = true;
        latest.add(name);
      } else e.is_latest = false;
      e.name = name;
      e.version_id = versionId;
      versions.push(e);
    }
  } else if (vres.status !== 404) return vres;
  else discard(vres.body);
  // Links whose version is gone from the listing (or whose versions container is) are still shown.
  const broken: ListingEntry[] = [];
  for (const e of current.values()) {
    const linked = unquoteBytes(String(e.symlink_path)).toString('utf8').split('/').slice(4).join('/');
    const { name, versionId } = parseVersionObjectName(linked);
    if (!versionId) continue;
    const isLatest = !latest.has(name);
    latest.add(name);
    broken.push({ name, is_latest: isLatest, version_id: versionId, content_type: e.content_type, bytes: e.bytes, hash: e.hash, last_modified: e.last_modified });
  }
  const key = (e: ListingEntry) => String(e.subdir ?? e.name);
  const all = [...nulls, ...versions, ...[...subdirs].map((s) => ({ subdir: s })), ...broken];
  all.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (reverse ? -1 : 1));
  const body = Buffer.from(JSON.stringify(all.slice(0, limit)), 'utf8');
  return { status: 200, headers: { ...res.headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) }, body: req.method === 'HEAD' ? undefined : body };
}

/** GET and HEAD of a container: X-Versions-Enabled shown, the versions' bytes counted, links resolved in listings. */
async function readContainer(next: Handler, req: SwiftRequest, p: { version: string; account: string; container: string }): Promise<SwiftResponse> {
  const annotate = async (res: SwiftResponse): Promise<string> => {
    if (res.headers[SYS_ENABLED] !== undefined) res.headers[CLIENT_ENABLED] = res.headers[SYS_ENABLED];
    const location = unquoteBytes(res.headers[SYS_CONTAINER] ?? '').toString('utf8');
    if (location && res.headers['x-container-bytes-used'] !== undefined) {
      const v = drop(await next(internal(req, 'HEAD', `/${p.version}/${p.account}/${location}`)));
      if (isSuccess(v.status)) res.headers['x-container-bytes-used'] = String(Number(res.headers['x-container-bytes-used']) + Number(v.headers['x-container-bytes-used'] ?? 0));
    }
    // A container never seen versioned may still have versions (the metadata may be stale).
    return location || versionsContainerName(p.container);
  };
  if (req.method !== 'GET') {
    const res = await next(req);
    if (isSuccess(res.status)) await annotate(res);
    return res;
  }
  const listVersionsAsked = req.query.has('versions');
  return rewriteListing(next, req, 'container', p.container, async (entries, res) => {
    const location = await annotate(res);
    for (const e of entries) resolveLink(e, location, listVersionsAsked, p);
    return listVersionsAsked ? listVersions(next, req, p, location, entries, res) : entries;
  });
}

/** Converts a user's container name to its versions container's, for markers and prefixes; names already reserved stay. */
const asVersionsName = (name: string) => (name.includes(RESERVED) ? name : versionsContainerName(name));

/**
 * An account listing counts each container's versions in its bytes, and shows
 * versions containers whose container is gone (AccountContext.list_containers).
 */
async function listAccount(next: Handler, req: SwiftRequest, p: { version: string; account: string }): Promise<SwiftResponse> {
  return rewriteListing(next, req, 'account', p.account, async (entries) => {
    const params = new URLSearchParams(req.query);
    params.set('format', 'json');
    params.set('prefix', params.has('prefix') ? asVersionsName(params.get('prefix')!) : reservedName('versions'));
    for (const k of ['marker', 'end_marker']) if (params.has(k)) params.set(k, asVersionsName(params.get(k)!));
    const vres = await next(internal(req, 'GET', `/${p.version}/${p.account}`, { query: params }));
    const body = isSuccess(vres.status) ? await readBody(vres.body) : (discard(vres.body), Buffer.alloc(0));
    let listing: ListingEntry[] = [];
    try {
      listing = body.length ? (JSON.parse(body.toString('utf8')) as ListingEntry[]) : [];
    } catch {
      // As upstream: an unreadable versions listing adds nothing.
    }
    const byName = new Map<string, ListingEntry>();
    for (const e of listing) {
      if (typeof e.name !== 'string') continue;
      const parts = e.name.startsWith(RESERVED) ? e.name.slice(1).split(RESERVED) : [];
      if (parts.length === 2 && parts[0] === 'versions') byName.set(parts[1], e);
    }
    if (!byName.size) return entries;
    for (const e of entries) {
      const v = typeof e.name === 'string' ? byName.get(e.name) : undefined;
      if (!v) continue;
      e.bytes = Number(e.bytes ?? 0) + Number(v.bytes ?? 0);
      byName.delete(e.name as string);
    }
    for (const [name, v] of byName) entries.push({ ...v, name, count: 0 });
    const reverse = isTrue(req.query.get('reverse') ?? '');
    const limitRaw = req.query.get('limit');
    const limit = limitRaw && /^\d+$/.test(limitRaw) ? Number(limitRaw) : 10000;
    const key = (e: ListingEntry) => String(e.subdir ?? e.name);
    entries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (reverse ? -1 : 1));
    return entries.slice(0, limit);
  });
}

export function objectVersioning(ctx: ProxyContext, info: InfoRegistry): Middleware {
  info.register('object_versioning', {});
  return (next) => async (req) => {
    const p = splitSwiftPath(req.path);
    if (!p?.account || !ctx.constraints.valid_api_versions.includes(p.version)) return next(req);
    if (!p.container) return req.method === 'GET' ? listAccount(next, req, { version: p.version, account: p.account }) : next(req);
    const names = { version: p.version, account: p.account, container: p.container };
    try {
      if (!p.obj) {
        if ((req.method === 'PUT' || req.method === 'POST') && req.headers[CLIENT_ENABLED] !== undefined) return await enable(ctx, next, req, names);
        if (req.method === 'DELETE') return await deleteContainer(ctx, next, req, names);
        if (req.method === 'GET' || req.method === 'HEAD') return await readContainer(next, req, names);
        return await next(req);
      }
      const c = await containerInfo(ctx, req, p.account, p.container);
      const versionsCont = unquoteBytes(c.sysmeta['versions-container'] ?? '').toString('utf8').split('/')[0];
      return await new ObjectVersioning(ctx, next, { ...names, obj: p.obj }, versionsCont, isTrue(c.sysmeta['versions-enabled'])).handle(req);
    } catch (e) {
      if (e instanceof Abort) return e.response;
      throw e;
    }
  };
}
