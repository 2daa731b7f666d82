import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { WebSocket } from 'ws';
import { ManualClock } from '@onestack/core/clock.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { ConsoleProxy } from '../src/console/proxy.ts';
import { ConsoleTokens } from '../src/domain/console-tokens.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { ConsoleEndpoint } from '../src/virt/driver.ts';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * A FakeDriver whose consoles are unix sockets this test serves: each answers with a
 * banner naming its instance and console, then echoes, so the proxy's passthrough and
 * its choice of backend are visible. The real QEMU consoles: src/compute/qemu-consoles.test.ts.
 */
class SocketConsoleFakeDriver extends FakeDriver {
  readonly servers: Server[] = [];
  constructor(private readonly dir: string) {
    super({ hostname: 'con-h1' });
  }
  private readonly served = new Set<string>();
  private async serve(uuid: string, kind: string): Promise<ConsoleEndpoint> {
    const path = join(this.dir, `${uuid}.${kind}`);
    if (this.served.has(path)) return { kind: 'unix', path };
    this.served.add(path);
    const srv = createServer((s) => {
      s.write(`${kind} of ${uuid}\n`);
      s.on('data', (d) => s.write(d));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => srv.listen(path, r));
    this.servers.push(srv);
    return { kind: 'unix', path };
  }
  override async getVncConsole(uuid: string): Promise<ConsoleEndpoint> {
    await super.getVncConsole(uuid);
    return this.serve(uuid, 'vnc');
  }
  override async getSerialConsole(uuid: string): Promise<ConsoleEndpoint> {
    await super.getSerialConsole(uuid);
    return this.serve(uuid, 'serial');
  }
}

/** Opens a websocket and resolves with the first message, or rejects with the HTTP status of a refused upgrade. */
function firstMessage(url: string, send?: string): Promise<{ first: string; echo?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['binary']);
    const got: string[] = [];
    ws.on('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.on('error', reject);
    ws.on('message', (d) => {
      got.push(d.toString());
      if (got.length === 1 && send) ws.send(Buffer.from(send));
      if (got.length === (send ? 2 : 1)) {
        ws.close();
        resolve({ first: got[0], echo: got[1] });
      }
    });
  });
}

const tokenOf = (url: string) => decodeURIComponent(url).match(/token=([0-9a-f-]{36})/)![1];

