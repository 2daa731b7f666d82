import { listingFormat, notAcceptable, renderListing, type ListingFormat } from '../listing.ts';
import { isSuccess, readBody } from '../responses.ts';
import type { Handler, SwiftRequest, SwiftResponse } from '../types.ts';

export type ListingEntry = Record<string, unknown>;

/**
 * An account or container GET whose listing a middleware rewrites: the rest of the
 * pipeline is asked for JSON (as upstream's listing_formats does for every
 * middleware right of it), `edit` works on the parsed entries, and the result
 * is rendered in the format the client asked for. `edit` may answer a whole
 * response instead (object versioning's `?versions`, always JSON).
 */
export async function rewriteListing(next: Handler, req: SwiftRequest, kind: 'account' | 'container', name: string, edit: (entries: ListingEntry[], res: SwiftResponse, format: ListingFormat) => Promise<ListingEntry[] | SwiftResponse>, unchanged?: (body: Buffer) => boolean): Promise<SwiftResponse> {
  const format = listingFormat(req);
  if (!format) return notAcceptable();
  const query = new URLSearchParams(req.query);
  query.set('format', 'json');
  const res = await next({ ...req, query });
  if (!isSuccess(res.status)) return res;
  const body = await readBody(res.body);
  // Nothing to edit and JSON wanted: the listing goes out as it came (no second parse).
  if (format === 'json' && unchanged?.(body)) return { ...res, body };
  let entries: ListingEntry[];
  try {
    entries = body.length ? (JSON.parse(body.toString('utf8')) as ListingEntry[]) : [];
  } catch {
    return { ...res, body };
  }
  const edited = await edit(entries, res, format);
  if (!Array.isArray(edited)) return edited;
  return renderListing(kind, name, edited, format, res.headers, req.method);
}

/** Splits a listing's `hash` into its value and `; key=value` parameters (upstream's parse_header). */
export function parseHashParams(hash: string): { value: string; params: [string, string][] } {
  const [value, ...rest] = hash.split(';');
  const params: [string, string][] = [];
  for (const p of rest) {
    const i = p.indexOf('=');
    if (i < 0) continue;
    params.push([p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim()]);
  }
  return { value: value.trim(), params };
}
