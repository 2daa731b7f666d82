/** Listing query parsing and rendering (json / xml / plain) for container and account GETs, as upstream's create_listing. */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-util.ts';
import type { ListingQuery } from './db-file.ts';

export const LISTING_LIMIT = 10000;

export type ListingFormat = 'json' | 'xml' | 'plain';

export function listingFormat(req: IncomingMessage, q: URLSearchParams): ListingFormat {
  const f = q.get('format')?.toLowerCase();
  if (f === 'json') return 'json';
  if (f === 'xml') return 'xml';
  if (f === 'plain' || f === 'txt') return 'plain';
  const accept = req.headers.accept ?? '';
  // First acceptable type in the client's order of preference (q-values ignored but for q=0).
  const types = accept
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && !/;\s*q=0(\.0*)?\s*$/.test(s))
    .map((s) => s.split(';')[0].trim().toLowerCase());
  for (const t of types) {
    if (t === 'application/json') return 'json';
    if (t === 'application/xml' || t === 'text/xml') return 'xml';
    if (t === 'text/plain' || t === '*/*' || t === 'text/*') return 'plain';
  }
  return 'plain';
}

export const CONTENT_TYPES: Record<ListingFormat, string> = {
  json: 'application/json; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
  plain: 'text/plain; charset=utf-8',
};

export function parseListingQuery(q: URLSearchParams): ListingQuery {
  let limit = LISTING_LIMIT;
  const rawLimit = q.get('limit');
  if (rawLimit !== null && rawLimit !== '') {
    if (!/^\d+$/.test(rawLimit)) throw new HttpError(400, `Value of limit must be a positive integer`);
    limit = Number(rawLimit);
    if (limit > LISTING_LIMIT) throw new HttpError(412, `Maximum limit is ${LISTING_LIMIT}`);
  }
  const delimiter = q.get('delimiter') || undefined;
  if (delimiter && (delimiter.length > 1 || delimiter.charCodeAt(0) > 254)) throw new HttpError(412, 'Bad delimiter');
  const rev = q.get('reverse')?.toLowerCase();
  return {
    limit,
    marker: q.get('marker') || undefined,
    endMarker: q.get('end_marker') || undefined,
    prefix: q.get('prefix') || undefined,
    delimiter,
    path: q.has('path') ? (q.get('path') ?? '') : undefined,
    reverse: rev === 'true' || rev === '1' || rev === 'yes' || rev === 'on' || rev === 't' || rev === 'y',
  };
}

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

export type ListingItem = { subdir: string } | { fields: [string, string | number][]; name: string };

/** Renders a listing; undefined means "204 No Content" (an empty plain listing). */
export function renderListing(format: ListingFormat, rootTag: 'container' | 'account', rootName: string, items: ListingItem[]): string | undefined {
  if (format === 'json') {
    return JSON.stringify(items.map((i) => ('subdir' in i ? { subdir: i.subdir } : Object.fromEntries(i.fields))));
  }
  if (format === 'xml') {
    const itemTag = rootTag === 'container' ? 'object' : 'container';
    const body = items
      .map((i) =>
        'subdir' in i
          ? `<subdir name="${xmlEscape(i.subdir)}"><name>${xmlEscape(i.subdir)}</name></subdir>`
          : `<${itemTag}>${i.fields.map(([k, v]) => `<${k}>${xmlEscape(String(v))}</${k}>`).join('')}</${itemTag}>`,
      )
      .join('');
    return `<?xml version="1.0" encoding="UTF-8"?>\n<${rootTag} name="${xmlEscape(rootName)}">${body}</${rootTag}>`;
  }
  if (!items.length) return undefined;
  return items.map((i) => ('subdir' in i ? i.subdir : i.name)).join('\n') + '\n';
}
