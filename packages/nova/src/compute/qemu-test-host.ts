/**
 * The set-up the real-QEMU tests share: one compute host with the QemuDriver (TCG) in the
 * host namespace of a Neutron API stack with its L2/DHCP agent, Nova on that stack's
 * Keystone and Neutron, and the project's guest image uploaded to Glance. Root only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import { requireRoot, tempDir } from '@onestack/testing/index.ts';
import { NovaHttp, type ComputeApi } from '../../../cinder/src/domain/nova.ts';
import { startApiStack, type ApiStack } from '../../../neutron/src/agent/integration/api-stack.ts';
import { startNova, type NovaFixture } from '../../test/fixture.ts';
import type { NovaValues } from '../conf.ts';
import { ImageCache } from '../virt/image-cache.ts';
import { QemuDriver } from '../virt/qemu-driver.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const IMAGE_DIR = process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image');
const quiet = { info: () => {}, warn: () => {} };

/** TCG on two loaded cores: the guest alone takes 5–30 s. */
export const BOOT_TIMEOUT_MS = 180_000;
/** The line the guest image prints on its console once booted. */
export const READY = /=== ONESTACK GUEST READY hostname=(\S+) ip=(\S+) uuid=(\S+) metadata=(\S+) uptime=\S+ ===/;

export interface QemuTestHost {
  stack: ApiStack;
  fx: NovaFixture;
  /** The first host's (the network host's). */
  driver: QemuDriver;
  instancesDir: string;
  /** One per host of the stack, in its order: a compute host named as that host's Neutron agent, QEMU in its namespace. */
  computes: { name: string; driver: QemuDriver; instancesDir: string }[];
  /** The guest image in Glance, public. */
  imageId: string;
  /** Runs every clean-up, last set up first; clean-ups added by the test run before them. */
  cleanups: (() => Promise<void> | void)[];
  close(): Promise<void>;
}

/** `tag` names the namespaces and directories (keep it short and unique per test file); `hosts: 2` adds a second host joined over VXLAN. */
/** `services` starts what Nova talks to beyond the stack (a Cinder on the stack's Keystone …) and answers Nova's settings for it. */
export async function startQemuTestHost(tag: string, opts: { nova?: Partial<NovaValues>; vnc?: 'unix'; hosts?: 1 | 2; services?: (stack: ApiStack, cleanups: (() => Promise<void> | void)[]) => Promise<Partial<NovaValues>> } = {}): Promise<QemuTestHost> {
  requireRoot('QEMU guests in test namespaces');
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((err) => console.error('# cleanup failed', err));
  };
  try {
    const image = await guestImage();
    const stack = await startApiStack({ hosts: opts.hosts ?? 1, tag });
    cleanups.push(() => stack.close());
    const extra = opts.services ? await opts.services(stack, cleanups) : {};
    const fx = await startNova({ ks: stack.fx.ks, neutronUrl: stack.fx.url, config: { ...opts.nova, ...extra } });
    cleanups.push(() => fx.close());
    const computes: QemuTestHost['computes'] = [];
    for (const [i, host] of stack.hosts.entries()) {
      const dir = tempDir(`onestack-${tag}${i || ''}-`);
      // QEMU and dnsmasq run as other users and must reach their files below it.
      chmodSync(dir.path, 0o755);
      cleanups.push(() => dir.remove());
      const instancesDir = join(dir.path, 'instances');
      const imageCache = new ImageCache({ dir: join(dir.path, 'cache'), logger: quiet });
      const driver = new QemuDriver({ instancesDir, imageCache, logger: quiet, hostname: host.name, netns: host.ns.name, accel: 'tcg', ...(opts.vnc && { vnc: opts.vnc }) });
      await fx.addCompute(host.name, { driver, imageCache });
      computes.push({ name: host.name, driver, instancesDir });
    }
    const imageId = await uploadGuestImage(fx, image);
    return { stack, fx, driver: computes[0]!.driver, instancesDir: computes[0]!.instancesDir, computes, imageId, cleanups, close };
  } catch (e) {
    await close();
    throw e;
  }
}

interface GuestImage {
  file: string;
  glance: { disk_format: string; container_format: string; min_disk: number; min_ram: number; properties: Record<string, string> };
}

/** The guest image, built once per machine and reused (the build's --reuse check is 0.5 s). */
async function guestImage(): Promise<GuestImage> {
  await run(join(ROOT, 'images', 'build.sh'), ['--reuse', IMAGE_DIR], { timeout: 600_000, maxBuffer: 8 * 1024 * 1024 });
  const manifest = JSON.parse(readFileSync(join(IMAGE_DIR, 'onestack-guest.json'), 'utf8'));
  return { file: join(IMAGE_DIR, manifest.files.qcow2.path), glance: manifest.glance };
}

