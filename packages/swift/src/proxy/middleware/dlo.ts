/**
 * Dynamic large objects as upstream's dlo middleware: an object carrying
 * `X-Object-Manifest: <container>/<prefix>` reads as the concatenation of
 * the objects listed under that prefix, in listing order, at the time of the
 * read. Its ETag is the quoted MD5 of the segments' ETags.
 */
import { createHash } from 'node:crypto';
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, plainError, readBody } from '../responses.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { wsgiToStr } from '../wsgi-strings.ts';
import { largeObjectResponse, manifestBehind416, needsRefetch, subRequest, withoutClientConditions, type Segment } from './segments.ts';

export const DLO_LIMITS = { max_segments: 10000 };
const PAGE = 10000;

function unquote(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `container/prefix` of an X-Object-Manifest value (percent-encoded as the swift CLI sends it), or undefined when malformed. */
export function parseManifestValue(value: string): { container: string; prefix: string } | undefined {
  const v = unquote(wsgiToStr(value));
  const i = v.indexOf('/');
  if (i <= 0) return undefined;
  return { container: v.slice(0, i), prefix: v.slice(i + 1) };
}

async function listSegments(next: Handler, req: SwiftRequest, base: string, container: string, prefix: string): Promise<Segment[] | SwiftResponse> {
  const out: Segment[] = [];
  let marker = '';
  for (;;) {
    const query = new URLSearchParams({ format: 'json', prefix, limit: String(PAGE) });
    if (marker) query.set('marker', marker);
    const res = await next(subRequest(req, 'DLO', 'GET', `${base}/${container}`, { query }));
    if (!isSuccess(res.status)) {
      discard(res.body);
      return res;
    }
    const rows = res.status === 204 ? [] : (JSON.parse((await readBody(res.body)).toString('utf8')) as { name: string; bytes: number; hash: string }[]);
    for (const r of rows) out.push({ path: `${base}/${container}/${r.name}`, length: r.bytes, offset: 0, objectSize: r.bytes, etag: r.hash });
    if (out.length > DLO_LIMITS.max_segments) return plainError(409, `Too many segments in ${container}/${prefix}`);
    if (rows.length < PAGE) return out;
    marker = rows[rows.length - 1].name;
  }
}

export function dlo(info: InfoRegistry): Middleware {
  info.register('dlo', DLO_LIMITS);
  return (next) => async (req) => {
    const parts = splitSwiftPath(req.path);
    if (!parts?.obj || !parts.container || !parts.account) return next(req);
    if (req.method === 'PUT' && req.headers['x-object-manifest'] !== undefined && !parseManifestValue(req.headers['x-object-manifest'])) {
      return plainError(400, 'X-Object-Manifest must be in the format container/prefix');
    }
    if ((req.method !== 'GET' && req.method !== 'HEAD') || req.query.get('multipart-manifest') === 'get') return next(req);
    let res = await manifestBehind416(next, req, await next(req), (r) => r.headers['x-object-manifest'] !== undefined);
    const value = res.headers['x-object-manifest'];
    if (value === undefined || (!isSuccess(res.status) && !needsRefetch(req, res))) return res;
    const m = parseManifestValue(value);
    if (!m) return res;
    if (needsRefetch(req, res)) {
      discard(res.body);
      res = await next({ ...withoutClientConditions(req), method: 'HEAD' });
      if (!isSuccess(res.status)) return res;
    } else discard(res.body);
    const base = `/${parts.version}/${parts.account}`;
    const segments = await listSegments(next, req, base, m.container, m.prefix);
    if (!Array.isArray(segments)) return segments;
    const etag = createHash('md5');
    for (const s of segments) etag.update(s.etag ?? '');
    const headers: Headers = { ...res.headers, etag: `"${etag.digest('hex')}"` };
    delete headers['content-length'];
    // The segments change under a DLO: the ETag is no promise, only the listing at read time.
    return largeObjectResponse(next, req, 'DLO', segments, headers);
  };
}
