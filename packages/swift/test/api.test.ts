import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { multipartParts, startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

describe('swift proxy API', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  before(async () => {
    f = await startSwift();
    p = await f.project('alpha');
  });
  after(() => f?.close());

  it('autocreates the account and answers container, object and listing calls', async () => {
    const acct = `/v1/${p.account}`;
    let r = await p.member.req('HEAD', acct);
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('x-account-container-count'), '0');
    assert.match(r.headers.get('x-trans-id') ?? '', /^tx[0-9a-f]{21}-[0-9a-f]{10}$/);
    assert.equal(r.headers.get('x-openstack-request-id'), r.headers.get('x-trans-id'));
    r = await p.member.req('PUT', `${acct}/c1`, { headers: { 'x-container-meta-color': 'blue' } });
    assert.equal(r.status, 201, await r.text());
    r = await p.member.req('PUT', `${acct}/c1`);
    assert.equal(r.status, 202);
    r = await p.member.req('PUT', `${acct}/c1/dir/a.txt`, { body: Buffer.from('hello'), headers: { 'x-object-meta-k': 'v' } });
    assert.equal(r.status, 201, await r.text());
    assert.equal(r.headers.get('etag'), '5d41402abc4b2a76b9719d911017c592');
    r = await p.member.req('GET', `${acct}/c1/dir/a.txt`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'hello');
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('x-object-meta-k'), 'v');
    r = await p.member.req('GET', `${acct}/c1/dir/a.txt`, { headers: { range: 'bytes=1-2' } });
    assert.equal(r.status, 206);
    assert.equal(await r.text(), 'el');
    r = await p.member.req('GET', `${acct}/c1/dir/a.txt`, { headers: { range: 'bytes=0-0,-2' } });
    assert.equal(r.status, 206);
    assert.deepEqual(multipartParts(r.headers.get('content-type'), Buffer.from(await r.arrayBuffer())), [
      { range: 'bytes 0-0/5', type: 'text/plain', body: Buffer.from('h') },
      { range: 'bytes 3-4/5', type: 'text/plain', body: Buffer.from('lo') },
    ]);
    r = await p.member.req('GET', `${acct}/c1/dir/a.txt`, { headers: { range: 'bytes=10-20' } });
    assert.equal(r.status, 416);
    await r.text();
    r = await p.member.req('PUT', `${acct}/c1/b`, { body: 'x', headers: { etag: '0'.repeat(32) } });
    assert.equal(r.status, 422);
    await r.text();
    r = await p.member.req('GET', `${acct}/c1?format=json&delimiter=/`);
    assert.equal(r.status, 200);
    assert.deepEqual((await r.json()).map((e: { name?: string; subdir?: string }) => e.name ?? e.subdir), ['dir/']);
    r = await p.member.req('GET', `${acct}/c1`);
    assert.equal(await r.text(), 'dir/a.txt\n');
    r = await p.member.req('GET', `${acct}/c1?format=xml`);
    assert.match(await r.text(), /<container name="c1"><object><name>dir\/a.txt<\/name>/);
    r = await p.member.req('HEAD', `${acct}/c1`);
    assert.equal(r.headers.get('x-container-meta-color'), 'blue');
    assert.equal(r.headers.get('x-storage-policy'), 'Policy-0');
    r = await p.member.req('GET', acct, { headers: { accept: 'application/json' } });
    assert.deepEqual((await r.json()).map((e: { name: string }) => e.name), ['c1']);
    r = await p.member.req('DELETE', `${acct}/c1`);
    assert.equal(r.status, 409);
    await r.text();
    r = await p.member.req('PUT', `${acct}/c1/copy`, { headers: { 'x-copy-from': 'c1/dir/a.txt', 'content-length': '0' } });
    assert.equal(r.status, 201, await r.text());
    assert.equal(r.headers.get('x-copied-from'), 'c1/dir/a.txt');
    r = await p.member.req('COPY', `${acct}/c1/copy`, { headers: { destination: 'c1/copy2', 'x-object-meta-new': '1' } });
    assert.equal(r.status, 201, await r.text());
    r = await p.member.req('HEAD', `${acct}/c1/copy2`);
    assert.equal(r.headers.get('x-object-meta-k'), 'v');
    assert.equal(r.headers.get('x-object-meta-new'), '1');
    for (const o of ['dir/a.txt', 'copy', 'copy2']) {
      r = await p.member.req('DELETE', `${acct}/c1/${o}`);
      assert.equal(r.status, 204);
    }
    r = await p.member.req('DELETE', `${acct}/c1`);
    assert.equal(r.status, 204);
  });

  it('answers bad input with upstream codes', async () => {
    const acct = `/v1/${p.account}`;
    await p.member.req('PUT', `${acct}/bad`);
    let r = await p.member.req('PUT', `${acct}/${'c'.repeat(257)}`);
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Container name length of 257 longer than 256');
    r = await p.member.req('PUT', `${acct}/bad/${'o'.repeat(1025)}`, { body: '' });
    assert.equal(r.status, 400);
    await r.text();
    r = await p.member.req('GET', `${acct}/bad/%FF`);
    assert.equal(r.status, 412);
    await r.text();
    r = await p.member.req('GET', `${acct}/bad?limit=10001`);
    assert.equal(r.status, 412);
    await r.text();
    // fetch cannot announce a length it does not send: a raw request does.
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(f.url);
      const q = request({ host: u.hostname, port: u.port, method: 'PUT', path: `${acct}/bad/big`, headers: { 'x-auth-token': p.member.token!, 'content-length': String(5 * 1024 ** 3 + 3) } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
        q.destroy();
      });
      q.on('error', reject);
      q.flushHeaders();
    });
    assert.equal(status, 413);
    r = await p.member.req('PUT', `${acct}/bad/exp`, { body: 'x', headers: { 'x-delete-after': 'soon' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Non-integer X-Delete-After');
  });

  it('keeps projects apart and follows container ACLs', async () => {
    const q = await f.project('beta');
    const acct = `/v1/${p.account}`;
    await p.member.req('PUT', `${acct}/shared`);
    await p.member.req('PUT', `${acct}/shared/o`, { body: 'data' });
    let r = await f.anon.req('GET', `${acct}/shared/o`);
    assert.equal(r.status, 401);
    await r.text();
    r = await q.member.req('GET', `${acct}/shared/o`);
    assert.equal(r.status, 403);
    await r.text();
    r = await q.member.req('GET', acct);
    assert.equal(r.status, 403);
    await r.text();
    r = await p.reader.req('GET', `${acct}/shared/o`);
    assert.equal(r.status, 200);
    await r.text();
    r = await p.reader.req('PUT', `${acct}/shared/o2`, { body: 'x' });
    assert.equal(r.status, 403);
    await r.text();
    r = await p.member.req('POST', `${acct}/shared`, { headers: { 'x-container-read': `${q.id}:*`, 'x-container-write': `${q.id}:${q.memberUserId}` } });
    assert.equal(r.status, 204);
    r = await q.member.req('GET', `${acct}/shared/o`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'data');
    r = await q.member.req('PUT', `${acct}/shared/from-beta`, { body: 'b' });
    assert.equal(r.status, 201);
    r = await q.member.req('HEAD', `${acct}/shared`);
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('x-container-read'), null, 'ACLs are only shown to the owner');
    r = await f.anon.req('GET', `${acct}/shared`);
    assert.equal(r.status, 401);
    await r.text();
    r = await p.member.req('POST', `${acct}/shared`, { headers: { 'x-container-read': '.r:*' } });
    r = await f.anon.req('GET', `${acct}/shared/o`);
    assert.equal(r.status, 200);
    await r.text();
    r = await f.anon.req('GET', `${acct}/shared`);
    assert.equal(r.status, 401, 'listing needs .rlistings');
    await r.text();
    await p.member.req('POST', `${acct}/shared`, { headers: { 'x-container-read': '.r:*,.rlistings' } });
    r = await f.anon.req('GET', `${acct}/shared`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'from-beta\no\n');
    r = await p.member.req('POST', `${acct}/shared`, { headers: { 'x-container-write': '.r:*' } });
    assert.equal(r.status, 400);
    await r.text();
  });

  it('writes and reads with one of three primaries down', async () => {
    const acct = `/v1/${p.account}`;
    await p.member.req('PUT', `${acct}/q`);
    const { partition, nodes } = f.cluster.objectRing.getNodes(p.account, 'q', 'obj');
    const down = f.cluster.nodeOf(nodes[1].port);
    const copies = () => f.nodes.reduce((n, node) => n + node.dataFiles(p.account, 'q', 'obj', partition).length, 0);
    await down.stop();
    try {
      let r = await p.member.req('PUT', `${acct}/q/obj`, { body: 'quorum' });
      assert.equal(r.status, 201);
      assert.equal(copies(), 3, 'a handoff took the down primary’s replica');
      r = await p.member.req('GET', `${acct}/q/obj`);
      assert.equal(await r.text(), 'quorum');
      const first = f.cluster.nodeOf(nodes[0].port);
      for (const file of first.dataFiles(p.account, 'q', 'obj', partition)) rmSync(file);
      r = await p.member.req('GET', `${acct}/q/obj`);
      assert.equal(r.status, 200, 'a read falls back past a missing copy and a down node');
      assert.equal(await r.text(), 'quorum');
    } finally {
      await down.start();
    }
  });

  it('serves /info and /healthcheck without a token', async () => {
    let r = await f.anon.req('GET', '/info');
    const info = await r.json();
    assert.equal(info.swift.max_file_size, 5368709122);
    assert.equal(info.swift.container_listing_limit, 10000);
    r = await f.anon.req('GET', '/healthcheck');
    assert.equal(await r.text(), 'OK');
  });
});

