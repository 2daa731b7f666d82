/**
 * Runs against the RabbitMQ on 127.0.0.1:5672 (guest/guest); ONESTACK_TEST_SKIP_AMQP=1
 * skips. Every fixture uses its own random name prefix and cleans up at close.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { AmqpBus, type AmqpBusOptions } from './amqp-bus.ts';
import { busContract, eventually, quietLogger, sleep } from './bus-contract.ts';
import { RpcTimeout, type Notification } from './bus.ts';
import { openBus } from './index.ts';

const URL = 'amqp://guest:guest@127.0.0.1:5672/';
const skip = process.env.ONESTACK_TEST_SKIP_AMQP === '1' ? 'ONESTACK_TEST_SKIP_AMQP=1' : undefined;
const run = promisify(execFile);

function newPrefix(): string {
  return `t${randomUUID().slice(0, 8)}-`;
}

function openTestBus(prefix: string, opts: AmqpBusOptions = {}): Promise<AmqpBus> {
  return AmqpBus.open(URL, { prefix, cleanupOnClose: true, logger: quietLogger, ...opts });
}

/** What a broker restart does to its clients, limited to this test's connections. */
async function dropConnections(prefix: string): Promise<number> {
  const { stdout } = await run('rabbitmqctl', ['-q', 'list_connections', '--no-table-headers', 'pid', 'client_properties']);
  const pids = stdout
    .split('\n')
    .filter((line) => line.includes(`"${prefix}onestack `))
    .map((line) => line.split('\t')[0]);
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'test']);
  return pids.length;
}

async function brokerNames(kind: 'queues' | 'exchanges', prefix: string): Promise<string[]> {
  const { stdout } = await run('rabbitmqctl', ['-q', `list_${kind}`, '--no-table-headers', 'name']);
  return stdout.split('\n').filter((name) => name.startsWith(prefix));
}

busContract(
  'AMQP',
  () => {
    const prefix = newPrefix();
    return { open: (opts) => openTestBus(prefix, { logger: opts?.logger ?? quietLogger }) };
  },
  { skip },
);

describe('AMQP bus', { skip }, () => {
  test('survives the broker dropping its connections', async () => {
    const prefix = newPrefix();
    const server = await openTestBus(prefix);
    const client = await openTestBus(prefix);
    try {
      await server.serve('compute', 'host1', {
        ping: async (args: { n: number }) => ({ pong: args.n }),
        hang: () => new Promise(() => {}),
      });
      const seen: Notification[] = [];
      await server.subscribe(
        'notifications',
        'audit',
        async (n) => {
          seen.push(n);
          // The first delivery is never acknowledged: the broker must redeliver it.
          if (seen.length === 1) await new Promise(() => {});
        },
        { retryDelayMs: 20 },
      );
      assert.deepEqual(await client.call('compute', 'ping', { n: 1 }, { timeoutMs: 5000 }), { pong: 1 });
      const unacked = await client.notify({ eventType: 'identity.user.created', publisherId: 'test', priority: 'INFO', payload: 1 });
      await eventually(() => seen.length === 1);
      // Asserted at once: under load the timeout may fire before the reconnection below completes.
      const lostReply = assert.rejects(client.call('compute', 'hang', {}, { timeoutMs: 1500 }), RpcTimeout);
      const connections = [server.connections, client.connections];

      assert.equal(await dropConnections(prefix), 2);
      const duringOutage = client.notify({ eventType: 'identity.user.deleted', publisherId: 'test', priority: 'WARN', payload: 2 });

      await eventually(() => server.connected && client.connected && server.connections > connections[0] && client.connections > connections[1], 10_000);
      assert.deepEqual(await client.call('compute', 'ping', { n: 2 }, { timeoutMs: 5000 }), { pong: 2 });
      const buffered = await duringOutage;
      await eventually(() => seen.some((n) => n.message_id === buffered.message_id));
      await eventually(() => seen.filter((n) => n.message_id === unacked.message_id).length === 2);
      await lostReply;
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('close during an outage stops reconnecting and fails what is pending', async () => {
    const prefix = newPrefix();
    const bus = await openTestBus(prefix);
    const pending = assert.rejects(bus.call('nobody', 'anything', {}, { timeoutMs: 10_000 }), { name: 'BusClosed' });
    assert.equal(await dropConnections(prefix), 1);
    await eventually(() => !bus.connected);
    await bus.close();
    await pending;
    await sleep(300);
    assert.equal(await dropConnections(prefix), 0, 'no reconnection after close');
    // Closed while disconnected, it could not clean up: a bus on the same prefix does.
    await (await openTestBus(prefix)).close();
  });

  test('openBus takes amqp:// and oslo-style rabbit:// URLs', async () => {
    const prefix = newPrefix();
    const opts = { prefix, cleanupOnClose: true, logger: quietLogger };
    const server = await openBus(URL, opts);
    const client = await openBus(URL.replace('amqp:', 'rabbit:'), opts);
    try {
      await server.serve('conductor', undefined, { add: async (args: { a: number; b: number }) => args.a + args.b });
      assert.equal(await client.call('conductor', 'add', { a: 2, b: 3 }, { timeoutMs: 5000 }), 5);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('open gives up on an unreachable broker', async () => {
    await assert.rejects(AmqpBus.open('amqp://guest:guest@127.0.0.1:1/', { initialRetries: 1, logger: quietLogger }));
  });

  test('cleanupOnClose leaves no queues or exchanges behind', async () => {
    const prefix = newPrefix();
    const a = await openTestBus(prefix);
    const b = await openTestBus(prefix);
    await a.serve('compute', 'host1', { ping: async () => 'pong' });
    await b.serve('compute', 'host2', { ping: async () => 'pong' });
    await b.subscribe('notifications', 'pool', async () => {});
    assert.equal(await b.call('compute', 'ping', {}, { host: 'host1', timeoutMs: 5000 }), 'pong');
    assert.ok((await brokerNames('queues', prefix)).length >= 5);
    await a.close();
    await b.close();
    assert.deepEqual(await brokerNames('queues', prefix), []);
    assert.deepEqual(await brokerNames('exchanges', prefix), []);
  });
});
