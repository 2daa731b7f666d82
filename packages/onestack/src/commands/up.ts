import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { keystoneService } from '@onestack/keystone/index.ts';
import { bootstrapIdentity } from './bootstrap.ts';
import { cloudEntries, ADMIN_CLOUD, DEMO_CLOUD } from '../bootstrap-cloud.ts';
import { cloudsYamlPath, mergeClouds } from '../clouds-yaml.ts';
import { startServices } from '../runtime.ts';
import { loadOrCreateSecrets, withServicePasswords } from '../secrets.ts';
import { SERVICES } from '../services.ts';
import { loadSettings, serviceUrl, type Settings } from '../settings.ts';
import { removePid, runningPid, writePid } from '../state.ts';
import { healthOf } from './status.ts';

export interface UpOptions {
  configFile?: string;
  detach?: boolean;
}

export async function up(opts: UpOptions): Promise<void> {
  const loaded = loadSettings(opts.configFile);
  for (const w of loaded.warnings) console.warn(`warning: ${w}`);
  const pid = runningPid(loaded.stateDir);
  if (pid) throw new Error(`onestack is already running (pid ${pid}); stop it with: onestack down`);
  if (process.getuid?.() !== 0) {
    console.warn(
      'note: not running as root. Keystone runs fully; the data plane of later services (bridges, namespaces, nftables, QEMU taps) needs root and will be unavailable.',
    );
  }
  if (opts.detach) return detach(loaded, opts);

  mkdirSync(loaded.stateDir, { recursive: true, mode: 0o700 });
  writePid(loaded.stateDir);
  const { secrets, created } = loadOrCreateSecrets(loaded.stateDir);
  const settings = { ...loaded, values: withServicePasswords(loaded.values, secrets) };
  let cloud: Awaited<ReturnType<typeof startServices>> | undefined;
  const stop = async (signal: string) => {
    console.log(`\n${signal}: stopping onestack…`);
    await cloud?.close();
    removePid(settings.stateDir);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  try {
    await bootstrapIdentity(settings, secrets);
    cloud = await startServices(settings, SERVICES);
  } catch (e) {
    removePid(settings.stateDir);
    throw e;
  }
  const identityUrl = `${serviceUrl(settings, keystoneService.name)}/v3`;
  mergeClouds(cloudEntries(identityUrl, secrets));
  printSummary(settings, created);
}

function printSummary(settings: Settings, firstRun: boolean): void {
  console.log('onestack is up.');
  for (const s of SERVICES) console.log(`  ${s.name.padEnd(10)} ${serviceUrl(settings, s.name)}`);
  console.log(`\nCredentials are in ${cloudsYamlPath()} (clouds "${ADMIN_CLOUD}" and "${DEMO_CLOUD}")${firstRun ? ', with a freshly generated admin password' : ''}.`);
  console.log(`Try:  openstack --os-cloud ${ADMIN_CLOUD} token issue`);
  console.log(`State: ${settings.stateDir}   Logs: onestack logs keystone   Stop: onestack down (or Ctrl-C)`);
}

/** Re-runs this command in the background, waits until every service answers, and returns. */
async function detach(settings: Settings, opts: UpOptions): Promise<void> {
  mkdirSync(settings.logDir, { recursive: true });
  const out = openSync(join(settings.logDir, 'onestack.log'), 'a');
  const args = [...process.execArgv, process.argv[1]!, 'up', ...(opts.configFile ? ['--config-file', opts.configFile] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], env: process.env });
  closeSync(out);
  child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`onestack up exited with code ${child.exitCode}; see ${join(settings.logDir, 'onestack.log')}`);
    const health = await Promise.all(SERVICES.map((s) => healthOf(serviceUrl(settings, s.name))));
    if (health.every((h) => h.status === 'up')) {
      printSummary(settings, false);
      console.log(`(running in the background, pid ${child.pid})`);
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`services did not come up within 60 s; see ${join(settings.logDir, 'onestack.log')}`);
}