describe('swift tempurl', () => {
  let f: SwiftFixture;
  before(async () => {
    f = await startSwift();
  });
  after(() => f?.close());

  it('admits signed GET and PUT without a token, until expiry, within the key’s scope', async () => {
    const { createHmac } = await import('node:crypto');
    const p = await f.project('tu');
    const acct = `/v1/${p.account}`;
    await p.member.req('PUT', `${acct}/c`);
    await p.member.req('PUT', `${acct}/c/file.bin`, { body: Buffer.from('secret'), headers: { 'x-object-meta-private': 'x', 'x-object-meta-public-tag': 'y' } });
    let r = await p.member.req('POST', acct, { headers: { 'x-account-meta-temp-url-key': 'k1' } });
    assert.equal(r.status, 204);
    const expires = Math.floor(Date.now() / 1000) + 60;
    const sign = (algo: string, method: string, path: string, key = 'k1') => createHmac(algo, key).update(`${method}\n${expires}\n${path}`).digest('hex');
    for (const algo of ['sha1', 'sha256', 'sha512']) {
      r = await f.anon.req('GET', `${acct}/c/file.bin?temp_url_sig=${sign(algo, 'GET', `${acct}/c/file.bin`)}&temp_url_expires=${expires}`);
      assert.equal(r.status, 200, algo);
      assert.equal(await r.text(), 'secret');
      assert.equal(r.headers.get('content-disposition'), `attachment; filename="file.bin"; filename*=UTF-8''file.bin`);
      assert.equal(r.headers.get('x-object-meta-private'), null);
      assert.equal(r.headers.get('x-object-meta-public-tag'), 'y');
    }
    r = await f.anon.req('HEAD', `${acct}/c/file.bin?temp_url_sig=${sign('sha256', 'GET', `${acct}/c/file.bin`)}&temp_url_expires=${expires}&inline`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-disposition'), 'inline');
    r = await f.anon.req('PUT', `${acct}/c/up?temp_url_sig=${sign('sha256', 'PUT', `${acct}/c/up`)}&temp_url_expires=${expires}`, { body: Buffer.from('via tempurl') });
    assert.equal(r.status, 201);
    r = await f.anon.req('GET', `${acct}/c/up?temp_url_sig=${sign('sha256', 'PUT', `${acct}/c/up`)}&temp_url_expires=${expires}`);
    assert.equal(r.status, 401, 'a PUT signature does not read');
    assert.equal(await r.text(), '401 Unauthorized: Temp URL invalid\n');
    r = await f.anon.req('GET', `${acct}/c/up?temp_url_sig=${sign('sha256', 'GET', `prefix:${acct}/c/u`)}&temp_url_expires=${expires}&temp_url_prefix=u`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'via tempurl');
    const past = Math.floor(Date.now() / 1000) - 1;
    r = await f.anon.req('GET', `${acct}/c/up?temp_url_sig=${createHmac('sha256', 'k1').update(`GET\n${past}\n${acct}/c/up`).digest('hex')}&temp_url_expires=${past}`);
    assert.equal(r.status, 401, 'expired');
    await r.text();
    await p.member.req('POST', `${acct}/c`, { headers: { 'x-container-meta-temp-url-key': 'ck' } });
    await p.member.req('PUT', `${acct}/other`);
    r = await f.anon.req('GET', `${acct}/c/file.bin?temp_url_sig=${sign('sha256', 'GET', `${acct}/c/file.bin`, 'ck')}&temp_url_expires=${expires}`);
    assert.equal(r.status, 200, 'a container key signs its own objects');
    await r.text();
    r = await p.member.req('HEAD', acct);
    assert.equal(r.headers.get('x-account-meta-temp-url-key'), 'k1', 'the owner sees the key');
    r = await p.reader.req('HEAD', acct);
    assert.equal(r.headers.get('x-account-meta-temp-url-key'), null, 'a reader does not');
    r = await f.anon.req('GET', '/info');
    assert.deepEqual((await r.json()).tempurl.allowed_digests, ['sha1', 'sha256', 'sha512']);
  });
});
