/**
 * Range and conditional-request rules of upstream's swob, shared by the
 * object server's GET and HEAD.
 */

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Parses "bytes=a-b,c-,-n" as swob.Range. Returns null when the header is
 * absent or malformed (swob then serves the whole entity), [] when it is
 * well-formed but no range is satisfiable (416).
 */
export function parseRange(header: string | undefined, length: number): ByteRange[] | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m) return null;
  const specs = m[1].split(',').map((s) => s.trim());
  const parsed: { start: number | null; end: number | null }[] = [];
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) return null;
    const start = r[1] === '' ? null : Number(r[1]);
    const end = r[2] === '' ? null : Number(r[2]);
    if (start !== null && end !== null && end < start) return null;
    parsed.push({ start, end });
  }
  const out: ByteRange[] = [];
  for (const { start, end } of parsed) {
    if (start === null) {
      // Suffix range: the last `end` bytes; "-0" is unsatisfiable.
      if (!end || length === 0) continue;
      out.push({ start: Math.max(0, length - end), end: length - 1 });
    } else if (start < length) {
      out.push({ start, end: end === null ? length - 1 : Math.min(end, length - 1) });
    }
  }
  return out;
}

export function etagMatches(header: string, etag: string): boolean {
  for (const raw of header.split(',')) {
    const t = raw.trim();
    if (t === '*') return true;
    if (t.replace(/^W\//, '').replace(/^"|"$/g, '') === etag) return true;
  }
  return false;
}

/** Seconds since the epoch of an HTTP date, or undefined when unparsable (swob ignores those). */
export function parseHttpDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000);
}

/**
 * swob's conditional_response checks in its order: If-Match, If-None-Match,
 * then If-Unmodified-Since / If-Modified-Since. Returns the status to answer
 * instead of the entity (304 or 412), or undefined.
 */
export function conditionalStatus(
  method: string,
  h: { ifMatch?: string; ifNoneMatch?: string; ifModifiedSince?: string; ifUnmodifiedSince?: string },
  etag: string,
  lastModifiedS: number,
): 304 | 412 | undefined {
  if (h.ifMatch && !etagMatches(h.ifMatch, etag)) return 412;
  if (h.ifNoneMatch && etagMatches(h.ifNoneMatch, etag)) return method === 'GET' || method === 'HEAD' ? 304 : 412;
  const ius = parseHttpDate(h.ifUnmodifiedSince);
  if (ius !== undefined && lastModifiedS > ius) return 412;
  const ims = parseHttpDate(h.ifModifiedSince);
  if (!h.ifNoneMatch && ims !== undefined && (method === 'GET' || method === 'HEAD') && lastModifiedS <= ims) return 304;
  return undefined;
}
