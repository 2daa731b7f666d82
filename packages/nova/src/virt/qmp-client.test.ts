import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { QmpClient, QmpConnectionError, QmpError } from './qmp-client.ts';

const scratch = tempDir('onestack-qmp-');
after(() => scratch.remove());
let n = 0;

/**
 * A fake QMP server speaking the protocol as QEMU 7.2 does (greeting, negotiation,
 * replies with the command's id, events in between); real QEMU is exercised in
 * qemu-driver.test.ts.
 */
async function fakeQemu(handler: (cmd: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, sock: Socket) => void) {
  const path = join(scratch.path, `qmp-${++n}.sock`);
  const received: string[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((sock) => {
    sockets.push(sock);
    sock.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian' }, capabilities: ['oob'] } })}\r\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        received.push(cmd.execute);
        if (cmd.execute === 'qmp_capabilities') sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
        else handler(cmd, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, received, close: () => new Promise<void>((r) => { sockets.forEach((s) => s.destroy()); server.close(() => r()); }) };
}

describe('QmpClient', () => {
  it('negotiates capabilities, matches replies to commands by id, and passes events between them', async () => {
    const qemu = await fakeQemu((cmd, sock) => {
      if (cmd.execute === 'query-status') {
        // An event first, then the replies out of order: ids, not order, pair them.
        sock.write(`${JSON.stringify({ event: 'RESUME', timestamp: { seconds: 1, microseconds: 0 } })}\n`);
        setTimeout(() => sock.write(`${JSON.stringify({ return: { status: 'running', running: true }, id: cmd.id })}\n`), 20);
      } else if (cmd.execute === 'query-name') {
        sock.write(`${JSON.stringify({ return: { name: String(cmd.arguments?.x ?? 'vm') }, id: cmd.id })}\n`);
      }
    });
    const client = await QmpClient.connect(qemu.path);
    assert.equal(client.greeting.version.qemu.major, 7);
    const resumed = client.waitForEvent('RESUME');
    const [status, name] = await Promise.all([client.execute('query-status'), client.execute('query-name', { x: 'a' })]);
    assert.deepEqual(status, { status: 'running', running: true });
    assert.deepEqual(name, { name: 'a' });
    assert.equal((await resumed).event, 'RESUME');
    assert.deepEqual(qemu.received, ['qmp_capabilities', 'query-status', 'query-name']);
    client.close();
    await qemu.close();
  });

  it('turns an error reply into a QmpError with its class and description', async () => {
    const qemu = await fakeQemu((cmd, sock) =>
      sock.write(`${JSON.stringify({ error: { class: 'DeviceNotFound', desc: "Device 'x' not found" }, id: cmd.id })}\n`),
    );
    const client = await QmpClient.connect(qemu.path);
    await assert.rejects(client.execute('device_del', { id: 'x' }), (e: unknown) => {
      assert.ok(e instanceof QmpError);
      assert.equal(e.errorClass, 'DeviceNotFound');
      assert.match(e.message, /device_del: DeviceNotFound/);
      return true;
    });
    client.close();
    await qemu.close();
  });

  it('times out a command without reply, and fails pending commands and waiters when QEMU goes away', async () => {
    const qemu = await fakeQemu(() => {});
    const client = await QmpClient.connect(qemu.path, { timeoutMs: 2000 });
    await assert.rejects(client.execute('query-status', undefined, { timeoutMs: 50 }), /no reply within 50 ms/);
    const pending = client.execute('system_powerdown');
    const waiter = client.waitForEvent('SHUTDOWN');
    const closed = client.closed();
    await qemu.close();
    await assert.rejects(pending, QmpConnectionError);
    await assert.rejects(waiter, QmpConnectionError);
    await closed;
    assert.ok(client.isClosed);
    await assert.rejects(client.execute('query-status'), QmpConnectionError);
  });

  it('fails to connect to a socket nobody listens on, and to a server that is not QMP', async () => {
    await assert.rejects(QmpClient.connect(join(scratch.path, 'nobody.sock')), QmpConnectionError);
    const path = join(scratch.path, 'http.sock');
    const server = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => server.listen(path, r));
    await assert.rejects(QmpClient.connect(path), /not a QMP greeting|JSON/);
    server.close();
  });
});
