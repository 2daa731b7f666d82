import { serviceIdentity } from '@onestack/core/config/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { createPlacementApp } from './app.ts';
import { placementConfig, placementOptions, type PlacementValues } from './conf.ts';
import { migrations } from './db/migrations/index.ts';

export { placementOptions };
export { PlacementClient } from './client.ts';

export const VERSION = '0.1.0';

/** Placement as `onestack up` and `onestack serve placement` run it: its own service, port and database. */
export const placementService: ServiceDefinition = {
  name: 'placement',
  type: 'placement',
  defaultPort: 8778,
  configGroups: [placementOptions],
  migrations,
  serviceUser: { roles: ['service'] },
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = placementConfig(rt.config.placement as PlacementValues, { stateDir: common.state_dir });
    const identity = serviceIdentity(rt.config.placement, rt.identityUrl);
    const pa = createPlacementApp(
      { database: rt.db, config, clock: rt.clock, ids: rt.ids, logger: rt.logger, tokens: rt.tokens, authUri: identity.authUrl.replace(/\/v3$/, '') },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    return { app: pa.app, close: () => pa.app.close() };
  },
};
