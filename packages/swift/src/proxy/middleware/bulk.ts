/**
 * upstream's bulk middleware. Its delete half: `POST|DELETE …?bulk-delete`
 * with a body of URL-encoded `/container/object` or `/container` lines,
 * each deleted by a subrequest carrying the caller's authorization. The
 * answer is always 200 (the request itself worked); the outcome is in the
 * body, in the format the Accept header asks for. Its upload half,
 * `PUT …?extract-archive=tar|tar.gz|tar.bz2`, is in extract-archive.ts.
 */
import { splitSwiftPath } from '../paths.ts';
import type { InfoRegistry } from '../info.ts';
import { discard, isSuccess, plainError, readBody, respond, statusTitle } from '../responses.ts';
import { extractArchive, EXTRACT_LIMITS } from './extract-archive.ts';
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

const ACCEPTABLE = ['text/plain', 'application/json', 'application/xml', 'text/xml'];

/** The Accept header's best match among upstream's report formats (swob best_match, q-values honoured); undefined when none fits. */
function reportFormat(req: SwiftRequest): string | undefined {
  const accept = req.headers.accept;
  if (!accept) return 'text/plain';
  let best: { type: string; q: number } | undefined;
  for (const part of accept.split(',')) {
    const [range, ...params] = part.trim().split(';').map((x) => x.trim());
    const qp = params.find((x) => x.startsWith('q='));
    const q = qp ? Number(qp.slice(2)) : 1;
    if (!(q > 0)) continue;
    const type = ACCEPTABLE.find((t) => range === '*/*' || range === t || (range.endsWith('/*') && t.startsWith(range.slice(0, -1))));
    if (type && (!best || q > best.q)) best = { type, q };
  }
  return best?.type;
}

/** A bulk report (get_response_body): JSON, XML or "Key: value" lines, keys sorted, then the failures. */
function reportBody(format: string | undefined, doc: Record<string, unknown>, errors: [string, string][], root: string): SwiftResponse {
  const keys = Object.keys(doc).sort();
  if (format === 'application/json') return { status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ ...doc, Errors: errors }) };
  if (format?.endsWith('/xml')) {
    const esc = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const tag = (k: string) => k.toLowerCase().replace(/ /g, '_');
    const fields = keys.map((k) => `<${tag(k)}>${esc(String(doc[k]))}</${tag(k)}>\n`).join('');
    const errs = errors.map(([n, st]) => `<object><name>${esc(n)}</name><status>${esc(st)}</status></object>\n`).join('');
    return { status: 200, headers: { 'content-type': `${format}; charset=utf-8` }, body: `<?xml version="1.0" encoding="UTF-8"?>\n<${root}>\n${fields}<errors>\n${errs}</errors>\n</${root}>\n` };
  }
  const lines = keys.map((k) => `${k}: ${doc[k]}\n`).join('') + 'Errors:\n' + errors.map(([n, st]) => `${n}, ${st}\n`).join('');
  return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: lines };
}

/** Body of a bulk delete (or SLO delete) answer. */
export function bulkResponse(req: SwiftRequest, r: BulkResult): SwiftResponse {
  const status = r.status ?? (r.errors.length ? '400 Bad Request' : '200 OK');
  return reportBody(reportFormat(req), { 'Number Deleted': r.deleted, 'Number Not Found': r.notFound, 'Response Body': r.body ?? '', 'Response Status': status }, r.errors, 'delete');
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

export function bulk(info: InfoRegistry, maxFileSize: number): Middleware {
  info.register('bulk_delete', BULK_DELETE_LIMITS);
  info.register('bulk_upload', EXTRACT_LIMITS);
  return (next) => async (req) => {
    const archive = req.query.get('extract-archive');
    if (archive !== null && req.method === 'PUT') {
      const kind = archive.toLowerCase().replace(/^\.+|\.+$/g, '');
      if (kind !== 'tar' && kind !== 'tar.gz' && kind !== 'tar.bz2') return respond(400, 'Unsupported archive format');
      const format = reportFormat(req);
      const report = format ? await extractArchive(next, req, kind, maxFileSize) : { doc: { 'Response Status': '406 Not Acceptable', 'Response Body': '', 'Number Files Created': 0 }, errors: [] };
      return reportBody(format, report.doc, report.errors, 'extract');
    }
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
