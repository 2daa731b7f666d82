import type { FastifyRequest } from 'fastify';
import { forbidden } from '../errors.ts';
import { authOf } from '../http/request-context.ts';
import type { Target } from './checks.ts';
import { credentialsFromAuth, type Enforcer } from './enforcer.ts';

/** What the checks below need of a service's API dependencies. */
export interface PolicyDeps {
  enforcer: Enforcer;
}

/** oslo.context's `can` as Nova and Cinder call it: the target defaults to the caller's own project and user. */
export function allowed(deps: PolicyDeps, req: FastifyRequest, rule: string, target: Target = {}): boolean {
  const auth = authOf(req);
  return deps.enforcer.enforce(rule, { project_id: auth.projectId ?? null, user_id: auth.userId, ...target }, credentialsFromAuth(auth));
}

/** Like allowed(), refusing with oslo.policy's PolicyNotAuthorized as Nova and Cinder render it (403). */
export function enforce(deps: PolicyDeps, req: FastifyRequest, rule: string, target: Target = {}): void {
  if (!allowed(deps, req, rule, target)) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
}

/** upstream's context_is_admin rule for the caller. */
export function isAdmin(deps: PolicyDeps, req: FastifyRequest): boolean {
  return allowed(deps, req, 'context_is_admin');
}
