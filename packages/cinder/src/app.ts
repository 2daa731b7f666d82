import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { Enforcer } from '@onestack/core/policy/index.ts';
import { fixedToken, SwiftClient } from '@onestack/core/swift-client.ts';
import type { ApiDeps } from './api/context.ts';
import { registerAdminRoutes, registerAttachmentRoutes, registerQuotaRoutes, registerTypeRoutes, registerVersionRoutes } from './api/misc-routes.ts';
import { registerBackupRoutes } from './api/backup-routes.ts';
import { registerManageRoutes } from './api/manage-routes.ts';
import { registerServiceActionRoutes } from './api/service-action-routes.ts';
import { registerWorkerRoutes } from './api/worker-routes.ts';
import { registerGroupRoutes } from './api/group-routes.ts';
import { registerMessageRoutes } from './api/messages-routes.ts';
import { registerTransferRoutes } from './api/transfer-routes.ts';
import { registerVolumeRoutes } from './api/volume-routes.ts';
import { MAX_MICROVERSION, MIN_MICROVERSION, type CinderConfig } from './conf.ts';
import type { CinderDB } from './db/schema.ts';
import { BackupService } from './domain/backups.ts';
import { catalogUrl } from './domain/catalog.ts';
import { GlanceHttp, type ImageSource } from './domain/glance.ts';
import { GroupTypes } from './domain/group-types.ts';
import { GroupService } from './domain/groups.ts';
import type { ComputeApi } from './domain/nova.ts';
import { ManageExisting } from './domain/manage.ts';
import { WorkerCleanup } from './domain/workers.ts';
import { cinderLoggers } from './loggers.ts';
import { UserMessages } from './domain/messages.ts';
import { VolumeMigrations } from './domain/migration.ts';
import { CinderNotifier } from './domain/notifier.ts';
import { Quotas } from './domain/quotas.ts';
import { Scheduler } from './domain/scheduler.ts';
import { Services } from './domain/services.ts';
import { TransferService } from './domain/transfers.ts';
import { VolumeTypes } from './domain/volume-types.ts';
import { VolumeService } from './domain/volumes.ts';
import { FakeVolumeDriver } from './drivers/fake-driver.ts';
import { FileVolumeDriver } from './drivers/file-driver.ts';
import { NbdExports } from './drivers/nbd-exports.ts';
import type { VolumeDriver } from './drivers/volume-driver.ts';
import { cinderPolicies } from './policies/index.ts';

export interface CinderDeps {
  database: Database<CinderDB>;
  config: CinderConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  bus?: Pick<Bus, 'notify'>;
  tokens?: TokenValidator;
  authUri?: string;
  /** Glance: configured URL, else the caller's catalog through authUri. */
  images?: ImageSource;
  /** Nova, told when an attached volume grew (onestack's cinder service: Nova over HTTP as Cinder's service user). */
  compute?: ComputeApi;
  /** Overrides the configured driver (tests hand in a FakeVolumeDriver they can inspect). */
  driver?: VolumeDriver;
  /** Overrides the configured backends with several drivers (migration tests). */
  drivers?: VolumeDriver[];
}

export interface CinderApp {
  app: FastifyInstance;
  volumes: VolumeService;
  migrations: VolumeMigrations;
  /** The first backend. */
  driver: VolumeDriver;
  drivers: VolumeDriver[];
  close(): Promise<void>;
}

/** The configured backends: one fake, or a file driver per enabled backend, each with its NBD exports. */
export function createDrivers(config: CinderConfig, logger: Logger): VolumeDriver[] {
  if (config.volumeDriver === 'fake') return [new FakeVolumeDriver({ backendName: config.backendName })];
  return config.backends.map(
    (b) =>
      new FileVolumeDriver({
        dir: b.dir,
        backendName: b.name,
        format: b.format,
        logger,
        maxOverSubscriptionRatio: config.maxOverSubscriptionRatio,
        reservedPercentage: config.reservedPercentage,
        host: config.host,
        nbd: { exports: new NbdExports({ runDir: join(config.stateDir, 'cinder', 'nbd', b.name), listenAddress: config.nbd.listenAddress, logger }), mode: config.nbd.mode },
      }),
  );
}

/**
 * cinder-api, cinder-scheduler and one cinder-volume backend in one process:
 * the API hands work to the volume manager in-process (no RPC over the bus yet).
 */
