import { isApiError } from '@onestack/core/errors.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { bootstrap, ensureEndpoints, type Keystone } from '@onestack/keystone/index.ts';
import type { CloudEntry } from './clouds-yaml.ts';
import type { CloudSecrets } from './secrets.ts';

export const ADMIN_CLOUD = 'onestack';
export const DEMO_CLOUD = 'onestack-demo';
export const REGION = 'RegionOne';

/**
 * `keystone-manage bootstrap` plus what devstack adds: a demo project whose
 * `demo` user is a member, and per running service a catalog entry and the
 * service user it declares.
 */
export async function bootstrapCloud(
  ks: Keystone,
  o: { identityUrl: string; secrets: CloudSecrets; services: (Pick<ServiceDefinition, 'type' | 'name' | 'serviceUser'> & { url: string })[] },
): Promise<void> {
  const boot = await bootstrap(ks, {
    adminUsername: 'admin',
    adminPassword: o.secrets.admin_password,
    adminProjectName: 'admin',
    regionId: REGION,
    publicUrl: o.identityUrl,
    internalUrl: o.identityUrl,
    adminUrl: o.identityUrl,
  });
  const demoProject = await ks.resource.getProjectByName('demo', 'default').catch(async (e: unknown) => {
    if (isApiError(e) && e.status === 404) return ks.resource.createProject({ name: 'demo', domainId: 'default', description: 'Demo project' });
    throw e;
  });
  const demoUser = await ks.identity.getUserByName('demo', 'default').catch(async (e: unknown) => {
    if (isApiError(e) && e.status === 404) {
      return ks.identity.createUser({ name: 'demo', domainId: 'default', password: o.secrets.demo_password, defaultProjectId: demoProject.id });
    }
    throw e;
  });
  await ks.assignment.grant({ userId: demoUser.id }, { projectId: demoProject.id }, boot.roleIds.member);
  for (const s of o.services) {
    await ensureEndpoints(ks, { type: s.type, name: s.name, regionId: REGION, urls: { public: s.url, internal: s.url, admin: s.url } });
    if (!s.serviceUser) continue;
    const password = o.secrets.service_passwords[s.name];
    if (!password) throw new Error(`no generated password for the ${s.name} service user in the secrets file`);
    await ensureServiceUser(ks, { name: s.name, password, roles: s.serviceUser.roles });
  }
}

/**
 * A service's own user (devstack's `glance` in project `service` with the
 * `service` role): what it validates tokens and talks to Keystone as.
 * Re-running bootstrap resets its password to the one in the secrets file.
 */
async function ensureServiceUser(ks: Keystone, o: { name: string; password: string; roles: readonly string[] }): Promise<void> {
  const project = await ks.resource.getProjectByName('service', 'default').catch(async (e: unknown) => {
    if (isApiError(e) && e.status === 404) return ks.resource.createProject({ name: 'service', domainId: 'default', description: 'Service users' });
    throw e;
  });
  const user = await ks.identity.getUserByName(o.name, 'default').catch(async (e: unknown) => {
    if (isApiError(e) && e.status === 404) return ks.identity.createUser({ name: o.name, domainId: 'default', password: o.password, defaultProjectId: project.id });
    throw e;
  });
  await ks.identity.updateUser(user.id, { enabled: true, password: o.password }).catch((e: unknown) => {
    // The same password again may trip password history: then it is already right.
    if (!(isApiError(e) && e.status === 400)) throw e;
  });
  for (const name of o.roles) {
    const role = (await ks.assignment.findRoleByName(name)) ?? (await ks.assignment.createRole({ name }));
    await ks.assignment.grant({ userId: user.id }, { projectId: project.id }, role.id);
  }
}

export function cloudEntries(identityUrl: string, secrets: CloudSecrets): Record<string, CloudEntry> {
  const base = { region_name: REGION, interface: 'public', identity_api_version: 3 };
  return {
    [ADMIN_CLOUD]: {
      ...base,
      auth: { auth_url: identityUrl, username: 'admin', password: secrets.admin_password, project_name: 'admin', user_domain_name: 'Default', project_domain_name: 'Default' },
    },
    [DEMO_CLOUD]: {
      ...base,
      auth: { auth_url: identityUrl, username: 'demo', password: secrets.demo_password, project_name: 'demo', user_domain_name: 'Default', project_domain_name: 'Default' },
    },
  };
}
