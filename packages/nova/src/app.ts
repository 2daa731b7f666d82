import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { Enforcer } from '@onestack/core/policy/index.ts';
import { PlacementClient } from './placement/client.ts';
import { registerActionRoutes } from './api/action-routes.ts';
import { registerAggregateRoutes, registerAvailabilityZoneRoutes } from './api/az-aggregate-routes.ts';
import type { ApiDeps } from './api/context.ts';
import { registerFlavorRoutes, registerKeypairRoutes } from './api/flavor-keypair-routes.ts';
import { registerHypervisorRoutes, registerUsageRoutes } from './api/hypervisor-routes.ts';
import { registerFloatingIpProxyRoutes, registerNetworkProxyRoutes, registerSecurityGroupProxyRoutes } from './api/proxy-routes.ts';
import { registerQuotaClassRoutes } from './api/quota-class-routes.ts';
import { registerQuotaRoutes, registerServiceRoutes, registerVersionRoutes } from './api/misc-routes.ts';
import { registerServerGroupRoutes } from './api/server-group-routes.ts';
import { registerServerRoutes } from './api/server-routes.ts';
import { MAX_MICROVERSION, MIN_MICROVERSION, type NovaConfig } from './conf.ts';
import { Conductor } from './conductor/conductor.ts';
import type { NovaDB } from './db/schema.ts';
import { InstanceActions } from './domain/actions.ts';
import { BlockDevices } from './domain/block-devices.ts';
import { Aggregates } from './domain/aggregates.ts';
import { Flavors } from './domain/flavors.ts';
import { InstanceRepo } from './domain/instances.ts';
import { KeyPairs } from './domain/keypairs.ts';
import { InstanceNotifier } from './domain/notifier.ts';
import { Quotas } from './domain/quotas.ts';
import { Migrations } from './domain/migrations.ts';
import { ServerMoves } from './domain/server-moves.ts';
import { ComputeApi } from './domain/servers.ts';
import { CinderClient, Endpoints, GlanceClient, NeutronClient, type TokenSource } from './domain/service-clients.ts';
import { Services } from './domain/services.ts';
import { registerMigrationRoutes } from './api/migration-routes.ts';
import { registerServerInfoRoutes } from './api/server-info-routes.ts';
import { registerExternalEventRoutes } from './api/external-event-routes.ts';
import { registerAssistedVolumeSnapshotRoutes } from './api/assisted-volume-snapshot-routes.ts';
import { consolePolicies, registerConsoleRoutes } from './api/console-routes.ts';
import { interfacePolicies, registerInterfaceRoutes } from './api/interface-routes.ts';
import { registerVolumeAttachmentRoutes, volumeAttachmentPolicies } from './api/volume-attachment-routes.ts';
import { consoleConfig, type ConsoleConfig } from './console/conf.ts';
import { ConsoleTokens } from './domain/console-tokens.ts';
import { novaPolicies } from './policies/index.ts';
import { Scheduler } from './scheduler/scheduler.ts';

export interface NovaDeps {
  database: Database<NovaDB>;
  config: NovaConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  bus: Bus;
  tokens?: TokenValidator;
  authUri?: string;
  /** The nova service user's Keystone session: Glance, Neutron and Placement are called with its token. */
  session: TokenSource;
  /** Console proxies' URLs and token lifetime; defaults as upstream's. */
  consoles?: ConsoleConfig;
}

/** What the API, conductor, scheduler and compute managers of one process share. */
export interface NovaCore {
  instances: InstanceRepo;
  actions: InstanceActions;
  flavors: Flavors;
  keypairs: KeyPairs;
  quotas: Quotas;
  services: Services;
  aggregates: Aggregates;
  placement: PlacementClient;
  glance: GlanceClient;
  neutron: NeutronClient;
  cinder: CinderClient;
  blockDevices: BlockDevices;
  notifier: InstanceNotifier;
  endpoints: Endpoints;
  migrations: Migrations;
  consoleTokens: ConsoleTokens;
}

export function createNovaCore(deps: NovaDeps): NovaCore {
  const { database, clock, ids, config } = deps;
  const endpoints = new Endpoints(deps.session, { image: config.glanceUrl, network: config.neutronUrl, placement: config.placementUrl, 'block-storage': config.cinderUrl });
  const quotas = new Quotas(database, config.quotas);
  const lazyPlacement = new PlacementClient('http://placement.invalid', deps.session);
  // The placement URL may come from the catalog: resolved on first use.
  const placement = new Proxy(lazyPlacement, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        (target as unknown as { baseUrl: string }).baseUrl = await endpoints.url('placement');
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    instances: new InstanceRepo(database, clock, ids),
    actions: new InstanceActions(database, clock, ids),
    flavors: new Flavors(database, clock, ids),
    keypairs: new KeyPairs(database, clock, ids, async () => config.quotas.key_pairs),
    quotas,
    services: new Services(database, clock, ids, config.serviceDownMs),
    aggregates: new Aggregates(database, clock, ids, config.defaultAz),
    placement,
    glance: new GlanceClient(endpoints),
    neutron: new NeutronClient(endpoints),
    cinder: new CinderClient(endpoints),
    blockDevices: new BlockDevices(database, clock, ids),
    notifier: new InstanceNotifier(deps.bus, config.host, deps.logger),
    endpoints,
    migrations: new Migrations(database, clock, ids),
    consoleTokens: new ConsoleTokens(database, clock, (deps.consoles ?? consoleConfig()).tokenTtlMs),
  };
}

