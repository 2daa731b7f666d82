/**
 * upstream's bulk middleware, its delete half: `POST|DELETE …?bulk-delete`
 * with a body of URL-encoded `/container/object` or `/container` lines,
 * each deleted by a subrequest carrying the caller's authorization. The
 * answer is always 200 (the request itself worked); the outcome is in the
 * body, in the format the Accept header asks for.
 */
import { splitSwiftPath } from '../paths.ts';
import type { InfoRegistry } from '../info.ts';
import { discard, isSuccess, plainError, readBody, statusTitle } from '../responses.ts';
import type { Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { quote } from '../wsgi-strings.ts';
import { subRequest } from './segments.ts';

export const BULK_DELETE_LIMITS = { max_deletes_per_request: 10000, max_failed_deletes: 1000 };
/** upstream's delete_concurrency default. */
const DELETE_CONCURRENCY = 2;
const MAX_PATH_LENGTH = 256 + 1024 + 2;

export interface BulkResult {
  deleted: number;
  notFound: number;
  errors: [string, string][];
  /** Set when the request as a whole failed (bad body …). */
  status?: string;
  body?: string;
}

/** Body of a bulk (or SLO delete) answer: JSON, XML or upstream's plain "Key: value" lines. */
export function bulkResponse(req: SwiftRequest, r: BulkResult): SwiftResponse {
  const status = r.status ?? (r.errors.length ? '400 Bad Request' : '200 OK');
  const doc = { 'Number Deleted': r.deleted, 'Number Not Found': r.notFound, 'Response Body': r.body ?? '', 'Response Status': status, Errors: r.errors };
  const accept = (req.headers.accept ?? '').toLowerCase();
  if (accept.includes('application/json')) return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(doc) };
  if (accept.includes('/xml')) {
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const tag = (k: string) => k.toLowerCase().replace(/ /g, '_');
    const fields = Object.entries(doc)
      .filter(([k]) => k !== 'Errors')
      .map(([k, v]) => `<${tag(k)}>${esc(String(v))}</${tag(k)}>`)
      .join('');
    const errors = r.errors.map(([n, s]) => `<object><name>${esc(n)}</name><status>${esc(s)}</status></object>`).join('');
    return { status: 200, headers: { 'content-type': 'application/xml; charset=utf-8' }, body: `<?xml version="1.0" encoding="UTF-8"?>\n<delete>${fields}<errors>${errors}</errors></delete>\n` };
  }
  const lines = Object.entries(doc)
    .filter(([k]) => k !== 'Errors')
    .map(([k, v]) => `${k}: ${v}`);
  lines.push('Errors:', ...r.errors.map(([n, s]) => `${n}, ${s}`));
  return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: lines.join('\n') + '\n' };
}

/**
 * Deletes the given paths (decoded, /v1/<account>/… each) with bounded
 * concurrency, counting as upstream: 404 is "not found", other failures are
 * errors with their status line. A container waits for the deletes before
 * it, so "objects, then their container" in one body works.
 */
export async function deletePaths(next: (r: SwiftRequest) => Promise<SwiftResponse>, req: SwiftRequest, source: string, paths: { path: string; display: string; query?: URLSearchParams }[], r: BulkResult): Promise<void> {
  const inflight = new Set<Promise<void>>();
  const one = async (p: (typeof paths)[number]) => {
    const res = await next(subRequest(req, source, 'DELETE', p.path, { query: p.query }));
    discard(res.body);
    if (isSuccess(res.status)) r.deleted++;
    else if (res.status === 404) r.notFound++;
    else r.errors.push([p.display, `${res.status} ${statusTitle(res.status)}`]);
  };
  for (const p of paths) {
    if (r.errors.length >= BULK_DELETE_LIMITS.max_failed_deletes) break;
    const isContainer = splitSwiftPath(p.path)?.obj === undefined;
    if (isContainer || inflight.size >= DELETE_CONCURRENCY) await (isContainer ? Promise.all(inflight) : Promise.race(inflight));
    const t: Promise<void> = one(p).finally(() => inflight.delete(t));
    inflight.add(t);
    if (isContainer) await t;
  }
  await Promise.all(inflight);
}

export function bulk(info: InfoRegistry): Middleware {
  info.register('bulk_delete', BULK_DELETE_LIMITS);
  return (next) => async (req) => {
    if (!req.query.has('bulk-delete') || (req.method !== 'POST' && req.method !== 'DELETE')) return next(req);
    const parts = splitSwiftPath(req.path);
    if (!parts?.account) return next(req);
    let text: string;
    try {
      text = (await readBody(req.body, BULK_DELETE_LIMITS.max_deletes_per_request * (MAX_PATH_LENGTH * 3 + 1))).toString('utf8');
    } catch {
      return plainError(413, 'Request Entity Too Large');
    }
    const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
    const result: BulkResult = { deleted: 0, notFound: 0, errors: [] };
    if (lines.length > BULK_DELETE_LIMITS.max_deletes_per_request) {
      return bulkResponse(req, { ...result, status: '413 Request Entity Too Large', body: `Maximum Bulk Deletes: ${BULK_DELETE_LIMITS.max_deletes_per_request} per request` });
    }
    const base = `/${parts.version}/${parts.account}`;
    const paths: { path: string; display: string }[] = [];
    for (const line of lines) {
      let name: string;
      try {
        name = decodeURIComponent(line);
      } catch {
        result.errors.push([line, '412 Precondition Failed']);
        continue;
      }
      const rel = name.replace(/^\/+/, '');
      const slash = rel.indexOf('/');
      const container = slash < 0 ? rel : rel.slice(0, slash);
      if (!container || (slash >= 0 && slash === rel.length - 1)) {
        result.errors.push([quote(name), '400 Bad Request']);
        continue;
      }
      paths.push({ path: `${base}/${rel}`, display: quote(`/${rel}`) });
    }
    await deletePaths(next, req, 'BD', paths, result);
    return bulkResponse(req, result);
  };
}
