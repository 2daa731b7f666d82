/**
 * Static large objects as upstream's slo middleware: `PUT
 * ?multipart-manifest=put` takes a JSON list of segments (checked by HEAD
 * against their ETag and size), stores the manifest with
 * X-Static-Large-Object and the large object's ETag and size as sysmeta; a
 * GET/HEAD of it answers the concatenated segments (ranges across them),
 * `?multipart-manifest=get` the stored manifest (`&format=raw`: as it was
 * PUT), `DELETE ?multipart-manifest=delete` removes segments and manifest.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { InfoRegistry } from '../info.ts';
import { guessType } from '../mime.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, plainError, readBody } from '../responses.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { bulkResponse, deletePaths, type BulkResult } from './bulk.ts';
import { largeObjectResponse, manifestBehind416, needsRefetch, resolveRange, stripSwiftBytes, subRequest, withoutClientConditions, type Segment } from './segments.ts';

export const SLO_LIMITS = { max_manifest_segments: 1000, max_manifest_size: 8 * 1024 * 1024, yield_frequency: 10, min_segment_size: 1 };

const SLO_ETAG = 'x-object-sysmeta-slo-etag';
const SLO_SIZE = 'x-object-sysmeta-slo-size';

/** One entry of a stored manifest (upstream's format). */
interface StoredSegment {
  name?: string;
  bytes?: number;
  hash?: string;
  content_type?: string;
  last_modified?: string;
  range?: string;
  sub_slo?: boolean;
  data?: string;
}

const truthy = (v: string | undefined) => ['true', '1', 'yes', 'on', 't', 'y'].includes((v ?? '').toLowerCase());

export function isSlo(res: SwiftResponse): boolean {
  return truthy(res.headers['x-static-large-object']);
}

function objectParts(req: SwiftRequest) {
  const p = splitSwiftPath(req.path);
  return p?.obj && p.container && p.account ? (p as Required<typeof p>) : undefined;
}

function lastModifiedIso(httpDate: string | undefined): string {
  const d = httpDate ? new Date(httpDate) : new Date();
  return d.toISOString().replace('Z', '').replace(/\.(\d{3})$/, '.$1000');
}

/** "a-b", "a-", "-n" of a segment of `size` bytes → its [first, last], or an error text. */
function segmentRange(spec: string, size: number): { first: number; last: number } | string {
  const r = resolveRange(`bytes=${spec}`, size);
  if (!r || r === 'unsatisfiable') return 'Unsatisfiable Range';
  return r;
}

export function slo(info: InfoRegistry): Middleware {
  info.register('slo', SLO_LIMITS);
  return (next) => {
    const self: Handler = async (req) => {
      const parts = objectParts(req);
      if (!parts) return next(req);
      const mm = req.query.get('multipart-manifest');
      if (req.method === 'PUT') {
        if (mm === 'put') return putManifest(next, req, parts.version, parts.account, parts.obj);
        if (req.headers['x-static-large-object'] !== undefined && truthy(req.headers['x-static-large-object'])) {
          return plainError(400, 'X-Static-Large-Object is a reserved header. To create a static large object add query param multipart-manifest=put.');
        }
        return next(req);
      }
      if (req.method === 'DELETE' && mm === 'delete') return deleteManifest(next, req, parts.version, parts.account);
      if (req.method !== 'GET' && req.method !== 'HEAD') return next(req);
      if (mm === 'get') return rawManifest(next, req);
      let res = await manifestBehind416(next, req, await next(req), isSlo);
      if (!isSlo(res) || !isSuccess(res.status) && !needsRefetch(req, res)) return res;
      if (req.method === 'HEAD' && res.headers[SLO_SIZE] !== undefined) return headOf(res);
      if (needsRefetch(req, res) || req.method === 'HEAD') {
        discard(res.body);
        res = await next({ ...withoutClientConditions(req), method: 'GET' });
        if (!isSuccess(res.status) || !isSlo(res)) return res;
      }
      let manifest: StoredSegment[];
      try {
        manifest = JSON.parse((await readBody(res.body, SLO_LIMITS.max_manifest_size * 2)).toString('utf8')) as StoredSegment[];
      } catch {
        return plainError(500, 'Unable to load SLO manifest');
      }
      const segments = manifest.map((m) => toSegment(parts.version, parts.account, m));
      return largeObjectResponse(self, req, 'SLO', segments, publicHeaders(res, manifest), { multiRange: true });
    };
    return self;
  };
}

