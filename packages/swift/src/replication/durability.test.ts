/**
 * Durability with three storage nodes as separate processes, the real proxy
 * and a real Keystone in front: a node down, a corrupt file, kill -9 during
 * writes. Replicators and auditors run in this process over each node's
 * devices (the daemons' runOnce), as the swift_replicator service would.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { startKeystone, type KeystoneFixture } from '../../../keystone/test/fixture.ts';
import { hashPath } from '../common/hash-path.ts';
import { defaultSwiftValues, proxyConfig } from '../conf.ts';
import { createProxyApp, type ProxyApp } from '../proxy/app.ts';
import { proxyRing } from '../proxy/ring-adapter.ts';
import { ObjectExpirer } from '../expirer/expirer.ts';
import { ObjectAuditor } from './auditor.ts';
import { DbReplicator } from './db-replicator.ts';
import { ObjectReplicator } from './object-replicator.ts';
import { startCluster, type Cluster } from './test-cluster.ts';

const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });

interface Env {
  cluster: Cluster;
  ks: KeystoneFixture;
  proxy: ProxyApp;
  url: string;
  token: string;
  account: string;
}

async function startEnv(): Promise<Env> {
  const cluster = await startCluster();
  const ks = await startKeystone();
  const r = cluster.rings;
  const config = proxyConfig(defaultSwiftValues(), { authUri: ks.url });
  config.timeouts = { connMs: 500, nodeMs: 3000 };
  const proxy = await createProxyApp({ rings: { account: proxyRing(r.account), container: proxyRing(r.container), object: proxyRing(r.object) }, config, logger, tokens: ks.tokens, version: '0.1.0' });
  const url = await proxy.app.listen({ host: '127.0.0.1', port: 0 });
  const k = ks.ks;
  const p = await k.resource.createProject({ name: 'durable', domainId: 'default' });
  const u = await k.identity.createUser({ name: 'durable-member', domainId: 'default', password: 'durable-pw' });
  await k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds.member);
  const token = (await ks.login('durable-member', 'durable-pw', { project: { id: p.id } })).token;
  return { cluster, ks, proxy, url, token: token!, account: `AUTH_${p.id}` };
}

function api(env: Env, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${env.url}/v1/${env.account}${path}`, { method, body: body as BodyInit | undefined, headers: { 'x-auth-token': env.token, ...headers } });
}

function replicators(env: Env): ObjectReplicator[] {
  return env.cluster.nodes.map((n) => new ObjectReplicator({ devices: n.devicesDir, ring: env.cluster.rings.object, node: { port: n.port }, logger, nodeTimeoutMs: 3000 }));
}

/** Replication passes on every running node until one changes nothing (at most `max`); answers the objects pushed. */
async function replicateAll(env: Env, max = 4): Promise<number> {
  const reps = replicators(env);
  let pushed = 0;
  for (let round = 1; round <= max; round++) {
    let moved = 0;
    for (const [i, r] of reps.entries()) {
      if (!env.cluster.nodes[i].running) continue;
      const s = await r.runOnce();
      moved += s.objectsPushed + s.filesRemoved;
      pushed += s.objectsPushed;
    }
    if (!moved) return pushed;
  }
  throw new Error(`replication still moving files after ${max} rounds`);
}

/** Container and account replication passes on every running node, twice (a handoff reverts, then primaries settle). */
async function replicateDbs(env: Env): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (const n of env.cluster.nodes) {
      if (!n.running) continue;
      for (const kind of ['container', 'account'] as const) {
        const s = await new DbReplicator({ kind, devices: n.devicesDir, ring: env.cluster.rings[kind], node: { port: n.port }, logger }).runOnce();
        assert.equal(s.failures, 0, `${kind} replication failures on node ${n.index}`);
      }
    }
  }
}

/** The object names one container replica lists, asked of its storage node directly. */
async function replicaListing(env: Env, container: string): Promise<{ device: string; names: string[] }[]> {
  const { partition, nodes } = env.cluster.rings.container.getNodes(env.account, container);
  return Promise.all(
    nodes.map(async (n) => {
      const res = await fetch(`http://${n.ip}:${n.port}/${n.device}/${partition}/${env.account}/${container}?format=json`, { headers: { 'x-backend-server-type': 'container' } });
      assert.equal(res.status, 200, `container ${container} on ${n.device}`);
      return { device: n.device, names: ((await res.json()) as { name: string }[]).map((o) => o.name) };
    }),
  );
}

