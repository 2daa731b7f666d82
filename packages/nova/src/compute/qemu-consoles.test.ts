/**
 * A real QEMU guest on a test namespace with Neutron's agent: remote consoles and NIC
 * hot-plug. The Compute API hands out noVNC and serial URLs; through the websocket proxies
 * a client gets QEMU's own RFB banner from the guest's VNC unix socket and the guest's
 * getty; logged in on that serial console, the guest shows the MAC of an interface
 * attached through os-interface, and no longer after the detach.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { WebSocket } from 'ws';
import { requireRoot, tempDir } from '@onestack/testing/index.ts';
import { startApiStack } from '../../../neutron/src/agent/integration/api-stack.ts';
import { startNova, type NovaFixture } from '../../test/fixture.ts';
import { ConsoleProxy } from '../console/proxy.ts';
import { ImageCache } from '../virt/image-cache.ts';
import { QemuDriver } from '../virt/qemu-driver.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const IMAGE_DIR = process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image');
// TCG on two loaded cores: the guest alone takes 5–30 s, often more.
const BOOT_TIMEOUT_MS = 240_000;

/** Collects what the websocket delivers until `done` holds, sending `poke` every few seconds (a getty prints its prompt on input). */
function collect(url: string, done: (text: string) => boolean, timeoutMs: number, poke?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['binary']);
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      clearInterval(timer);
      clearTimeout(deadline);
      ws.terminate();
      if (err) reject(err);
      else resolve(text);
    };
    const deadline = setTimeout(() => finish(new Error(`timed out; got ${JSON.stringify(text.slice(-500))}`)), timeoutMs);
    ws.on('unexpected-response', (_req, res) => finish(new Error(`status ${res.statusCode}`)));
    ws.on('error', (err) => finish(err));
    ws.on('open', () => {
      if (poke) timer = setInterval(() => ws.send(Buffer.from(poke)), 3000);
    });
    ws.on('message', (d) => {
      text += d.toString('latin1');
      if (done(text)) finish();
    });
  });
}

