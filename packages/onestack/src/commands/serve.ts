import { startServices } from '../runtime.ts';
import { serviceByName } from '../services.ts';
import { loadSettings, serviceUrl } from '../settings.ts';

/** One service alone in this process: the unit of scale-out (`onestack serve keystone`). */
export async function serve(name: string, opts: { configFile?: string }): Promise<void> {
  const def = serviceByName(name);
  const settings = loadSettings(opts.configFile);
  for (const w of settings.warnings) console.warn(`warning: ${w}`);
  if (def.name !== 'keystone') {
    throw new Error(`serving ${def.name} alone needs token validation over HTTP, which arrives with that service`);
  }
  const cloud = await startServices(settings, [def]);
  console.log(`${def.name} listening at ${serviceUrl(settings, def.name)}`);
  const stop = async () => {
    await cloud.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
