import { httpTokenValidator } from '@onestack/glance/index.ts';
import { serviceLogger, startServices } from '../runtime.ts';
import { loadOrCreateSecrets, withServicePasswords } from '../secrets.ts';
import { serviceByName } from '../services.ts';
import { loadSettings, serviceUrl } from '../settings.ts';

/**
 * One service alone in this process: the unit of scale-out (`onestack serve
 * keystone`, `onestack serve glance`). Anything but Keystone validates tokens
 * over HTTP against Keystone, as keystonemiddleware does.
 */
export async function serve(name: string, opts: { configFile?: string }): Promise<void> {
  const def = serviceByName(name);
  const loaded = loadSettings(opts.configFile);
  for (const w of loaded.warnings) console.warn(`warning: ${w}`);
  const settings = { ...loaded, values: withServicePasswords(loaded.values, loadOrCreateSecrets(loaded.stateDir).secrets) };
  const validators = { glance: httpTokenValidator } as const;
  const validatorFor = validators[def.name as keyof typeof validators];
  if (def.name !== 'keystone' && !validatorFor) {
    throw new Error(`serving ${def.name} alone needs token validation over HTTP, which arrives with that service`);
  }
  const tokens = validatorFor?.({ config: settings.values, logger: serviceLogger(settings, def.name) });
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