export async function createCinderApp(deps: CinderDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): Promise<CinderApp> {
  const { config, database, clock, ids } = deps;
  const logs = cinderLoggers(deps.logger);
  // cinder-volume's logger serves the volume manager and its drivers.
  const logger = logs.volume;
  const drivers = deps.drivers ?? (deps.driver ? [deps.driver] : createDrivers(config, logger));
  for (const d of drivers) {
    await d.doSetup();
    await d.checkForSetupError();
  }
  const driver = drivers[0];
  const types = new VolumeTypes(database.db, clock, ids);
  await types.ensureDefault();
  const quotas = new Quotas(database.db, config.quotas);
  const backends = drivers.map((d) => ({ host: `${config.host}@${d.backendName}`, availabilityZone: config.availabilityZone, driver: d }));
  const scheduler = new Scheduler(backends);
  const services = new Services(database.db, clock, ids, 60_000);
  await services.register(config.host, 'cinder-scheduler', config.availabilityZone);
  for (const b of backends) await services.register(b.host, 'cinder-volume', config.availabilityZone);
  const beat = setInterval(() => {
    void services.heartbeat(config.host, 'cinder-scheduler').catch(() => undefined);
    for (const b of backends) void services.heartbeat(b.host, 'cinder-volume').catch(() => undefined);
  }, 10_000);
  beat.unref();
  const notifier = new CinderNotifier(deps.bus, config.host, logger);
  const messages = new UserMessages(database.db, { clock, ids });
  const volumes = new VolumeService(database.db, {
    messages,
    clock,
    ids,
    logger,
    types,
    quotas,
    scheduler,
    drivers: new Map(drivers.map((d) => [d.backendName, d])),
    notifier,
    defaultType: config.defaultVolumeType,
    defaultAz: config.availabilityZone,
    compute: deps.compute,
    assistedSnapshotTimeoutMs: config.assistedSnapshotTimeoutMs,
    images: deps.images ?? new GlanceHttp({ glanceUrl: config.glanceUrl || undefined, identityUrl: deps.authUri }),
    conversionDir: join(config.stateDir, 'cinder', 'conversion'),
  });
  const migrations = new VolumeMigrations(volumes, { db: database.db, clock, ids, logger, types, scheduler, services, notifier, compute: deps.compute, conversionDir: join(config.stateDir, 'cinder', 'conversion') });
  await migrations.recoverInterrupted();
  await volumes.recoverInterrupted();
  await volumes.restoreConnections();
  const backups = new BackupService(database.db, {
    clock,
    ids,
    logger: logs.backup,
    volumes,
    quotas,
    notifier,
    storeFor: async (caller) => {
      const token = caller.token ?? '';
      const url = config.backup.swiftUrl ? `${config.backup.swiftUrl}${caller.projectId}` : await catalogUrl(deps.authUri, token, 'object-store', 'Object Storage');
      // The caller's own token and account, as upstream's driver; retried as its @retry (backup_swift_retry_attempts, doubling backoff).
      return new SwiftClient({ account: url, auth: fixedToken(token), retry: { attempts: 3, backoffMs: 2000 } });
    },
    defaultContainer: config.backup.container,
    chunks: { chunkSize: config.backup.objectSize, blockSize: config.backup.blockSize },
    az: config.availabilityZone,
    host: config.host,
    workDir: join(config.stateDir, 'cinder', 'backup'),
  });
  await backups.recoverInterrupted();
  const enforcer = new Enforcer({
    defaults: cinderPolicies,
    overrideFile: config.policyFile,
    enforceScope: config.enforceScope,
    enforceNewDefaults: true,
    clock,
    logger: { warn: (msg) => logs.api.warn(msg) },
  });
  const app = createHttpServer({
    service: 'cinder',
    faultFormat: 'compute',
    logger: logs.api,
    tokens: deps.tokens,
    authUri: deps.authUri,
    microversions: { serviceType: 'volume', min: MIN_MICROVERSION, max: MAX_MICROVERSION, unversionedRoot: true },
    ...http,
  });
  const manage = new ManageExisting({ db: database.db, volumes, types, quotas, services, notifier, clock, ids, logger, defaultType: config.defaultVolumeType });
  const groupTypes = new GroupTypes(database.db, clock, ids);
  const groups = new GroupService(database.db, { clock, ids, logger, volumes, types, groupTypes, quotas, scheduler, notifier, defaultAz: config.availabilityZone });
  const apiDeps: ApiDeps = { config, enforcer, volumes, migrations, types, quotas, scheduler, services, manage, groupTypes, groups };
  registerVersionRoutes(app);
  registerVolumeRoutes(app, apiDeps, backups);
  registerTypeRoutes(app, apiDeps);
  registerQuotaRoutes(app, apiDeps);
  registerAdminRoutes(app, apiDeps);
  registerAttachmentRoutes(app, apiDeps);
  registerBackupRoutes(app, apiDeps, backups);
  registerTransferRoutes(app, apiDeps, new TransferService(database.db, { clock, ids, volumes, quotas, notifier }));
  registerMessageRoutes(app, apiDeps, messages);
  registerManageRoutes(app, apiDeps);
  registerWorkerRoutes(app, apiDeps, new WorkerCleanup({ db: database.db, volumes, services, clock, logger: logs.scheduler }));
  const localHosts = new Set([config.host, ...backends.map((b) => b.host)]);
  registerServiceActionRoutes(app, apiDeps, { host: config.host, levels: logs.levels, loggers: logs.loggers, serves: (s) => localHosts.has(s.host) });
  registerGroupRoutes(app, apiDeps);
  return {
    app,
    volumes,
    migrations,
    driver,
    drivers,
    close: async () => {
      clearInterval(beat);
      await app.close();
      await volumes.drain();
      for (const d of drivers) await d.close?.();
    },
  };
}
