import type { FastifyRequest } from 'fastify';
import type { ValidateFunction } from 'ajv';
import { unauthorized } from '@onestack/core/errors.ts';
import { createValidators, describeValidationError, isAtLeast } from '@onestack/core/http/index.ts';
import type { Enforcer, Target } from '@onestack/core/policy/index.ts';
import type { Allocations } from '../domain/allocations.ts';
import { CODES, badRequest, notFound, placementError } from '../domain/errors.ts';
import { isUuid, normalizeUuid } from '../domain/names.ts';
import type { Providers } from '../domain/providers.ts';

/** What every route module receives. */
export interface ApiDeps {
  providers: Providers;
  allocations: Allocations;
  enforcer: Enforcer;
}

/** oslo.policy through placement's context.can: refused is a 403 in placement's words. */
export function authorize(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target = {}): void {
  const auth = req.ctx.auth;
  if (!auth) throw unauthorized();
  const t = { project_id: auth.projectId, user_id: auth.userId, ...target };
  let ok = false;
  try {
    ok = deps.enforcer.enforce(rule, t, credentials(auth));
  } catch {
    ok = false;
  }
  if (!ok) throw placementError('forbidden', `Policy does not allow ${rule} to be performed.`);
}

function credentials(auth: NonNullable<FastifyRequest['ctx']['auth']>) {
  return {
    user_id: auth.userId,
    user_domain_id: auth.userDomainId,
    project_id: auth.projectId,
    project_domain_id: auth.projectDomainId,
    domain_id: auth.domainId,
    system_scope: auth.system,
    roles: auth.roles,
    is_admin_project: auth.isAdminProject ?? false,
    service_roles: auth.serviceRoles ?? [],
  } as never;
}

/** The negotiated microversion is at least `v`. */
export function atLeast(req: FastifyRequest, v: string): boolean {
  return isAtLeast(req.ctx.microversion, v);
}

/** A route that does not exist below microversion `v` answers as an unknown path. */
export function since(req: FastifyRequest, v: string): void {
  if (!atLeast(req, v)) throw notFound('The resource could not be found.');
}

const ajv = createValidators().body;
// By content: some routes build their schema per request (it depends on the microversion), and compiling one costs milliseconds.
const compiled = new Map<string, ValidateFunction>();

/** Upstream's util.extract_json: a JSON body checked against the schema of this microversion. */
export function body<T>(req: FastifyRequest, schema: object): T {
  const data = req.body;
  if (data === undefined || data === null) throw badRequest('Malformed JSON: Expecting value: line 1 column 1 (char 0)');
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) compiled.set(key, (validate = ajv.compile(schema)));
  if (!validate(data)) throw badRequest(`JSON does not validate: ${describeValidationError('placement', validate.errors ?? [], 'body')}`);
  return data as T;
}

export function requireJson(req: FastifyRequest): void {
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw placementError('unsupported_media_type', `The media type ${type || 'None'} is not supported, use application/json`);
  }
}

export type Query = Record<string, string | string[] | undefined>;

export function query(req: FastifyRequest): Query {
  return (req.query ?? {}) as Query;
}

/** Upstream validates query strings against a schema with additionalProperties false. */
export function allowOnly(q: Query, allowed: (key: string) => boolean): void {
  for (const key of Object.keys(q)) {
    if (!allowed(key)) throw badRequest(`Invalid query string parameters: Additional properties are not allowed ('${key}' was unexpected)`);
  }
}

export function single(q: Query, key: string): string | undefined {
  const v = q[key];
  if (Array.isArray(v)) throw badRequest(`Query parameter '${key}' may be given only once.`, CODES.ILLEGAL_DUPLICATE_QUERYPARAM);
  return v;
}

