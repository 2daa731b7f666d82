/**
 * Server actions on real QEMU guests (one compute host with the QemuDriver beside a
 * Neutron L2/DHCP agent): resize grows the memory and root disk the guest's kernel sees,
 * createImage makes a Glance snapshot a new server boots from, rebuild puts the guest on
 * another image, shelve/unshelve brings it back from its shelved image. One guest is
 * reused throughout; each step waits for the guest's READY line on the serial console.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireRoot, tempDir } from '@onestack/testing/index.ts';
import { startApiStack, type ApiStack } from '../../../neutron/src/agent/integration/api-stack.ts';
import { startNova, type NovaFixture } from '../../test/fixture.ts';
import { ImageCache } from '../virt/image-cache.ts';
import { QemuDriver } from '../virt/qemu-driver.ts';

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

async function until<T>(what: string, get: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('server actions on a real QEMU guest', { timeout: 900_000 }, () => {
  let stack: ApiStack;
  let fx: NovaFixture;
  let imageId: string;
  let driver: QemuDriver;
  let netId: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    requireRoot('QEMU guests in test namespaces');
    const image = await guestImage();
    stack = await startApiStack({ hosts: 1, tag: 'na' });
    cleanups.push(() => stack.close());
    fx = await startNova({ ks: stack.fx.ks, neutronUrl: stack.fx.url, config: { vif_plugging_timeout: 120, vif_plugging_is_fatal: true } });
    cleanups.push(() => fx.close());
    const host = stack.hosts[0];
    const dir = tempDir('onestack-na-');
    chmodSync(dir.path, 0o755);
    cleanups.push(() => dir.remove());
    const imageCache = new ImageCache({ dir: join(dir.path, 'cache'), logger: { info: () => {}, warn: () => {} } as never });
    driver = new QemuDriver({ instancesDir: join(dir.path, 'instances'), imageCache, logger: { info: () => {}, warn: () => {} }, hostname: host.name, netns: host.ns.name, accel: 'tcg' });
    await fx.addCompute(host.name, { driver, imageCache });

    const img = await fx.glanceAdmin.post('/v2/images', { name: 'onestack-guest', visibility: 'public', disk_format: image.glance.disk_format, container_format: image.glance.container_format, min_disk: image.glance.min_disk, min_ram: image.glance.min_ram, ...image.glance.properties });
    assert.equal(img.status, 201, img.text);
    imageId = img.body.id;
    const up = await fetch(`${fx.glanceAdmin.baseUrl}/v2/images/${imageId}/file`, { method: 'PUT', headers: { 'x-auth-token': fx.ks.admin.token!, 'content-type': 'application/octet-stream' }, body: readFileSync(image.file) });
    assert.equal(up.status, 204);
    const net = (await stack.fx.admin.post('/v2.0/networks', { network: { name: 'na-net' } })).body.network;
    netId = net.id;
    const sub = await stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.74.0.0/24', ip_version: 4, gateway_ip: '10.74.0.1' } });
    assert.equal(sub.status, 201, sub.text);
    const flavor = await fx.admin.post('/v2.1/flavors', { flavor: { name: 'na.bigger', id: 'na-bigger', ram: 256, vcpus: 1, disk: 2 } });
    assert.equal(flavor.status, 200, flavor.text);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((err) => console.error('# cleanup failed', err));
  });

  const action = async (id: string, body: unknown, status = 202) => {
    const r = await fx.admin.at('2.45').post(`/v2.1/servers/${id}/action`, body);
    assert.equal(r.status, status, r.text);
    return r.body;
  };
  const consoleOf = async (id: string) => {
    const r = await fx.admin.post(`/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': {} });
    return r.status === 200 ? (r.body.output as string) : '';
  };
  /** The log is appended across power cycles: a new boot is one more READY line. */
  const readyCount = async (id: string) => (await consoleOf(id)).match(new RegExp(READY.source, 'g'))?.length ?? 0;
  const bootedAgain = async (id: string, before: number) => until(`boot ${before + 1} of ${id}`, () => readyCount(id), (n) => n > before, BOOT_TIMEOUT_MS);
  /**
   * What the running guest itself sees: logs in on its serial console (the image's
   * documented console user) and reads MemTotal (KiB) and the root disk's size in 512-byte sectors.
   */
  const guestSees = async (id: string): Promise<{ memKb: number; blocks: number }> => {
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
      sock.write('echo "SEEN mem=$(grep MemTotal /proc/meminfo | tr -s \' \' | cut -d\' \' -f2) blocks=$(cat /sys/block/vda/size) END"; exit\n');
      const m = /SEEN mem=(\d+) blocks=(\d+) END/.exec(await expect(/SEEN mem=\d+ blocks=\d+ END/))!;
      return { memKb: Number(m[1]), blocks: Number(m[2]) };
    } finally {
      sock.destroy();
    }
  };
  const waitStatus = (id: string, status: string) => fx.waitFor(fx.admin, id, (s) => (s.status === status && !s['OS-EXT-STS:task_state']) || s.status === 'ERROR', BOOT_TIMEOUT_MS);
  const waitImage = (id: string) => until(`image ${id} active`, async () => (await fx.glanceAdmin.get(`/v2/images/${id}`)).body, (b) => b?.status === 'active', BOOT_TIMEOUT_MS);

  it('resizes (memory and disk grow in the guest), snapshots, boots the snapshot, rebuilds and shelves/unshelves', async (t) => {
    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'na-guest', imageRef: imageId, flavorRef: '42', networks: [{ uuid: netId }], config_drive: true } });
    assert.equal(created.status, 202, created.text);
    const id: string = created.body.server.id;
    assert.equal((await waitStatus(id, 'ACTIVE')).status, 'ACTIVE');
    await bootedAgain(id, 0);
    const small = await guestSees(id);
    assert.equal(small.blocks, 2 * 1024 * 1024, 'a 1 GiB root disk');

    let t0 = Date.now();
    await action(id, { resize: { flavorRef: 'na-bigger' } });
    const resized = await waitStatus(id, 'VERIFY_RESIZE');
    assert.equal(resized.status, 'VERIFY_RESIZE', JSON.stringify(resized.fault ?? resized));
    await bootedAgain(id, 1);
    const big = await guestSees(id);
    assert.equal(big.blocks, 4 * 1024 * 1024, 'the root disk grew to 2 GiB');
    assert.ok(big.memKb > small.memKb + 100 * 1024, `memory ${small.memKb} KiB -> ${big.memKb} KiB`);
    await action(id, { confirmResize: null }, 204);
    assert.equal((await waitStatus(id, 'ACTIVE')).flavor.original_name, 'na.bigger');
    t.diagnostic(`resize: ${Date.now() - t0} ms`);

    t0 = Date.now();
    const { image_id: snapId } = await action(id, { createImage: { name: 'na-snap' } });
    const snap = await waitImage(snapId);
    assert.equal(snap.image_type, 'snapshot');
    assert.equal(snap.base_image_ref, imageId);
    await waitStatus(id, 'ACTIVE');
    // A new server from the snapshot, while the first guest is rebuilt onto it.
    const fromSnap = await fx.admin.post('/v2.1/servers', { server: { name: 'na-from-snap', imageRef: snapId, flavorRef: 'na-bigger', networks: [{ uuid: netId }], config_drive: true } });
    assert.equal(fromSnap.status, 202, fromSnap.text);
    const id2: string = fromSnap.body.server.id;
    const rebuilt = await action(id, { rebuild: { imageRef: snapId, name: 'na-rebuilt' } });
    assert.equal(rebuilt.server.image.id, snapId);
    assert.equal((await waitStatus(id2, 'ACTIVE')).status, 'ACTIVE');
    assert.equal((await waitStatus(id, 'ACTIVE')).image.id, snapId);
    await bootedAgain(id2, 0);
    await bootedAgain(id, 0);
    assert.equal((await guestSees(id2)).blocks, 4 * 1024 * 1024);
    assert.equal((await fx.admin.delete(`/v2.1/servers/${id2}`)).status, 204);
    t.diagnostic(`snapshot, boot from it and rebuild: ${Date.now() - t0} ms`);

    t0 = Date.now();
    await action(id, { shelve: null });
    const shelved = await waitStatus(id, 'SHELVED_OFFLOADED');
    assert.equal(shelved.status, 'SHELVED_OFFLOADED', JSON.stringify(shelved.fault ?? shelved));
    await action(id, { unshelve: null });
    assert.equal((await waitStatus(id, 'ACTIVE')).status, 'ACTIVE');
    const [, hostname] = READY.exec(await until('READY after unshelve', () => consoleOf(id), (o) => READY.test(o), BOOT_TIMEOUT_MS))!;
    assert.equal(hostname, 'na-guest', 'the guest keeps its hostname');
    t.diagnostic(`shelve and unshelve: ${Date.now() - t0} ms`);
    assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    await fx.waitFor(fx.admin, id2, (s) => s.status === 'DELETED', 90_000);
  });
});
