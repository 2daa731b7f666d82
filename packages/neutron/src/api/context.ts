import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuthContext, RequestContext } from '@onestack/core/context.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { ApiError, notFound } from '@onestack/core/errors.ts';
import { authOf } from '@onestack/core/http/request-context.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { credentialsFromAuth, type Enforcer, type Target } from '@onestack/core/policy/index.ts';
import type { NeutronConfig } from '../conf.ts';
import type { NeutronDB } from '../db/schema.ts';
import type { Hooks } from '../domain/hooks.ts';
import type { Notifier } from '../domain/notifier.ts';
import type { QuotaRegistry } from '../domain/quotas.ts';
import type { TagRegistry } from '../domain/tags.ts';

/** What every route module receives; the domain services hang off it. */
export interface ApiDeps {
  database: Database<NeutronDB>;
  config: NeutronConfig;
  enforcer: Enforcer;
  /** Names of the registered rules, to know whether an attribute has a rule of its own. */
  policyNames: ReadonlySet<string>;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  notifier: Notifier;
  /** Extension points other areas fill (security group validation, port delete guards …). */
  hooks: Hooks;
  quotas: QuotaRegistry;
  tags: TagRegistry;
}

/**
 * One area of the API (core resources, routers and floating IPs, security
 * groups …): its routes, the extensions it implements and the collections it
 * adds to /v2.0/. Adding an area is one line in api/modules.ts.
 */
export interface NeutronModule {
  name: string;
  extensions?: ExtensionDescriptor[];
  /** Collections listed at /v2.0/ (upstream's resource index). */
  resources?: { name: string; collection: string }[];
  register(app: FastifyInstance, deps: ApiDeps): void;
}

export interface ExtensionDescriptor {
  alias: string;
  name: string;
  description: string;
  updated?: string;
}

/** The caller as domain code sees it: admin is upstream's context_is_admin. */
export interface Caller {
  auth: AuthContext;
  projectId: string | undefined;
  isAdmin: boolean;
  ctx: RequestContext;
}

export { authOf };

export function callerOf(deps: Pick<ApiDeps, 'enforcer'>, req: FastifyRequest): Caller {
  const auth = authOf(req);
  return { auth, projectId: auth.projectId, isAdmin: allowed(deps, auth, 'context_is_admin', {}), ctx: req.ctx };
}

export function allowed(deps: Pick<ApiDeps, 'enforcer'>, auth: AuthContext, rule: string, target: Target): boolean {
  return deps.enforcer.enforce(rule, target, credentialsFromAuth(auth));
}

/** upstream's PolicyNotAuthorized (403). */
export function policyRefused(rule: string): ApiError {
  return new ApiError('forbidden', `(rule:${rule}) is disallowed by policy`, { type: 'PolicyNotAuthorized' });
}

/** Neutron's NotFound flavours: `Network <id> could not be found.` with type NetworkNotFound. */
export function resourceNotFound(member: string, id: string): ApiError {
  const label = member
    .split('_')
    .map((w, i) => (i === 0 ? w[0].toUpperCase() + w.slice(1) : w))
    .join(' ');
  const type = member
    .split('_')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
  return notFound(`${label} ${id} could not be found.`, { type: `${type}NotFound` });
}

/**
 * Checks a resource action and its attribute rules the way upstream's
 * policy layer does: the action first (a refusal on a resource the caller may
 * not even see is a 404), then one rule per attribute the request sets.
 */
export function authorizeAction(
  deps: Pick<ApiDeps, 'enforcer' | 'policyNames'>,
  caller: Caller,
  action: string,
  target: Target,
  opts: { attrs?: Record<string, unknown>; member?: string; id?: string; visible?: boolean } = {},
): void {
  if (!allowed(deps, caller.auth, action, target)) {
    if (opts.member && opts.id && opts.visible === false) throw resourceNotFound(opts.member, opts.id);
    throw policyRefused(action);
  }
  for (const [attr, value] of Object.entries(opts.attrs ?? {})) {
    if (value === undefined) continue;
    const name = `${action}:${attr}`;
    if (!deps.policyNames.has(name)) continue;
    if (!allowed(deps, caller.auth, name, target)) throw policyRefused(name);
  }
}

/** Drops the attributes a `get_<member>:<attr>` rule refuses the caller (provider:*, binding:* …). */
export function hideRefused<T extends Record<string, unknown>>(deps: Pick<ApiDeps, 'enforcer' | 'policyNames'>, caller: Caller, member: string, view: T, target: Target): T {
  if (caller.isAdmin) return view;
  for (const key of Object.keys(view)) {
    const name = `get_${member}:${key}`;
    if (deps.policyNames.has(name) && !allowed(deps, caller.auth, name, target)) delete view[key];
  }
  return view;
}
