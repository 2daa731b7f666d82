import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from './context.ts';

/** Quotas, tags, RBAC policies, agents and subnet pools (filled in below). */
export function registerCoreExtras(_app: FastifyInstance, _deps: ApiDeps, _helpers: Record<string, unknown>): void {}
