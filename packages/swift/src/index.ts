import type { ServiceDefinition } from '@onestack/core/service.ts';
import { loadOrCreateHashPathConf, swiftDir } from './common/hash-path.ts';
import { swiftOptions, proxyConfig, type SwiftValues } from './conf.ts';
import { createProxyApp } from './proxy/app.ts';
import { loadProxyRings } from './proxy/ring-adapter.ts';

export { swiftOptions };

export const VERSION = '0.1.0';

/**
 * The Swift proxy as `onestack up` and `onestack serve swift` run it: the
 * Object Storage API over the rings in swift_dir. Its catalog endpoint carries
 * the account, as upstream's: …/v1/AUTH_%(project_id)s.
 */
export const swiftService: ServiceDefinition = {
  name: 'swift',
  type: 'object-store',
  defaultPort: 8080,
  configGroups: [swiftOptions],
  migrations: [],
  serviceUser: { roles: ['service'] },
  // upstream's endpoint template: each project's account.
  catalogPath: '/v1/AUTH_%(project_id)s',
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const values = rt.config.swift as SwiftValues;
    const dir = String(values.swift_dir || swiftDir(common.state_dir));
    const hash = loadOrCreateHashPathConf(common.state_dir);
    const rings = loadProxyRings(dir, hash);
    const config = proxyConfig(values, { authUri: rt.identityUrl.replace(/\/v3$/, '') });
    const proxy = await createProxyApp({ rings, config, logger: rt.logger, tokens: rt.tokens, metrics: rt.metrics, version: VERSION, tls: rt.tls });
    return { app: proxy.app, close: () => proxy.app.close() };
  },
};

