import type { FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { authOf, microversionAtLeast as mv, tokenOf } from '@onestack/core/http/request-context.ts';
import type { Enforcer } from '@onestack/core/policy/index.ts';
import { allowed, enforce, isAdmin } from '@onestack/core/policy/request-policy.ts';
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

// The route modules take these from here, as from every other helper of this file.
export { allowed, authOf, enforce, isAdmin, mv };

export function callerOf(deps: ApiDeps, req: FastifyRequest): Caller {
  const auth = authOf(req);
  return { projectId: auth.projectId ?? '', userId: auth.userId, isAdmin: isAdmin(deps, req), token: tokenOf(req) ?? '', requestId: req.id };
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
