import { hostname } from 'node:os';
import { KeystoneSession } from '@onestack/core/auth/index.ts';
import { serviceIdentity } from '@onestack/core/config/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { createGlanceApp } from './app.ts';
import { glanceConfig, glanceOptions, type GlanceValues } from './conf.ts';
import { migrations } from './db/migrations/index.ts';

export { glanceOptions };

export const VERSION = '0.1.0';

/** Glance as `onestack up` and `onestack serve glance` run it. */
export const glanceService: ServiceDefinition = {
  name: 'glance',
  type: 'image',
  defaultPort: 9292,
  configGroups: [glanceOptions],
  migrations,
  // member: an operator of the service project's Swift account, where the swift store keeps images.
  serviceUser: { roles: ['service', 'member'] },
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = glanceConfig(rt.config.glance as GlanceValues, { stateDir: common.state_dir, publicUrl: rt.publicUrl, hostname: hostname() });
    const identity = serviceIdentity(rt.config.glance, rt.identityUrl);
    const needsSession = config.useKeystoneLimits || config.stores.some((s) => s.type === 'swift');
    const keystone = needsSession ? new KeystoneSession(identity.authUrl, identity.credentials) : undefined;
    const ga = await createGlanceApp(
      { database: rt.db, config, clock: rt.clock, ids: rt.ids, logger: rt.logger, notifications: rt.bus, tokens: rt.tokens, authUri: identity.authUrl.replace(/\/v3$/, ''), keystone },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    return { app: ga.app, close: () => ga.app.close() };
  },
};
