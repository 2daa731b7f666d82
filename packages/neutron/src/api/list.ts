import type { FastifyRequest } from 'fastify';
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { asList, baseUrlOf, nextLink, previousLink } from '@onestack/core/http/index.ts';

/**
 * Upstream's list conventions for every Neutron collection: `fields=`,
 * attribute filters (a repeated value is OR; an unknown attribute is a 400
 * under filter-validation), `sort_key`/`sort_dir`, `limit`/`marker`/
 * `page_reverse` with `<collection>_links`, the tag filters and
 * `changed_since`. Filtering, sorting and paging run in SQL.
 */
export type ValueType = 'string' | 'bool' | 'int';

export interface ColumnSpec {
  column: string;
  type: ValueType;
  sortable?: boolean;
}

type AnyEb = ExpressionBuilder<any, any>;
export type Scope = ((eb: AnyEb) => Expression<SqlBool>) | undefined;

export interface ListSpec {
  table: string;
  collection: string;
  /** Wire attribute → column, besides the standard attributes every resource has. */
  columns: Record<string, ColumnSpec>;
  /** Filters that are not one column (a port's `fixed_ips`, a network's `shared` for a project …). */
  custom?: Record<string, (eb: AnyEb, values: string[]) => Expression<SqlBool>>;
  /** Attributes that exist but cannot be filtered on; a filter on them is ignored, as upstream does for non-filterable attributes of old. */
  ignored?: string[];
  /** Whether the resource has standard attributes (name, description, revision_number, timestamps). */
  standard?: boolean;
}

const STANDARD: Record<string, ColumnSpec> = {
  id: { column: 'id', type: 'string', sortable: true },
  project_id: { column: 'project_id', type: 'string', sortable: true },
  tenant_id: { column: 'project_id', type: 'string', sortable: true },
  name: { column: 'name', type: 'string', sortable: true },
  description: { column: 'description', type: 'string', sortable: true },
  revision_number: { column: 'revision_number', type: 'int', sortable: true },
  created_at: { column: 'created_at', type: 'string', sortable: true },
  updated_at: { column: 'updated_at', type: 'string', sortable: true },
};

const PAGING = new Set(['fields', 'sort_key', 'sort_dir', 'limit', 'marker', 'page_reverse', 'tags', 'tags-any', 'not-tags', 'not-tags-any', 'changed_since']);

export interface ListQuery {
  fields: string[];
  limit?: number;
  marker?: string;
  pageReverse: boolean;
}

function columnsOf(spec: ListSpec): Record<string, ColumnSpec> {
  if (spec.standard === false) return { id: STANDARD.id, project_id: STANDARD.project_id, tenant_id: STANDARD.tenant_id, ...spec.columns };
  return { ...STANDARD, ...spec.columns };
}

export function convertValue(attr: string, type: ValueType, raw: string): string | number {
  if (type === 'string') return raw;
  if (type === 'int') {
    const n = Number(raw);
    if (raw === '' || !Number.isInteger(n)) throw badRequest(`Invalid input for ${attr}. Reason: '${raw}' is not an integer.`, { type: 'InvalidInput' });
    return n;
  }
  const v = raw.toLowerCase();
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return 1;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return 0;
  throw badRequest(`Invalid input for ${attr}. Reason: '${raw}' cannot be converted to boolean.`, { type: 'InvalidInput' });
}

export function parseBool(raw: unknown, attr: string): boolean {
  return convertValue(attr, 'bool', String(raw)) === 1;
}