function toSegment(version: string, account: string, m: StoredSegment): Segment {
  if (m.data !== undefined) {
    const data = Buffer.from(m.data, 'base64');
    return { path: '', length: data.length, offset: 0, data };
  }
  const size = Number(m.bytes ?? 0);
  const path = `/${version}/${account}${m.name!.startsWith('/') ? '' : '/'}${m.name}`;
  if (m.range) {
    const r = segmentRange(m.range, size);
    if (typeof r !== 'string') return { path, length: r.last - r.first + 1, offset: r.first, objectSize: size, etag: m.hash };
  }
  return { path, length: size, offset: 0, objectSize: m.sub_slo ? undefined : size, etag: m.sub_slo ? undefined : m.hash };
}

function sloEtagOf(manifest: StoredSegment[]): string {
  const h = createHash('md5');
  for (const m of manifest) {
    if (m.data !== undefined) h.update(createHash('md5').update(Buffer.from(m.data, 'base64')).digest('hex'));
    else if (m.range) h.update(`${m.hash}:${m.range};`);
    else h.update(m.hash ?? '');
  }
  return h.digest('hex');
}

function publicHeaders(res: SwiftResponse, manifest?: StoredSegment[]): Headers {
  const h: Headers = { ...res.headers };
  const etag = h[SLO_ETAG] ?? (manifest ? sloEtagOf(manifest) : undefined);
  if (etag) h.etag = `"${etag}"`;
  const ct = stripSwiftBytes(h['content-type']);
  if (ct) h['content-type'] = ct;
  delete h['content-length'];
  return h;
}

function headOf(res: SwiftResponse): SwiftResponse {
  const h = publicHeaders(res);
  h['content-length'] = res.headers[SLO_SIZE];
  h['accept-ranges'] = 'bytes';
  return { status: 200, headers: h };
}

/** `?multipart-manifest=get`: the stored manifest as JSON; `&format=raw` in the form a PUT takes. */
async function rawManifest(next: Handler, req: SwiftRequest): Promise<SwiftResponse> {
  const res = await next(req);
  if (!isSuccess(res.status) || !isSlo(res)) return res;
  const h: Headers = { ...res.headers, 'content-type': 'application/json; charset=utf-8' };
  if (req.query.get('format') !== 'raw') return { ...res, headers: h };
  if (req.method === 'HEAD') {
    delete h['content-length'];
    return { status: res.status, headers: h };
  }
  const manifest = JSON.parse((await readBody(res.body)).toString('utf8')) as StoredSegment[];
  const raw = manifest.map((m) => (m.data !== undefined ? { data: m.data } : { path: m.name, etag: m.hash, size_bytes: m.bytes, ...(m.range ? { range: m.range } : {}) }));
  const body = JSON.stringify(raw);
  h.etag = createHash('md5').update(body).digest('hex');
  delete h['content-length'];
  return { status: 200, headers: h, body };
}

interface ManifestItem {
  path?: unknown;
  etag?: unknown;
  size_bytes?: unknown;
  range?: unknown;
  data?: unknown;
}

const ALLOWED_KEYS = new Set(['path', 'etag', 'size_bytes', 'range', 'data']);

