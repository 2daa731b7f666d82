import type { FastifyRequest } from 'fastify';
import type { AuthContext } from '@onestack/core/context.ts';
import { authOf } from '@onestack/core/http/request-context.ts';
import type { Enforcer, Target } from '@onestack/core/policy/index.ts';
import type { Keystone } from '../domain/keystone.ts';

/** What every route module receives: the domain layer, the policy enforcer and URL helpers. */
export interface ApiDeps {
  ks: Keystone;
  enforcer: Enforcer;
}

export { authOf };

/** Checks `rule` against `target` for the caller; throws upstream's 403. */
export function authorize(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target = {}): AuthContext {
  const auth = authOf(req);
  deps.enforcer.authorize(rule, target, auth);
  return auth;
}

/** Like authorize, but answers instead of throwing: for filtering lists item by item. */
export function allowed(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target): boolean {
  try {
    deps.enforcer.authorize(rule, target, authOf(req));
    return true;
  } catch {
    return false;
  }
}

/** `{"self": ".../v3/<path>"}` as every Keystone entity carries. */
export function selfLink(deps: ApiDeps, path: string): { self: string } {
  return { self: `${deps.ks.config.publicUrl}/v3/${path}` };
}

/** The collection links object: self (the URL asked for), previous and next (always null: no paging). */
export function collectionLinks(deps: ApiDeps, req: FastifyRequest) {
  return { self: `${deps.ks.config.publicUrl}${req.url}`, previous: null, next: null };
}

/** Keystone's boolean query parameters: `?enabled`, `?enabled=true|1|yes|0|false`. */
export function queryBool(v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  const s = String(v).toLowerCase();
  if (s === '' || s === 'true' || s === '1' || s === 'yes' || s === 'on') return true;
  return false;
}
