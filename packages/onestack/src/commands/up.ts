import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { keystoneService } from '@onestack/keystone/index.ts';
import { novaService } from '@onestack/nova/index.ts';
import { bootstrapIdentity } from './bootstrap.ts';
import { COMPUTE_READY_TIMEOUT_MS, waitForCompute } from './compute-ready.ts';
import { GUEST_IMAGE_TIMEOUT_MS, provideGuestImage } from './guest-image.ts';
import { ensurePublicNetwork, PUBLIC_NETWORK } from './public-network.ts';
import { cloudEntries, ADMIN_CLOUD, DEMO_CLOUD } from '../bootstrap-cloud.ts';
import { cloudsYamlPath, mergeClouds } from '../clouds-yaml.ts';
import { startServices } from '../runtime.ts';
import { loadOrCreateSecrets, withServicePasswords } from '../secrets.ts';
import { SERVICES } from '../services.ts';
import { loadSettings, serviceUrl, type Settings } from '../settings.ts';
import { removePid, runningPid, writePid } from '../state.ts';

export interface UpOptions {
  configFile?: string;
  detach?: boolean;
}

export async function up(opts: UpOptions): Promise<void> {
  const loaded = loadSettings(opts.configFile);
  const pid = runningPid(loaded.stateDir);
  if (pid) throw new Error(`onestack is already running (pid ${pid}); stop it with: onestack down`);
  if (opts.detach) return detach(loaded, opts);
  for (const w of loaded.warnings) console.warn(`warning: ${w}`);
  const root = process.getuid?.() === 0;
  const services = root ? SERVICES : SERVICES.filter((s) => !s.requiresRoot);
  if (!root) {
    const off = SERVICES.filter((s) => s.requiresRoot).map((s) => s.name);
    console.warn(
      `note: not running as root, so the data plane is OFF${off.length ? ` (not started: ${off.join(', ')})` : ''}: the APIs work, but no bridges, namespaces, DHCP, nftables or QEMU taps are made, ports stay DOWN and guests get no network. Run onestack up as root for it.`,
    );
  }

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
    cloud = await startServices(settings, services);
  } catch (e) {
    removePid(settings.stateDir);
    throw e;
  }
  const identityUrl = `${serviceUrl(settings, keystoneService.name)}/v3`;
  mergeClouds(cloudEntries(identityUrl, secrets));
  if ((settings.values.onestack as { create_public_network?: boolean }).create_public_network) {
    await ensurePublicNetwork({ identityUrl, adminPassword: secrets.admin_password }).then(
      (r) => r === 'created' && console.log(`External network ${PUBLIC_NETWORK} (172.24.4.0/24, gateway 172.24.4.1) created.`),
      (e: Error) => console.warn(`warning: the ${PUBLIC_NETWORK} network could not be created: ${e.message}`),
    );
  }
  await provideGuestImage(settings, { identityUrl, adminPassword: secrets.admin_password });
  if (services.includes(novaService) && (settings.values.nova as { run_compute: boolean }).run_compute) {
    await waitForCompute({ identityUrl, adminPassword: secrets.admin_password }).catch((e: Error) => console.warn(`warning: ${e.message}`));
  }
  printSummary(settings, created);
  process.send?.('up');
}

function printSummary(settings: Settings, firstRun: boolean): void {
  console.log('onestack is up.');
  for (const s of SERVICES.filter((x) => x.catalog !== false)) console.log(`  ${s.name.padEnd(10)} ${serviceUrl(settings, s.name)}`);
  console.log(`\nCredentials are in ${cloudsYamlPath()} (clouds "${ADMIN_CLOUD}" and "${DEMO_CLOUD}")${firstRun ? ', with a freshly generated admin password' : ''}.`);
  console.log(`Try:  openstack --os-cloud ${ADMIN_CLOUD} token issue`);
  console.log(`State: ${settings.stateDir}   Logs: onestack logs keystone   Stop: onestack down (or Ctrl-C)`);
}

/**
 * Re-runs this command in the background, waits until it says it is up
 * (services answering, guest image registered, nova-compute registered), prints what it printed, and returns.
 */
async function detach(settings: Settings, opts: UpOptions): Promise<void> {
  mkdirSync(settings.logDir, { recursive: true });
  const logFile = join(settings.logDir, 'onestack.log');
  const out = openSync(logFile, 'a');
  const from = fstatSync(out).size;
  const args = [...process.execArgv, process.argv[1]!, 'up', ...(opts.configFile ? ['--config-file', opts.configFile] : [])];
  // Services answer before the guest image is registered: only the child knows when it is done.
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out, 'ipc'], env: process.env });
  closeSync(out);
  const timeoutMs = 60_000 + GUEST_IMAGE_TIMEOUT_MS + COMPUTE_READY_TIMEOUT_MS;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`onestack did not come up within ${timeoutMs / 1000} s; see ${logFile}`)), timeoutMs);
      child.once('message', () => (clearTimeout(timer), resolve()));
      child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`onestack up exited with code ${code}; see ${logFile}`))));
    });
  } finally {
    if (child.connected) child.disconnect();
    child.unref();
  }
  // Its warnings and summary, as a foreground `up` shows them.
  const fd = openSync(logFile, 'r');
  const printed = Buffer.alloc(fstatSync(fd).size - from);
  readSync(fd, printed, 0, printed.length, from);
  closeSync(fd);
  process.stdout.write(printed);
  console.log(`(running in the background, pid ${child.pid})`);
}