async function uploadGuestImage(fx: NovaFixture, image: GuestImage): Promise<string> {
  const g = image.glance;
  const img = await fx.glanceAdmin.post('/v2/images', { name: 'onestack-guest', visibility: 'public', disk_format: g.disk_format, container_format: g.container_format, min_disk: g.min_disk, min_ram: g.min_ram, ...g.properties });
  assert.equal(img.status, 201, img.text);
  const up = await fetch(`${fx.glanceAdmin.baseUrl}/v2/images/${img.body.id}/file`, { method: 'PUT', headers: { 'x-auth-token': fx.ks.admin.token!, 'content-type': 'application/octet-stream' }, body: readFileSync(image.file) });
  assert.equal(up.status, 204);
  return img.body.id as string;
}

/** Polls `get` every half second until `done`, or throws with the last value after `timeoutMs`. */
export async function until<T>(what: string, get: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The guest's console log through the Compute API (os-getConsoleOutput); empty while there is none. */
export async function consoleOutput(fx: NovaFixture, id: string): Promise<string> {
  const r = await fx.admin.post(`/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': {} });
  return r.status === 200 ? (r.body.output as string) : '';
}

/** Boots the guest image without a network (flavor 42; `extra` server fields such as user_data) and waits for its READY line: the server's id. */
export async function bootGuest(h: QemuTestHost, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await h.fx.admin.post('/v2.1/servers', { server: { name, imageRef: h.imageId, flavorRef: '42', networks: 'none', ...extra } });
  assert.equal(created.status, 202, created.text);
  const id: string = created.body.server.id;
  const s = await h.fx.waitFor(h.fx.admin, id, (x) => x.status !== 'BUILD', BOOT_TIMEOUT_MS);
  assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault ?? s));
  await until('guest READY', () => consoleOutput(h.fx, id), (o) => READY.test(o), BOOT_TIMEOUT_MS);
  return id;
}

/**
 * What the running guest itself answers: logs in on its serial console as the image's
 * documented console user, runs `command` and logs out; answers the first match of `result`
 * in what the guest printed after the command line (so `result` must not match the command's
 * own echo, e.g. `echo "X $(…) END"` matched by /X \d+ END/).
 */
export async function runOnSerialConsole(driver: QemuDriver, id: string, command: string, result: RegExp): Promise<RegExpExecArray> {
  const ep = await driver.getSerialConsole(id);
  assert.equal(ep.kind, 'unix');
  const sock = connect((ep as { path: string }).path);
  let out = '';
  sock.on('data', (b) => (out += b.toString('latin1')));
  const expect = (re: RegExp) => until(`serial console ${re}`, async () => out, (o) => re.test(o), 60_000);
  try {
    await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
    sock.write('\n');
    await expect(/login: $/m);
    sock.write('cirros\n');
    await expect(/assword: ?$/m);
    sock.write('gocubsgo\n');
    // busybox's line editor asks for the cursor position (ESC[6n) after the prompt.
    await expect(/\$ /);
    out = '';
    sock.write(`${command}; exit\n`);
    return result.exec(await expect(result))!;
  } finally {
    sock.destroy();
  }
}

/** Pids whose command line mentions `text` (an instance's QEMU names its uuid in its socket paths). */
export function processesNaming(text: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Cinder's client of this stack's Nova, signed in as a `cinder` user of the service project
 * with the given roles (the deployment gives it admin and service, upstream's [nova] user).
 */
export async function novaAsCinder(fx: NovaFixture, roles: readonly ('admin' | 'service')[]): Promise<ComputeApi> {
  const k = fx.ks.ks;
  const serviceProject = (await k.resource.listProjects({ name: 'service' }))[0]!;
  const user = await k.identity.createUser({ name: 'cinder', domainId: 'default', password: 'cinder-pw' });
  for (const role of roles) await k.assignment.grant({ userId: user.id }, { projectId: serviceProject.id }, fx.ks.boot.roleIds[role]);
  const session = new KeystoneSession(`${fx.ks.url}/v3`, { username: 'cinder', password: 'cinder-pw', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' });
  return new NovaHttp({ session: { tokenId: () => session.tokenId(), endpointUrl: async () => `${fx.url}/v2.1` }, logger: pino({ level: 'silent' }) });
}
