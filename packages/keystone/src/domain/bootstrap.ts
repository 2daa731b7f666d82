import { isApiError } from '@onestack/core/errors.ts';
import { DEFAULT_DOMAIN_ID } from '../db/schema.ts';
import type { Keystone } from './keystone.ts';

export interface BootstrapOptions {
  adminUsername: string;
  adminPassword: string;
  adminProjectName: string;
  regionId: string;
  /** Identity endpoint URLs; omitted interfaces are not created. */
  publicUrl: string;
  internalUrl?: string;
  adminUrl?: string;
}

export interface BootstrapResult {
  adminUserId: string;
  adminProjectId: string;
  roleIds: Record<'admin' | 'member' | 'reader' | 'service', string>;
}

/**
 * What `keystone-manage bootstrap` does, idempotently: the default domain, the
 * admin/member/reader roles with admin ⇒ member ⇒ reader, the admin project and
 * user with admin on it and on the system, the region and the identity
 * service's endpoints. Running it again resets the admin password and fixes
 * drifted endpoint URLs, and never duplicates anything.
 */
export async function bootstrap(ks: Keystone, o: BootstrapOptions): Promise<BootstrapResult> {
  const domain = await orCreate(() => ks.resource.getDomain(DEFAULT_DOMAIN_ID), () =>
    ks.resource.createProject({ id: DEFAULT_DOMAIN_ID, name: 'Default', isDomain: true, description: 'The default domain' }),
  );
  const roleIds = {} as BootstrapResult['roleIds'];
  for (const name of ['admin', 'member', 'reader', 'service'] as const) {
    const role = (await ks.assignment.findRoleByName(name)) ?? (await ks.assignment.createRole({ name }));
    roleIds[name] = role.id;
  }
  const implied = await ks.assignment.listImpliedRoles();
  for (const [prior, next] of [['admin', 'member'], ['member', 'reader']] as const) {
    if (!implied.some((i) => i.priorRoleId === roleIds[prior] && i.impliedRoleId === roleIds[next])) {
      await ks.assignment.createImpliedRole(roleIds[prior], roleIds[next]);
    }
  }
  const project = await orCreate(() => ks.resource.getProjectByName(o.adminProjectName, domain.id), () =>
    ks.resource.createProject({ name: o.adminProjectName, domainId: domain.id, description: 'Bootstrap project for initializing the cloud.' }),
  );
  let user = await orCreate(() => ks.identity.getUserByName(o.adminUsername, domain.id), () =>
    ks.identity.createUser({ name: o.adminUsername, domainId: domain.id, password: o.adminPassword, defaultProjectId: project.id }),
  );
  // Re-running bootstrap is how an operator recovers the admin account.
  user = await ks.identity.updateUser(user.id, { enabled: true, password: o.adminPassword, defaultProjectId: project.id }).catch(async (e: unknown) => {
    // The same password again may trip password history; the account is then already right.
    if (isApiError(e) && e.status === 400) return ks.identity.getUser(user.id);
    throw e;
  });
  await ks.assignment.grant({ userId: user.id }, { projectId: project.id }, roleIds.admin);
  await ks.assignment.grant({ userId: user.id }, { system: 'all' }, roleIds.admin);

  await orCreate(() => ks.catalog.getRegion(o.regionId), () => ks.catalog.createRegion({ id: o.regionId }));
  await ensureEndpoints(ks, {
    type: 'identity',
    name: 'keystone',
    regionId: o.regionId,
    urls: { public: o.publicUrl, internal: o.internalUrl, admin: o.adminUrl },
  });
  return { adminUserId: user.id, adminProjectId: project.id, roleIds };
}

/** A service of the catalog with one endpoint per interface, created or corrected in place. */
export async function ensureEndpoints(
  ks: Keystone,
  s: { type: string; name: string; regionId: string; urls: Partial<Record<'public' | 'internal' | 'admin', string | undefined>> },
): Promise<string> {
  const service = (await ks.catalog.listServices({ type: s.type })).find((x) => x.name === s.name) ?? (await ks.catalog.createService({ type: s.type, name: s.name }));
  const existing = await ks.catalog.listEndpoints({ serviceId: service.id });
  for (const [iface, url] of Object.entries(s.urls) as ['public' | 'internal' | 'admin', string | undefined][]) {
    if (!url) continue;
    const ep = existing.find((e) => e.interface === iface && e.regionId === s.regionId);
    if (!ep) await ks.catalog.createEndpoint({ interface: iface, serviceId: service.id, url, regionId: s.regionId });
    else if (ep.url !== url) await ks.catalog.updateEndpoint(ep.id, { url });
  }
  return service.id;
}

async function orCreate<T>(get: () => Promise<T>, create: () => Promise<T>): Promise<T> {
  try {
    return await get();
  } catch (e) {
    if (isApiError(e) && e.status === 404) return create();
    throw e;
  }
}
