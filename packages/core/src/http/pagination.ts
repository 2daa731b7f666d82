import { badRequest } from '../errors.ts';

/**
 * Upstream's list conventions (limit/marker paging with `next` links, sort_key /
 * sort_dir, fields=), shared by every service's list routes.
 */
export interface PageRequest {
  limit?: number;
  marker?: string;
}

export function parsePage(query: Record<string, unknown>, maxLimit = 1000): PageRequest {
  const page: PageRequest = {};
  if (query.limit !== undefined && query.limit !== '') {
    const n = Number(query.limit);
    if (!Number.isInteger(n) || n < 0) throw badRequest(`Invalid limit: ${String(query.limit)}`);
    page.limit = Math.min(n, maxLimit);
  }
  if (typeof query.marker === 'string' && query.marker !== '') page.marker = query.marker;
  return page;
}

export interface SortSpec {
  key: string;
  dir: 'asc' | 'desc';
}

/** sort_key/sort_dir may repeat (parallel lists), as in nova and neutron. */
export function parseSort(
  query: Record<string, unknown>,
  allowed: readonly string[],
  fallback: SortSpec[],
): SortSpec[] {
  const keys = asList(query.sort_key);
  const dirs = asList(query.sort_dir);
  if (keys.length === 0) return fallback;
  return keys.map((key, i) => {
    if (!allowed.includes(key)) throw badRequest(`Invalid sort_key: ${key}`);
    const dir = (dirs[i] ?? dirs[0] ?? 'asc').toLowerCase();
    if (dir !== 'asc' && dir !== 'desc') throw badRequest(`Invalid sort_dir: ${dir}`);
    return { key, dir };
  });
}

export function asList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).filter((x) => x !== '');
}

/** The `next` link upstream returns: the same query with marker set to the last item. */
export function nextLink(baseUrl: string, query: Record<string, unknown>, lastId: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (k === 'marker' || v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) params.append(k, String(item));
  }
  params.set('marker', lastId);
  return `${baseUrl}?${params.toString()}`;
}

/** `fields=a&fields=b` (or `fields=a,b`): keep only these attributes. */
export function pickFields<T extends Record<string, unknown>>(item: T, fields: string[]): Partial<T> {
  if (fields.length === 0) return item;
  const out: Partial<T> = {};
  for (const f of fields) if (f in item) (out as Record<string, unknown>)[f] = item[f];
  return out;
}

/** The `previous` link of marker paging (Neutron): the same query with marker set to the first item and page_reverse=True. */
export function previousLink(baseUrl: string, query: Record<string, unknown>, firstId: string): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (k === 'marker' || k === 'page_reverse' || v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) params.append(k, String(item));
  }
  params.set('marker', firstId);
  params.set('page_reverse', 'True');
  return `${baseUrl}?${params.toString()}`;
}
