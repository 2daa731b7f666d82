/**
 * A real QEMU guest on a test namespace with Neutron's agent: remote consoles and NIC
 * hot-plug. The Compute API hands out noVNC and serial URLs; through the websocket proxies
 * a client gets QEMU's own RFB banner from the guest's VNC unix socket and the guest's
 * getty; logged in on that serial console, the guest shows the MAC of an interface
 * attached through os-interface, and no longer after the detach.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { WebSocket } from 'ws';
import type { NovaFixture } from '../../test/fixture.ts';
import { ConsoleProxy } from '../console/proxy.ts';
import { startQemuTestHost, type QemuTestHost } from './qemu-test-host.ts';

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
  let h: QemuTestHost;
  let netB: string;

  before(async () => {
    // VNC on a unix socket: what a proxy in another namespace than the guest's can reach.
    h = await startQemuTestHost('nqc', { vnc: 'unix' });
    fx = h.fx;
    const { stack, cleanups } = h;
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

    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'console-guest', imageRef: h.imageId, flavorRef: '42', networks: [{ uuid: netA }] } });
    assert.equal(created.status, 202, created.text);
    id = created.body.server.id;
    const active = await fx.waitFor(fx.admin, id, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    cleanups.push(async () => {
      await fx.admin.delete(`/v2.1/servers/${id}`);
      await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    });
  });
  after(() => h?.close());

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
