import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createAccountServer } from './account-server.ts';
import { createContainerServer } from './container-server.ts';
import { ContainerUpdater } from './container-updater.ts';
import { createObjectServer } from './object-server.ts';
import { ObjectUpdater } from './object-updater.ts';
import { createStorageNode } from './storage-node.ts';
import { listen, nextTs, TEST_HASH_PATH, tempDevices } from './test-support.ts';

describe('container and account servers', () => {
  const devs = tempDevices(['sda1', 'sdb1']);
  let obj: Awaited<ReturnType<typeof listen>>;
  let cont: Awaited<ReturnType<typeof listen>>;
  let acct: Awaited<ReturnType<typeof listen>>;
  before(async () => {
    acct = await listen(createAccountServer({ devices: devs.devices, hashPath: TEST_HASH_PATH }));
    cont = await listen(createContainerServer({ devices: devs.devices, hashPath: TEST_HASH_PATH, accountReportDelayMs: 0 }));
    obj = await listen(createObjectServer({ devices: devs.devices, hashPath: TEST_HASH_PATH }));
  });
  after(async () => {
    await Promise.all([obj.close(), cont.close(), acct.close()]);
    devs.remove();
  });

  const acctHeaders = () => ({ 'X-Account-Host': acct.host, 'X-Account-Device': 'sdb1', 'X-Account-Partition': '3' });
  const putAccount = (a: string) => fetch(`${acct.url}/sdb1/3/${a}`, { method: 'PUT', headers: { 'X-Timestamp': nextTs() } });
  const putContainer = (a: string, c: string, h: Record<string, string> = {}) => fetch(`${cont.url}/sda1/5/${a}/${c}`, { method: 'PUT', headers: { 'X-Timestamp': nextTs(), ...acctHeaders(), ...h } });
  const row = (a: string, c: string, o: string, size = 1, ct = 'text/plain') =>
    fetch(`${cont.url}/sda1/5/${a}/${c}/${encodeURIComponent(o)}`, { method: 'PUT', headers: { 'X-Timestamp': nextTs(), 'X-Size': String(size), 'X-Content-Type': ct, 'X-Etag': 'e'.repeat(32) } });
  const list = async (a: string, c: string, qs: string) => {
    const r = await fetch(`${cont.url}/sda1/5/${a}/${c}?${qs}`);
    return r.status === 204 ? [] : ((await r.json()) as { name?: string; subdir?: string }[]).map((x) => x.name ?? `D:${x.subdir}`);
  };

  it('container PUT needs its account; creates (201), then accepts (202); metadata round-trips', async () => {
    assert.equal((await putContainer('AUTH_none', 'c')).status, 404);
    assert.equal((await putAccount('AUTH_t')).status, 201);
    assert.equal((await putContainer('AUTH_t', 'c1', { 'X-Container-Meta-Color': 'red', 'X-Container-Read': '.r:*' })).status, 201);
    assert.equal((await putContainer('AUTH_t', 'c1')).status, 202);
    const h = await fetch(`${cont.url}/sda1/5/AUTH_t/c1`, { method: 'HEAD' });
    assert.equal(h.status, 204);
    assert.equal(h.headers.get('x-container-meta-color'), 'red');
    assert.equal(h.headers.get('x-container-read'), '.r:*');
    assert.equal(h.headers.get('x-container-object-count'), '0');
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/c1`, { method: 'POST', headers: { 'X-Timestamp': nextTs(), 'X-Container-Meta-Color': '' } })).status, 204);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/c1`, { method: 'HEAD' })).headers.get('x-container-meta-color'), null);
    // The account lists the container.
    const al = await fetch(`${acct.url}/sdb1/3/AUTH_t?format=json`);
    assert.deepEqual(((await al.json()) as { name: string }[]).map((c) => c.name), ['c1']);
  });

  it('listing: prefix, delimiter, marker, end_marker, path, reverse, limit, formats', async () => {
    await putContainer('AUTH_t', 'l');
    for (const n of ['a', 'b/1', 'b/2', 'b/c/3', 'c', 'd.txt']) assert.equal((await row('AUTH_t', 'l', n)).status, 201);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json'), ['a', 'b/1', 'b/2', 'b/c/3', 'c', 'd.txt']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&prefix=b/'), ['b/1', 'b/2', 'b/c/3']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&delimiter=/'), ['a', 'D:b/', 'c', 'd.txt']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&prefix=b/&delimiter=/'), ['b/1', 'b/2', 'D:b/c/']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&marker=b/2'), ['b/c/3', 'c', 'd.txt']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&end_marker=b/2'), ['a', 'b/1']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&path=b'), ['b/1', 'b/2']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&reverse=true'), ['d.txt', 'c', 'b/c/3', 'b/2', 'b/1', 'a']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&reverse=true&delimiter=/'), ['d.txt', 'c', 'D:b/', 'a']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&reverse=true&marker=c'), ['b/c/3', 'b/2', 'b/1', 'a']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&limit=2'), ['a', 'b/1']);
    assert.deepEqual(await list('AUTH_t', 'l', 'format=json&limit=2&delimiter=/'), ['a', 'D:b/']);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/l?limit=10001`)).status, 412);
    const plain = await fetch(`${cont.url}/sda1/5/AUTH_t/l?prefix=b/`);
    assert.equal(plain.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(await plain.text(), 'b/1\nb/2\nb/c/3\n');
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/l?prefix=zzz`)).status, 204);
    const xml = await fetch(`${cont.url}/sda1/5/AUTH_t/l?prefix=b/&delimiter=/`, { headers: { Accept: 'application/xml' } });
    const text = await xml.text();
    assert.match(text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<container name="l"><object><name>b\/1<\/name><hash>e{32}<\/hash><bytes>1<\/bytes><content_type>text\/plain<\/content_type><last_modified>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}<\/last_modified><\/object>/);
    assert.ok(text.includes('<subdir name="b/c/"><name>b/c/</name></subdir>'));
    const json = (await (await fetch(`${cont.url}/sda1/5/AUTH_t/l?format=json&prefix=a`)).json()) as Record<string, unknown>[];
    assert.deepEqual(Object.keys(json[0]).sort(), ['bytes', 'content_type', 'hash', 'last_modified', 'name']);
  });

  it('container DELETE: 409 while not empty, 204 when empty, 404 afterwards; older object rows lose', async () => {
    await putContainer('AUTH_t', 'd');
    await row('AUTH_t', 'd', 'x');
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/d`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), ...acctHeaders() } })).status, 409);
    // A delete row older than the put row is ignored.
    await fetch(`${cont.url}/sda1/5/AUTH_t/d/x`, { method: 'DELETE', headers: { 'X-Timestamp': '1600000000.00000' } });
    assert.deepEqual(await list('AUTH_t', 'd', 'format=json'), ['x']);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/d/x`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs() } })).status, 204);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/d`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), ...acctHeaders() } })).status, 204);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/d`, { method: 'HEAD' })).status, 404);
    assert.equal((await fetch(`${cont.url}/sda1/5/AUTH_t/d`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), ...acctHeaders() } })).status, 404);
    const names = ((await (await fetch(`${acct.url}/sdb1/3/AUTH_t?format=json`)).json()) as { name: string }[]).map((c) => c.name);
    assert.ok(!names.includes('d'));
    // Re-created after the delete.
    assert.equal((await putContainer('AUTH_t', 'd')).status, 201);
  });

  it('object PUT updates the container row; the container reports its stats to the account', async () => {
    await putAccount('AUTH_s');
    await putContainer('AUTH_s', 'c');
    const body = Buffer.from('twelve bytes');
    const r = await fetch(`${obj.url}/sda1/9/AUTH_s/c/o1`, {
      method: 'PUT',
      body,
      headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'text/plain', 'X-Container-Host': cont.host, 'X-Container-Device': 'sda1', 'X-Container-Partition': '5' },
    });
    assert.equal(r.status, 201);
    const items = (await (await fetch(`${cont.url}/sda1/5/AUTH_s/c?format=json`)).json()) as { name: string; bytes: number; hash: string }[];
    assert.deepEqual(items.map((i) => [i.name, i.bytes, i.hash]), [['o1', 12, r.headers.get('etag')]]);
    const ch = await fetch(`${cont.url}/sda1/5/AUTH_s/c`, { method: 'HEAD' });
    assert.equal(ch.headers.get('x-container-object-count'), '1');
    assert.equal(ch.headers.get('x-container-bytes-used'), '12');
    // The container updater pushes unreported stats to the account.
    const res = await new ContainerUpdater(devs.devices, {}).runOnce();
    assert.ok(res.reported >= 1);
    const ah = await fetch(`${acct.url}/sdb1/3/AUTH_s`, { method: 'HEAD' });
    assert.equal(ah.status, 204);
    assert.equal(ah.headers.get('x-account-container-count'), '1');
    assert.equal(ah.headers.get('x-account-object-count'), '1');
    assert.equal(ah.headers.get('x-account-bytes-used'), '12');
    assert.deepEqual((await new ContainerUpdater(devs.devices, {}).runOnce()).reported, 0);
  });

  it('async pending written while the container server is down is applied by the updater later', async () => {
    await putContainer('AUTH_s', 'late');
    // A port nobody listens on stands in for the stopped container server.
    const r = await fetch(`${obj.url}/sda1/9/AUTH_s/late/o`, {
      method: 'PUT',
      body: Buffer.from('x'),
      headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'a/b', 'X-Container-Host': '127.0.0.1:1', 'X-Container-Device': 'sda1', 'X-Container-Partition': '5' },
    });
    assert.equal(r.status, 201);
    assert.deepEqual(await list('AUTH_s', 'late', 'format=json'), []);
    const failing = await new ObjectUpdater({ devices: devs.devices }).runOnce();
    assert.equal(failing.failures, 1);
    // The container comes back: the updater finds its replicas through the ring lookup.
    const u = new ObjectUpdater({ devices: devs.devices, containerNodes: () => [{ host: cont.host, device: 'sda1', partition: '5' }] });
    // The pending names its target; point it at the live server as a ring move would.
    const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = join(devs.devices, 'sda1', 'async_pending');
    const [suffix] = readdirSync(dir);
    const [file] = readdirSync(join(dir, suffix));
    const doc = JSON.parse(readFileSync(join(dir, suffix, file), 'utf8'));
    doc.targets = [];
    writeFileSync(join(dir, suffix, file), JSON.stringify(doc));
    const ok = await u.runOnce();
    assert.equal(ok.successes, 1);
    assert.deepEqual(await list('AUTH_s', 'late', 'format=json'), ['o']);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('account: listing, metadata, auto-create prefix, DELETE marks it deleted', async () => {
    await putAccount('AUTH_l');
    for (const c of ['x', 'y', 'z']) await putContainer('AUTH_l', c);
    const al = (await (await fetch(`${acct.url}/sdb1/3/AUTH_l?format=json&marker=x`)).json()) as { name: string; count: number; bytes: number; last_modified: string }[];
    assert.deepEqual(al.map((c) => c.name), ['y', 'z']);
    assert.deepEqual(Object.keys(al[0]).sort(), ['bytes', 'count', 'last_modified', 'name']);
    assert.equal((await fetch(`${acct.url}/sdb1/3/AUTH_l?limit=10001`)).status, 412);
    assert.equal((await fetch(`${acct.url}/sdb1/3/AUTH_l`, { method: 'POST', headers: { 'X-Timestamp': nextTs(), 'X-Account-Meta-Quota': '5' } })).status, 204);
    assert.equal((await fetch(`${acct.url}/sdb1/3/AUTH_l`, { method: 'HEAD' })).headers.get('x-account-meta-quota'), '5');
    // ".expiring_objects"-style accounts come into being with their first container.
    assert.equal((await putContainer('.auto', 'c')).status, 201);
    assert.equal((await fetch(`${acct.url}/sdb1/3/.auto`, { method: 'HEAD' })).status, 204);
    assert.equal((await fetch(`${acct.url}/sdb1/3/AUTH_l`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs() } })).status, 204);
    const gone = await fetch(`${acct.url}/sdb1/3/AUTH_l`, { method: 'HEAD' });
    assert.equal(gone.status, 404);
    assert.equal(gone.headers.get('x-account-status'), 'Deleted');
    assert.equal((await putAccount('AUTH_l')).status, 403);
  });

  it('REPLICATE on a container DB: sync info, rows since a point, merge', async () => {
    await putContainer('AUTH_t', 'rep');
    await row('AUTH_t', 'rep', 'one');
    const { hashPath } = await import('../common/hash-path.ts');
    const h = hashPath(TEST_HASH_PATH, 'AUTH_t', 'rep');
    const rpc = async (args: unknown[]) => {
      const r = await fetch(`${cont.url}/sda1/5/${h}`, { method: 'POST', headers: { 'X-Backend-Verb': 'REPLICATE', 'Content-Type': 'application/json' }, body: JSON.stringify(args) });
      return { status: r.status, body: (await r.json()) as any };
    };
    const sync = await rpc(['sync', 'peer-1']);
    assert.equal(sync.status, 200);
    assert.equal(sync.body.point, -1);
    assert.match(sync.body.hash, /^[0-9a-f]{32}$/);
    const items = await rpc(['get_items', -1, 100]);
    assert.deepEqual(items.body.map((i: { name: string }) => i.name), ['one']);
    const ts = nextTs();
    assert.equal((await rpc(['merge_items', [{ name: 'two', created_at: ts, size: 3, content_type: 'a/b', etag: 'x', deleted: 0, storage_policy_index: 0 }], 'peer-1', 7])).status, 202);
    assert.deepEqual(await list('AUTH_t', 'rep', 'format=json'), ['one', 'two']);
    assert.equal((await rpc(['sync', 'peer-1'])).body.point, 7);
    assert.notEqual((await rpc(['sync'])).body.hash, sync.body.hash);
    assert.equal((await fetch(`${cont.url}/sda1/5/${'0'.repeat(32)}`, { method: 'POST', headers: { 'X-Backend-Verb': 'REPLICATE' }, body: '["sync"]' })).status, 404);
  });
});

