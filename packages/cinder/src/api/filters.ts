import type { FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import type { Caller, TimeComparison } from '../domain/volumes.ts';
import { mv, stringMap } from './context.ts';

/** upstream's default resource_filters.json: what a non-admin may filter each resource on (3.31+), listed by GET /resource_filters (3.33). */
export const RESOURCE_FILTERS: Record<string, readonly string[]> = {
  volume: ['name', 'status', 'metadata', 'bootable', 'migration_status', 'availability_zone', 'group_id', 'size', 'created_at', 'updated_at', 'consumes_quota'],
  backup: ['name', 'status', 'volume_id'],
  snapshot: ['name', 'status', 'volume_id', 'metadata', 'availability_zone', 'consumes_quota'],
  group: ['name'],
  group_snapshot: ['name', 'status', 'group_id'],
  attachment: ['volume_id', 'status', 'instance_id', 'attach_status'],
  message: ['resource_uuid', 'resource_type', 'event_id', 'request_id', 'message_level'],
  pool: ['name', 'volume_type'],
  volume_type: ['is_public', 'extra_specs'],
};

/** Query parameters that page or sort rather than filter. */
const PAGING = new Set(['limit', 'marker', 'offset', 'sort', 'sort_key', 'sort_dir']);

export interface FilterRules {
  resource: string;
  /** What a non-admin may use before 3.31 (the rest is dropped silently). */
  legacy: readonly string[];
  /** Filters a microversion introduced: dropped below it (before 3.31, as upstream's MV_ADDED_FILTERS). */
  since: Record<string, string>;
}

/**
 * upstream's process_general_filtering. From 3.31 a non-admin naming a filter
 * the resource does not list gets a 400 (all_tenants excepted: cinderclient
 * always sends it); before 3.31 filters newer than the request and, for
 * non-admins, unlisted ones are dropped. Returns the filters that stand.
 */
export function filtersOf(req: FastifyRequest, caller: Caller, q: Record<string, string>, rules: FilterRules): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) if (!PAGING.has(k) && !(k === 'with_count' && mv(req, '3.45'))) out[k] = v;
  if (mv(req, '3.31')) {
    if (Object.keys(out).some((k) => !/^[\x00-\x7f]*$/.test(k))) throw badRequest('Filter keys can only contain ASCII characters.');
    if (caller.isAdmin) return out;
    const allowed = RESOURCE_FILTERS[rules.resource] ?? [];
    const invalid = Object.keys(out).filter((k) => !allowed.includes(k) && k !== 'all_tenants');
    if (invalid.length) throw badRequest(`Invalid filters ${invalid.join(',')} are found in query options.`);
    return out;
  }
  for (const [k, version] of Object.entries(rules.since)) if (!mv(req, version)) delete out[k];
  if (!caller.isAdmin) for (const k of Object.keys(out)) if (!rules.legacy.includes(k)) delete out[k];
  return out;
}

/** A dictionary-valued filter (metadata, glance_metadata) given as a JSON or Python-literal object. */
export function dictFilter(value: string, name: string): Record<string, string> {
  try {
    return stringMap(JSON.parse(value.replace(/'/g, '"')), name);
  } catch {
    throw badRequest(`Invalid input received: ${name} filter must be a dictionary.`);
  }
}

/** 3.34: `key~=value` filters (substring matches) of the given keys; before 3.34 a `~` key matches nothing here. */
export function likeFilters(req: FastifyRequest, given: Record<string, string>, keys: readonly string[]): Record<string, string> {
  const like: Record<string, string> = {};
  if (mv(req, '3.34')) for (const k of keys) if (given[`${k}~`] !== undefined) like[k] = given[`${k}~`];
  return like;
}

/** The sort keys of a list at this microversion: `name` only from the version that added it (snapshots 3.30, backups 3.37). */
export function sortKeysAt(req: FastifyRequest, keys: readonly string[], nameSince: string): ReadonlySet<string> {
  return new Set(mv(req, nameSince) ? [...keys, 'name'] : keys);
}

type TimeOp = TimeComparison['op'];

const TIME_OPS: Record<string, TimeOp> = { gt: '>', gte: '>=', eq: '=', neq: '<>', lt: '<', lte: '<=' };
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * upstream's _handle_time_comparison_filters (3.60): created_at/updated_at as
 * comma-separated `op:ISO-time` units, op one of gt, gte, eq, neq, lt, lte;
 * a time without a zone is UTC.
 */
export function timeComparisons(filters: Record<string, string>): TimeComparison[] {
  const out: TimeComparison[] = [];
  for (const column of ['created_at', 'updated_at'] as const) {
    if (filters[column] === undefined) continue;
    for (const unit of filters[column].split(',')) {
      const parts = unit.split(':');
      const op = TIME_OPS[parts[0]];
      if (!op) throw badRequest(`Invalid ${parts[0]} operator`);
      const time = parts.length > 1 ? parts.slice(1).join(':') : parts[0];
      const m = ISO_TIME.exec(time);
      const at = m ? Date.parse(m[1] || time.length === 10 ? time : `${time}Z`) : NaN;
      if (Number.isNaN(at)) throw badRequest(`Invalid ${time} value`);
      out.push({ column, op, at });
    }
  }
  return out;
}
