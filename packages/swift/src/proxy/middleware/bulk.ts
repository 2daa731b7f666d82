/**
 * upstream's bulk middleware. Its delete half: `POST|DELETE …?bulk-delete`
 * with a body of URL-encoded `/container/object` or `/container` lines,
 * each deleted by a subrequest carrying the caller's authorization. The
 * answer is always 200 (the request itself worked); the outcome is in the
 * body, in the format the Accept header asks for. Its upload half,
 * `PUT …?extract-archive=tar|tar.gz|tar.bz2`, is in extract-archive.ts.
 */
import { PassThrough } from 'node:stream';
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

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** A bulk report (get_heartbeat_response_body): JSON, XML (without declaration) or "Key: value" lines, keys sorted, then the failures. */
function reportText(format: string | undefined, doc: Record<string, unknown>, errors: [string, string][], root: string): { contentType: string; text: string } {
  const keys = Object.keys(doc).sort();
  if (format === 'application/json') return { contentType: 'application/json; charset=utf-8', text: JSON.stringify({ ...doc, Errors: errors }) };
  if (format?.endsWith('/xml')) {
    const esc = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const tag = (k: string) => k.toLowerCase().replace(/ /g, '_');
    const fields = keys.map((k) => `<${tag(k)}>${esc(String(doc[k]))}</${tag(k)}>\n`).join('');
    const errs = errors.map(([n, st]) => `<object><name>${esc(n)}</name><status>${esc(st)}</status></object>\n`).join('');
    return { contentType: `${format}; charset=utf-8`, text: `<${root}>\n${fields}<errors>\n${errs}</errors>\n</${root}>\n` };
  }
  const lines = keys.map((k) => `${k}: ${doc[k]}\n`).join('') + 'Errors:\n' + errors.map(([n, st]) => `${n}, ${st}\n`).join('');
  return { contentType: 'text/plain; charset=utf-8', text: lines };
}

/** A whole bulk report as one answer (get_response_body: XML with its declaration). */
function reportBody(format: string | undefined, doc: Record<string, unknown>, errors: [string, string][], root: string): SwiftResponse {
  const r = reportText(format, doc, errors, root);
  return { status: 200, headers: { 'content-type': r.contentType }, body: format?.endsWith('/xml') ? XML_DECLARATION + r.text : r.text };
}

/**
 * The report of a long job, answered at once and kept alive as upstream's
 * bulk iterators do: every `everyMs` while the job runs one byte of
 * whitespace (the first, for XML, the declaration) so that clients and
 * proxies do not time out; then, after a blank line when anything was sent,
 * the report.
 */
function heartbeatReport(format: string, root: string, job: Promise<{ doc: Record<string, unknown>; errors: [string, string][] }>, everyMs: number): SwiftResponse {
  const out = new PassThrough();
  let separator = '';
  const timer = setInterval(() => {
    out.write(!separator && format.endsWith('/xml') ? XML_DECLARATION : ' ');
    separator = '\r\n\r\n';
  }, everyMs);
  // The answer has begun: a job that breaks can only say so in the report (upstream: 500 in Response Status).
  const broken = { doc: { 'Response Status': '500 Internal Server Error', 'Response Body': '' }, errors: [] as [string, string][] };
  void job
    .catch(() => broken)
    .then((r) => out.end(separator + reportText(format, r.doc, r.errors, root).text))
    .finally(() => clearInterval(timer));
  return { status: 200, headers: { 'content-type': reportText(format, {}, [], root).contentType }, body: out };
}

/** Body of a bulk delete (or SLO delete) answer. */
export function bulkResponse(req: SwiftRequest, r: BulkResult): SwiftResponse {
  return reportBody(reportFormat(req), deleteReport(r).doc, r.errors, 'delete');
}

function deleteReport(r: BulkResult): { doc: Record<string, unknown>; errors: [string, string][] } {
  const status = r.status ?? (r.errors.length ? '400 Bad Request' : '200 OK');
  return { doc: { 'Number Deleted': r.deleted, 'Number Not Found': r.notFound, 'Response Body': r.body ?? '', 'Response Status': status }, errors: r.errors };
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

export function bulk(info: InfoRegistry, maxFileSize: number, yieldFrequencyMs = 10_000): Middleware {
  info.register('bulk_delete', BULK_DELETE_LIMITS);
  info.register('bulk_upload', EXTRACT_LIMITS);
  return (next) => async (req) => {
    const archive = req.query.get('extract-archive');
    if (archive !== null && req.method === 'PUT') {
      const kind = archive.toLowerCase().replace(/^\.+|\.+$/g, '');
      if (kind !== 'tar' && kind !== 'tar.gz' && kind !== 'tar.bz2') return respond(400, 'Unsupported archive format');
      const format = reportFormat(req);
      if (!format) return reportBody(format, { 'Response Status': '406 Not Acceptable', 'Response Body': '', 'Number Files Created': 0 }, [], 'extract');
      return heartbeatReport(format, 'extract', extractArchive(next, req, kind, maxFileSize), yieldFrequencyMs);
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
    const format = reportFormat(req);
    if (!format) {
      await deletePaths(next, req, 'BD', paths, result);
      return bulkResponse(req, result);
    }
    return heartbeatReport(format, 'delete', deletePaths(next, req, 'BD', paths, result).then(() => deleteReport(result)), yieldFrequencyMs);
  };
}
