import cluster from 'node:cluster';
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
export async function serve(name: string, opts: { configFile?: string; workers?: number }): Promise<void> {
  const def = serviceByName(name);
  const workers = opts.workers ?? 1;
  if (workers > 1 && cluster.isPrimary) return supervise(def.name, workers);
  const loaded = loadSettings(opts.configFile);
  for (const w of loaded.warnings) console.warn(`warning: ${w}`);
  const settings = { ...loaded, values: withServicePasswords(loaded.values, loadOrCreateSecrets(loaded.stateDir).secrets) };
  let tokens: HttpTokenValidator | undefined;
  // Internal services and host agents take no client tokens.
  if (def.name !== 'keystone' && def.catalog !== false) {
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

/**
 * Several processes of one service sharing its port (node:cluster), as
 * upstream runs several uwsgi workers: a Node process uses one core. Workers
 * share nothing but the database (and for Keystone its cache generation), so a
 * change made through one is seen by the others within a second.
 */
function supervise(name: string, workers: number): void {
  for (let i = 0; i < workers; i++) cluster.fork();
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
  };
  // A worker that dies takes the others down: restarting is the job of whatever supervises onestack.
  cluster.on('exit', (worker, code) => {
    if (stopping) return;
    console.error(`${name} worker ${worker.process.pid} exited (${code}); stopping the others`);
    process.exitCode = 1;
    stop();
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
