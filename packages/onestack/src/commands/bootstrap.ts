import { keystoneService, openKeystoneDomain } from '@onestack/keystone/index.ts';
import { bootstrapCloud } from '../bootstrap-cloud.ts';
import { identityUrl, serviceLogger, syncDatabase } from '../runtime.ts';
import type { CloudSecrets } from '../secrets.ts';
import { SERVICES } from '../services.ts';
import { serviceUrl, type Settings } from '../settings.ts';

/**
 * keystone-manage bootstrap, on the identity database directly (so it works
 * before the API is up): admin and demo accounts, roles, region, and a
 * catalog entry for every service onestack runs.
 */
export async function bootstrapIdentity(settings: Settings, secrets: CloudSecrets): Promise<void> {
  const logger = serviceLogger(settings, keystoneService.name);
  const db = await syncDatabase(settings, keystoneService, logger);
  const ks = await openKeystoneDomain({ config: settings.values, publicUrl: serviceUrl(settings, 'keystone'), db, logger });
  try {
    const services = SERVICES.filter((s) => s.name !== 'keystone' && s.catalog !== false).flatMap((s) => {
      const url = serviceUrl(settings, s.name) + (s.catalogPath ?? '');
      return [{ type: s.type, name: s.name, serviceUser: s.serviceUser, url }, ...(s.catalogAliases ?? []).map((a) => ({ ...a, url }))];
    });
    await bootstrapCloud(ks, { identityUrl: identityUrl(settings), secrets, services });
  } finally {
    await ks.close();
    await db.close();
  }
}
