/**
 * What SLO and DLO share (upstream's request_helpers.SegmentedIterable):
 * a large object is a list of segments, each served by a subrequest through
 * the rest of the pipeline (so the caller's authorization applies to every
 * segment), streamed back to back, with a client Range cut across them.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseRange } from '../../storage/ranges.ts';
import { discard, isSuccess } from '../responses.ts';
import type { Handler, Headers, SwiftRequest, SwiftResponse } from '../types.ts';

export interface Segment {
  /** /v1/<account>/<container>/<object>, decoded. */
  path: string;
  /** Length this segment contributes. */
  length: number;
  /** Offset in the segment object where its contribution starts (a manifest range). */
  offset: number;
  /** Whole object size, when known (decides whether the subrequest needs a Range). */
  objectSize?: number;
  /** Expected ETag of the whole segment object; checked when it is fetched whole. */
  etag?: string;
  /** Inline bytes (SLO data segments): no subrequest. */
  data?: Buffer;
}

/** A subrequest's environment: the caller's identity and authorize, none of its per-request results. */
export function subEnv(req: SwiftRequest, source: string): SwiftRequest['env'] {
  return { ...req.env, acl: undefined, swiftOwner: undefined, source, extra: { ...req.env.extra } };
}

export function subRequest(req: SwiftRequest, source: string, method: string, path: string, o: { headers?: Headers; query?: URLSearchParams; body?: SwiftRequest['body'] } = {}): SwiftRequest {
  return { method, path, query: o.query ?? new URLSearchParams(), headers: o.headers ?? {}, body: o.body, env: subEnv(req, source), remoteAddr: req.remoteAddr };
}

export type ByteRange = { first: number; last: number };

/**
 * One `bytes=` range resolved against `size` (upstream's swob Range); a
 * syntax error is ignored as upstream does, and a range wholly past the end is 416.
 */
export function resolveRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { first: Math.max(0, size - n), last: size - 1 };
  }
  const first = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < first) return undefined;
  if (first >= size) return 'unsatisfiable';
  return { first, last };
}

/** The parts of the segments that cover [first, last] of the whole. */
export function cutSegments(segments: Segment[], r: ByteRange): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  for (const s of segments) {
    const start = pos;
    const end = pos + s.length - 1;
    pos += s.length;
    if (end < r.first || start > r.last || s.length === 0) continue;
    const skip = Math.max(0, r.first - start);
    const upto = Math.min(end, r.last) - start;
    out.push({ ...s, offset: s.offset + skip, length: upto - skip + 1, data: s.data?.subarray(skip, upto + 1) });
  }
  return out;
}

export class SegmentError extends Error {}

/** GETs one segment (whole when it is the whole object, else by Range) and checks what came back. */
export async function fetchSegment(handler: Handler, req: SwiftRequest, source: string, s: Segment): Promise<SwiftResponse> {
  const whole = s.offset === 0 && s.objectSize !== undefined && s.length === s.objectSize;
  const headers: Headers = whole ? {} : { range: `bytes=${s.offset}-${s.offset + s.length - 1}` };
  const res = await handler(subRequest(req, source, 'GET', s.path, { headers }));
  if (!isSuccess(res.status)) {
    discard(res.body);
    throw new SegmentError(`While processing manifest ${req.path}, got ${res.status} while retrieving ${s.path}`);
  }
  if (whole && s.etag && res.headers.etag && res.headers.etag.replace(/"/g, '') !== s.etag) {
    discard(res.body);
    throw new SegmentError(`Object segment no longer valid: ${s.path} etag: ${res.headers.etag} != ${s.etag}`);
  }
  const got = Number(res.headers['content-length']);
  if (res.headers['content-length'] !== undefined && got !== s.length) {
    discard(res.body);
    throw new SegmentError(`Object segment no longer valid: ${s.path} length ${got} != ${s.length}`);
  }
  return res;
}

function asStream(body: SwiftResponse['body']): AsyncIterable<Buffer> {
  if (body === undefined) return Readable.from([]);
  if (typeof body === 'string' || Buffer.isBuffer(body)) return Readable.from([Buffer.from(body)]);
  return body;
}

/**
 * The segments' bytes back to back. The first segment is fetched before the
 * response starts (a missing first segment is a 409 upstream, not a truncated
 * 200); a later failure can only cut the body short, as upstream's does.
 */
export async function segmentBody(handler: Handler, req: SwiftRequest, source: string, segments: Segment[]): Promise<Readable> {
  const first = segments.find((s) => !s.data);
  const firstRes = first ? await fetchSegment(handler, req, source, first) : undefined;
  async function* gen(): AsyncGenerator<Buffer> {
    let pending = firstRes;
    try {
      for (const s of segments) {
        if (s.data) {
          yield s.data;
          continue;
        }
        const res = s === first ? pending! : await fetchSegment(handler, req, source, s);
        pending = undefined;
        for await (const chunk of asStream(res.body)) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      }
    } finally {
      if (pending) discard(pending.body);
    }
  }
  return Readable.from(gen(), { objectMode: false });
}

/**
 * A large object's GET/HEAD answer over its segments: the whole of it, or
 * the client's Range (206 with Content-Range, 416 past the end). Several
 * ranges are a multipart/byteranges answer as swob builds it when the
 * middleware allows them (SLO); DLO serves the whole object instead.
 */
export async function largeObjectResponse(
  handler: Handler,
  req: SwiftRequest,
  source: string,
  segments: Segment[],
  headers: Headers,
  o: { multiRange?: boolean } = {},
): Promise<SwiftResponse> {
  const size = segments.reduce((n, s) => n + s.length, 0);
  const h: Headers = { ...headers, 'accept-ranges': 'bytes' };
  delete h['content-range'];
  const etag = h.etag;
  const inm = req.headers['if-none-match'];
  if (inm && etag && (inm.trim() === '*' || inm.split(',').some((t) => t.trim() === etag))) return { status: 304, headers: h };
  const im = req.headers['if-match'];
  if (im && etag && im.trim() !== '*' && !im.split(',').some((t) => t.trim() === etag)) return { status: 412, headers: { ...h, 'content-length': '0' } };
  const multi = req.headers.range?.includes(',') ? parseRange(req.headers.range, size) : null;
  if (multi && (!o.multiRange || multi.length === 0)) {
    if (multi.length === 0 && o.multiRange) return { status: 416, headers: { ...h, 'content-range': `bytes */${size}`, 'content-length': '0' } };
    return wholeOrRange(handler, req, source, segments, h, size, undefined);
  }
  if (multi && multi.length > 1) return multipartResponse(handler, req, source, segments, h, size, multi);
  const range = multi ? { first: multi[0].start, last: multi[0].end } : resolveRange(req.headers.range, size);
  if (range === 'unsatisfiable') return { status: 416, headers: { ...h, 'content-range': `bytes */${size}`, 'content-length': '0' } };
  return wholeOrRange(handler, req, source, segments, h, size, range);
}

async function wholeOrRange(handler: Handler, req: SwiftRequest, source: string, segments: Segment[], h: Headers, size: number, range: ByteRange | undefined): Promise<SwiftResponse> {
  const parts = range ? cutSegments(segments, range) : segments;
  h['content-length'] = String(range ? range.last - range.first + 1 : size);
  if (range) h['content-range'] = `bytes ${range.first}-${range.last}/${size}`;
  const status = range ? 206 : 200;
  if (req.method === 'HEAD') return { status, headers: h };
  return withSegmentErrors(async () => ({ status, headers: h, body: await segmentBody(handler, req, source, parts) }));
}

async function withSegmentErrors(fn: () => Promise<SwiftResponse>): Promise<SwiftResponse> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SegmentError) return { status: 409, headers: { 'content-type': 'text/plain' }, body: e.message };
    throw e;
  }
}

