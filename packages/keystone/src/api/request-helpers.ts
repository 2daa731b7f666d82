import type { FastifyRequest } from 'fastify';
import { validationError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import { DEFAULT_DOMAIN_ID } from '../db/schema.ts';
import { authOf } from './context.ts';

/** Request-shape helpers shared by the identity route modules: schemas, extras, domain defaults. */
export const BOOLEAN = { type: 'boolean' };
export const NULLABLE_STRING = { type: ['string', 'null'] };
export const ID_STRING = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' };

/** Attributes that are not columns: upstream keeps them as the entity's extras (undefined: none sent). */
export function extraOf(body: object, columns: readonly string[]): Record<string, unknown> | undefined {
  const extra = Object.entries(body).filter(([k]) => !columns.includes(k));
  return extra.length ? Object.fromEntries(extra) : undefined;
}

/** Upstream's _normalize_dict on create: `os-foo:bar` style keys become `os_foo_bar`. */
export function normalized(body: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).map(([k, v]) => [k.replace(/[:-]/g, '_'), v]));
}

export function requireMatchingId(body: { id?: unknown }, id: string): void {
  if (body.id !== undefined && body.id !== null && body.id !== id) throw validationError('Cannot change ID');
}

/**
 * `{"<member>": {...}}`; the entity itself keeps unknown attributes (upstream
 * stores them as extras). Most envelopes refuse anything beside the member;
 * upstream's service and region schemas let it through.
 */
export function wrapped(member: string, properties: object, constraints: object, opts: { required?: boolean; closedEnvelope?: boolean } = {}) {
  return {
    type: 'object',
    properties: { [member]: { type: 'object', properties, additionalProperties: true, ...constraints } },
    ...(opts.required ?? true ? { required: [member] } : {}),
    ...(opts.closedEnvelope ?? true ? { additionalProperties: false } : {}),
  };
}

/** The first value of a query parameter given once or repeated. */
export function queryString(v: unknown): string | undefined {
  if (Array.isArray(v)) return v.length ? String(v[0]) : undefined;
  return v === undefined ? undefined : String(v);
}

/** Resource options as upstream's registries: known names only, each nullable (null removes it). */
export function optionsSchema(options: Record<string, object>) {
  return {
    type: 'object',
    properties: Object.fromEntries(Object.entries(options).map(([k, s]) => [k, { anyOf: [s, { type: 'null' }] }])),
    additionalProperties: false,
  };
}

/**
 * A list call on a domain-scoped token is authorized against that domain,
 * as upstream builds the target (`domain_id`, `group.domain_id` …).
 */
export function listTarget(req: FastifyRequest, shape: (domainId: string) => Target): Target {
  const domainId = authOf(req).domainId;
  return domainId ? { target: shape(domainId) } : {};
}

/** A domain-scoped caller sees only its domain's entities, whatever the filters. */
export function inCallerDomain<T>(req: FastifyRequest, items: T[], domainOf: (item: T) => string | null): T[] {
  const domainId = authOf(req).domainId;
  return domainId ? items.filter((i) => domainOf(i) === domainId) : items;
}

/** Upstream's _normalize_domain_id: an entity created without a domain lands in the token's domain, else the default one. */
export function callerDomain(req: FastifyRequest): string {
  return authOf(req).domainId ?? DEFAULT_DOMAIN_ID;
}
