import pino from 'pino';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createPlacementApp, type PlacementApp } from '../src/placement/app.ts';
import { PlacementClient } from '../src/placement/client.ts';
import { defaultPlacementValues, placementConfig } from '../src/placement/conf.ts';
import { migrations } from '../src/placement/db/migrations/index.ts';
import type { PlacementDB } from '../src/placement/db/schema.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

/** A JsonClient that asks for one placement microversion on every request. */
export class PlacementHttp extends JsonClient {
  constructor(
    baseUrl: string,
    token?: string,
    readonly version = '1.39',
  ) {
    super(baseUrl, token);
  }

  override withToken(token: string | undefined): PlacementHttp {
    return new PlacementHttp(this.baseUrl, token, this.version);
  }

  at(version: string): PlacementHttp {
    return new PlacementHttp(this.baseUrl, this.token, version);
  }

  override request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    return super.request<T>(method, path, body, { 'openstack-api-version': `placement ${this.version}`, ...headers });
  }
}

export interface PlacementFixture extends PlacementApp {
  url: string;
  ks: KeystoneFixture;
  database: Database<PlacementDB>;
  /** The cloud admin (admin on the admin project). */
  admin: PlacementHttp;
  /** Nova's service user (role service in project service). */
  service: PlacementHttp;
  /** A project member without admin or service role. */
  member: PlacementHttp;
  memberProjectId: string;
  /** A reader of the member's project. */
  reader: PlacementHttp;
  /** The client Nova uses, authenticated as the service user through a KeystoneSession. */
  client: PlacementClient;
  close(): Promise<void>;
}

/**
 * A real Keystone and Placement over HTTP on loopback, Placement validating
 * tokens with Keystone's validator, on SQLite or (ONESTACK_TEST_DB) a fresh
 * PostgreSQL / MariaDB database dropped afterwards.
 */
export async function startPlacement(): Promise<PlacementFixture> {
  const ks = await startKeystone();
  const dir = tempDir('onestack-placement-');
  const dbUrl = testDatabaseUrl(dir.path, 'placement');
  const database = await openDatabase<PlacementDB>(dbUrl);
  const cleanups: (() => Promise<void> | void)[] = [() => ks.close(), () => dir.remove(), async () => dropDatabase(dbUrl).catch(() => undefined), () => database.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    await runMigrations(database, 'placement', [...migrations]);
    const k = ks.ks;
    const serviceProject = await k.resource.createProject({ name: 'service', domainId: 'default' });
    const nova = await k.identity.createUser({ name: 'nova', domainId: 'default', password: 'nova-pw' });
    await k.assignment.grant({ userId: nova.id }, { projectId: serviceProject.id }, ks.boot.roleIds.service);
    const project = await k.resource.createProject({ name: 'tenant', domainId: 'default' });
    for (const role of ['member', 'reader'] as const) {
      const u = await k.identity.createUser({ name: `tenant-${role}`, domainId: 'default', password: 'tenant-pw' });
      await k.assignment.grant({ userId: u.id }, { projectId: project.id }, ks.boot.roleIds[role]);
    }
    const config = placementConfig(defaultPlacementValues(), { stateDir: dir.path });
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    const pa = createPlacementApp({ database, config, clock: systemClock, ids: randomIds, logger, tokens: ks.tokens, authUri: ks.url });
    cleanups.push(() => pa.app.close());
    const url = await pa.app.listen({ host: '127.0.0.1', port: 0 });
    const http = new PlacementHttp(url);
    const tokenOf = async (name: string, password: string, projectId: string) => (await ks.login(name, password, { project: { id: projectId } })).token!;
    const session = new KeystoneSession(`${ks.url}/v3`, { username: 'nova', password: 'nova-pw', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' });
    return {
      ...pa,
      url,
      ks,
      database,
      admin: http.withToken(ks.admin.token),
      service: http.withToken(await tokenOf('nova', 'nova-pw', serviceProject.id)),
      member: http.withToken(await tokenOf('tenant-member', 'tenant-pw', project.id)),
      memberProjectId: project.id,
      reader: http.withToken(await tokenOf('tenant-reader', 'tenant-pw', project.id)),
      client: new PlacementClient(url, session),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** A provider with a standard compute inventory, as a compute host reports it. */
export async function computeHost(c: PlacementHttp, name: string, inv: Record<string, Record<string, number>> = { VCPU: { total: 4 }, MEMORY_MB: { total: 4096 }, DISK_GB: { total: 100 } }) {
  const res = await c.at('1.39').post('/resource_providers', { name });
  if (res.status !== 200) throw new Error(`create ${name}: ${res.status} ${res.text}`);
  const put = await c.put(`/resource_providers/${res.body.uuid}/inventories`, { resource_provider_generation: res.body.generation, inventories: inv });
  if (put.status !== 200) throw new Error(`inventory ${name}: ${put.status} ${put.text}`);
  return { uuid: res.body.uuid as string, generation: put.body.resource_provider_generation as number };
}