async function putManifest(next: Handler, req: SwiftRequest, version: string, account: string, objName: string): Promise<SwiftResponse> {
  let body: Buffer;
  try {
    body = await readBody(req.body, SLO_LIMITS.max_manifest_size);
  } catch {
    return plainError(413, `Manifest File > ${SLO_LIMITS.max_manifest_size} bytes`);
  }
  let items: ManifestItem[];
  try {
    items = JSON.parse(body.toString('utf8')) as ManifestItem[];
    if (!Array.isArray(items) || items.some((i) => typeof i !== 'object' || i === null || Array.isArray(i))) throw new Error('not a list of objects');
  } catch {
    return plainError(400, 'Manifest must be valid JSON.\n');
  }
  if (items.length > SLO_LIMITS.max_manifest_segments) return plainError(413, `Number of segments must be <= ${SLO_LIMITS.max_manifest_segments}`);
  if (!items.length) return plainError(400, 'Manifest must have at least one segment.\n');
  const errors: string[] = [];
  for (const [i, it] of items.entries()) {
    const extra = Object.keys(it).filter((k) => !ALLOWED_KEYS.has(k));
    if (extra.length) errors.push(`Index ${i}: extraneous keys ${extra.map((k) => `"${k}"`).join(', ')}`);
    else if (it.data !== undefined ? it.path !== undefined : typeof it.path !== 'string') errors.push(`Index ${i}: expected exactly one of "path" or "data"`);
    else if (typeof it.path === 'string' && !/^\/?[^/]+\/.+/.test(it.path)) errors.push(`Index ${i}: path does not refer to an object. Path must be of the form /container/object.`);
    else if (it.size_bytes !== undefined && it.size_bytes !== null && !(Number.isInteger(it.size_bytes) && (it.size_bytes as number) >= 0)) errors.push(`Index ${i}: "size_bytes" must be an integer greater than or equal to zero.`);
    else if (it.etag !== undefined && it.etag !== null && typeof it.etag !== 'string') errors.push(`Index ${i}: "etag" must be a string or null (if provided).`);
    else if (it.range !== undefined && typeof it.range !== 'string') errors.push(`Index ${i}: "range" must be a string.`);
  }
  if (errors.length) return plainError(400, errors.join('\n') + '\n');

  const stored: (StoredSegment | string)[] = await Promise.all(items.map((it) => checkSegment(next, req, version, account, it)));
  const problems = stored.filter((s): s is string => typeof s === 'string');
  if (problems.length) return plainError(400, `Errors:\n${problems.join('\n')}\n`);
  const manifest = stored as StoredSegment[];
  const total = manifest.reduce((n, m) => n + toSegment(version, account, m).length, 0);
  const sloEtag = sloEtagOf(manifest);
  const want = req.headers.etag?.replace(/"/g, '');
  if (want && want !== sloEtag) return plainError(422, 'Unprocessable Entity');
  const json = JSON.stringify(manifest);
  const headers: Headers = { ...req.headers };
  for (const k of ['etag', 'content-length', 'transfer-encoding', 'x-static-large-object', 'x-detect-content-type']) delete headers[k];
  // The type carries swift_bytes so the listing shows the large object's size; the proxy's guess is made here when none was sent.
  const ct = req.headers['content-type'] ?? guessType(objName) ?? 'application/octet-stream';
  Object.assign(headers, {
    'content-length': String(Buffer.byteLength(json)),
    'x-static-large-object': 'True',
    [SLO_ETAG]: sloEtag,
    [SLO_SIZE]: String(total),
    // The listing shows the large object's size and ETag, not the manifest's.
    'x-backend-container-update-override-etag': sloEtag,
    'content-type': `${stripSwiftBytes(ct)};swift_bytes=${total}`,
  });
  const query = new URLSearchParams(req.query);
  query.delete('multipart-manifest');
  const res = await next({ ...req, query, headers, body: Readable.from([Buffer.from(json)]) });
  if (isSuccess(res.status)) res.headers.etag = `"${sloEtag}"`;
  return res;
}

async function checkSegment(next: Handler, req: SwiftRequest, version: string, account: string, it: ManifestItem): Promise<StoredSegment | string> {
  if (it.data !== undefined) {
    try {
      const b = Buffer.from(String(it.data), 'base64');
      return { data: b.toString('base64') };
    } catch {
      return 'Inline data must be base64';
    }
  }
  const name = `/${String(it.path).replace(/^\//, '')}`;
  const res = await next(subRequest(req, 'SLO', 'HEAD', `/${version}/${account}${name}`));
  discard(res.body);
  if (!isSuccess(res.status)) return `${name}, ${res.status === 404 ? '404 Not Found' : `${res.status}`}`;
  const sub = isSlo(res);
  const size = Number(sub ? (res.headers[SLO_SIZE] ?? res.headers['content-length']) : res.headers['content-length']);
  const etag = (sub ? (res.headers[SLO_ETAG] ?? res.headers.etag) : res.headers.etag ?? '').replace(/"/g, '');
  const problems: string[] = [];
  if (it.size_bytes !== undefined && it.size_bytes !== null && it.size_bytes !== size) problems.push('Size Mismatch');
  if (it.etag !== undefined && it.etag !== null && String(it.etag).replace(/"/g, '') !== etag) problems.push('Etag Mismatch');
  let range: string | undefined;
  if (typeof it.range === 'string') {
    const r = segmentRange(it.range, size);
    if (typeof r === 'string') problems.push(r);
    else range = r.first === 0 && r.last === size - 1 ? undefined : `${r.first}-${r.last}`;
  }
  if (problems.length) return `${name}, ${problems.join(', ')}`;
  return {
    name,
    bytes: size,
    hash: etag,
    content_type: stripSwiftBytes(res.headers['content-type']) ?? 'application/octet-stream',
    last_modified: lastModifiedIso(res.headers['last-modified']),
    ...(range ? { range } : {}),
    ...(sub ? { sub_slo: true } : {}),
  };
}

/** Segments named by a manifest, sub-manifests expanded (their own segments first, then the sub-manifest). */
async function manifestSegments(next: Handler, req: SwiftRequest, path: string, depth = 0): Promise<string[] | SwiftResponse> {
  const res = await next(subRequest(req, 'SLO', 'GET', path, { query: new URLSearchParams('multipart-manifest=get') }));
  if (!isSuccess(res.status) || !isSlo(res)) {
    discard(res.body);
    return res;
  }
  const manifest = JSON.parse((await readBody(res.body)).toString('utf8')) as StoredSegment[];
  const parts = splitSwiftPath(path)!;
  const out: string[] = [];
  for (const m of manifest) {
    if (m.data !== undefined || !m.name) continue;
    const seg = `/${parts.version}/${parts.account}${m.name}`;
    if (m.sub_slo && depth < 10) {
      const inner = await manifestSegments(next, req, seg, depth + 1);
      if (Array.isArray(inner)) out.push(...inner);
    }
    out.push(seg);
  }
  return out;
}

async function deleteManifest(next: Handler, req: SwiftRequest, version: string, account: string): Promise<SwiftResponse> {
  const segs = await manifestSegments(next, req, req.path);
  const result: BulkResult = { deleted: 0, notFound: 0, errors: [] };
  const prefix = `/${version}/${account}`;
  const display = (p: string) => p.slice(prefix.length);
  if (!Array.isArray(segs)) {
    if (segs.status === 404) return bulkResponse(req, { ...result, notFound: 1 });
    if (isSuccess(segs.status)) {
      // Not a manifest: deleted as a plain object, reported in the bulk format as upstream does.
      await deletePaths(next, req, 'SLO', [{ path: req.path, display: display(req.path) }], result);
      return bulkResponse(req, result);
    }
    return segs;
  }
  await deletePaths(next, req, 'SLO', segs.map((p) => ({ path: p, display: display(p) })), result);
  if (!result.errors.length) await deletePaths(next, req, 'SLO', [{ path: req.path, display: display(req.path) }], result);
  return bulkResponse(req, result);
}
