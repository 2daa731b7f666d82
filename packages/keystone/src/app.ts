import type { FastifyInstance } from 'fastify';
import { Enforcer } from '@onestack/core/policy/index.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { ApiDeps } from './api/context.ts';
import { registerAppCredRoutes } from './api/app-cred-routes.ts';
import { registerAssignmentRoutes } from './api/assignment-routes.ts';
import { registerAuthRoutes } from './api/auth-routes.ts';
import { registerDomainRoutes } from './api/domain-routes.ts';
import { registerGroupRoutes } from './api/group-routes.ts';
import { registerProjectRoutes } from './api/project-routes.ts';
import { registerUserRoutes } from './api/user-routes.ts';
import { registerCredentialRoutes } from './api/credential-routes.ts';
import { registerCatalogRoutes } from './api/catalog-routes.ts';
import { registerLimitRoutes } from './api/limit-routes.ts';
import { registerRoleRoutes } from './api/role-routes.ts';
import { registerVersionRoutes } from './api/version-routes.ts';
import { InProcessTokenValidator } from './domain/in-process-validator.ts';
import { Keystone, type KeystoneDeps } from './domain/keystone.ts';
import { keystonePolicies } from './policies/index.ts';
import { setup as setupKeys } from './tokens/fernet-keys.ts';
import { existsSync } from 'node:fs';

export interface KeystoneApp {
  ks: Keystone;
  app: FastifyInstance;
  tokens: InProcessTokenValidator;
  enforcer: Enforcer;
}

/** Every route module, each owning one part of the Identity API. */
const ROUTES: ((app: FastifyInstance, deps: ApiDeps) => void)[] = [registerVersionRoutes, registerAuthRoutes, registerDomainRoutes, registerProjectRoutes, registerUserRoutes, registerGroupRoutes, registerCredentialRoutes, registerAppCredRoutes, registerCatalogRoutes, registerLimitRoutes, registerRoleRoutes, registerAssignmentRoutes];

/** Builds the Identity API on a migrated database: the domain layer, policy and routes. */
export async function createKeystoneApp(deps: KeystoneDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): Promise<KeystoneApp> {
  if (!existsSync(deps.config.keyRepository)) setupKeys(deps.config.keyRepository);
  const ks = new Keystone(deps);
  await ks.start();
  const enforcer = new Enforcer({
    defaults: keystonePolicies,
    overrideFile: deps.config.policyFile,
    enforceScope: deps.config.enforceScope,
    enforceNewDefaults: true,
    clock: deps.clock,
    logger: { warn: (msg) => deps.logger.warn(msg) },
  });
  const tokens = new InProcessTokenValidator(ks);
  const app = createHttpServer({
    service: 'keystone',
    faultFormat: 'keystone',
    logger: deps.logger,
    tokens,
    authUri: deps.config.publicUrl,
    ...http,
  });
  app.addHook('onClose', () => ks.close());
  const apiDeps: ApiDeps = { ks, enforcer };
  for (const register of ROUTES) register(app, apiDeps);
  return { ks, app, tokens, enforcer };
}
