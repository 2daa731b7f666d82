import type { FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { AuthContext } from '@onestack/core/context.ts';
import { forbidden, unauthorized } from '@onestack/core/errors.ts';
import { isAtLeast } from '@onestack/core/http/microversion.ts';
import { credentialsFromAuth, type Enforcer, type Target } from '@onestack/core/policy/index.ts';
import type { NovaConfig } from '../conf.ts';
import type { ConsoleDeps } from './console-routes.ts';
import type { InstanceActions } from '../domain/actions.ts';
import type { Aggregates } from '../domain/aggregates.ts';
import type { Flavors } from '../domain/flavors.ts';
import type { Instance, InstanceRepo } from '../domain/instances.ts';
import type { KeyPairs } from '../domain/keypairs.ts';
import type { Migrations } from '../domain/migrations.ts';
import type { ServerMoves } from '../domain/server-moves.ts';
import type { Quotas } from '../domain/quotas.ts';
import type { Caller, ComputeApi } from '../domain/servers.ts';
import type { Services } from '../domain/services.ts';
import type { NeutronClient } from '../domain/service-clients.ts';
import { instanceNotFound } from '../domain/errors.ts';
import { noExtra } from './validate.ts';

export interface ApiDeps {
  bus: Bus;
  config: NovaConfig;
  enforcer: Enforcer;
  flavors: Flavors;
  keypairs: KeyPairs;
  instances: InstanceRepo;
  actions: InstanceActions;
  quotas: Quotas;
  services: Services;
  aggregates: Aggregates;
  neutron: NeutronClient;
  compute: ComputeApi;
  migrations: Migrations;
  moves: ServerMoves;
  consoles: ConsoleDeps;
}

export function authOf(req: FastifyRequest): AuthContext {
  if (!req.ctx.auth) throw unauthorized();
  return req.ctx.auth;
}

export function allowed(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target = {}): boolean {
  const auth = authOf(req);
  return deps.enforcer.enforce(rule, { project_id: auth.projectId ?? null, user_id: auth.userId, ...target }, credentialsFromAuth(auth));
}

/** upstream's PolicyNotAuthorized as the API renders it (403). */
export function enforce(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target = {}): void {
  if (!allowed(deps, req, rule, target)) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
}

export function isAdmin(deps: ApiDeps, req: FastifyRequest): boolean {
  return allowed(deps, req, 'context_is_admin');
}

export function callerOf(deps: ApiDeps, req: FastifyRequest): Caller {
  const auth = authOf(req);
  const token = req.headers['x-auth-token'];
  return { projectId: auth.projectId ?? '', userId: auth.userId, isAdmin: isAdmin(deps, req), token: Array.isArray(token) ? token[0] : (token ?? ''), requestId: req.id };
}

export function mv(req: FastifyRequest, atLeast: string): boolean {
  return isAtLeast(req.ctx.microversion, atLeast);
}

/**
 * 2.75: query parameters the API's schema does not name are refused (additionalProperties
 * false); before, they are ignored. Checked first, as upstream's query_schema decorator is.
 */
export function strictQuery(req: FastifyRequest, known: string[]): void {
  if (mv(req, '2.75')) noExtra(req.query as Record<string, unknown>, known);
}

/**
 * The server a request names, when the caller may see it: another project's
 * server is a 404 (as upstream, which looks it up in the caller's context),
 * then the rule is checked against the server's owner.
 */
export async function serverFor(deps: ApiDeps, req: FastifyRequest, rule: string | undefined, id = (req.params as { server_id: string }).server_id): Promise<Instance> {
  const inst = await deps.instances.find(id);
  if (!inst) throw instanceNotFound(id);
  const auth = authOf(req);
  if (inst.projectId !== auth.projectId && !isAdmin(deps, req)) throw instanceNotFound(id);
  if (rule) enforce(deps, req, rule, { project_id: inst.projectId, user_id: inst.userId });
  return inst;
}

export const ISO = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));
/** OS-SRV-USG times are naive ISO with microseconds, as upstream prints them. */
export const USG = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString().replace('Z', '000'));