describe('nova remote consoles: URLs, tokens and the websocket proxy', () => {
  let f: NovaFixture;
  let p: Project;
  let other: Project;
  let server: string;
  let second: string;
  let driver: SocketConsoleFakeDriver;
  const dir = tempDir('onestack-consoles-');
  const logger = pino({ level: 'silent' });
  let vnc: ConsoleProxy;
  let serial: ConsoleProxy;
  let vncPort: number;
  let serialPort: number;

  before(async () => {
    f = await startNova();
    driver = new SocketConsoleFakeDriver(dir.path);
    await f.addCompute('con-h1', { driver });
    p = await f.project('con');
    other = await f.project('con-other');
    const boot = async (name: string) => {
      const s = await p.member.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '1', networks: 'none' } });
      assert.equal(s.status, 202, s.text);
      assert.equal((await f.waitFor(p.member, s.body.server.id)).status, 'ACTIVE');
      return s.body.server.id as string;
    };
    server = await boot('con1');
    second = await boot('con2');
    vnc = new ConsoleProxy(f.nova.core.consoleTokens, 'novnc', logger);
    serial = new ConsoleProxy(f.nova.core.consoleTokens, 'serial', logger);
    vncPort = await vnc.listen({ host: '127.0.0.1', port: 0 });
    serialPort = await serial.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await vnc?.close();
    await serial?.close();
    for (const s of driver?.servers ?? []) s.close();
    await f?.close();
    dir.remove();
  });

  const create = (c = p.member.at('2.6'), id = server, rc: Record<string, unknown> = { protocol: 'vnc', type: 'novnc' }) => c.post(`/v2.1/servers/${id}/remote-consoles`, { remote_console: rc });

  it('POST remote-consoles: noVNC and serial URLs with a token; upstream errors', async () => {
    const r = await create();
    assert.equal(r.status, 200, r.text);
    assert.deepEqual({ ...r.body.remote_console, url: undefined }, { protocol: 'vnc', type: 'novnc', url: undefined });
    assert.match(r.body.remote_console.url, /^http:\/\/127\.0\.0\.1:6080\/vnc_lite\.html\?path=%3Ftoken%3D[0-9a-f-]{36}$/);
    const s = await create(undefined, server, { protocol: 'serial', type: 'serial' });
    assert.equal(s.status, 200, s.text);
    assert.match(s.body.remote_console.url, /^ws:\/\/127\.0\.0\.1:6083\/\?token=[0-9a-f-]{36}$/);

    assert.equal((await create(p.member.at('2.5'))).status, 404, 'the API starts at 2.6');
    const invalid = await create(undefined, server, { protocol: 'vnc', type: 'serial' });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.badRequest.message, 'Invalid console type serial');
    const spice = await create(undefined, server, { protocol: 'spice', type: 'spice-html5' });
    assert.equal(spice.body.badRequest.message, 'Unavailable console type spice-html5.');
    assert.equal((await create(undefined, server, { protocol: 'rdp', type: 'rdp-html5' })).status, 400);
    assert.equal((await create(undefined, server, { protocol: 'mks', type: 'webmks' })).status, 400, 'mks only from 2.8');
    assert.equal((await create(p.member.at('2.8'), server, { protocol: 'mks', type: 'webmks' })).status, 400, 'mks is not served');
    assert.equal((await create(undefined, server, { protocol: 'vnc' })).status, 400);
    assert.equal((await create(undefined, server, { protocol: 'vnc', type: 'novnc', extra: 1 })).status, 400);
    assert.equal((await create(undefined, randomUUID())).status, 404);
    assert.equal((await create(other.member.at('2.6'))).status, 404, "another project's server is not found");
    assert.equal((await create(p.reader.at('2.6'))).status, 403, 'a reader may not open a console');
  });

  it('legacy os-getVNCConsole and os-getSerialConsole up to 2.5, gone from 2.6', async () => {
    const c = p.member.at('2.5');
    const v = await c.post(`/v2.1/servers/${server}/action`, { 'os-getVNCConsole': { type: 'novnc' } });
    assert.equal(v.status, 200, v.text);
    assert.equal(v.body.console.type, 'novnc');
    assert.match(v.body.console.url, /vnc_lite\.html\?path=%3Ftoken%3D/);
    const s = await c.post(`/v2.1/servers/${server}/action`, { 'os-getSerialConsole': { type: 'serial' } });
    assert.equal(s.status, 200, s.text);
    assert.match(s.body.console.url, /^ws:.*token=/);
    assert.equal((await c.post(`/v2.1/servers/${server}/action`, { 'os-getVNCConsole': { type: 'spice-html5' } })).status, 400);
    assert.equal((await c.post(`/v2.1/servers/${server}/action`, { 'os-getVNCConsole': {} })).status, 400);
    assert.equal((await c.post(`/v2.1/servers/${server}/action`, { 'os-getVNCConsole': { type: 'xvpvnc' } })).body.badRequest.message, 'Invalid console type xvpvnc');
    assert.equal((await p.member.at('2.6').post(`/v2.1/servers/${server}/action`, { 'os-getVNCConsole': { type: 'novnc' } })).status, 404);
  });

  it('GET os-console-auth-tokens: admin only, from 2.31, the connection a token opens', async () => {
    const token = tokenOf((await create()).body.remote_console.url);
    const shown = await f.admin.at('2.31').get(`/v2.1/os-console-auth-tokens/${token}`);
    assert.equal(shown.status, 200, shown.text);
    assert.deepEqual(shown.body.console, { instance_uuid: server, host: null, port: null, internal_access_path: join(dir.path, `${server}.vnc`) });
    assert.equal((await f.admin.at('2.30').get(`/v2.1/os-console-auth-tokens/${token}`)).status, 400);
    assert.equal((await p.member.at('2.31').get(`/v2.1/os-console-auth-tokens/${token}`)).status, 403);
    const missing = await f.admin.at('2.31').get(`/v2.1/os-console-auth-tokens/${randomUUID()}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.itemNotFound.message, 'Token not found');
  });

  it('the proxy passes bytes both ways to the console the token names, and refuses any other token', async () => {
    const url = (await create()).body.remote_console.url;
    const token = tokenOf(url);
    const got = await firstMessage(`ws://127.0.0.1:${vncPort}/?token=${token}`, 'RFB 003.008\n');
    assert.deepEqual(got, { first: `vnc of ${server}\n`, echo: 'RFB 003.008\n' });

    const otherToken = tokenOf((await create(undefined, second)).body.remote_console.url);
    assert.equal((await firstMessage(`ws://127.0.0.1:${vncPort}/?token=${otherToken}`)).first, `vnc of ${second}\n`, "a token opens only its own instance's console");

    const serialToken = tokenOf((await create(undefined, server, { protocol: 'serial', type: 'serial' })).body.remote_console.url);
    assert.equal((await firstMessage(`ws://127.0.0.1:${serialPort}/?token=${serialToken}`)).first, `serial of ${server}\n`);
    await assert.rejects(firstMessage(`ws://127.0.0.1:${vncPort}/?token=${serialToken}`), /status 403/, 'a serial token does not open VNC');
    await assert.rejects(firstMessage(`ws://127.0.0.1:${vncPort}/?token=${randomUUID()}`), /status 403/);
    await assert.rejects(firstMessage(`ws://127.0.0.1:${vncPort}/`), /status 403/);

    const fresh = tokenOf((await create()).body.remote_console.url);
    await assert.rejects(firstMessage(`ws://127.0.0.1:${vncPort}/?token=${token}`), /status 403/, 'a new URL replaces the previous one');
    assert.equal((await firstMessage(`ws://127.0.0.1:${vncPort}/?token=${fresh}`)).first, `vnc of ${server}\n`);
  });

  it("the noVNC proxy serves the console page and noVNC's modules, nothing else", async () => {
    const page = await fetch(`http://127.0.0.1:${vncPort}/vnc_lite.html?path=%3Ftoken%3Dx`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(await page.text(), /import RFB from '\.\/core\/rfb\.js'/);
    const rfb = await fetch(`http://127.0.0.1:${vncPort}/core/rfb.js`);
    assert.equal(rfb.status, 200);
    assert.match(rfb.headers.get('content-type')!, /javascript/);
    assert.match(await rfb.text(), /export default class RFB/);
    assert.equal((await fetch(`http://127.0.0.1:${vncPort}/vendor/pako/lib/zlib/inflate.js`)).status, 200);
    for (const path of ['/core/%2e%2e/package.json', '/package.json', '/core/nothing.js', '/']) assert.equal((await fetch(`http://127.0.0.1:${vncPort}${path}`)).status, 404, path);
    assert.equal((await fetch(`http://127.0.0.1:${serialPort}/vnc_lite.html`)).status, 404, 'the serial proxy has no page');
  });

  it('an expired token is refused', async () => {
    const past = new ManualClock(Date.now() - 3_600_000);
    const { token } = await new ConsoleTokens(f.database, past, 1000).issue({ instanceUuid: second, consoleType: 'serial', endpoint: { kind: 'unix', path: join(dir.path, `${second}.serial`) }, accessUrlBase: 'ws://x/' });
    await assert.rejects(firstMessage(`ws://127.0.0.1:${serialPort}/?token=${token}`), /status 403/);
    assert.equal((await f.admin.at('2.31').get(`/v2.1/os-console-auth-tokens/${token}`)).status, 404);
  });

  it("a deleted server's console tokens are deleted with it", async () => {
    const s = await p.member.post('/v2.1/servers', { server: { name: 'con-gone', imageRef: f.imageId, flavorRef: '1', networks: 'none' } });
    assert.equal(s.status, 202, s.text);
    const id = s.body.server.id as string;
    await f.waitFor(p.member, id);
    const vncToken = tokenOf((await create(undefined, id)).body.remote_console.url);
    const serialToken = tokenOf((await create(undefined, id, { protocol: 'serial', type: 'serial' })).body.remote_console.url);
    const keptToken = tokenOf((await create()).body.remote_console.url);
    const rows = () => f.database.db.selectFrom('console_auth_tokens').select('instance_uuid').where('instance_uuid', '=', id).execute();
    assert.equal((await rows()).length, 2);
    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    assert.deepEqual(await rows(), []);
    for (const token of [vncToken, serialToken]) assert.equal((await f.admin.at('2.31').get(`/v2.1/os-console-auth-tokens/${token}`)).status, 404);
    assert.equal((await f.admin.at('2.31').get(`/v2.1/os-console-auth-tokens/${keptToken}`)).status, 200, "another server's token stays");
  });

  it('a stopped server has no console (409)', async () => {
    assert.equal((await p.member.post(`/v2.1/servers/${second}/action`, { 'os-stop': null })).status, 202);
    await f.waitFor(p.member, second, (s) => s.status === 'SHUTOFF');
    const r = await create(undefined, second);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.conflictingRequest.message, `Instance ${second} is not ready`);
  });
});
