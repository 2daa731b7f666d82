import { join } from 'node:path';
import pino from 'pino';
import { systemClock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createCinderApp, type CinderApp } from '../src/app.ts';
import { cinderConfig, defaultCinderValues, type CinderConfig, type CinderValues } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import type { CinderDB } from '../src/db/schema.ts';
import type { ComputeApi } from '../src/domain/nova.ts';
import { FakeVolumeDriver } from '../src/drivers/fake-driver.ts';
import type { VolumeDriver } from '../src/drivers/volume-driver.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

export interface Project {
  id: string;
  /** member role: JsonClient on Cinder with the project's token and `OpenStack-API-Version: volume <mv>`. */
  member: CinderClient;
  reader: CinderClient;
}

/** A JsonClient whose paths are relative to /v3/<project_id> and that asks for a microversion. */
export class CinderClient extends JsonClient {
  constructor(
    baseUrl: string,
    token: string | undefined,
    readonly projectId: string,
    readonly microversion = '3.0',
  ) {
    super(baseUrl, token);
  }

  at(microversion: string): CinderClient {
    return new CinderClient(this.baseUrl, this.token, this.projectId, microversion);
  }

  override request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const full = path.startsWith('/v3/') || path === '/' || path === '/v3' ? path : `/v3/${this.projectId}${path}`;
    return super.request<T>(method, full, body, { 'openstack-api-version': `volume ${this.microversion}`, ...headers });
  }
}

export interface CinderFixture extends CinderApp {
  url: string;
  ks: KeystoneFixture;
  config: CinderConfig;
  database: Database<CinderDB>;
  /** The cloud admin (admin on the admin project). */
  admin: CinderClient;
  adminProjectId: string;
  project(name: string): Promise<Project>;
  /** Polls until the volume (or snapshot) reaches one of `statuses`. */
  waitFor(client: CinderClient, kind: 'volumes' | 'snapshots', id: string, statuses: string[]): Promise<any>;
  close(): Promise<void>;
}

/**
 * A real Keystone and Cinder over HTTP on loopback, Cinder on the database
 * ONESTACK_TEST_DB names and the driver given (a FakeVolumeDriver by default,
 * which tests can inspect and make fail).
 */
export async function startCinder(opts: { config?: Partial<CinderValues>; driver?: (stateDir: string) => VolumeDriver; drivers?: (stateDir: string) => VolumeDriver[]; configuredDrivers?: boolean; ks?: KeystoneFixture; compute?: ComputeApi } = {}): Promise<CinderFixture & { fake?: FakeVolumeDriver }> {
  // A Keystone handed in (shared with a Glance fixture) belongs to the caller, who closes it.
  const ks = opts.ks ?? (await startKeystone());
  const dir = tempDir('onestack-cinder-');
  const dbUrl = testDatabaseUrl(dir.path, 'cinder');
  const database = await openDatabase<CinderDB>(dbUrl);
  const cleanups: (() => Promise<void> | void)[] = [() => (opts.ks ? undefined : ks.close()), () => dir.remove(), async () => dropDatabase(dbUrl).catch(() => undefined), () => database.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    await runMigrations(database, 'cinder', [...migrations]);
    const config = cinderConfig({ ...defaultCinderValues(), ...opts.config } as CinderValues, { stateDir: dir.path, hostname: 'cinder-host' });
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    // configuredDrivers: the backends the configuration names, as `onestack serve cinder` makes them.
    const drivers = opts.configuredDrivers ? undefined : (opts.drivers?.(dir.path) ?? [opts.driver?.(dir.path) ?? new FakeVolumeDriver({ backendName: config.backendName })]);
    const ca = await createCinderApp({ database, config, clock: systemClock, ids: randomIds, logger, bus: ks.bus, tokens: ks.tokens, authUri: ks.url, drivers, compute: opts.compute });
    const driver = ca.driver;
    cleanups.push(() => ca.close());
    const url = await ca.app.listen({ host: '127.0.0.1', port: 0 });
    const k = ks.ks;
    const adminAuth = await ks.tokens.validate(ks.admin.token!);
    const adminProjectId = (adminAuth as { projectId?: string }).projectId!;
    const admin = new CinderClient(url, ks.admin.token, adminProjectId);
    const project = async (name: string): Promise<Project> => {
      const p = await k.resource.createProject({ name, domainId: 'default' });
      const users = {} as Record<'member' | 'reader', CinderClient>;
      for (const role of ['member', 'reader'] as const) {
        await k.identity.createUser({ name: `${name}-${role}`, domainId: 'default', password: `${name}-pw` }).then((u) => k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds[role]));
        users[role] = new CinderClient(url, (await ks.login(`${name}-${role}`, `${name}-pw`, { project: { id: p.id } })).token, p.id);
      }
      return { id: p.id, ...users };
    };
    const waitFor = async (client: CinderClient, kind: 'volumes' | 'snapshots', id: string, statuses: string[]) => {
      await ca.volumes.drain();
      const res = await client.get(`/${kind}/${id}`);
      const item = res.body?.[kind === 'volumes' ? 'volume' : 'snapshot'];
      if (!item || !statuses.includes(item.status)) throw new Error(`${kind} ${id} is ${item?.status ?? res.status}, expected ${statuses.join('|')}`);
      return item;
    };
    return { ...ca, fake: driver instanceof FakeVolumeDriver ? driver : undefined, url, ks, config, database, admin, adminProjectId, project, waitFor, close };
  } catch (e) {
    await close();
    throw e;
  }
}

