import { HttpTokenValidator } from '@onestack/core/auth/index.ts';
import { serviceIdentity } from '@onestack/core/config/index.ts';
import { identityUrl, serviceLogger, startServices } from '../runtime.ts';
import { loadOrCreateSecrets, withServicePasswords } from '../secrets.ts';
import { serviceByName } from '../services.ts';
import { loadSettings, serviceUrl } from '../settings.ts';

/**
 * One service alone in this process: the unit of scale-out (`onestack serve
 * keystone`, `onestack serve glance`). Anything but Keystone validates tokens
 * over HTTP against Keystone as its service user, as keystonemiddleware does.
 */
export async function serve(name: string, opts: { configFile?: string }): Promise<void> {
  const def = serviceByName(name);
  const loaded = loadSettings(opts.configFile);
  for (const w of loaded.warnings) console.warn(`warning: ${w}`);
  const settings = { ...loaded, values: withServicePasswords(loaded.values, loadOrCreateSecrets(loaded.stateDir).secrets) };
  let tokens: HttpTokenValidator | undefined;
  if (def.name !== 'keystone') {
    if (!def.serviceUser) throw new Error(`serving ${def.name} alone needs a Keystone service user to validate tokens, and ${def.name} declares none`);
    const { authUrl, credentials } = serviceIdentity(settings.values[def.name], identityUrl(settings));
    tokens = new HttpTokenValidator({ authUrl, serviceCredentials: credentials, logger: serviceLogger(settings, def.name) });
  }
  const cloud = await startServices(settings, [def], { tokens });
  console.log(`${def.name} listening at ${serviceUrl(settings, def.name)}`);
  const stop = async () => {
    await tokens?.close();
    await cloud.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
