/**
 * One real guest booted through the Compute API: Nova (API, conductor, scheduler, a
 * compute host with the QemuDriver) on the same host namespace as a Neutron L2/DHCP agent,
 * the project's guest image in Glance. The boot goes ACTIVE, Neutron reports the port
 * plugged, the guest prints its READY line with the address Neutron's DHCP gave it, and
 * delete leaves no QEMU process, tap, instance directory, port or allocation.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireRoot, tempDir } from '@onestack/testing/index.ts';
import { startApiStack, type ApiStack } from '../../../neutron/src/agent/integration/api-stack.ts';
import { VIF_PLUGGED } from '../../../neutron/src/rpc/server-rpc.ts';
import { startNova, type NovaFixture } from '../../test/fixture.ts';
import { ImageCache } from '../virt/image-cache.ts';
import { QemuDriver } from '../virt/qemu-driver.ts';
import { tapName } from './manager.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const IMAGE_DIR = process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image');
// TCG on two loaded cores: the guest alone takes 5–30 s.
const BOOT_TIMEOUT_MS = 180_000;
const READY = /=== ONESTACK GUEST READY hostname=(\S+) ip=(\S+) uuid=(\S+) metadata=(\S+) uptime=\S+ ===/;

/** The guest image, built once per machine and reused (the build's --reuse check is 0.5 s). */
async function guestImage(): Promise<{ file: string; glance: { disk_format: string; container_format: string; min_disk: number; min_ram: number; properties: Record<string, string> } }> {
  await run(join(ROOT, 'images', 'build.sh'), ['--reuse', IMAGE_DIR], { timeout: 600_000, maxBuffer: 8 * 1024 * 1024 });
  const manifest = JSON.parse(readFileSync(join(IMAGE_DIR, 'onestack-guest.json'), 'utf8'));
  return { file: join(IMAGE_DIR, manifest.files.qcow2.path), glance: manifest.glance };
}

/** Pids whose command line mentions `text` (an instance's QEMU names its uuid in its socket paths). */
function processesNaming(text: string): number[] {
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

async function until<T>(what: string, get: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('a real QEMU guest through the Compute API', { timeout: 400_000 }, () => {
  let stack: ApiStack;
  let fx: NovaFixture;
  let driver: QemuDriver;
  let instancesDir: string;
  let imageId: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    requireRoot('QEMU guests in test namespaces');
    const image = await guestImage();
    stack = await startApiStack({ hosts: 1, tag: 'nq' });
    cleanups.push(() => stack.close());
    fx = await startNova({ ks: stack.fx.ks, neutronUrl: stack.fx.url, config: { vif_plugging_timeout: 120, vif_plugging_is_fatal: true } });
    cleanups.push(() => fx.close());
    const host = stack.hosts[0];
    const dir = tempDir('onestack-nq-');
    chmodSync(dir.path, 0o755);
    cleanups.push(() => dir.remove());
    instancesDir = join(dir.path, 'instances');
    const imageCache = new ImageCache({ dir: join(dir.path, 'cache'), logger: { info: () => {}, warn: () => {} } as never });
    driver = new QemuDriver({ instancesDir, imageCache, logger: { info: () => {}, warn: () => {} }, hostname: host.name, netns: host.ns.name, accel: 'tcg' });
    await fx.addCompute(host.name, { driver, imageCache });

    const img = await fx.glanceAdmin.post('/v2/images', { name: 'onestack-guest', visibility: 'public', disk_format: image.glance.disk_format, container_format: image.glance.container_format, min_disk: image.glance.min_disk, min_ram: image.glance.min_ram, ...image.glance.properties });
    assert.equal(img.status, 201, img.text);
    imageId = img.body.id;
    const up = await fetch(`${fx.glanceAdmin.baseUrl}/v2/images/${imageId}/file`, { method: 'PUT', headers: { 'x-auth-token': fx.ks.admin.token!, 'content-type': 'application/octet-stream' }, body: readFileSync(image.file) });
    assert.equal(up.status, 204);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((err) => console.error('# cleanup failed', err));
  });

  it('boots ACTIVE with its port ACTIVE and a DHCP address; delete leaves no process, tap, disk, port or allocation', async (t) => {
    const net = (await stack.fx.admin.post('/v2.0/networks', { network: { name: 'nq-net' } })).body.network;
    const sub = await stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.73.0.0/24', ip_version: 4, gateway_ip: '10.73.0.1' } });
    assert.equal(sub.status, 201, sub.text);

    const t0 = Date.now();
    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'qemu-guest', imageRef: imageId, flavorRef: '42', networks: [{ uuid: net.id }], config_drive: true } });
    assert.equal(created.status, 202, created.text);
    const id: string = created.body.server.id;

    const active = await fx.waitFor(fx.admin, id, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    const activeMs = Date.now() - t0;
    const ports = (await stack.fx.admin.get(`/v2.0/ports?device_id=${id}`)).body.ports as { id: string; status: string; fixed_ips: { ip_address: string }[]; 'binding:host_id': string }[];
    assert.equal(ports.length, 1);
    const [port] = ports;
    // vif_plugging_is_fatal: ACTIVE means network-vif-plugged arrived; Neutron shows it too.
    assert.equal(port.status, 'ACTIVE');
    assert.equal(port['binding:host_id'], stack.hosts[0].name);
    assert.ok(stack.fx.notifications.some((n) => n.event_type === VIF_PLUGGED && (n.payload as { tag: string }).tag === port.id));
    const fixedIp = port.fixed_ips[0].ip_address;
    assert.deepEqual(active.addresses['nq-net'].map((a: { addr: string }) => a.addr), [fixedIp]);

    const console = async () => {
      const r = await fx.admin.post(`/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': {} });
      assert.equal(r.status, 200, r.text);
      return r.body.output as string;
    };
    const log = await until('the READY line', console, (o) => READY.test(o), BOOT_TIMEOUT_MS);
    const [, hostname, ip, uuid, source] = READY.exec(log)!;
    assert.deepEqual({ hostname, ip, uuid, source }, { hostname: 'qemu-guest', ip: fixedIp, uuid: id, source: 'config-drive' });
    t.diagnostic(`ACTIVE after ${activeMs} ms, READY after ${Date.now() - t0} ms`);

    const pidFile = join(instancesDir, id, 'qemu.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    assert.deepEqual(processesNaming(id), [pid]);
    const tap = tapName(port.id);
    const links = async () => (await stack.hosts[0].agent.ip.linkList(stack.hosts[0].ns.name)).map((l) => l.ifname);
    assert.ok((await links()).includes(tap));
    assert.equal(Object.keys((await fx.nova.core.placement.allocations(id)).allocations).length, 1, 'the boot holds one allocation');

    assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    // A killed daemonized QEMU may linger a moment as a zombie of PID 1: a process with the instance in its argv is what must be gone.
    assert.deepEqual(processesNaming(id), [], 'QEMU process gone');
    assert.equal(existsSync(join(instancesDir, id)), false, 'instance directory gone');
    assert.equal((await links()).includes(tap), false, 'tap gone');
    assert.equal((await stack.fx.admin.get(`/v2.0/ports/${port.id}`)).status, 404, 'port gone');
    assert.deepEqual((await fx.nova.core.placement.allocations(id)).allocations, {}, 'no allocation left');
  });
});
