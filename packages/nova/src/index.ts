import { hostname } from 'node:os';
import { join } from 'node:path';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { serviceIdentity } from '@onestack/core/config/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { createNovaApp, createNovaCore } from './app.ts';
import { ComputeManager, computeSettings } from './compute/manager.ts';
import { novaConfig, novaOptions, type NovaConfig, type NovaValues } from './conf.ts';
import { consoleConfig, consoleOptions, type ConsoleValues } from './console/conf.ts';
import { ConsoleProxy } from './console/proxy.ts';
import { migrations } from './db/migrations/index.ts';
import { createMetadataApp } from './metadata/app.ts';
import { FakeDriver } from './virt/fake-driver.ts';
import { ImageCache } from './virt/image-cache.ts';
import { QemuDriver } from './virt/qemu-driver.ts';
import type { ComputeDriver } from './virt/driver.ts';

export { consoleOptions, novaOptions };

export const VERSION = '0.1.0';

function sessionOf(values: Record<string, unknown>, identityUrl: string): KeystoneSession {
  const identity = serviceIdentity(values, identityUrl);
  return new KeystoneSession(identity.authUrl, identity.credentials);
}

/** Nova's API with its conductor and scheduler, as `onestack up` and `onestack serve nova` run it. */
export const novaService: ServiceDefinition = {
  name: 'nova',
  type: 'compute',
  defaultPort: 8774,
  catalogPath: '/v2.1',
  configGroups: [novaOptions, consoleOptions],
  migrations,
  // admin: Neutron's port binding (binding:host_id) is an admin-only attribute.
  serviceUser: { roles: ['admin', 'service'] },
  async start(rt) {
    const common = rt.config.DEFAULT as { state_dir: string };
    const config = novaConfig(rt.config.nova as NovaValues, { stateDir: common.state_dir, hostname: hostname() });
    // One configuration for the all-in-one: QEMU's taps go where this host's Neutron agent wires them.
    const agent = rt.config.neutron_agent as { host_namespace?: string } | undefined;
    if (!config.computeNetns && agent?.host_namespace) config.computeNetns = agent.host_namespace;
    const identity = serviceIdentity(rt.config.nova, rt.identityUrl);
    const session = sessionOf(rt.config.nova, rt.identityUrl);
    const bindHost = (rt.config.DEFAULT as { bind_host?: string }).bind_host ?? '127.0.0.1';
    const consoles = consoleConfig(rt.config.nova_console as ConsoleValues, bindHost);
    const na = await createNovaApp(
      { database: rt.db, config, clock: rt.clock, ids: rt.ids, logger: rt.logger, bus: rt.bus, tokens: rt.tokens, authUri: identity.authUrl.replace(/\/v3$/, ''), session, consoles },
      { tls: rt.tls, ops: { version: VERSION, metrics: rt.metrics } },
    );
    // The metadata API in plain HTTP: only Neutron's metadata proxy on this host calls it.
    const metadata = config.metadataPort ? createMetadataApp({ instances: na.core.instances, blockDevices: na.core.blockDevices, sharedSecret: config.metadataSharedSecret, logger: rt.logger }) : undefined;
    // nova-novncproxy and nova-serialproxy: they validate tokens in Nova's database, so they run beside the API.
    const proxies = [
      ...(consoles.novncPort ? [{ proxy: new ConsoleProxy(na.core.consoleTokens, 'novnc', rt.logger), port: consoles.novncPort }] : []),
      ...(consoles.serialPort ? [{ proxy: new ConsoleProxy(na.core.consoleTokens, 'serial', rt.logger), port: consoles.serialPort }] : []),
    ];
    const closeListeners = async () => {
      for (const p of proxies) await p.proxy.close().catch(() => undefined);
      await metadata?.close();
    };
    try {
      await metadata?.listen({ host: bindHost, port: config.metadataPort });
      for (const p of proxies) await p.proxy.listen({ host: bindHost, port: p.port });
    } catch (err) {
      await closeListeners();
      await na.close();
      throw err;
    }
    // Placement, Neutron and Glance answer only once the process has started every service: the compute host
    // registers after, retrying until they do (a slow machine must not lose the race a fixed delay would).
    let closed = false;
    const compute = config.runCompute ? startComputeWhenReady({ core: na.core, config, session, rt }, () => closed) : Promise.resolve(undefined);
    return {
      app: na.app,
      close: async () => {
        closed = true;
        await (await compute)?.stop();
        await closeListeners();
        await na.close();
      },
    };
  },
};

export function createDriver(config: NovaConfig, logger: import('pino').Logger): { driver: ComputeDriver; imageCache?: ImageCache } {
  if (config.computeDriver === 'fake') return { driver: new FakeDriver({ hostname: config.host }) };
  const imageCache = new ImageCache({ dir: join(config.stateDir, 'nova', 'image-cache'), logger });
  // VNC on a unix socket: a TCP port inside the compute namespace is out of the console proxy's reach.
  return { driver: new QemuDriver({ instancesDir: config.instancesPath, imageCache, logger, hostname: config.host, netns: config.computeNetns, vnc: 'unix' }), imageCache };
}

/** startCompute, again after a growing pause while the services it needs do not answer yet; undefined once closed. */
export async function startComputeWhenReady(o: Parameters<typeof startCompute>[0], isClosed: () => boolean): Promise<ComputeManager | undefined> {
  for (let attempt = 0; !isClosed(); attempt++) {
    try {
      const manager = await startCompute(o);
      if (!isClosed()) return manager;
      await manager.stop();
      return undefined;
    } catch (err) {
      const level = attempt < 5 ? 'debug' : 'warn';
      o.rt.logger[level]({ err, attempt }, 'nova-compute cannot start yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5000)));
    }
  }
  return undefined;
}

/** nova-compute for this host, on Nova's database (upstream's computes reach it through the conductor instead). */
export async function startCompute(o: { core: ReturnType<typeof createNovaCore>; config: NovaConfig; session: KeystoneSession; rt: Parameters<ServiceDefinition['start']>[0] }): Promise<ComputeManager> {
  const { config, rt } = o;
  const { driver, imageCache } = createDriver(config, rt.logger);
  const manager = new ComputeManager({ ...o.core, host: config.host, driver, imageCache, session: o.session, bus: rt.bus, clock: rt.clock, logger: rt.logger, ...computeSettings(config) });
  try {
    await manager.start();
  } catch (err) {
    // A half-started manager holds bus subscriptions and timers: release them before a retry makes another.
    await manager.stop().catch(() => undefined);
    throw err;
  }
  return manager;
}
