import { hostname } from 'node:os';
import { HttpTokenValidator, type ServiceCredentials } from '@onestack/core/auth/index.ts';
import { registerOpsRoutes } from '@onestack/core/http/index.ts';
import type { ServiceDefinition, ServiceRuntime } from '@onestack/core/service.ts';
import { createGlanceApp } from './app.ts';
import { glanceConfig, glanceOptions, type GlanceValues } from './conf.ts';
import { migrations } from './db/migrations/index.ts';
import { KeystoneSession } from './domain/keystone-session.ts';

export { glanceOptions };

export const VERSION = '0.1.0';

/** Glance as `onestack up` and `onestack serve glance` run it. */
export const glanceService: ServiceDefinition = {
  name: 'glance',
  type: 'image',
  defaultPort: 9292,
  configGroups: [glanceOptions],
  migrations,
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = glanceConfig(rt.config.glance as GlanceValues, { stateDir: common.state_dir, publicUrl: rt.publicUrl, hostname: hostname() });
    const identity = serviceIdentity(rt);
    const keystone = config.useKeystoneLimits ? new KeystoneSession(identity.authUrl, identity.credentials) : undefined;
    const ga = await createGlanceApp(
      { database: rt.db, config, clock: rt.clock, ids: rt.ids, logger: rt.logger, notifications: rt.bus, tokens: rt.tokens, authUri: identity.authUrl.replace(/\/v3$/, ''), keystone },
      { tls: rt.tls, onResponse: (req, reply, s) => rt.metrics.observeHttpRequest(req.method, req.routeOptions.url ?? 'unknown', reply.statusCode, s) },
    );
    registerOpsRoutes(ga.app, { service: 'glance', version: VERSION, metrics: rt.metrics });
    return { app: ga.app, close: () => ga.app.close() };
  },
};

/**
 * Where Glance's service user authenticates and as whom ([glance] auth_url and
 * service_*). Without auth_url, the all-in-one's Keystone: its port from
 * the [keystone] section every onestack process loads.
 */
export function serviceIdentity(rt: Pick<ServiceRuntime, 'config'>): { authUrl: string; credentials: ServiceCredentials } {
  const v = rt.config.glance as Record<string, string>;
  const common = rt.config.DEFAULT as { public_host: string; tls_cert_file: string };
  const keystonePort = (rt.config.keystone as { port?: number } | undefined)?.port ?? 5000;
  const authUrl = v.auth_url || `${common.tls_cert_file ? 'https' : 'http'}://${common.public_host}:${keystonePort}/v3`;
  return {
    authUrl,
    credentials: {
      username: v.service_username,
      password: v.service_password,
      userDomainName: v.service_user_domain_name,
      projectName: v.service_project_name,
      projectDomainName: v.service_project_domain_name,
    },
  };
}

/** The token validator `onestack serve glance` uses: Keystone over HTTP, as keystonemiddleware. */
export function httpTokenValidator(rt: Pick<ServiceRuntime, 'config' | 'logger'>): HttpTokenValidator {
  const { authUrl, credentials } = serviceIdentity(rt);
  return new HttpTokenValidator({ authUrl, serviceCredentials: credentials, logger: rt.logger });
}
