import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busContract, quietLogger } from './bus-contract.ts';
import { InProcessBus, LocalBroker } from './in-process-bus.ts';
import { openBus } from './index.ts';

busContract('in-process', () => {
  const broker = new LocalBroker();
  return { open: async (opts) => new InProcessBus({ broker, logger: opts?.logger ?? quietLogger }) };
});

test('buses opened on the same inprocess:// URL share a broker; other names do not', async () => {
  const server = await openBus('inprocess://', { logger: quietLogger });
  const client = await openBus('inprocess://', { logger: quietLogger });
  const stranger = await openBus('inprocess://elsewhere', { logger: quietLogger });
  try {
    await server.serve('scheduler', undefined, { select: async (args: { n: number }) => args.n * 2 });
    assert.equal(await client.call('scheduler', 'select', { n: 21 }, { timeoutMs: 1000 }), 42);
    await assert.rejects(stranger.call('scheduler', 'select', { n: 1 }, { timeoutMs: 50 }), { name: 'RpcTimeout' });
  } finally {
    await Promise.all([server.close(), client.close(), stranger.close()]);
  }
});

test('delivery is never synchronous with sending, as with a broker', async () => {
  const bus = new InProcessBus({ logger: quietLogger });
  try {
    const got: number[] = [];
    await bus.serve('compute', undefined, { note: async (args: { n: number }) => void got.push(args.n) });
    await bus.cast('compute', 'note', { n: 1 });
    assert.deepEqual(got, []);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(got, [1]);
  } finally {
    await bus.close();
  }
});

test('casts to a topic wait in its queue until a server comes back', async () => {
  const broker = new LocalBroker();
  const server = new InProcessBus({ broker, logger: quietLogger });
  const client = new InProcessBus({ broker, logger: quietLogger });
  try {
    const got: string[] = [];
    const first = await server.serve('compute', 'host1', { note: async (args: { s: string }) => void got.push(`a:${args.s}`) });
    await first.stop();
    await client.cast('compute', 'note', { s: 'queued' }, { host: 'host1' });
    await server.serve('compute', 'host1', { note: async (args: { s: string }) => void got.push(`b:${args.s}`) });
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(got, ['b:queued']);
  } finally {
    await Promise.all([server.close(), client.close()]);
  }
});

test('unsupported URL schemes are refused', async () => {
  await assert.rejects(openBus('kafka://127.0.0.1:9092/'), TypeError);
});