describe('all-in-one storage node: row updates for itself', () => {
  const devs = tempDevices(['sda1', 'sdb1']);
  let node: Awaited<ReturnType<typeof listen>>;
  /** Requests that reached the node over HTTP, as "METHOD path user-agent". */
  const seen: string[] = [];
  before(async () => {
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const server = createStorageNode({ devices: devs.devices, hashPath: TEST_HASH_PATH, accountReportDelayMs: 0, selfHosts: [`127.0.0.1:${port}`] });
    server.on('request', (req: IncomingMessage) => seen.push(`${req.method} ${req.url} ${req.headers['user-agent'] ?? ''}`));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    node = {
      url: `http://127.0.0.1:${port}`,
      host: `127.0.0.1:${port}`,
      close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
    };
  });
  after(async () => {
    await node.close();
    devs.remove();
  });

  const objectPut = (path: string, part: string) =>
    fetch(`${node.url}/sda1/9/${path}`, {
      method: 'PUT',
      body: Buffer.from('abc'),
      headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'text/plain', 'X-Container-Host': node.host, 'X-Container-Device': 'sda1', 'X-Container-Partition': part },
    });

  it('applies object rows in-process: listed at once, no loopback request; a DELETE removes the row', async () => {
    assert.equal((await fetch(`${node.url}/sdb1/3/AUTH_n`, { method: 'PUT', headers: { 'X-Timestamp': nextTs() } })).status, 201);
    const acct = { 'X-Account-Host': node.host, 'X-Account-Device': 'sdb1', 'X-Account-Partition': '3' };
    assert.equal((await fetch(`${node.url}/sda1/5/AUTH_n/c`, { method: 'PUT', headers: { 'X-Timestamp': nextTs(), ...acct } })).status, 201);
    seen.length = 0;
    const r = await objectPut('AUTH_n/c/o', '5');
    assert.equal(r.status, 201);
    const items = (await (await fetch(`${node.url}/sda1/5/AUTH_n/c?format=json`)).json()) as { name: string; bytes: number; hash: string }[];
    assert.deepEqual(items.map((i) => [i.name, i.bytes, i.hash]), [['o', 3, r.headers.get('etag')]]);
    assert.deepEqual(seen.filter((s) => s.includes('object-server')), []);
    assert.equal((await fetch(`${node.url}/sda1/9/AUTH_n/c/o`, { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), 'X-Container-Host': node.host, 'X-Container-Device': 'sda1', 'X-Container-Partition': '5' } })).status, 204);
    assert.deepEqual(await (await fetch(`${node.url}/sda1/5/AUTH_n/c?format=json`)).json(), []);
  });

  it('a row the local container cannot take (no such container, no such device) becomes an async pending', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    assert.equal((await objectPut('AUTH_n/missing/o', '5')).status, 201);
    const r = await fetch(`${node.url}/sda1/9/AUTH_n/c/o2`, {
      method: 'PUT',
      body: Buffer.from('x'),
      headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'a/b', 'X-Container-Host': node.host, 'X-Container-Device': 'sdz9', 'X-Container-Partition': '5' },
    });
    assert.equal(r.status, 201);
    const dir = join(devs.devices, 'sda1', 'async_pending');
    const docs = readdirSync(dir).flatMap((s) => readdirSync(join(dir, s)).map((f) => JSON.parse(readFileSync(join(dir, s, f), 'utf8'))));
    assert.deepEqual(docs.map((d) => [d.container, d.obj, d.targets]).sort(), [
      ['c', 'o2', [{ host: node.host, device: 'sdz9', partition: '5' }]],
      ['missing', 'o', [{ host: node.host, device: 'sda1', partition: '5' }]],
    ]);
  });
});
