import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { Enforcer } from '@onestack/core/policy/index.ts';
import type { ApiDeps, NeutronModule } from './api/context.ts';
import { MODULES } from './api/modules.ts';
import type { NeutronConfig } from './conf.ts';
import type { NeutronDB } from './db/schema.ts';
import { defaultHooks } from './domain/hooks.ts';
import { Notifier, type NotificationSink } from './domain/notifier.ts';
import { QuotaRegistry } from './domain/quotas.ts';
import { TagRegistry } from './domain/tags.ts';
import { neutronPolicies } from './policies/index.ts';

export interface NeutronDeps {
  database: Database<NeutronDB>;
  config: NeutronConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  notifications?: NotificationSink;
  /** Validates X-Auth-Token (Keystone's in-process validator, or HttpTokenValidator). */
  tokens?: TokenValidator;
  /** Keystone's public URL, advertised in WWW-Authenticate. */
  authUri?: string;
  /** Defaults to api/modules.ts MODULES; tests may pass their own. */
  modules?: readonly NeutronModule[];
}

export interface NeutronApp {
  app: FastifyInstance;
  deps: ApiDeps;
}

/** Builds the Networking API on a migrated database: policy, domain services and every module's routes. */
export async function createNeutronApp(deps: NeutronDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): Promise<NeutronApp> {
  const { config } = deps;
  const enforcer = new Enforcer({
    defaults: neutronPolicies,
    overrideFile: config.policyFile,
    enforceScope: config.enforceScope,
    enforceNewDefaults: true,
    clock: deps.clock,
    logger: { warn: (msg) => deps.logger.warn(msg) },
  });
  const apiDeps: ApiDeps = {
    database: deps.database,
    config,
    enforcer,
    policyNames: new Set(neutronPolicies.map((r) => r.name)),
    clock: deps.clock,
    ids: deps.ids,
    logger: deps.logger,
    notifier: new Notifier(deps.notifications, config.host, deps.logger),
    hooks: defaultHooks(),
    quotas: new QuotaRegistry(config.quotas, config.defaultQuota, deps.database.dialect),
    tags: new TagRegistry(),
  };
  const app = createHttpServer({ service: 'neutron', faultFormat: 'neutron', logger: deps.logger, tokens: deps.tokens, authUri: deps.authUri, ...http });
  for (const m of deps.modules ?? MODULES) m.register(app, apiDeps);
  return { app, deps: apiDeps };
}
