import type { FastifyRequest } from 'fastify';
import type { AuthContext } from '../context.ts';
import { unauthorized } from '../errors.ts';
import { isAtLeast } from './microversion.ts';

/** The request's validated token: a route that needs one answers 401 without it. */
export function authOf(req: FastifyRequest): AuthContext {
  const auth = req.ctx.auth;
  if (!auth) throw unauthorized();
  return auth;
}

/** The caller's token as it came (X-Auth-Token), for calls made on its behalf. */
export function tokenOf(req: FastifyRequest): string | undefined {
  const token = req.headers['x-auth-token'];
  return Array.isArray(token) ? token[0] : token;
}

/** The request's negotiated microversion is at least `v` ("2.53"). */
export function microversionAtLeast(req: FastifyRequest, v: string): boolean {
  return isAtLeast(req.ctx.microversion, v);
}
