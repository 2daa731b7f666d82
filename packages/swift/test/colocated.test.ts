/**
 * The all-in-one layout: one storage node holding every replica's device. The
 * proxy sends a large object's body there once (common/colocated.ts) and still
 * counts each replica towards quorum.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COLOCATED_HEADER } from '../src/common/colocated.ts';
import { startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('swift proxy over one storage node with every replica', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  const puts: { url: string; colocated?: string }[] = [];
  before(async () => {
    f = await startSwift({ cluster: { nodes: 1, devicesPerNode: 4 } });
    p = await f.project('colo');
    f.nodes[0].server!.on('request', (req: IncomingMessage) => {
      // Proxy requests only: the object server's container row updates are PUTs to this node too.
      if (req.method === 'PUT' && req.url?.includes('/c/') && !/^(object|container)-server/.test(String(req.headers['user-agent']))) puts.push({ url: req.url, colocated: req.headers[COLOCATED_HEADER] as string | undefined });
    });
    await p.member.req('PUT', `/v1/${p.account}/c`);
  });
  after(() => f?.close());

  const where = (obj: string) => f.cluster.objectRing.getNodes(p.account, 'c', obj);
  const copies = (obj: string) => f.nodes[0].dataFiles(p.account, 'c', obj, where(obj).partition);

  it('sends a large body once for all three replicas, each written and listed', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 7);
    puts.length = 0;
    const r = await p.member.req('PUT', `/v1/${p.account}/c/big`, { body });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('etag'), md5(body));
    assert.equal(puts.length, 1, 'one backend PUT');
    const named = JSON.parse(puts[0].colocated ?? '[]') as { device: string; containerHost?: string }[];
    const { nodes } = where('big');
    assert.deepEqual([puts[0].url.split('/')[1], ...named.map((n) => n.device)].sort(), nodes.map((n) => n.device).sort());
    assert.ok(named.every((n) => n.containerHost), 'each replica carries its container update target');
    const files = copies('big');
    assert.equal(files.length, 3);
    assert.equal(new Set(files.map((file) => file.split('/').find((s) => /^n1d\d$/.test(s)))).size, 3, 'one copy per primary device');
    const g = await p.member.req('GET', `/v1/${p.account}/c/big`);
    assert.ok(Buffer.from(await g.arrayBuffer()).equals(body));
    const list = (await (await p.member.req('GET', `/v1/${p.account}/c?format=json`)).json()) as { name: string; bytes: number; hash: string }[];
    assert.deepEqual(
      list.filter((o) => o.name === 'big').map((o) => [o.bytes, o.hash]),
      [[body.length, md5(body)]],
    );
    // Small bodies keep one request per replica (putWhole).
    puts.length = 0;
    assert.equal((await p.member.req('PUT', `/v1/${p.account}/c/small`, { body: 'tiny' })).status, 201);
    assert.equal(puts.length, 3);
    assert.equal(copies('small').length, 3);
  });

  it('a chunked upload (no Content-Length) is grouped too', async () => {
    const body = randomBytes(2 * 1024 * 1024 + 3);
    const stream = new ReadableStream({
      start(c) {
        for (let at = 0; at < body.length; at += 256 * 1024) c.enqueue(new Uint8Array(body.subarray(at, at + 256 * 1024)));
        c.close();
      },
    });
    puts.length = 0;
    const r = await p.member.req('PUT', `/v1/${p.account}/c/chunked`, { body: stream });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('etag'), md5(body));
    assert.equal(puts.length, 1);
    assert.equal(copies('chunked').length, 3);
    const g = await p.member.req('GET', `/v1/${p.account}/c/chunked`);
    assert.ok(Buffer.from(await g.arrayBuffer()).equals(body));
  });

  it('an ETag mismatch is a 422 with no copy anywhere', async () => {
    const body = randomBytes(1024 * 1024);
    const r = await p.member.req('PUT', `/v1/${p.account}/c/mismatch`, { body, headers: { etag: md5(Buffer.from('else')) } });
    assert.equal(r.status, 422);
    assert.deepEqual(copies('mismatch'), []);
  });

  it('a missing primary device fails only its replica; the next PUT puts that replica on a handoff', async () => {
    const obj = 'degraded';
    const { nodes } = where(obj);
    const gone = join(f.nodes[0].devices, nodes[2].device);
    rmSync(gone, { recursive: true });
    try {
      const body = randomBytes(512 * 1024);
      let r = await p.member.req('PUT', `/v1/${p.account}/c/${obj}`, { body });
      assert.equal(r.status, 201, 'two of three replicas are a quorum');
      assert.equal(copies(obj).length, 2);
      r = await p.member.req('PUT', `/v1/${p.account}/c/${obj}`, { body });
      assert.equal(r.status, 201);
      const devices = copies(obj).map((file) => file.split('/').find((s) => /^n1d\d$/.test(s)));
      assert.equal(devices.length, 3, 'the missing device is error-limited and a handoff took its replica');
      assert.ok(!devices.includes(nodes[2].device));
      const g = await p.member.req('GET', `/v1/${p.account}/c/${obj}`);
      assert.ok(Buffer.from(await g.arrayBuffer()).equals(body));
    } finally {
      mkdirSync(gone);
    }
  });
});
