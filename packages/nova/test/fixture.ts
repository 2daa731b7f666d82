import pino from 'pino';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createGlanceApp } from '../../glance/src/app.ts';
import { defaultGlanceValues, glanceConfig, type GlanceValues } from '../../glance/src/conf.ts';
import { migrations as glanceMigrations } from '../../glance/src/db/migrations/index.ts';
import { createNeutronApp } from '../../neutron/src/app.ts';
import { defaultNeutronValues, neutronConfig, type NeutronValues } from '../../neutron/src/conf.ts';
import { migrations as neutronMigrations } from '../../neutron/src/db/migrations/index.ts';
import { createPlacementApp } from '../src/placement/app.ts';
import { defaultPlacementValues, placementConfig } from '../src/placement/conf.ts';
import { migrations as placementMigrations } from '../src/placement/db/migrations/index.ts';
import { createNovaApp, type NovaApp } from '../src/app.ts';
import { ComputeManager, computeSettings } from '../src/compute/manager.ts';
import { defaultNovaValues, novaConfig, type NovaConfig, type NovaValues } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import type { NovaDB } from '../src/db/schema.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { ComputeDriver } from '../src/virt/driver.ts';
import type { ImageCache } from '../src/virt/image-cache.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

/** A JsonClient asking for one compute microversion. */
export class NovaClient extends JsonClient {
  constructor(
    baseUrl: string,
    token?: string,
    readonly version = '2.55',
  ) {
    super(baseUrl, token);
  }
  override withToken(token: string | undefined): NovaClient {
    return new NovaClient(this.baseUrl, token, this.version);
  }
  at(version: string): NovaClient {
    return new NovaClient(this.baseUrl, this.token, version);
  }
  override request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    return super.request<T>(method, path, body, { 'openstack-api-version': `compute ${this.version}`, ...headers });
  }
}

export interface Project {
  id: string;
  member: NovaClient;
  reader: NovaClient;
  /** Neutron as the member. */
  net: JsonClient;
}

