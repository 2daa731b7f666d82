import type { FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { authOf, microversionAtLeast as mv, tokenOf } from '@onestack/core/http/request-context.ts';
import type { Enforcer } from '@onestack/core/policy/index.ts';
import { allowed, enforce, isAdmin } from '@onestack/core/policy/request-policy.ts';
import type { CinderConfig } from '../conf.ts';
import type { ManageExisting } from '../domain/manage.ts';
import type { GroupTypes } from '../domain/group-types.ts';
import type { GroupService } from '../domain/groups.ts';
import type { VolumeMigrations } from '../domain/migration.ts';
import type { Quotas } from '../domain/quotas.ts';
import type { Scheduler } from '../domain/scheduler.ts';
import type { Services } from '../domain/services.ts';
import type { VolumeTypes } from '../domain/volume-types.ts';
import type { Caller, VolumeService } from '../domain/volumes.ts';

export interface ApiDeps {
  config: CinderConfig;
  enforcer: Enforcer;
  volumes: VolumeService;
  migrations: VolumeMigrations;
  types: VolumeTypes;
  quotas: Quotas;
  scheduler: Scheduler;
  services: Services;
  manage: ManageExisting;
  groupTypes: GroupTypes;
  groups: GroupService;
}

// The route modules take these from here, as from every other helper of this file.
export { allowed, authOf, enforce, mv };

export function callerOf(deps: ApiDeps, req: FastifyRequest): Caller {
  const auth = authOf(req);
  return { projectId: auth.projectId ?? '', userId: auth.userId, isAdmin: isAdmin(deps, req), token: tokenOf(req), ctx: req.ctx };
}

/** The project in the URL must be the token's (admins may name any). */
export function projectOf(deps: ApiDeps, req: FastifyRequest): string {
  const id = (req.params as { project_id: string }).project_id;
  const caller = callerOf(deps, req);
  if (id !== caller.projectId && !caller.isAdmin) throw badRequest('Malformed request url');
  return id;
}

export function bodyObject(body: unknown, key: string): Record<string, unknown> {
  const b = body as Record<string, unknown> | undefined;
  const v = b?.[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest(`Missing required element '${key}' in request body.`);
  return v as Record<string, unknown>;
}

export const ISO = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString().replace('Z', '000'));

export function boolParam(v: unknown, name: string): boolean {
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['true', '1', 'yes', 'on', 't', 'y'].includes(s)) return true;
  if (['false', '0', 'no', 'off', 'f', 'n'].includes(s)) return false;
  throw badRequest(`Invalid input received: ${name} must be a boolean, got ${JSON.stringify(v)}.`);
}

export function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest(`Invalid input received: ${what} must be a dictionary.`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw badRequest(`Invalid input for field/attribute ${k}. Value: ${JSON.stringify(val)}. ${JSON.stringify(val)} is not of type 'string'`);
    if (k.length === 0 || k.length > 255) throw badRequest(`Invalid input received: Metadata property key ${k} greater than 255 characters or empty.`);
    out[k] = val;
  }
  return out;
}
