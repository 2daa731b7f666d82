import assert from 'node:assert/strict';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { NovaHttp } from '../../cinder/src/domain/nova.ts';
import { CinderClient as VolumeApi, type CinderFixture } from '../../cinder/test/fixture.ts';
import type { KeystoneFixture } from '../../keystone/test/fixture.ts';
import type { FakeDriver } from '../src/virt/fake-driver.ts';
import { NovaClient, startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * Nova on a real Cinder (the tests that drive both services): one compute host on the given
 * fake driver, a project, and that project's Cinder client at microversion 3.44.
 */
export async function novaBesideCinder(ks: KeystoneFixture, cinderUrl: string, driver: FakeDriver, project: string): Promise<{ f: NovaFixture; p: Project; vol: VolumeApi }> {
  const f = await startNova({ ks, config: { cinder_url: cinderUrl } });
  await f.addCompute(driver.hostname, { driver });
  const p = await f.project(project);
  return { f, p, vol: new VolumeApi(cinderUrl, p.member.token, p.id, '3.44') };
}

/** A new 1 GiB volume of the project, once available: its id. */
export async function availableVolume(cinder: { waitFor: CinderFixture['waitFor'] }, vol: VolumeApi, name?: string): Promise<string> {
  const r = await vol.post('/volumes', { volume: { ...(name ? { name } : {}), size: 1 } });
  assert.equal(r.status, 202, r.text);
  await cinder.waitFor(vol, 'volumes', r.body.volume.id, ['available']);
  return r.body.volume.id as string;
}

/** A server without networks on the fixture's image and flavor 1, once ACTIVE: its id. */
export async function bootNetless(f: NovaFixture, p: Project, name: string): Promise<string> {
  const s = await p.member.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '1', networks: 'none' } });
  assert.equal(s.status, 202, s.text);
  assert.equal((await f.waitFor(p.member, s.body.server.id)).status, 'ACTIVE');
  return s.body.server.id as string;
}

/**
 * Cinder's service user (admin and service roles in the service project, as `onestack up` makes
 * it) in a test's Keystone, and what Cinder calls Nova with: its NovaHttp at Nova's URL and a
 * plain client with its token. Once per Keystone (the user is named `cinder`).
 */
export async function cinderServiceUser(ks: KeystoneFixture, novaUrl: string): Promise<{ nova: NovaHttp; client: NovaClient }> {
  const k = ks.ks;
  const user = await k.identity.createUser({ name: 'cinder', domainId: 'default', password: 'cinder-pw' });
  const serviceProject = await k.resource.getProjectByName('service', 'default');
  for (const role of ['admin', 'service'] as const) await k.assignment.grant({ userId: user.id }, { projectId: serviceProject.id }, ks.boot.roleIds[role]);
  const session = new KeystoneSession(`${ks.url}/v3`, { username: 'cinder', password: 'cinder-pw', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' });
  const nova = new NovaHttp({ session: { tokenId: () => session.tokenId(), endpointUrl: async () => `${novaUrl}/v2.1` }, logger: { error: () => undefined } });
  return { nova, client: new NovaClient(novaUrl, await session.tokenId(), '2.1') };
}
