import { respond } from './responses.ts';
import type { Headers, SwiftRequest, SwiftResponse } from './types.ts';

export type ListingFormat = 'json' | 'xml' | 'plain';

const CONTENT_TYPES: Record<ListingFormat, string> = {
  json: 'application/json; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
  plain: 'text/plain; charset=utf-8',
};

/** The listing format asked for, by ?format= first, then Accept (listing_formats.get_listing_content_type). */
export function listingFormat(req: SwiftRequest): ListingFormat | undefined {
  const q = req.query.get('format');
  if (q) {
    const f = q.toLowerCase();
    return f === 'json' ? 'json' : f === 'xml' ? 'xml' : 'plain';
  }
  const accept = req.headers.accept;
  if (!accept) return 'plain';
  let best: ListingFormat | undefined;
  let bestQ = -1;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().split(';').map((s) => s.trim());
    const qv = params.find((p) => p.startsWith('q='));
    const weight = qv ? Number(qv.slice(2)) : 1;
    const t = type.toLowerCase();
    const f: ListingFormat | undefined =
      t === 'application/json' ? 'json' : t === 'application/xml' || t === 'text/xml' ? 'xml' : t === 'text/plain' || t === 'text/*' || t === '*/*' ? 'plain' : undefined;
    if (f && weight > bestQ && weight > 0) {
      best = f;
      bestQ = weight;
    }
  }
  return best;
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

type Entry = Record<string, unknown>;

/**
 * Renders a listing (the JSON array the storage servers return) as
 * upstream's listing_formats middleware: JSON as is, XML with one element per
 * key, plain text one name per line; a plain listing with nothing in it is
 * 204 No Content.
 */
export function renderListing(kind: 'account' | 'container', name: string, entries: Entry[], format: ListingFormat, headers: Headers, method: string): SwiftResponse {
  let body: string;
  if (format === 'json') body = JSON.stringify(entries);
  else if (format === 'xml') {
    const item = kind === 'account' ? 'container' : 'object';
    const parts = entries.map((e) => {
      if (typeof e.subdir === 'string') return `<subdir name="${xmlEscape(e.subdir)}"><name>${xmlEscape(e.subdir)}</name></subdir>`;
      const fields = Object.entries(e)
        .filter(([, v]) => v !== undefined && v !== null)
        .map(([k, v]) => `<${k}>${xmlEscape(String(v))}</${k}>`)
        .join('');
      return `<${item}>${fields}</${item}>`;
    });
    body = `<?xml version="1.0" encoding="UTF-8"?>\n<${kind} name="${xmlEscape(name)}">${parts.join('')}</${kind}>`;
  } else body = entries.map((e) => `${String(e.subdir ?? e.name)}\n`).join('');
  const buf = Buffer.from(body, 'utf8');
  const h: Headers = { ...headers, 'content-type': CONTENT_TYPES[format] };
  delete h['content-length'];
  if (buf.length === 0) return { status: 204, headers: { ...h, 'content-length': '0' }, body: undefined };
  h['content-length'] = String(buf.length);
  return { status: 200, headers: h, body: method === 'HEAD' ? undefined : buf };
}

export function notAcceptable(): SwiftResponse {
  return respond(406);
}