export interface NovaFixture {
  url: string;
  ks: KeystoneFixture;
  nova: NovaApp;
  config: NovaConfig;
  database: Database<NovaDB>;
  admin: NovaClient;
  neutronAdmin: JsonClient;
  glanceAdmin: JsonClient;
  imageId: string;
  computes: Map<string, { manager: ComputeManager; driver: ComputeDriver }>;
  /** Starts nova-compute on a host with this driver (FakeDriver by default). */
  addCompute(host: string, o?: { driver?: ComputeDriver; imageCache?: ImageCache; resources?: { vcpus?: number; memoryMb?: number; localGb?: number } }): Promise<ComputeManager>;
  project(name: string): Promise<Project>;
  /** Polls until the server leaves BUILD (or the predicate holds). */
  waitFor(c: NovaClient, id: string, done?: (s: any) => boolean, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

/**
 * A real Keystone, Glance, Neutron, Placement and Nova over HTTP on loopback,
 * sharing the Keystone fixture's bus (ONESTACK_TEST_BUS), each on its own
 * database (ONESTACK_TEST_DB); nova-compute hosts run the FakeDriver unless a
 * test gives another driver.
 */
export async function startNova(opts: { config?: Partial<NovaValues>; ks?: KeystoneFixture; neutronUrl?: string } = {}): Promise<NovaFixture> {
  // A test that runs Neutron's agents brings its own Neutron stack (with its Keystone): Nova joins it, and leaves closing it to the test.
  const ks = opts.ks ?? (await startKeystone());
  const dir = tempDir('onestack-nova-');
  const cleanups: (() => Promise<void> | void)[] = [...(opts.ks ? [] : [() => ks.close()]), () => dir.remove()];
  const close = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
  const open = async <DB,>(name: string, ms: readonly unknown[]) => {
    const url = testDatabaseUrl(dir.path, name);
    const db = await openDatabase<DB>(url);
    cleanups.push(async () => dropDatabase(url).catch(() => undefined), () => db.close());
    await runMigrations(db, name, [...(ms as never[])]);
    return db;
  };
  const startNeutronApi = async () => {
    const neutronDb = await open<any>('neutron', neutronMigrations);
    const nconf = neutronConfig({ ...defaultNeutronValues() } as NeutronValues, { stateDir: dir.path, publicUrl: 'http://127.0.0.1:0', hostname: 'testhost' });
    const na = await createNeutronApp({ database: neutronDb, config: nconf, clock: systemClock, ids: randomIds, logger, notifications: ks.bus, tokens: ks.tokens, authUri: ks.url });
    cleanups.push(() => na.app.close());
    return na.app.listen({ host: '127.0.0.1', port: 0 });
  };
  try {
    const k = ks.ks;
    const serviceProject = await k.resource.createProject({ name: 'service', domainId: 'default' });
    const novaUser = await k.identity.createUser({ name: 'nova', domainId: 'default', password: 'nova-pw' });
    for (const role of ['service', 'admin'] as const) await k.assignment.grant({ userId: novaUser.id }, { projectId: serviceProject.id }, ks.boot.roleIds[role as 'admin']);
    const session = new KeystoneSession(`${ks.url}/v3`, { username: 'nova', password: 'nova-pw', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' });

    const glanceDb = await open<any>('glance', glanceMigrations);
    const gconf = glanceConfig({ ...defaultGlanceValues() } as GlanceValues, { stateDir: dir.path, publicUrl: 'http://127.0.0.1:0', hostname: 'localhost' });
    const ga = await createGlanceApp({ database: glanceDb, config: gconf, clock: systemClock, ids: randomIds, logger, notifications: ks.bus, tokens: ks.tokens, authUri: ks.url });
    cleanups.push(() => ga.app.close());
    const glanceUrl = await ga.app.listen({ host: '127.0.0.1', port: 0 });

    const neutronUrl = opts.neutronUrl ?? (await startNeutronApi());

    const placementDb = await open<any>('placement', placementMigrations);
    const pa = createPlacementApp({ database: placementDb, config: placementConfig(defaultPlacementValues(), { stateDir: dir.path }), clock: systemClock, ids: randomIds, logger, tokens: ks.tokens, authUri: ks.url });
    cleanups.push(() => pa.app.close());
    const placementUrl = await pa.app.listen({ host: '127.0.0.1', port: 0 });

    const database = await open<NovaDB>('nova', migrations);
    const config = novaConfig({ ...defaultNovaValues(), vif_plugging_timeout: 0, sync_power_state_interval: 0, report_interval: 1, ...opts.config } as NovaValues, { stateDir: dir.path, hostname: 'controller' });
    Object.assign(config, { glanceUrl, neutronUrl, placementUrl });
    const nova = await createNovaApp({ database, config, clock: systemClock, ids: randomIds, logger, bus: ks.bus, tokens: ks.tokens, authUri: ks.url, session });
    cleanups.push(() => nova.close());
    const url = await nova.app.listen({ host: '127.0.0.1', port: 0 });

    const computes = new Map<string, { manager: ComputeManager; driver: ComputeDriver }>();
    const addCompute: NovaFixture['addCompute'] = async (host, o = {}) => {
      const driver = o.driver ?? new FakeDriver({ hostname: host, resources: o.resources });
      const manager = new ComputeManager({
        ...nova.core,
        host,
        driver,
        imageCache: o.imageCache,
        session,
        bus: ks.bus,
        clock: systemClock,
        logger,
        ...computeSettings(config),
      });
      await manager.start();
      computes.set(host, { manager, driver });
      cleanups.push(() => manager.stop());
      return manager;
    };

    const admin = new NovaClient(url, ks.admin.token);
    const glanceAdmin = new JsonClient(glanceUrl, ks.admin.token);
    const neutronAdmin = new JsonClient(neutronUrl, ks.admin.token);
    const img = await glanceAdmin.post('/v2/images', { name: 'guest', disk_format: 'raw', container_format: 'bare', visibility: 'public' });
    if (img.status !== 201) throw new Error(`image create: ${img.status} ${img.text}`);
    const up = await fetch(`${glanceUrl}/v2/images/${img.body.id}/file`, { method: 'PUT', headers: { 'x-auth-token': ks.admin.token!, 'content-type': 'application/octet-stream' }, body: new Uint8Array(4096) });
    if (up.status !== 204) throw new Error(`image upload: ${up.status}`);

    const project = async (name: string): Promise<Project> => {
      const p = await k.resource.createProject({ name, domainId: 'default' });
      const users: Record<'member' | 'reader', NovaClient> = {} as never;
      let net: JsonClient | undefined;
      for (const role of ['member', 'reader'] as const) {
        const u = await k.identity.createUser({ name: `${name}-${role}`, domainId: 'default', password: `${name}-pw` });
        await k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds[role]);
        const token = (await ks.login(`${name}-${role}`, `${name}-pw`, { project: { id: p.id } })).token;
        users[role] = new NovaClient(url, token);
        if (role === 'member') net = new JsonClient(neutronUrl, token);
      }
      return { id: p.id, ...users, net: net! };
    };
    const waitFor: NovaFixture['waitFor'] = async (c, id, done = (s) => s.status !== 'BUILD' && !s['OS-EXT-STS:task_state'], timeoutMs = 10_000) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const r = await c.get(`/v2.1/servers/${id}`);
        if (r.status === 404 && done({ status: 'DELETED' })) return { status: 'DELETED' };
        if (r.status === 200 && done(r.body.server)) return r.body.server;
        if (Date.now() > end) throw new Error(`server ${id} did not get there: ${r.status} ${JSON.stringify(r.body)}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    return { url, ks, nova, config, database, admin, neutronAdmin, glanceAdmin, imageId: img.body.id, computes, addCompute, project, waitFor, close };
  } catch (e) {
    await close();
    throw e;
  }
}
