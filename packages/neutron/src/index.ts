import { hostname } from 'node:os';
import { serviceIdentity } from '@onestack/core/config/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { createNeutronApp } from './app.ts';
import { neutronConfig, neutronOptions, type NeutronValues } from './conf.ts';
import { migrations } from './db/migrations/index.ts';
import { routerStates } from './domain/router-states.ts';
import { NeutronServerRpc } from './rpc/server-rpc.ts';
import { rpcTopics } from './rpc/topics.ts';

export { neutronOptions };

export const VERSION = '0.1.0';

/** Neutron as `onestack up` and `onestack serve neutron` run it. */
export const neutronService: ServiceDefinition = {
  name: 'neutron',
  type: 'network',
  defaultPort: 9696,
  configGroups: [neutronOptions],
  migrations,
  serviceUser: { roles: ['service'] },
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = neutronConfig(rt.config.neutron as NeutronValues, { stateDir: common.state_dir, publicUrl: rt.publicUrl, hostname: hostname() });
    const identity = serviceIdentity(rt.config.neutron, rt.identityUrl);
    const na = await createNeutronApp(
      { database: rt.db, config, clock: rt.clock, ids: rt.ids, logger: rt.logger, notifications: rt.bus, tokens: rt.tokens, authUri: identity.authUrl.replace(/\/v3$/, '') },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    // The agents' side of the bus; DHCP and routers run on [neutron] network_host.
    const rpc = new NeutronServerRpc({
      db: rt.db.db,
      bus: rt.bus,
      clock: rt.clock,
      ids: rt.ids,
      logger: rt.logger,
      hooks: na.deps.hooks,
      notifier: na.deps.notifier,
      topics: rpcTopics(),
      networkHost: config.networkHost,
      routerStates,
    });
    await rpc.start();
    return {
      app: na.app,
      async close() {
        await rpc.stop();
        await na.app.close();
      },
    };
  },
};