export interface NovaApp {
  app: FastifyInstance;
  core: NovaCore;
  conductor: Conductor;
  close(): Promise<void>;
}

/** The Compute API with the conductor and scheduler of this process (nova-api + nova-conductor + nova-scheduler). */
export async function createNovaApp(deps: NovaDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): Promise<NovaApp> {
  const core = createNovaCore(deps);
  const enforcer = new Enforcer({
    defaults: [...novaPolicies, ...consolePolicies, ...interfacePolicies, ...volumeAttachmentPolicies],
    overrideFile: deps.config.policyFile,
    enforceScope: deps.config.enforceScope,
    enforceNewDefaults: true,
    clock: deps.clock,
    logger: { warn: (msg) => deps.logger.warn(msg) },
  });
  const compute = new ComputeApi({ ...core, bus: deps.bus, config: deps.config, clock: deps.clock, ids: deps.ids, logger: deps.logger, session: deps.session });
  const moves = new ServerMoves({ ...core, bus: deps.bus, compute, logger: deps.logger, apiHost: deps.config.host, allowResizeToSameHost: deps.config.allowResizeToSameHost, shelvedOffloadTime: deps.config.shelvedOffloadTime });
  const scheduler = new Scheduler({
    placement: core.placement,
    services: core.services,
    instances: core.instances,
    defaultAz: deps.config.defaultAz,
    hostZones: () => core.aggregates.hostZones(),
    logger: deps.logger,
    groupHosts: async (group) => {
      const rows = await core.instances.db
        .selectFrom('server_group_members')
        .innerJoin('instances', 'instances.uuid', 'server_group_members.instance_uuid')
        .select('instances.host')
        .where('server_group_members.group_uuid', '=', group)
        .where('instances.deleted', '=', 0)
        .execute();
      return new Set(rows.map((r) => r.host).filter((h): h is string => !!h));
    },
  });
  const conductor = new Conductor({ bus: deps.bus, scheduler, instances: core.instances, actions: core.actions, migrations: core.migrations, placement: core.placement, notifier: core.notifier, logger: deps.logger });
  await conductor.start();
  await core.services.register(deps.config.host, 'nova-conductor', 'conductor');
  await core.services.register(deps.config.host, 'nova-scheduler', 'scheduler');
  const beat = setInterval(() => {
    void core.services.heartbeat(deps.config.host, 'nova-conductor').catch(() => undefined);
    void core.services.heartbeat(deps.config.host, 'nova-scheduler').catch(() => undefined);
  }, deps.config.reportIntervalMs);
  const app = createHttpServer({
    service: 'nova',
    faultFormat: 'compute',
    logger: deps.logger,
    tokens: deps.tokens,
    authUri: deps.authUri,
    microversions: { serviceType: 'compute', min: MIN_MICROVERSION, max: MAX_MICROVERSION, legacyHeader: 'X-OpenStack-Nova-API-Version' },
    ...http,
  });
  // Nova's own name for the request id, which clients older than 2.46 read (2.46 only signals the common header).
  app.addHook('onRequest', async (req, reply) => void reply.header('x-compute-request-id', req.id));
  const apiDeps: ApiDeps = { bus: deps.bus, config: deps.config, enforcer, flavors: core.flavors, keypairs: core.keypairs, instances: core.instances, actions: core.actions, quotas: core.quotas, services: core.services, aggregates: core.aggregates, neutron: core.neutron, compute, migrations: core.migrations, moves, consoles: { tokens: core.consoleTokens, config: deps.consoles ?? consoleConfig(), bus: deps.bus } };
  registerVersionRoutes(app);
  registerServerRoutes(app, apiDeps);
  registerActionRoutes(app, apiDeps);
  registerFlavorRoutes(app, apiDeps);
  registerKeypairRoutes(app, apiDeps);
  registerQuotaRoutes(app, apiDeps);
  registerServiceRoutes(app, apiDeps);
  registerServerGroupRoutes(app, apiDeps);
  registerAvailabilityZoneRoutes(app, apiDeps);
  registerAggregateRoutes(app, apiDeps);
  registerHypervisorRoutes(app, apiDeps);
  registerUsageRoutes(app, apiDeps);
  registerSecurityGroupProxyRoutes(app, apiDeps);
  registerFloatingIpProxyRoutes(app, apiDeps);
  registerNetworkProxyRoutes(app, apiDeps);
  registerQuotaClassRoutes(app, apiDeps);
  registerMigrationRoutes(app, apiDeps);
  registerServerInfoRoutes(app, apiDeps, deps.bus);
  registerExternalEventRoutes(app, apiDeps, deps.bus);
  registerConsoleRoutes(app, apiDeps);
  registerInterfaceRoutes(app, apiDeps, deps.bus);
  registerVolumeAttachmentRoutes(app, apiDeps, { bus: deps.bus, cinder: core.cinder, blockDevices: core.blockDevices, serviceToken: () => deps.session.tokenId() });
  registerAssistedVolumeSnapshotRoutes(app, apiDeps, { bus: deps.bus, blockDevices: core.blockDevices });
  return {
    app,
    core,
    conductor,
    close: async () => {
      clearInterval(beat);
      await conductor.stop();
      await app.close();
    },
  };
}
