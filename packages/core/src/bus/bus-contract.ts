/**
 * The behaviour every Bus implementation must share, as node:test tests; each
 * implementation's test file runs it against its own fixture.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestContext } from '../context.ts';
import { ApiError, notFound } from '../errors.ts';
import { BusClosed, RemoteError, RpcTimeout, type Bus, type BusLogger, type Notification } from './bus.ts';

export interface BusFixture {
  /** Opens a bus on the fixture's broker: buses of one fixture reach each other. */
  open(opts?: { logger?: BusLogger }): Promise<Bus>;
}

export const quietLogger: BusLogger = { info() {}, warn() {}, error() {} };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const ctx: RequestContext = {
  requestId: 'req-0f3c',
  auth: {
    userId: 'u1',
    userDomainId: 'default',
    projectId: 'p1',
    roles: ['admin', 'member'],
    methods: ['password'],
    auditIds: ['audit-1'],
    expiresAt: 1767225600000,
  },
};

export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function notification(eventType: string, payload: unknown = {}) {
  return { eventType, publisherId: 'identity.host1', priority: 'INFO' as const, payload };
}

export function busContract(name: string, newFixture: () => BusFixture, opts: { skip?: string } = {}): void {
  async function withBuses(count: number, fn: (buses: Bus[]) => Promise<void>, logger?: BusLogger): Promise<void> {
    const fixture = newFixture();
    const buses: Bus[] = [];
    try {
      for (let i = 0; i < count; i++) buses.push(await fixture.open({ logger }));
      await fn(buses);
    } finally {
      for (const bus of buses.reverse()) await bus.close();
    }
  }

  describe(`${name}: bus contract`, { skip: opts.skip }, () => {
    test('call returns the result and carries args and context', () =>
      withBuses(2, async ([server, client]) => {
        await server.serve('compute', 'host1', { echo: async (args, c) => ({ args, ctx: c ?? null }) });
        const args = { id: 'i-1', flavor: { vcpus: 2 }, tags: ['a', 'b'], none: null };
        assert.deepEqual(await client.call('compute', 'echo', args, { ctx, timeoutMs: 5000 }), { args, ctx });
        assert.deepEqual(await client.call('compute', 'echo', args, { timeoutMs: 5000 }), { args, ctx: null });
      }));

    test('a host-directed call reaches that host; others are shared among servers', () =>
      withBuses(3, async ([s1, s2, client]) => {
        await s1.serve('compute', 'host1', { whoami: async () => 'host1' });
        await s2.serve('compute', 'host2', { whoami: async () => 'host2' });
        for (let i = 0; i < 3; i++) {
          assert.equal(await client.call('compute', 'whoami', {}, { host: 'host2', timeoutMs: 5000 }), 'host2');
          assert.equal(await client.call('compute', 'whoami', {}, { host: 'host1', timeoutMs: 5000 }), 'host1');
        }
        const seen = new Set<unknown>();
        for (let i = 0; i < 6; i++) seen.add(await client.call('compute', 'whoami', {}, { timeoutMs: 5000 }));
        assert.deepEqual([...seen].sort(), ['host1', 'host2']);
      }));

    test('cast delivers without a reply, to one host when asked', () =>
      withBuses(3, async ([s1, s2, client]) => {
        const got: string[] = [];
        await s1.serve('compute', 'host1', { note: async (args: { n: number }) => void got.push(`host1:${args.n}`) });
        await s2.serve('compute', 'host2', { note: async (args: { n: number }) => void got.push(`host2:${args.n}`) });
        await client.cast('compute', 'note', { n: 1 }, { host: 'host2' });
        await client.cast('compute', 'note', { n: 2 }, { host: 'host1', ctx });
        await client.cast('compute', 'note', { n: 3 });
        await eventually(() => got.length === 3);
        assert.deepEqual(
          got.filter((g) => !g.endsWith(':3')).sort(),
          ['host1:2', 'host2:1'],
        );
        assert.equal(got.filter((g) => /^host[12]:3$/.test(g)).length, 1);
      }));

    test('fanout reaches every server of the topic and no other', () =>
      withBuses(4, async ([s1, s2, s3, client]) => {
        const got: string[] = [];
        await s1.serve('compute', 'host1', { refresh: async (_args, c) => void got.push(`host1:${c?.requestId}`) });
        await s2.serve('compute', 'host2', { refresh: async () => void got.push('host2') });
        await s3.serve('compute', undefined, { refresh: async () => void got.push('any') });
        await s3.serve('network', 'host3', { refresh: async () => void got.push('network') });
        await client.fanout('compute', 'refresh', {}, { ctx });
        await eventually(() => got.length >= 3);
        await sleep(50);
        assert.deepEqual(got.sort(), ['any', 'host1:req-0f3c', 'host2']);
      }));

    test('remote failures: ApiError is re-created, anything else is a RemoteError', () =>
      withBuses(2, async ([server, client]) => {
        await server.serve('volume', undefined, {
          find: async () => {
            throw notFound('Volume v1 could not be found.');
          },
          quota: async () => {
            throw new ApiError('over_quota', 'Quota exceeded', { status: 403 });
          },
          burn: async () => {
            throw Object.assign(new Error('disk on fire'), { name: 'DiskError', code: 'EFIRE', status: 507 });
          },
        });
        await assert.rejects(client.call('volume', 'find', {}, { timeoutMs: 5000 }), (err: unknown) => {
          assert.ok(err instanceof ApiError);
          assert.equal(err.code, 'not_found');
          assert.equal(err.status, 404);
          assert.equal(err.message, 'Volume v1 could not be found.');
          return true;
        });
        await assert.rejects(client.call('volume', 'quota', {}, { timeoutMs: 5000 }), (err: unknown) => {
          assert.ok(err instanceof ApiError);
          assert.equal(err.code, 'over_quota');
          assert.equal(err.status, 403);
          return true;
        });
        await assert.rejects(client.call('volume', 'burn', {}, { timeoutMs: 5000 }), (err: unknown) => {
          assert.ok(err instanceof RemoteError);
          assert.equal(err.remoteName, 'DiskError');
          assert.equal(err.message, 'disk on fire');
          assert.equal(err.code, 'EFIRE');
          assert.equal(err.status, 507);
          return true;
        });
        await assert.rejects(client.call('volume', 'nope', {}, { timeoutMs: 5000 }), (err: unknown) => {
          assert.ok(err instanceof RemoteError);
          assert.equal(err.remoteName, 'NoSuchMethod');
          return true;
        });
      }));

    test('a call nobody answers times out with RpcTimeout', () =>
      withBuses(2, async ([server, client]) => {
        await server.serve('slow', undefined, { never: () => new Promise(() => {}) });
        const started = Date.now();
        await assert.rejects(client.call('slow', 'never', {}, { timeoutMs: 200 }), (err: unknown) => {
          assert.ok(err instanceof RpcTimeout);
          assert.equal(err.topic, 'slow');
          assert.equal(err.method, 'never');
          return true;
        });
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 190 && elapsed < 2000, `timed out after ${elapsed} ms`);
        await assert.rejects(client.call('nobody', 'anything', {}, { timeoutMs: 100 }), RpcTimeout);
      }));

    test('a stopped server gets no more requests', () =>
      withBuses(3, async ([s1, s2, client]) => {
        const first = await s1.serve('compute', 'host1', { whoami: async () => 'host1' });
        await s2.serve('compute', 'host2', { whoami: async () => 'host2' });
        await first.stop();
        for (let i = 0; i < 4; i++) assert.equal(await client.call('compute', 'whoami', {}, { timeoutMs: 5000 }), 'host2');
      }));

    test('every pool gets each notification once; a pool shares them among its members', () =>
      withBuses(4, async ([a, b1, b2, publisher]) => {
        const poolA: Notification[] = [];
        const poolB1: Notification[] = [];
        const poolB2: Notification[] = [];
        await a.subscribe('notifications', 'pool-a', async (n) => void poolA.push(n));
        await b1.subscribe('notifications', 'pool-b', async (n) => void poolB1.push(n));
        await b2.subscribe('notifications', 'pool-b', async (n) => void poolB2.push(n));
        const sent = await publisher.notify({ ...notification('identity.user.created', { id: 'u1' }), ctx });
        for (let i = 2; i <= 4; i++) await publisher.notify(notification('identity.user.updated', { id: `u${i}` }));
        await eventually(() => poolA.length === 4 && poolB1.length + poolB2.length === 4);
        await sleep(50);
        assert.equal(poolA.length, 4);
        assert.equal(new Set([...poolB1, ...poolB2].map((n) => n.message_id)).size, 4);
        assert.ok(poolB1.length > 0 && poolB2.length > 0, 'pool members share the notifications');

        const got = poolA.find((n) => n.message_id === sent.message_id);
        assert.ok(got);
        assert.match(got.message_id, UUID);
        assert.equal(got.event_type, 'identity.user.created');
        assert.equal(got.publisher_id, 'identity.host1');
        assert.equal(got.priority, 'INFO');
        assert.deepEqual(got.payload, { id: 'u1' });
        assert.deepEqual(got.ctx, ctx);
        assert.equal(new Date(got.timestamp).toISOString(), got.timestamp);
        assert.deepEqual(got, sent);
      }));

    test('a subscription can filter on event types', () =>
      withBuses(2, async ([subscriber, publisher]) => {
        const got: string[] = [];
        await subscriber.subscribe('notifications', 'identity-only', async (n) => void got.push(n.event_type), {
          eventTypes: ['identity.*', 'image.upload'],
        });
        await publisher.notify(notification('compute.instance.create.end'));
        await publisher.notify(notification('image.uploaded'));
        await publisher.notify(notification('identity.project.deleted'));
        await publisher.notify(notification('image.upload'));
        await eventually(() => got.length === 2);
        await sleep(50);
        assert.deepEqual(got, ['identity.project.deleted', 'image.upload']);
      }));

    test('notifications go to the subscribers of their topic only', () =>
      withBuses(2, async ([subscriber, publisher]) => {
        const got: string[] = [];
        await subscriber.subscribe('versioned_notifications', 'pool', async (n) => void got.push(n.event_type));
        await publisher.notify(notification('compute.instance.update'));
        await publisher.notify({ ...notification('instance.update'), topic: 'versioned_notifications' });
        await eventually(() => got.length === 1);
        await sleep(50);
        assert.deepEqual(got, ['instance.update']);
      }));

    test('a failing handler gets the notification again; after maxDeliveries it is dropped', async () => {
      const errors: string[] = [];
      const logger: BusLogger = { ...quietLogger, error: (_obj, msg) => void errors.push(msg) };
      await withBuses(
        2,
        async ([subscriber, publisher]) => {
          let flakyCalls = 0;
          const flakyGot: string[] = [];
          await subscriber.subscribe(
            'notifications',
            'flaky',
            async (n) => {
              flakyCalls += 1;
              if (flakyCalls < 3) throw new Error('not yet');
              flakyGot.push(n.event_type);
            },
            { retryDelayMs: 20 },
          );
          let doomedCalls = 0;
          await subscriber.subscribe(
            'notifications',
            'doomed',
            async () => {
              doomedCalls += 1;
              throw new Error('never');
            },
            { retryDelayMs: 20, maxDeliveries: 3 },
          );
          await publisher.notify(notification('identity.user.created'));
          await eventually(() => flakyGot.length === 1 && errors.length === 1);
          await sleep(150);
          assert.equal(flakyCalls, 3);
          assert.equal(doomedCalls, 3);
          assert.match(errors[0], /after 3 failed deliveries/);
        },
        logger,
      );
    });

    test('after close, pending calls and new operations fail with BusClosed', () =>
      withBuses(2, async ([server, client]) => {
        await server.serve('hang', undefined, { never: () => new Promise(() => {}) });
        const pending = assert.rejects(client.call('hang', 'never', {}, { timeoutMs: 10_000 }), BusClosed);
        await sleep(50);
        await client.close();
        await pending;
        await assert.rejects(client.call('hang', 'never', {}), BusClosed);
        await assert.rejects(client.cast('hang', 'never', {}), BusClosed);
        await assert.rejects(client.notify(notification('x.y')), BusClosed);
        await assert.rejects(client.serve('hang', undefined, {}), BusClosed);
      }));

    test('invalid topics and hosts are refused', () =>
      withBuses(1, async ([bus]) => {
        await assert.rejects(bus.call('a.b', 'm', {}), TypeError);
        await assert.rejects(bus.cast('compute', 'm', {}, { host: 'bad#host' }), TypeError);
        await assert.rejects(bus.serve('comp*', undefined, {}), TypeError);
        await assert.rejects(bus.subscribe('notifications', '', async () => {}), TypeError);
      }));
  });
}
