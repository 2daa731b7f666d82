import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { NovaHttp } from '../../cinder/src/domain/nova.ts';
import type { KeystoneFixture } from '../../keystone/test/fixture.ts';
import { NovaClient } from './fixture.ts';

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
