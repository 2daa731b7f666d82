import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { systemClock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { openBus } from '@onestack/core/bus/index.ts';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { resolveLogLevel, resolveTls } from '@onestack/core/config/index.ts';
import { openDatabase, redactUrl, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { createLogger, logFilePath, type Logger } from '@onestack/core/log.ts';
import { createMetrics } from '@onestack/core/metrics.ts';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { RunningService, ServiceDefinition, ServiceRuntime } from '@onestack/core/service.ts';
import { databaseUrl, serviceUrl, type Settings } from './settings.ts';

export interface StartedService {
  def: ServiceDefinition;
  url: string;
  running: RunningService;
  db: Database<any>;
  runtime: ServiceRuntime;
}

export interface Cloud {
  services: StartedService[];
  bus: Bus;
  close(): Promise<void>;
}

export function serviceLogger(settings: Settings, name: string, stdout = false): Logger {
  mkdirSync(settings.logDir, { recursive: true });
  const level = resolveLogLevel(settings.values.DEFAULT as never);
  return createLogger({ service: name, level, file: logFilePath(settings.logDir, name), stdout });
}

/** The all-in-one's Keystone, where service users authenticate unless their auth_url says otherwise. */
export function identityUrl(settings: Settings): string {
  return `${serviceUrl(settings, 'keystone')}/v3`;
}

/** Opens a service's database and brings its schema up to date (`onestack db sync`). */
export async function syncDatabase(settings: Settings, def: ServiceDefinition, logger?: Logger): Promise<Database<any>> {
  const url = databaseUrl(settings, def.name);
  const db = await openDatabase(url, { logger: (m) => logger?.info(m) });
  try {
    const res = await runMigrations(db, def.name, [...def.migrations]);
    if (res.applied.length) logger?.info({ applied: res.applied, db: redactUrl(url) }, 'database migrated');
  } catch (e) {
    await db.close();
    throw e;
  }
  return db;
}

/**
 * Starts services in one process, in order, sharing one bus. A service started
 * after Keystone validates tokens in-process; `onestack serve X` for a
 * non-identity service passes an HTTP validator instead.
 */
export async function startServices(settings: Settings, defs: readonly ServiceDefinition[], opts: { tokens?: TokenValidator } = {}): Promise<Cloud> {
  const common = settings.values.DEFAULT as { bind_host: string; transport_url: string };
  mkdirSync(settings.stateDir, { recursive: true, mode: 0o700 });
  const bus = await openBus(common.transport_url);
  const started: StartedService[] = [];
  const tls = resolveTls(settings.values.DEFAULT as never);
  let tokens = opts.tokens;
  const close = async () => {
    for (const s of [...started].reverse()) {
      await s.running.close().catch(() => undefined);
      await s.db.close().catch(() => undefined);
    }
    await bus.close();
  };
  try {
    for (const def of defs) {
      const logger = serviceLogger(settings, def.name);
      const db = await syncDatabase(settings, def, logger);
      const url = serviceUrl(settings, def.name);
      const runtime: ServiceRuntime = {
        config: { ...settings.values },
        db,
        bus,
        logger,
        clock: systemClock,
        ids: randomIds,
        metrics: createMetrics(def.name),
        publicUrl: url,
        identityUrl: identityUrl(settings),
        tokens,
        ...(tls ? { tls } : {}),
      };
      const running = await def.start(runtime).catch(async (e: unknown) => {
        await db.close();
        throw e;
      });
      started.push({ def, url, running, db, runtime });
      tokens ??= running.tokens;
      const port = (settings.values[def.name] as { port: number }).port;
      await running.app.listen({ host: common.bind_host, port });
      logger.info({ url, host: hostname() }, `${def.name} listening`);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { services: started, bus, close };
}
