import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { ApiError } from '@onestack/core/errors.ts';
import { createHttpServer, isAtLeast, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { Enforcer } from '@onestack/core/policy/index.ts';
import { registerAllocationRoutes } from './api/allocation-routes.ts';
import { registerClassAndTraitRoutes } from './api/class-trait-routes.ts';
import type { ApiDeps } from './api/context.ts';
import { registerProviderRoutes } from './api/provider-routes.ts';
import type { PlacementConfig } from './conf.ts';
import type { PlacementDB } from './db/schema.ts';
import { Allocations } from './domain/allocations.ts';
import { CODES } from './domain/errors.ts';
import { Providers } from './domain/providers.ts';
import { placementPolicies } from './policies/index.ts';

/** The microversions this Placement honours in full (placement/rest_api_version_history.rst). */
export const MIN_VERSION = '1.0';
export const MAX_VERSION = '1.39';

export interface PlacementDeps {
  database: Database<PlacementDB>;
  config: PlacementConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  tokens?: TokenValidator;
  /** Keystone's public URL, advertised in WWW-Authenticate. */
  authUri?: string;
}

export interface PlacementApp {
  app: FastifyInstance;
  providers: Providers;
  allocations: Allocations;
  enforcer: Enforcer;
}

/** Builds the Placement API on a migrated database. */
export function createPlacementApp(deps: PlacementDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): PlacementApp {
  const providers = new Providers(deps.database, deps.clock, deps.ids);
  const allocations = new Allocations(providers, deps.clock);
  const enforcer = new Enforcer({
    defaults: placementPolicies,
    overrideFile: deps.config.policyFile,
    enforceScope: deps.config.enforceScope,
    enforceNewDefaults: true,
    clock: deps.clock,
    logger: { warn: (msg) => deps.logger.warn(msg) },
  });
  const app = createHttpServer({
    service: 'placement',
    faultFormat: 'placement',
    logger: deps.logger,
    tokens: deps.tokens,
    authUri: deps.authUri,
    microversions: { serviceType: 'placement', min: MIN_VERSION, max: MAX_VERSION },
    ...http,
  });
  app.addHook('onSend', async (req, reply, payload) => errorCodeByVersion(req, reply.statusCode, payload));
  const methods = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    for (const m of [route.method].flat()) if (m !== 'HEAD') (methods.get(route.url) ?? methods.set(route.url, new Set()).get(route.url)!).add(m);
  });
  app.get('/', { config: { public: true } }, async () => ({
    versions: [{ id: 'v1.0', max_version: MAX_VERSION, min_version: MIN_VERSION, status: 'CURRENT', links: [{ rel: 'self', href: '' }] }],
  }));
  const apiDeps: ApiDeps = { providers, allocations, enforcer };
  registerProviderRoutes(app, apiDeps);
  registerClassAndTraitRoutes(app, apiDeps);
  registerAllocationRoutes(app, apiDeps);
  rejectOtherMethods(app, methods);
  return { app, providers, allocations, enforcer };
}

/** 1.23 added `code` to error bodies: older requests get none, newer ones always one. */
function errorCodeByVersion(req: FastifyRequest, status: number, payload: unknown): unknown {
  if (status < 400 || typeof payload !== 'string' || !payload.startsWith('{"errors"')) return payload;
  try {
    const body = JSON.parse(payload) as { errors: Record<string, unknown>[] };
    const withCode = req.ctx?.microversion ? isAtLeast(req.ctx.microversion, '1.23') : false;
    for (const e of body.errors) {
      if (withCode) e.code ??= CODES.DEFAULT;
      else delete e.code;
      // A microversion that could not be negotiated: say which ones would be.
      if (status === 406 && !req.ctx?.microversion) Object.assign(e, { max_version: MAX_VERSION, min_version: MIN_VERSION });
    }
    return JSON.stringify(body);
  } catch {
    return payload;
  }
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** A known path asked with a method it does not take: 405 with Allow, as upstream's dispatcher answers. */
function rejectOtherMethods(app: FastifyInstance, methods: Map<string, Set<string>>): void {
  for (const [url, allowed] of [...methods]) {
    if (url === '/healthcheck' || url === '/metrics') continue;
    const others = METHODS.filter((m) => !allowed.has(m));
    if (others.length === 0) continue;
    const allow = [...allowed].sort().join(', ');
    app.route({
      method: others,
      url,
      config: { public: true },
      handler: async () => {
        throw new ApiError('method_not_allowed', `The method specified is not allowed for this resource.`, { headers: { Allow: allow } });
      },
    });
  }
}
