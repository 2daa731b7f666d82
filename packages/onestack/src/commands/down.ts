import { existsSync, rmSync } from 'node:fs';
import { ADMIN_CLOUD, DEMO_CLOUD } from '../bootstrap-cloud.ts';
import { removeClouds } from '../clouds-yaml.ts';
import { SERVICES } from '../services.ts';
import { secretsPath } from '../secrets.ts';
import { loadSettings } from '../settings.ts';
import { removePid, runningPid } from '../state.ts';

export async function down(opts: { configFile?: string; purge?: boolean }): Promise<void> {
  const settings = loadSettings(opts.configFile);
  const pid = runningPid(settings.stateDir);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    if (!(await exited(pid, 20_000))) {
      process.kill(pid, 'SIGKILL');
      await exited(pid, 5_000);
    }
    console.log(`stopped onestack (pid ${pid})`);
  } else {
    console.log('onestack is not running');
  }
  removePid(settings.stateDir);
  await cleanupServices(settings.values);
  if (opts.purge) {
    // Only a directory onestack made is removed: it holds our secrets file.
    if (existsSync(secretsPath(settings.stateDir))) {
      rmSync(settings.stateDir, { recursive: true, force: true });
      console.log(`removed ${settings.stateDir}`);
    }
    removeClouds([ADMIN_CLOUD, DEMO_CLOUD]);
  }
}

/** What host agents made outside the state dir (namespaces, dnsmasq, nftables): only root made it. */
async function cleanupServices(values: Record<string, Record<string, unknown>>): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const logger = { info: () => {}, warn: (o: object, m?: string) => console.warn(`warning: ${m ?? ''} ${JSON.stringify(o)}`) };
  for (const s of SERVICES) {
    if (!s.cleanup) continue;
    try {
      await s.cleanup(values, logger as never);
      console.log(`cleaned up ${s.name}`);
    } catch (e) {
      console.warn(`warning: cleaning up ${s.name} failed: ${(e as Error).message}`);
    }
  }
}

async function exited(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
