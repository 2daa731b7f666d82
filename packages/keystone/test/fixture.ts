import pino from 'pino';
import { ManualClock, systemClock, type Clock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { openBus, type Bus } from '@onestack/core/bus/index.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { createKeystoneApp, type KeystoneApp } from '../src/app.ts';
import { defaultKeystoneConfig, type KeystoneConfig } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import { bootstrap, type BootstrapResult } from '../src/domain/bootstrap.ts';
import { Keystone } from '../src/domain/keystone.ts';
import type { KeystoneDB } from '../src/db/schema.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

export const ADMIN_PASSWORD = 'secret-admin-pw';

export interface KeystoneFixture extends KeystoneApp {
  url: string;
  client: JsonClient;
  /** A client carrying a project-scoped admin token. */
  admin: JsonClient;
  boot: BootstrapResult;
  clock: Clock;
  database: Database<KeystoneDB>;
  /** The bus Keystone publishes its notifications on. */
  bus: Bus;
  /** Password token for a user by name (default domain), scoped as given. */
  login(name: string, password: string, scope?: unknown): Promise<JsonClient>;
  /** The same, naming the user by id (any domain). */
  loginById(userId: string, password: string, scope?: unknown): Promise<JsonClient>;
  close(): Promise<void>;
}

/**
 * A real Keystone over HTTP on a random loopback port, bootstrapped like
 * `onestack bootstrap`, on a fresh SQLite file — or, with ONESTACK_TEST_DB=postgres
 * (or mysql), on a fresh database of the local server, dropped afterwards; with
 * ONESTACK_TEST_BUS=amqp its notifications go through the local RabbitMQ.
 */
export async function startKeystone(
  opts: {
    config?: Partial<KeystoneConfig>;
    clock?: Clock;
    dbUrl?: string;
    /** Runs on the migrated database before Keystone starts, e.g. to create the domains start-up reads configs for. */
    beforeStart?: (ks: Keystone) => Promise<void>;
  } = {},
): Promise<KeystoneFixture> {
  const dir = tempDir('onestack-ks-');
  const dbUrl = opts.dbUrl ?? testDatabaseUrl(dir.path, 'keystone');
  const database = await openDatabase<KeystoneDB>(dbUrl);
  // On RabbitMQ: names private to this fixture, deleted on close, so runs never see each other.
  const bus = await openBus(process.env.ONESTACK_TEST_BUS === 'amqp' ? 'amqp://guest:guest@127.0.0.1:5672/' : 'inprocess://', {
    prefix: `t${Math.random().toString(16).slice(2, 10)}-`,
    cleanupOnClose: true,
  });
  await runMigrations(database, 'keystone', [...migrations]);
  const clock = opts.clock ?? systemClock;
  const config: KeystoneConfig = {
    ...defaultKeystoneConfig({ stateDir: dir.path, publicUrl: 'http://127.0.0.1:0' }),
    passwordHashRounds: 4,
    ...opts.config,
  };
  const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
  if (opts.beforeStart) {
    const unstarted = new Keystone({ db: database.db, config, clock, ids: randomIds, logger });
    await opts.beforeStart(unstarted);
    await unstarted.close();
  }
  const ka = await createKeystoneApp({ db: database.db, config, clock, ids: randomIds, logger, notifications: bus });
  const cleanup = async () => {
    await ka.app.close();
    await database.close();
    await bus.close();
    if (!dbUrl.startsWith('sqlite')) await dropDatabase(dbUrl);
    dir.remove();
  };
  try {
    const address = await ka.app.listen({ host: '127.0.0.1', port: 0 });
    config.publicUrl = address;
    const boot = await bootstrap(ka.ks, { adminUsername: 'admin', adminPassword: ADMIN_PASSWORD, adminProjectName: 'admin', regionId: 'RegionOne', publicUrl: `${address}/v3` });
    // Bootstrap revoked the admin's earlier tokens "now"; a manual clock must move past that instant.
    if (clock instanceof ManualClock) clock.advance(1);
    const client = new JsonClient(address);
    const passwordLogin = async (user: Record<string, unknown>, password: string, scope?: unknown) => {
      const res = await client.post('/v3/auth/tokens', {
        auth: { identity: { methods: ['password'], password: { user: { ...user, password } } }, ...(scope ? { scope } : {}) },
      });
      if (res.status !== 201) throw new Error(`login ${JSON.stringify(user)} failed: ${res.status} ${res.text}`);
      return client.withToken(res.headers.get('x-subject-token')!);
    };
    const login = (name: string, password: string, scope?: unknown) => passwordLogin({ name, domain: { id: 'default' } }, password, scope);
    const loginById = (id: string, password: string, scope?: unknown) => passwordLogin({ id }, password, scope);
    const admin = await login('admin', ADMIN_PASSWORD, { project: { name: 'admin', domain: { id: 'default' } } });
    return { ...ka, url: address, client, admin, boot, clock, database, bus, login, loginById, close: cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export { ManualClock };
