import { hostname } from 'node:os';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { serviceIdentity } from '@onestack/core/config/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { createCinderApp } from './app.ts';
import { cinderConfig, cinderOptions, type CinderValues } from './conf.ts';
import { migrations } from './db/migrations/index.ts';
import { NovaHttp } from './domain/nova.ts';

export { cinderOptions };

export const VERSION = '0.1.0';

/**
 * Cinder as `onestack serve cinder` runs it. Catalog type `block-storage`:
 * upstream's current official type (service-types-authority), which the
 * openstack CLI and openstacksdk look up with `volumev3` as an alias; bootstrap
 * registers it also as `volumev3` (name cinderv3), as devstack does.
 */
export const cinderService: ServiceDefinition = {
  name: 'cinder',
  type: 'block-storage',
  defaultPort: 8776,
  catalogPath: '/v3/%(project_id)s',
  catalogAliases: [{ type: 'volumev3', name: 'cinderv3' }],
  configGroups: [cinderOptions],
  migrations,
  // admin as upstream's [nova] privileged user: Nova's swap volume looks the server up in the volume owner's project.
  serviceUser: { roles: ['admin', 'service'] },
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = cinderConfig(rt.config.cinder as CinderValues, { stateDir: common.state_dir, hostname: hostname() });
    const identity = serviceIdentity(rt.config.cinder, rt.identityUrl);
    const ca = await createCinderApp(
      {
        database: rt.db,
        config,
        clock: rt.clock,
        ids: rt.ids,
        logger: rt.logger,
        bus: rt.bus,
        tokens: rt.tokens,
        authUri: identity.authUrl.replace(/\/v3$/, ''),
        compute: new NovaHttp({ session: new KeystoneSession(identity.authUrl, identity.credentials), logger: rt.logger }),
      },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    return { app: ca.app, close: () => ca.close() };
  },
};
