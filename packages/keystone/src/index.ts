import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { systemClock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import type { ServiceDefinition, ServiceRuntime } from '@onestack/core/service.ts';
import { Keystone } from './domain/keystone.ts';
import { setup as setupKeys } from './tokens/fernet-keys.ts';
import { createKeystoneApp } from './app.ts';
import { keystoneConfig, keystoneOptions } from './conf.ts';
import { migrations } from './db/migrations/index.ts';

export { bootstrap, ensureEndpoints } from './domain/bootstrap.ts';
export type { Keystone };
export { rotate as rotateFernetKeys, setup as setupFernetKeys } from './tokens/fernet-keys.ts';
export { keystoneOptions };

export const VERSION = '0.1.0';

/** Keystone as `onestack up` and `onestack serve keystone` run it. */
export const keystoneService: ServiceDefinition = {
  name: 'keystone',
  type: 'identity',
  defaultPort: 5000,
  configGroups: [keystoneOptions],
  migrations,
  async start(rt) {
    const ka = await createKeystoneApp(
      { db: rt.db.db, config: configOf(rt), clock: rt.clock, ids: rt.ids, logger: rt.logger, notifications: rt.bus },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    return { app: ka.app, tokens: ka.tokens, close: () => ka.app.close() };
  },
};

function configOf(rt: Pick<ServiceRuntime, 'config' | 'publicUrl'>) {
  const common = rt.config.DEFAULT as { state_dir: string };
  return keystoneConfig(rt.config.keystone as never, { stateDir: common.state_dir, publicUrl: rt.publicUrl, hostname: hostname() });
}

/**
 * The identity domain layer without its API, on a migrated database: what
 * `keystone-manage` works on (bootstrap, key rotation) before or beside the service.
 */
export async function openKeystoneDomain(rt: Pick<ServiceRuntime, 'config' | 'publicUrl' | 'db' | 'logger'>): Promise<Keystone> {
  const config = configOf(rt);
  if (!existsSync(config.keyRepository)) setupKeys(config.keyRepository);
  const ks = new Keystone({ db: rt.db.db, config, clock: systemClock, ids: randomIds, logger: rt.logger });
  await ks.start();
  return ks;
}
