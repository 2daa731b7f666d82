import pino from 'pino';
import type { Notification } from '@onestack/core/bus/bus.ts';
import { ManualClock, systemClock, type Clock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createNeutronApp, type NeutronApp } from '../src/app.ts';
import type { NeutronModule } from '../src/api/context.ts';
import { defaultNeutronValues, neutronConfig, type NeutronConfig, type NeutronValues } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import type { NeutronDB } from '../src/db/schema.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

export { ADMIN_PASSWORD };

export interface Project {
  id: string;
  /** A member of the project (role member, hence reader). */
  member: JsonClient;
  /** A reader-only user of the project. */
  reader: JsonClient;
}

export interface NeutronFixture extends NeutronApp {
  url: string;
  ks: KeystoneFixture;
  config: NeutronConfig;
  database: Database<NeutronDB>;
  /** Neutron as the cloud admin (admin on the admin project). */
  admin: JsonClient;
  adminProjectId: string;
  /** A fresh project with a member and a reader. */
  project(name: string): Promise<Project>;
  /** Notifications seen on the bus since start (all event types). */
  notifications: Notification[];
  /** Polls `get` until `done` holds, or returns the last value after a few seconds. */
  eventually<T>(get: () => Promise<T>, done: (v: T) => boolean): Promise<T>;
  close(): Promise<void>;
}

/**
 * A real Keystone (the Keystone fixture) and Neutron over HTTP on loopback,
 * validating tokens with Keystone's validator, on SQLite — or the database
 * ONESTACK_TEST_DB names, notifications over the bus ONESTACK_TEST_BUS names
 * (the Keystone fixture's bus).
 */
export async function startNeutron(
  opts: { config?: Partial<NeutronValues>; clock?: Clock; modules?: readonly NeutronModule[] } = {},
): Promise<NeutronFixture> {
  const ks = await startKeystone();
  const dir = tempDir('onestack-neutron-');
  const dbUrl = testDatabaseUrl(dir.path, 'neutron');
  const database = await openDatabase<NeutronDB>(dbUrl);
  const cleanups: (() => Promise<void> | void)[] = [() => ks.close(), () => dir.remove(), async () => dropDatabase(dbUrl).catch(() => undefined), () => database.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    await runMigrations(database, 'neutron', [...migrations]);
    const k = ks.ks;
    const config = neutronConfig({ ...defaultNeutronValues(), ...opts.config } as NeutronValues, { stateDir: dir.path, publicUrl: 'http://127.0.0.1:0', hostname: 'testhost' });
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    const notifications: Notification[] = [];
    const sub = await ks.bus.subscribe('notifications', `neutron-fixture-${process.pid}`, async (n) => void notifications.push(n));
    cleanups.push(() => sub.stop());
    const na = await createNeutronApp({
      database,
      config,
      clock: opts.clock ?? systemClock,
      ids: randomIds,
      logger,
      notifications: ks.bus,
      tokens: ks.tokens,
      authUri: ks.url,
      modules: opts.modules,
    });
    cleanups.push(() => na.app.close());
    const url = await na.app.listen({ host: '127.0.0.1', port: 0 });
    config.publicUrl = url;
    const neutron = new JsonClient(url);
    const admin = neutron.withToken(ks.admin.token);
    const adminProject = await k.resource.getProjectByName('admin', 'default');
    const project = async (name: string): Promise<Project> => {
      const p = await k.resource.createProject({ name, domainId: 'default' });
      const users: Record<'member' | 'reader', JsonClient> = {} as never;
      for (const role of ['member', 'reader'] as const) {
        const u = await k.identity.createUser({ name: `${name}-${role}`, domainId: 'default', password: `${name}-pw` });
        await k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds[role]);
        users[role] = neutron.withToken((await ks.login(`${name}-${role}`, `${name}-pw`, { project: { id: p.id } })).token);
      }
      return { id: p.id, ...users };
    };
    const eventually = async <T,>(get: () => Promise<T>, done: (v: T) => boolean): Promise<T> => {
      for (let i = 0; ; i++) {
        const v = await get();
        if (done(v) || i >= 100) return v;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    return { ...na, url, ks, config, database, admin, adminProjectId: adminProject.id, project, notifications, eventually, close };
  } catch (e) {
    await close();
    throw e;
  }
}

export { ManualClock };