/** swob's multipart/byteranges: one part per range, each with the object's type and its Content-Range. */
async function multipartResponse(handler: Handler, req: SwiftRequest, source: string, segments: Segment[], h: Headers, size: number, ranges: { start: number; end: number }[]): Promise<SwiftResponse> {
  const boundary = randomBytes(16).toString('hex');
  const ctype = h['content-type'] ?? 'application/octet-stream';
  const heads = ranges.map((r) => Buffer.from(`--${boundary}\r\nContent-Type: ${ctype}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`));
  const closing = Buffer.from(`--${boundary}--`);
  const total = ranges.reduce((n, r, i) => n + heads[i].length + (r.end - r.start + 1) + 2, 0) + closing.length;
  const out: Headers = { ...h, 'content-type': `multipart/byteranges;boundary=${boundary}`, 'content-length': String(total) };
  if (req.method === 'HEAD') return { status: 206, headers: out };
  return withSegmentErrors(async () => {
    // Each part's segments are fetched as it is reached; only the first is checked before the answer starts.
    const first = await segmentBody(handler, req, source, cutSegments(segments, { first: ranges[0].start, last: ranges[0].end }));
    async function* gen(): AsyncGenerator<Buffer> {
      for (const [i, r] of ranges.entries()) {
        yield heads[i];
        const body = i === 0 ? first : await segmentBody(handler, req, source, cutSegments(segments, { first: r.start, last: r.end }));
        for await (const c of body) yield c as Buffer;
        yield Buffer.from('\r\n');
      }
      yield closing;
    }
    return { status: 206, headers: out, body: Readable.from(gen(), { objectMode: false }) };
  });
}

/** A manifest's own answer was cut by the client's Range or conditions: ask again for all of it. */
export function needsRefetch(req: SwiftRequest, res: SwiftResponse): boolean {
  return req.method === 'GET' && (res.status === 206 || res.status === 416 || res.status === 304 || res.status === 412);
}

/**
 * A storage node's 416 to a Range on a manifest carries none of the
 * manifest's headers: a HEAD tells whether the object is a large one, and
 * then its HEAD stands in for the answer (refetched whole by the caller).
 */
export async function manifestBehind416(next: Handler, req: SwiftRequest, res: SwiftResponse, isManifest: (r: SwiftResponse) => boolean): Promise<SwiftResponse> {
  if (res.status !== 416 || !req.headers.range || isManifest(res)) return res;
  const head = await next({ ...withoutClientConditions(req), method: 'HEAD' });
  if (!isSuccess(head.status) || !isManifest(head)) return res;
  discard(res.body);
  return { ...head, status: 416 };
}

export function withoutClientConditions(req: SwiftRequest): SwiftRequest {
  const headers = { ...req.headers };
  for (const k of ['range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']) delete headers[k];
  return { ...req, headers };
}

/** swift_bytes=N rides in a manifest's stored Content-Type for the listings; clients never see it. */
export function stripSwiftBytes(ct: string | undefined): string | undefined {
  return ct?.replace(/;\s*swift_bytes=\d+/, '');
}
