import pino from 'pino';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { JsonClient, tempDir } from '@onestack/testing/index.ts';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createGlanceApp, type GlanceApp } from '../src/app.ts';
import { defaultGlanceValues, glanceConfig, type GlanceConfig, type GlanceValues } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import type { GlanceDB } from '../src/db/schema.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

export { ADMIN_PASSWORD };

export interface Project {
  id: string;
  /** A member of the project (role member, hence reader). */
  member: GlanceClient;
  /** A reader-only user of the project. */
  reader: GlanceClient;
}

/** A JsonClient on Glance plus raw requests for image data. */
export class GlanceClient extends JsonClient {
  override withToken(token: string | undefined): GlanceClient {
    return new GlanceClient(this.baseUrl, token);
  }

  /** A request whose body is bytes or a stream, answered as a fetch Response. */
  raw(method: string, path: string, body?: BodyInit | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.token) h['x-auth-token'] = this.token;
    return fetch(this.baseUrl + path, { method, headers: h, body: body as BodyInit | undefined, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
  }

  upload(id: string, data: BodyInit | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
    return this.raw('PUT', `/v2/images/${id}/file`, data, { 'content-type': 'application/octet-stream', ...headers });
  }

  patchImage(id: string, ops: unknown[]) {
    return this.patch(`/v2/images/${id}`, ops, { 'content-type': 'application/openstack-images-v2.1-json-patch' });
  }
}

/** The message of a Glance fault body (HTML, as upstream's webob renders it), unescaped. */
export function faultMessage(res: { text: string }): string {
  return res.text
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/\s+/g, ' ')
    .trim();
}

export interface GlanceFixture extends GlanceApp {
  url: string;
  ks: KeystoneFixture;
  config: GlanceConfig;
  database: Database<GlanceDB>;
  stateDir: string;
  /** Glance as the cloud admin (admin on the admin project). */
  admin: GlanceClient;
  /** Keystone as the cloud admin. */
  ksAdmin: JsonClient;
  /** A fresh project with a member and a reader. */
  project(name: string): Promise<Project>;
  /** Polls `get` until `done` holds, or fails after a few seconds. */
  eventually<T>(get: () => Promise<T>, done: (v: T) => boolean): Promise<T>;
  close(): Promise<void>;
}

/**
 * A real Keystone (the Keystone fixture) and Glance over HTTP on loopback,
 * Glance validating tokens with Keystone's validator, its stores in a temp
 * directory, and a `glance` service user in a `service` project for limits.
 */
export async function startGlance(opts: { config?: Partial<GlanceValues> } = {}): Promise<GlanceFixture> {
  const ks = await startKeystone();
  const dir = tempDir('onestack-glance-');
  const dbUrl = testDatabaseUrl(dir.path, 'glance');
  const database = await openDatabase<GlanceDB>(dbUrl);
  const cleanups: (() => Promise<void> | void)[] = [() => ks.close(), () => dir.remove(), async () => dropDatabase(dbUrl).catch(() => undefined), () => database.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    await runMigrations(database, 'glance', [...migrations]);
    const k = ks.ks;
    const serviceProject = await k.resource.createProject({ name: 'service', domainId: 'default' });
    const glanceUser = await k.identity.createUser({ name: 'glance', domainId: 'default', password: 'glance-pw' });
    await k.assignment.grant({ userId: glanceUser.id }, { projectId: serviceProject.id }, ks.boot.roleIds.service);
    const config = glanceConfig({ ...defaultGlanceValues(), ...opts.config } as GlanceValues, { stateDir: dir.path, publicUrl: 'http://127.0.0.1:0', hostname: 'localhost' });
    const keystone = new KeystoneSession(`${ks.url}/v3`, { username: 'glance', password: 'glance-pw', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' });
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    const ga = await createGlanceApp({ database, config, clock: systemClock, ids: randomIds, logger, notifications: ks.bus, tokens: ks.tokens, authUri: ks.url, keystone });
    cleanups.push(() => ga.app.close());
    const url = await ga.app.listen({ host: '127.0.0.1', port: 0 });
    config.publicUrl = url;
    // Limits are registered against the image service, which Glance finds in its token's catalog.
    await ensureEndpoints(k, { type: 'image', name: 'glance', regionId: 'RegionOne', urls: { public: url } });
    const glance = new GlanceClient(url);
    const tokenOf = (c: JsonClient) => c.token!;
    const admin = glance.withToken(tokenOf(ks.admin));
    const project = async (name: string): Promise<Project> => {
      const p = await k.resource.createProject({ name, domainId: 'default' });
      const users: Record<'member' | 'reader', GlanceClient> = {} as never;
      for (const role of ['member', 'reader'] as const) {
        const u = await k.identity.createUser({ name: `${name}-${role}`, domainId: 'default', password: `${name}-pw` });
        await k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds[role]);
        users[role] = glance.withToken(tokenOf(await ks.login(`${name}-${role}`, `${name}-pw`, { project: { id: p.id } })));
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
    return { ...ga, url, ks, config, database, stateDir: dir.path, admin, ksAdmin: ks.admin, project, eventually, close };
  } catch (e) {
    await close();
    throw e;
  }
}