/** A serial console session: everything the guest wrote so far, and a way to type and wait for output. */
async function serialSession(url: string) {
  const ws = new WebSocket(url, ['binary']);
  let text = '';
  ws.on('message', (d) => (text += d.toString('latin1')));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
  const expect = async (re: RegExp, timeoutMs: number, poke?: string) => {
    const from = text.length;
    const end = Date.now() + timeoutMs;
    let lastPoke = 0;
    while (!re.test(text.slice(from))) {
      if (Date.now() > end) throw new Error(`waited for ${re}; got ${JSON.stringify(text.slice(from).slice(-500))}`);
      if (poke && Date.now() - lastPoke > 3000) {
        ws.send(Buffer.from(poke));
        lastPoke = Date.now();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return text.slice(from);
  };
  return { send: (s: string) => ws.send(Buffer.from(s)), expect, close: () => ws.terminate() };
}

const tokenOf = (url: string) => decodeURIComponent(url).match(/token=([0-9a-f-]{36})/)![1];

describe('remote consoles of a real QEMU guest', { timeout: 600_000 }, () => {
  let fx: NovaFixture;
  let vnc: ConsoleProxy;
  let serial: ConsoleProxy;
  let vncPort: number;
  let serialPort: number;
  let id: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  let netB: string;

  before(async () => {
    requireRoot('QEMU guests in test namespaces');
    await run(join(ROOT, 'images', 'build.sh'), ['--reuse', IMAGE_DIR], { timeout: 600_000, maxBuffer: 8 * 1024 * 1024 });
    const manifest = JSON.parse(readFileSync(join(IMAGE_DIR, 'onestack-guest.json'), 'utf8'));
    const stack = await startApiStack({ hosts: 1, tag: 'nqc' });
    cleanups.push(() => stack.close());
    fx = await startNova({ ks: stack.fx.ks, neutronUrl: stack.fx.url });
    cleanups.push(() => fx.close());
    const host = stack.hosts[0];
    const dir = tempDir('onestack-nqc-');
    chmodSync(dir.path, 0o755);
    cleanups.push(() => dir.remove());
    const quiet = { info: () => {}, warn: () => {} };
    const imageCache = new ImageCache({ dir: join(dir.path, 'cache'), logger: quiet as never });
    // VNC on a unix socket: what a proxy in another namespace than the guest's can reach.
    const driver = new QemuDriver({ instancesDir: join(dir.path, 'instances'), imageCache, logger: quiet, hostname: host.name, netns: host.ns.name, accel: 'tcg', vnc: 'unix' });
    await fx.addCompute(host.name, { driver, imageCache });
    const net = async (name: string, cidr: string) => {
      const n = (await stack.fx.admin.post('/v2.0/networks', { network: { name } })).body.network.id as string;
      const sub = await stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: n, cidr, ip_version: 4 } });
      assert.equal(sub.status, 201, sub.text);
      return n;
    };
    const netA = await net('nqc-a', '10.74.0.0/24');
    netB = await net('nqc-b', '10.75.0.0/24');
    const logger = pino({ level: 'silent' });
    vnc = new ConsoleProxy(fx.nova.core.consoleTokens, 'novnc', logger);
    serial = new ConsoleProxy(fx.nova.core.consoleTokens, 'serial', logger);
    cleanups.push(() => vnc.close(), () => serial.close());
    vncPort = await vnc.listen({ host: '127.0.0.1', port: 0 });
    serialPort = await serial.listen({ host: '127.0.0.1', port: 0 });

    const g = manifest.glance;
    const img = await fx.glanceAdmin.post('/v2/images', { name: 'onestack-guest', visibility: 'public', disk_format: g.disk_format, container_format: g.container_format, min_disk: g.min_disk, min_ram: g.min_ram, ...g.properties });
    assert.equal(img.status, 201, img.text);
    const up = await fetch(`${fx.glanceAdmin.baseUrl}/v2/images/${img.body.id}/file`, { method: 'PUT', headers: { 'x-auth-token': fx.ks.admin.token!, 'content-type': 'application/octet-stream' }, body: readFileSync(join(IMAGE_DIR, manifest.files.qcow2.path)) });
    assert.equal(up.status, 204);
    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'console-guest', imageRef: img.body.id, flavorRef: '42', networks: [{ uuid: netA }] } });
    assert.equal(created.status, 202, created.text);
    id = created.body.server.id;
    const active = await fx.waitFor(fx.admin, id, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    cleanups.push(async () => {
      await fx.admin.delete(`/v2.1/servers/${id}`);
      await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch((err) => console.error('# cleanup failed', err));
  });

  const consoleUrl = async (protocol: string, type: string) => {
    const r = await fx.admin.at('2.6').post(`/v2.1/servers/${id}/remote-consoles`, { remote_console: { protocol, type } });
    assert.equal(r.status, 200, r.text);
    return r.body.remote_console.url as string;
  };

  it("VNC: QEMU's RFB banner through the proxy", async () => {
    const token = tokenOf(await consoleUrl('vnc', 'novnc'));
    const banner = await collect(`ws://127.0.0.1:${vncPort}/?token=${token}`, (t) => t.length >= 12, 60_000);
    assert.match(banner, /^RFB 003\.00\d\n/);
  });

  it('serial: log in on the getty; a hot-plugged NIC shows in the guest and goes away on detach', async () => {
    const token = tokenOf(await consoleUrl('serial', 'serial'));
    const tty = await serialSession(`ws://127.0.0.1:${serialPort}/?token=${token}`);
    try {
      await tty.expect(/login: ?$/m, BOOT_TIMEOUT_MS, '\r');
      tty.send('cirros\r');
      await tty.expect(/Password: ?$/m, 60_000);
      tty.send('gocubsgo\r');
      await tty.expect(/\$ /, 60_000);
      const macs = async () => {
        // The quotes keep the echoed command line from matching what the guest prints.
        tty.send('echo MA""CS $(cat /sys/class/net/eth*/address) E""ND\r');
        return (await tty.expect(/MACS [^\r\n]* END/, 60_000)).match(/MACS ([^\r\n]*) END/)![1].trim().split(/\s+/);
      };
      const before = await macs();
      assert.equal(before.length, 1, 'one NIC at boot');

      const att = await fx.admin.post(`/v2.1/servers/${id}/os-interface`, { interfaceAttachment: { net_id: netB } });
      assert.equal(att.status, 200, att.text);
      const mac = att.body.interfaceAttachment.mac_addr as string;
      const end = Date.now() + 120_000;
      while (!(await macs()).includes(mac)) {
        assert.ok(Date.now() < end, `the guest never saw ${mac}`);
        await new Promise((r) => setTimeout(r, 2000));
      }
      assert.equal((await fx.admin.delete(`/v2.1/servers/${id}/os-interface/${att.body.interfaceAttachment.port_id}`)).status, 202);
      assert.deepEqual(await macs(), before, 'the NIC is gone after the detach');
    } finally {
      tty.close();
    }
  });
});
