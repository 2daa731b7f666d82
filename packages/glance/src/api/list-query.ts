import { badRequest } from '@onestack/core/errors.ts';
import type { ColumnFilter, FilterOp, ImageColumn, ListQuery } from '../domain/image-repo.ts';
import { MEMBER_STATUSES, VISIBILITIES, type MemberStatus, type Visibility } from '../domain/image.ts';
import { parseIsoTime } from '../domain/time.ts';

type Query = Record<string, string | string[] | undefined>;

/** What GET /v2/images asks for, minus who is asking (images.py RequestDeserializer.index and ImagesController.index). */
export type ImageListRequest = Omit<ListQuery, 'projectId' | 'isAdmin' | 'marker'> & { markerId?: string };

const SORT_KEYS = ['name', 'status', 'container_format', 'disk_format', 'size', 'id', 'created_at', 'updated_at'] as const;
/** Filters with the `in:` operator (the API working group's filtering guideline). */
const LIST_FILTERS = ['name', 'id', 'status', 'container_format', 'disk_format'] as const;
const TIME_FILTERS = ['created_at', 'updated_at'] as const;
/** Numeric columns with _min/_max range filters. */
const RANGE_COLUMNS = ['size', 'virtual_size', 'min_disk', 'min_ram'] as const;
/** Other columns a filter compares for equality; any other key is an image property. */
const EQUALITY_COLUMNS = ['owner', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size', 'min_disk', 'min_ram'] as const;
const CONSUMED = new Set(['limit', 'marker', 'member_status', 'tag', 'sort', 'sort_key', 'sort_dir', 'visibility', 'os_hidden', 'protected']);

function all(q: Query, key: string): string[] {
  const v = q[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A parameter given once; repeated, the last one counts (webob's MultiDict). */
function one(q: Query, key: string): string | undefined {
  return all(q, key).at(-1);
}

export function parseListQuery(q: Query, o: { limitDefault: number; limitMax: number }): ImageListRequest {
  if ('changes-since' in q) throw badRequest('The "changes-since" filter is no longer available on v2.');
  const memberStatus = one(q, 'member_status') ?? 'accepted';
  if (memberStatus !== 'all' && !(MEMBER_STATUSES as readonly string[]).includes(memberStatus)) throw badRequest(`Invalid status: ${memberStatus}`);
  const visibility = one(q, 'visibility');
  if (visibility && visibility !== 'all' && !(VISIBILITIES as readonly string[]).includes(visibility)) throw badRequest(`Invalid visibility value: ${visibility}`);
  const sort = parseSort(q);
  const filters: ColumnFilter[] = [];
  const osHidden = (one(q, 'os_hidden') ?? 'false').toLowerCase();
  if (osHidden !== 'true' && osHidden !== 'false') throw badRequest(`Invalid value '${osHidden}' for 'os_hidden' filter. Valid values are 'true' or 'false'.`);
  filters.push({ column: 'os_hidden', op: 'eq', value: osHidden === 'true' ? 1 : 0 });
  const prot = one(q, 'protected');
  if (prot !== undefined) {
    if (prot !== 'true' && prot !== 'false') throw badRequest(`Invalid value '${prot}' for 'protected' filter. Valid values are 'true' or 'false'.`);
    filters.push({ column: 'protected', op: 'eq', value: prot === 'true' ? 1 : 0 });
  }
  const properties: ImageListRequest['properties'] = [];
  for (const key of Object.keys(q)) {
    if (CONSUMED.has(key)) continue;
    const value = one(q, key)!;
    const range = /^(.*)_(min|max)$/.exec(key);
    if (range && (RANGE_COLUMNS as readonly string[]).includes(range[1])) {
      if (!/^\s*[+-]?\d+\s*$/.test(value)) throw badRequest('Unable to filter on a range with a non-numeric value.');
      filters.push({ column: range[1] as ImageColumn, op: range[2] === 'min' ? 'gte' : 'lte', value: Number(value) });
    } else if ((TIME_FILTERS as readonly string[]).includes(key)) {
      filters.push(timeFilter(key as ImageColumn, value));
    } else if ((LIST_FILTERS as readonly string[]).includes(key)) {
      filters.push(listFilter(key as ImageColumn, value));
    } else if ((EQUALITY_COLUMNS as readonly string[]).includes(key)) {
      filters.push({ column: key as ImageColumn, op: 'eq', value });
    } else {
      properties.push({ name: key, value });
    }
  }
  return {
    memberStatus: memberStatus as MemberStatus | 'all',
    ...(visibility ? { visibility: visibility as Visibility | 'all' } : {}),
    filters,
    properties,
    tags: all(q, 'tag').map((t) => t.trim()),
    sort,
    limit: Math.min(o.limitMax, parseLimit(one(q, 'limit')) ?? o.limitDefault),
    ...(one(q, 'marker') !== undefined ? { markerId: one(q, 'marker') } : {}),
  };
}

function parseLimit(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\s*[+-]?\d+\s*$/.test(v)) throw badRequest('limit param must be an integer');
  const n = Number(v);
  if (n < 0) throw badRequest('limit param must be positive');
  return n;
}

/** Both sort syntaxes: sort_key/sort_dir repeated, or sort=name:asc,size:desc; then created_at and id to make it total. */
function parseSort(q: Query): ListQuery['sort'] {
  const keys: string[] = [];
  const dirs: string[] = [];
  const sortParam = one(q, 'sort');
  if (sortParam !== undefined) {
    if ('sort_key' in q || 'sort_dir' in q) throw badRequest('Old and new sorting syntax cannot be combined');
    for (const part of sortParam.trim().split(',')) {
      const [key, dir] = splitOnce(part, ':');
      keys.push(sortKey(key.trim()));
      dirs.push(sortDir((dir || 'desc').trim()));
    }
  } else {
    for (const k of all(q, 'sort_key')) keys.push(sortKey(k.trim()));
    for (const d of all(q, 'sort_dir')) dirs.push(sortDir(d.trim()));
    if (dirs.length > 1 && dirs.length !== keys.length) throw badRequest('Number of sort dirs does not match the number of sort keys');
  }
  if (keys.length === 0) keys.push('created_at');
  const defaultDir = dirs.length === 1 ? dirs[0] : 'desc';
  const sort = keys.map((key, i) => ({ key: key as ImageColumn, dir: (dirs.length === 1 ? dirs[0] : (dirs[i] ?? 'desc')) as 'asc' | 'desc' }));
  for (const key of ['created_at', 'id'] as const) if (!keys.includes(key)) sort.push({ key, dir: defaultDir as 'asc' | 'desc' });
  return sort;
}

function sortKey(key: string): string {
  if (!(SORT_KEYS as readonly string[]).includes(key)) {
    throw badRequest(`Invalid sort key: ${key}. It must be one of the following: ${SORT_KEYS.join(', ')}.`);
  }
  return key;
}

function sortDir(dir: string): string {
  if (dir !== 'asc' && dir !== 'desc') throw badRequest(`Invalid sort direction: ${dir}`);
  return dir;
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

/** utils.split_filter_op: `op:value`, except that a bare ISO 8601 time is an `eq`. */
function splitOp(expression: string): [string, string] {
  const [left, right] = splitOnce(expression, ':');
  if (!expression.includes(':')) return ['eq', left];
  if (parseIsoTime(expression) !== undefined) return ['eq', expression];
  return [left, right];
}

const TIME_OPS: FilterOp[] = ['gt', 'gte', 'lt', 'lte', 'neq', 'eq'];

function timeFilter(column: ImageColumn, expression: string): ColumnFilter {
  const [op, value] = splitOp(expression);
  const ms = parseIsoTime(value);
  if (ms === undefined) throw badRequest(`Bad "${column}" query filter format. Use ISO 8601 DateTime notation.`);
  if (!TIME_OPS.includes(op as FilterOp)) throw badRequest('Unable to filter on a unknown operator.');
  return { column, op: op as FilterOp, value: ms };
}

function listFilter(column: ImageColumn, expression: string): ColumnFilter {
  const [op, value] = splitOp(expression);
  if (op === 'in') return { column, op: 'in', value: splitQuoted(value) };
  if (op === 'eq') return { column, op: 'eq', value };
  throw badRequest(`Unable to filter by unknown operator '${op}'.`);
}

/** utils.split_filter_value_for_quotes: comma separated, "double quoted" items may hold commas. */
function splitQuoted(value: string): string[] {
  let open = true;
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '"' || (i > 0 && value[i - 1] === '\\')) continue;
    if (open && i > 0 && value[i - 1] !== ',') throw badRequest(`Invalid filter value ${value}. There is no comma before opening quotation mark.`);
    if (!open && i + 1 < value.length && value[i + 1] !== ',') throw badRequest(`Invalid filter value ${value}. There is no comma after closing quotation mark.`);
    open = !open;
  }
  if (!open) throw badRequest(`Invalid filter value ${value}. The quote is not closed.`);
  const out: string[] = [];
  const re = /"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,/g;
  for (let m = re.exec(value); m && m[0] !== ''; m = re.exec(value)) out.push(m[1] ?? m[2] ?? '');
  return out;
}