function body(name: string): Buffer {
  return Buffer.from(`contents of ${name} `.repeat(1 + (name.length % 7)));
}

async function putAll(env: Env, container: string, names: string[]): Promise<void> {
  for (const n of names) {
    const res = await api(env, 'PUT', `/${container}/${n}`, body(n));
    assert.equal(res.status, 201, `PUT ${n}`);
  }
}

async function assertReadable(env: Env, container: string, names: string[]): Promise<void> {
  for (const n of names) {
    const res = await api(env, 'GET', `/${container}/${n}`);
    assert.equal(res.status, 200, `GET ${n}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body(n), `content of ${n}`);
  }
}

/** Every object has exactly three .data files across the nodes, all with the right body. */
function assertThreeReplicas(env: Env, container: string, names: string[]): void {
  for (const n of names) {
    const files = env.cluster.objectFiles(env.account, container, n);
    assert.equal(files.length, 3, `${n}: .data files ${JSON.stringify(files)}`);
    for (const f of files) {
      const raw = readFileSync(f);
      const len = raw.length - raw.readUInt32BE(raw.length - 12) - 12;
      assert.deepEqual(raw.subarray(0, len), body(n), `${f} body`);
    }
  }
}

describe('swift durability (three storage node processes)', { timeout: 120_000 }, () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
    assert.equal((await api(env, 'PUT', '/c1')).status, 201);
  });
  after(async () => {
    await env?.proxy.app.close().catch(() => undefined);
    await env?.ks.close().catch(() => undefined);
    await env?.cluster.close();
  });

  test('a stopped node: reads and writes go on; once back, replication restores every replica', async () => {
    const first = Array.from({ length: 12 }, (_, i) => `before-${i}`);
    await putAll(env, 'c1', first);
    assertThreeReplicas(env, 'c1', first);

    const down = env.cluster.nodes[2];
    await down.stop('SIGTERM');
    const during = Array.from({ length: 12 }, (_, i) => `during-${i}`);
    await putAll(env, 'c1', during);
    // A container created meanwhile: its third DB goes to a handoff.
    assert.equal((await api(env, 'PUT', '/c2')).status, 201);
    await putAll(env, 'c2', ['in-c2']);
    await assertReadable(env, 'c1', [...first, ...during]);
    // The node's replicas went to handoffs on the live nodes.
    for (const n of during) assert.equal(env.cluster.objectFiles(env.account, 'c1', n).length, 3, `${n} written to 2 primaries + 1 handoff`);

    await down.start();
    // Each object written meanwhile was missing on the returning node: a handoff or a primary pushed it there.
    assert.ok((await replicateAll(env)) >= during.length);
    assertThreeReplicas(env, 'c1', [...first, ...during]);
    // Handoffs gave their copies back: each replica now sits on a primary.
    for (const n of during) {
      const { partition, nodes } = env.cluster.rings.object.getNodes(env.account, 'c1', n);
      const files = env.cluster.objectFiles(env.account, 'c1', n);
      for (const node of nodes) assert.ok(files.some((f) => f.includes(`/${node.device}/objects/${partition}/`)), `${n} on primary ${node.device}`);
    }
    await assertReadable(env, 'c1', [...first, ...during]);

    // Container DBs: the returning replica of c1 missed rows, c2's primary on it had no DB at all.
    await replicateDbs(env);
    for (const r of await replicaListing(env, 'c1')) assert.deepEqual(r.names.sort(), [...first, ...during].sort(), `c1 on ${r.device}`);
    for (const r of await replicaListing(env, 'c2')) assert.deepEqual(r.names, ['in-c2'], `c2 on ${r.device}`);
    const h = hashPath(env.cluster.hash, env.account, 'c2');
    const dbs = env.cluster.nodes.flatMap((n) => n.devices.filter((d) => existsSync(join(n.devicesDir, d, 'containers')) && readdirSync(join(n.devicesDir, d, 'containers')).some((p) => existsSync(join(n.devicesDir, d, 'containers', p, h.slice(-3), h)))));
    assert.deepEqual(dbs.sort(), env.cluster.rings.container.getNodes(env.account, 'c2').nodes.map((n) => n.device).sort(), 'c2 DBs only on its primaries');
  });

  test('a corrupt object file: the auditor quarantines it, replication puts a good copy back', async () => {
    const names = ['victim', 'bystander'];
    await putAll(env, 'c1', names);
    const [file] = env.cluster.objectFiles(env.account, 'c1', 'victim');
    const node = env.cluster.nodes.find((n) => file.startsWith(`${n.devicesDir}/`))!;
    // Flip one byte of the body: the size and the trailer stay valid, only the md5 tells.
    const raw = readFileSync(file);
    raw[3] ^= 0x20;
    writeFileSync(file, raw);

    const stats = await new ObjectAuditor({ devices: node.devicesDir, logger }).runOnce();
    assert.equal(stats.quarantined, 1);
    assert.equal(stats.errors, 0);
    assert.equal(env.cluster.objectFiles(env.account, 'c1', 'victim').length, 2, 'the bad copy left the object dir');

    assert.ok((await replicateAll(env)) >= 1);
    assertThreeReplicas(env, 'c1', names);
    const again = await new ObjectAuditor({ devices: node.devicesDir, logger }).runOnce();
    assert.equal(again.quarantined, 0);
    await assertReadable(env, 'c1', names);
  });

  test('kill -9 of a node during concurrent writes loses no acknowledged write', async () => {
    const names = Array.from({ length: 60 }, (_, i) => `k-${String(i).padStart(2, '0')}`);
    const victim = env.cluster.nodes[1];
    const acked: string[] = [];
    let next = 0;
    let killed: Promise<void> | undefined;
    const writer = async () => {
      while (next < names.length) {
        const n = names[next++];
        const res = await api(env, 'PUT', `/c1/${n}`, body(n)).catch(() => undefined);
        if (res?.status === 201) acked.push(n);
        if (next === 20) killed ??= victim.stop('SIGKILL');
      }
    };
    await Promise.all(Array.from({ length: 8 }, writer));
    await killed;
    assert.ok(!victim.running);
    assert.ok(acked.length >= 50, `acknowledged ${acked.length} of ${names.length}`);
    await assertReadable(env, 'c1', acked);

    await victim.start();
    await replicateAll(env);
    assertThreeReplicas(env, 'c1', acked);
    await assertReadable(env, 'c1', acked);
  });

  test('the expirer deletes objects past X-Delete-At on every replica and from the listing', async () => {
    const deleteAt = Math.floor(Date.now() / 1000) + 30;
    assert.equal((await api(env, 'PUT', '/c3')).status, 201);
    assert.equal((await api(env, 'PUT', '/c3/doomed', body('doomed'), { 'x-delete-at': String(deleteAt) })).status, 201);
    await putAll(env, 'c3', ['kept']);
    assert.equal((await api(env, 'POST', '/c3/kept', undefined, { 'x-delete-at': String(deleteAt + 3600) })).status, 202);
    const expirers = (nowMs: number) => env.cluster.nodes.map((n) => new ObjectExpirer({ devices: n.devicesDir, objectRing: env.cluster.rings.object, containerRing: env.cluster.rings.container, node: { port: n.port }, now: () => nowMs, logger }));

    // Not yet due: nothing happens.
    for (const e of expirers(Date.now())) assert.equal((await e.runOnce()).expired, 0);
    assert.equal(env.cluster.objectFiles(env.account, 'c3', 'doomed').length, 3);

    let expired = 0;
    for (const e of expirers((deleteAt + 1) * 1000)) {
      const s = await e.runOnce();
      assert.equal(s.failures, 0);
      expired += s.expired;
    }
    assert.equal(expired, 1, 'the first node to find it expires it everywhere; the others see a tombstone');
    // A proxy that still avoids the node killed above wrote to handoffs: replication settles those copies too.
    await replicateAll(env);
    await replicateDbs(env);
    assert.equal(env.cluster.objectFiles(env.account, 'c3', 'doomed').length, 0);
    assert.equal(env.cluster.objectFiles(env.account, 'c3', 'doomed', '.ts').length, 3);
    assert.equal(env.cluster.objectFiles(env.account, 'c3', 'kept').length, 3);
    for (const r of await replicaListing(env, 'c3')) assert.deepEqual(r.names, ['kept'], `c3 on ${r.device}`);
  });
});