function raw(query: Record<string, unknown>, key: string): string[] {
  const v = query[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** Runs a list of `spec` for a request: rows of the page in order, and the `<collection>_links` when paging. */
export async function listRows<Row extends { id: string }>(
  db: Kysely<any>,
  req: FastifyRequest,
  spec: ListSpec,
  scope: Scope,
  opts: { publicUrl: string; maxLimit: number; defaultSort?: { key: string; dir: 'asc' | 'desc' }[] },
): Promise<{ rows: Row[]; fields: string[]; links?: { rel: string; href: string }[] }> {
  const query = (req.query ?? {}) as Record<string, unknown>;
  const columns = columnsOf(spec);
  let q = db.selectFrom(spec.table).selectAll(spec.table);
  if (scope) q = q.where(scope);

  for (const [key, value] of Object.entries(query)) {
    if (PAGING.has(key)) continue;
    const values = raw({ [key]: value }, key);
    const custom = spec.custom?.[key];
    if (custom) {
      q = q.where((eb) => custom(eb, values));
      continue;
    }
    const col = columns[key];
    if (!col) {
      if (spec.ignored?.includes(key)) continue;
      throw new ApiError('bad_request', `[${key}] is invalid attribute for filtering`, { type: 'HTTPBadRequest' });
    }
    const converted = values.map((v) => convertValue(key, col.type, v));
    q = q.where(`${spec.table}.${col.column}` as never, 'in', converted as never);
  }

  q = applyTagFilters(q, spec.table, query);
  const since = raw(query, 'changed_since')[0];
  if (since !== undefined) {
    const t = Date.parse(since);
    if (Number.isNaN(t)) throw badRequest(`Invalid input for changed_since. Reason: '${since}' is not a valid datetime.`, { type: 'InvalidInput' });
    q = q.where(`${spec.table}.updated_at` as never, '>=', t as never);
  }

  const sort = parseSortSpec(query, columns, opts.defaultSort);
  const pageReverse = raw(query, 'page_reverse')[0] !== undefined && convertValue('page_reverse', 'bool', raw(query, 'page_reverse')[0]) === 1;
  const limitRaw = raw(query, 'limit')[0];
  let limit: number | undefined;
  if (limitRaw !== undefined && limitRaw !== '') {
    const n = Number(limitRaw);
    if (!Number.isInteger(n) || n < 0) throw badRequest(`Limit must be an integer 0 or greater and not '${limitRaw}'`);
    limit = n === 0 ? undefined : n;
  }
  if (opts.maxLimit > 0) limit = Math.min(limit ?? opts.maxLimit, opts.maxLimit);
  const marker = raw(query, 'marker')[0];
  // Paging walks the sort keys in the order asked, reversed for page_reverse; id breaks ties.
  const keys = sort.some((s) => s.column === 'id') ? sort : [...sort, { column: 'id', dir: sort[0]?.dir ?? 'asc' }];
  const effective = keys.map((k) => ({ column: k.column, dir: (pageReverse ? (k.dir === 'asc' ? 'desc' : 'asc') : k.dir) as 'asc' | 'desc' }));
  if (marker !== undefined && limit !== undefined) {
    const m = (await db.selectFrom(spec.table).selectAll().where('id', '=', marker).executeTakeFirst()) as Record<string, unknown> | undefined;
    if (!m) throw new ApiError('not_found', `Marker ${marker} could not be found.`, { type: 'NotFound' });
    q = q.where((eb) => afterMarker(eb, spec.table, effective, m));
  }
  for (const k of effective) q = q.orderBy(`${spec.table}.${k.column}` as never, k.dir);
  if (limit !== undefined) q = q.limit(limit);
  let rows = (await q.execute()) as Row[];
  if (pageReverse) rows = rows.reverse();
  const fields = asList(query.fields);
  if (limit === undefined) return { rows, fields };
  const base = `${baseUrlOf(req, opts.publicUrl)}/v2.0/${spec.collection}`;
  const links: { rel: string; href: string }[] = [];
  const { page_reverse: _pr, ...rest } = query;
  const pageQuery = { ...rest, limit: String(limit) };
  if (!(rows.length < limit && !pageReverse) && rows.length > 0) links.push({ rel: 'next', href: nextLink(base, pageQuery, rows[rows.length - 1].id) });
  if (!(rows.length < limit && pageReverse) && rows.length > 0 && (marker !== undefined || pageReverse)) {
    links.push({ rel: 'previous', href: previousLink(base, pageQuery, rows[0].id) });
  }
  return { rows, fields, links };
}

function parseSortSpec(query: Record<string, unknown>, columns: Record<string, ColumnSpec>, fallback?: { key: string; dir: 'asc' | 'desc' }[]) {
  const keys = raw(query, 'sort_key');
  const dirs = raw(query, 'sort_dir');
  if (dirs.length > 0 && dirs.length !== keys.length) throw badRequest('The number of sort_keys and sort_dirs must be same', { type: 'HTTPBadRequest' });
  const out = keys.map((key, i) => {
    const col = columns[key];
    if (!col || col.sortable === false) throw badRequest(`${key} is an invalid attribute for sort_key`, { type: 'HTTPBadRequest' });
    const dir = (dirs[i] ?? 'asc').toLowerCase();
    if (dir !== 'asc' && dir !== 'desc') throw badRequest(`${dir} is an invalid value for sort_dir, valid values are 'asc' and 'desc'`, { type: 'HTTPBadRequest' });
    return { column: col.column, dir: dir as 'asc' | 'desc' };
  });
  if (out.length > 0) return out;
  return (fallback ?? [{ key: 'id', dir: 'asc' }]).map((f) => ({ column: columns[f.key]?.column ?? f.key, dir: f.dir }));
}

/** (k1 > m1) or (k1 = m1 and k2 > m2) …, each comparison in its key's direction. */
function afterMarker(eb: AnyEb, table: string, keys: { column: string; dir: 'asc' | 'desc' }[], marker: Record<string, unknown>): Expression<SqlBool> {
  const ors: Expression<SqlBool>[] = [];
  for (let i = 0; i < keys.length; i++) {
    const ands: Expression<SqlBool>[] = [];
    for (let j = 0; j < i; j++) ands.push(eb(`${table}.${keys[j].column}`, '=', marker[keys[j].column] as never));
    ands.push(eb(`${table}.${keys[i].column}`, keys[i].dir === 'asc' ? '>' : '<', marker[keys[i].column] as never));
    ors.push(eb.and(ands));
  }
  return eb.or(ors);
}

function applyTagFilters<Q extends { where: (...args: any[]) => any }>(q: Q, table: string, query: Record<string, unknown>): Q {
  const tagSets = (key: string) => raw(query, key).flatMap((v) => v.split(',')).filter((t) => t !== '');
  const hasTag = (eb: AnyEb, tag: string) =>
    eb.exists(eb.selectFrom('tags').select(sql.lit(1).as('one')).whereRef('tags.resource_id', '=', `${table}.id` as never).where('tags.tag', '=', tag));
  const all = tagSets('tags');
  const any = tagSets('tags-any');
  const notAll = tagSets('not-tags');
  const notAny = tagSets('not-tags-any');
  let out = q;
  if (all.length > 0) out = out.where((eb: AnyEb) => eb.and(all.map((t) => hasTag(eb, t))));
  if (any.length > 0) out = out.where((eb: AnyEb) => eb.or(any.map((t) => hasTag(eb, t))));
  if (notAll.length > 0) out = out.where((eb: AnyEb) => eb.not(eb.and(notAll.map((t) => hasTag(eb, t)))));
  if (notAny.length > 0) out = out.where((eb: AnyEb) => eb.not(eb.or(notAny.map((t) => hasTag(eb, t)))));
  return out;
}

/** `fields=` as upstream applies it: only the asked attributes, in the view's order. */
export function selectFields<T extends Record<string, unknown>>(view: T, fields: string[]): Record<string, unknown> {
  if (fields.length === 0) return view;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(view)) if (fields.includes(k)) out[k] = view[k];
  return out;
}

/** Neutron's timestamps: seconds, UTC, `Z`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** upstream's revision_number precondition: If-Match: revision_number=N, 412 when it differs. */
export function checkIfMatch(req: FastifyRequest, revision: number): void {
  const h = req.headers['if-match'];
  if (h === undefined) return;
  for (const part of String(h).split(',')) {
    const m = /^\s*revision_number=(\d+)\s*$/.exec(part);
    if (!m) continue;
    if (Number(m[1]) !== revision) {
      throw new ApiError('precondition_failed', `Current revision ${revision} does not match requested revision ${m[1]}.`, { type: 'RevisionNumberConstraintFailed' });
    }
  }
}