export function all(q: Query, key: string): string[] {
  const v = q[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function uuidParam(raw: string, what: string): string {
  if (!isUuid(raw)) throw badRequest(`Invalid query string parameters: Expected '${what}' parameter to be a valid UUID. Got: ${raw}`, CODES.QUERYPARAM_BAD_VALUE);
  return normalizeUuid(raw);
}

/** `resources=VCPU:2,MEMORY_MB:1024` (util.normalize_resources_qs_param). */
export function parseResources(value: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of value.split(',')) {
    const m = /^([^:]+):(.*)$/.exec(part.trim());
    if (!m) {
      throw badRequest(`Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: ${value}.`, CODES.QUERYPARAM_BAD_VALUE);
    }
    const [, rc, amountText] = m;
    const amount = Number(amountText);
    if (!/^\d+$/.test(amountText) || amount <= 0) {
      throw badRequest(`Requested resource ${rc} expected positive integer amount. Got: ${amountText}.`, CODES.QUERYPARAM_BAD_VALUE);
    }
    out[rc] = amount;
  }
  return out;
}

/** `required=A,!B` and (1.39) `required=in:A,C`, repeated (all-of across values). */
export function parseTraits(values: string[], req: FastifyRequest, param = 'required'): { required: string[][]; forbidden: string[] } {
  const required: string[][] = [];
  const forbidden: string[] = [];
  for (const value of values) {
    if (value.startsWith('in:')) {
      if (!atLeast(req, '1.39')) throw badTraits(param, value);
      const anyOf = value.slice(3).split(',').map((t) => t.trim());
      if (anyOf.some((t) => !t || t.startsWith('!'))) throw badTraits(param, value);
      required.push(anyOf);
      continue;
    }
    for (const raw of value.split(',')) {
      const t = raw.trim();
      if (!t) throw badTraits(param, value);
      if (t.startsWith('!')) {
        if (!atLeast(req, '1.22') || t.length === 1) throw badTraits(param, value);
        forbidden.push(t.slice(1));
      } else required.push([t]);
    }
  }
  return { required, forbidden };
}

function badTraits(param: string, value: string) {
  return badRequest(`Invalid query string parameters: Expected '${param}' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: ${value}`, CODES.QUERYPARAM_BAD_VALUE);
}

/** `member_of=in:a,b`, `member_of=a`, and (1.32) `member_of=!a` / `!in:a,b`. */
export function parseMemberOf(values: string[], req: FastifyRequest): { memberOf: string[][]; forbidden: string[] } {
  if (values.length > 1 && !atLeast(req, '1.24')) throw badRequest('Multiple member_of parameters are not supported', CODES.ILLEGAL_DUPLICATE_QUERYPARAM);
  const memberOf: string[][] = [];
  const forbidden: string[] = [];
  for (const value of values) {
    let v = value;
    const negated = v.startsWith('!');
    if (negated) {
      if (!atLeast(req, '1.32')) throw badMemberOf(value);
      v = v.slice(1);
    }
    const list = v.startsWith('in:') ? v.slice(3).split(',') : [v];
    if (!v.startsWith('in:') && v.includes(',')) throw badMemberOf(value);
    const uuids = list.map((u) => {
      if (!isUuid(u.trim())) throw badMemberOf(value);
      return normalizeUuid(u.trim());
    });
    if (negated) forbidden.push(...uuids);
    else memberOf.push(uuids);
  }
  return { memberOf, forbidden };
}

function badMemberOf(value: string) {
  return badRequest(`Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: ${value}`, CODES.QUERYPARAM_BAD_VALUE);
}

/** Trait names any of the filters name that do not exist: upstream answers 400. */
export async function checkTraitsExist(deps: ApiDeps, names: string[], param = 'required'): Promise<void> {
  const unknown = await deps.providers.unknownTraits(names);
  if (unknown.length) throw badRequest(`Invalid trait(s) in "${param}" parameter: No such trait(s): ${unknown.join(', ')}.`);
}

export function selfLink(href: string) {
  return { rel: 'self', href };
}
