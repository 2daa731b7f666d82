import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPath } from '../common/hash-path.ts';
import { asyncPendingPath } from './async-pending.ts';
import { hashLocation } from './diskfile.ts';
import { decodeTrailer } from './object-file.ts';
import { createObjectServer } from './object-server.ts';
import { listen, nextTs, TEST_HASH_PATH, tempDevices } from './test-support.ts';

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

describe('object server', () => {
  const devs = tempDevices(['sda1']);
  let srv: Awaited<ReturnType<typeof listen>>;
  let fakeNow = Date.now();
  before(async () => {
    srv = await listen(createObjectServer({ devices: devs.devices, hashPath: TEST_HASH_PATH, now: () => fakeNow, containerUpdateTimeoutMs: 2000 }));
  });
  after(async () => {
    await srv.close();
    devs.remove();
  });

  const u = (obj: string, dev = 'sda1') => `${srv.url}/${dev}/7/AUTH_a/c/${obj}`;
  const put = (obj: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(u(obj), { method: 'PUT', body: Buffer.from(body), headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'text/plain', ...headers } });
  const loc = (obj: string) => hashLocation(join(devs.devices, 'sda1'), 0, '7', hashPath(TEST_HASH_PATH, 'AUTH_a', 'c', obj));

  it('PUT stores body + metadata durably in the hash dir, GET/HEAD return it', async () => {
    const r = await put('o1', 'hello world', { 'X-Object-Meta-Color': 'blue', 'Content-Disposition': 'inline', 'X-Unknown': 'dropped' });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('etag'), md5('hello world'));
    const files = readdirSync(loc('o1').hashDir);
    assert.equal(files.length, 1);
    assert.match(files[0], /^\d{10}\.\d{5}\.data$/);
    const raw = readFileSync(join(loc('o1').hashDir, files[0]));
    assert.equal(raw.subarray(0, 11).toString(), 'hello world');
    const t = decodeTrailer(raw, raw.length);
    assert.ok('meta' in t);
    assert.equal(t.meta.name, '/AUTH_a/c/o1');
    assert.equal(t.meta['Content-Length'], '11');
    assert.equal(t.meta.ETag, md5('hello world'));
    assert.equal(t.meta['X-Unknown'], undefined);
    assert.deepEqual(readdirSync(join(devs.devices, 'sda1', 'tmp')), []);

    const g = await fetch(u('o1'));
    assert.equal(g.status, 200);
    assert.equal(await g.text(), 'hello world');
    assert.equal(g.headers.get('x-object-meta-color'), 'blue');
    assert.equal(g.headers.get('content-disposition'), 'inline');
    assert.equal(g.headers.get('content-type'), 'text/plain');
    assert.equal(g.headers.get('x-timestamp'), files[0].replace('.data', ''));
    assert.equal(g.headers.get('x-backend-timestamp'), files[0].replace('.data', ''));
    const h = await fetch(u('o1'), { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('content-length'), '11');
  });

  it('PUT needs X-Timestamp, Content-Type and a length; older timestamps conflict', async () => {
    assert.equal((await fetch(u('o2'), { method: 'PUT', body: 'x', headers: { 'Content-Type': 'a/b' } })).status, 400);
    assert.equal((await fetch(u('o2'), { method: 'PUT', body: Buffer.from('x'), headers: { 'X-Timestamp': nextTs() } })).status, 400);
    const ts = nextTs();
    assert.equal((await put('o2', 'new', { 'X-Timestamp': ts })).status, 201);
    const old = await put('o2', 'old', { 'X-Timestamp': '1600000000.00000' });
    assert.equal(old.status, 409);
    assert.equal(old.headers.get('x-backend-timestamp'), ts);
    assert.equal((await put('o2', 'same', { 'X-Timestamp': ts })).status, 409);
    assert.equal(await (await fetch(u('o2'))).text(), 'new');
  });

  it('newer PUT replaces the old .data (cleanup) and chunked bodies are accepted', async () => {
    await put('o3', 'first');
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('chunk-a,'));
        c.enqueue(new TextEncoder().encode('chunk-b'));
        c.close();
      },
    });
    const r = await fetch(u('o3'), { method: 'PUT', body, duplex: 'half', headers: { 'X-Timestamp': nextTs(), 'Content-Type': 'x/y' } } as RequestInit);
    assert.equal(r.status, 201);
    assert.deepEqual(readdirSync(loc('o3').hashDir).length, 1);
    assert.equal(await (await fetch(u('o3'))).text(), 'chunk-a,chunk-b');
  });

  it('ETag mismatch → 422 and nothing stored; matching ETag accepted', async () => {
    assert.equal((await put('o4', 'abc', { ETag: md5('nope') })).status, 422);
    assert.equal((await fetch(u('o4'))).status, 404);
    assert.equal(existsSync(loc('o4').hashDir), false);
    assert.equal((await put('o4', 'abc', { ETag: md5('abc') })).status, 201);
  });

  it('If-None-Match: * on PUT → 412 when the object exists', async () => {
    await put('o5', 'x');
    assert.equal((await put('o5', 'y', { 'If-None-Match': '*' })).status, 412);
    assert.equal((await put('o5-new', 'y', { 'If-None-Match': '*' })).status, 201);
  });

  it('ranges: single → 206, multiple → multipart/byteranges, unsatisfiable → 416, malformed → 200', async () => {
    await put('r', '0123456789');
    const one = await fetch(u('r'), { headers: { Range: 'bytes=2-4' } });
    assert.equal(one.status, 206);
    assert.equal(one.headers.get('content-range'), 'bytes 2-4/10');
    assert.equal(await one.text(), '234');
    const suffix = await fetch(u('r'), { headers: { Range: 'bytes=-3' } });
    assert.equal(await suffix.text(), '789');
    const multi = await fetch(u('r'), { headers: { Range: 'bytes=0-1,8-' } });
    assert.equal(multi.status, 206);
    const ct = multi.headers.get('content-type')!;
    assert.match(ct, /^multipart\/byteranges;boundary=/);
    const boundary = ct.split('boundary=')[1];
    const text = await multi.text();
    assert.equal(Number(multi.headers.get('content-length')), Buffer.byteLength(text));
    assert.ok(text.includes(`--${boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n`));
    assert.ok(text.includes('Content-Range: bytes 8-9/10\r\n\r\n89\r\n'));
    assert.ok(text.endsWith(`--${boundary}--`));
    const bad = await fetch(u('r'), { headers: { Range: 'bytes=20-30' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), 'bytes */10');
    assert.equal((await fetch(u('r'), { headers: { Range: 'bytes=5-2' } })).status, 200);
  });

  it('conditional GET: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since', async () => {
    await put('c', 'cond', { 'X-Timestamp': '1700500000.50000' });
    const etag = md5('cond');
    assert.equal((await fetch(u('c'), { headers: { 'If-Match': `"${etag}"` } })).status, 200);
    assert.equal((await fetch(u('c'), { headers: { 'If-Match': '"other"' } })).status, 412);
    const nm = await fetch(u('c'), { headers: { 'If-None-Match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.get('etag'), etag);
    assert.equal((await fetch(u('c'), { headers: { 'If-None-Match': 'zzz' } })).status, 200);
    // Last-Modified is the timestamp rounded up: 1700500001.
    const lm = new Date(1700500001 * 1000).toUTCString();
    assert.equal((await fetch(u('c'))).headers.get('last-modified'), lm);
    assert.equal((await fetch(u('c'), { headers: { 'If-Modified-Since': lm } })).status, 304);
    assert.equal((await fetch(u('c'), { headers: { 'If-Modified-Since': new Date(1700499000 * 1000).toUTCString() } })).status, 200);
    assert.equal((await fetch(u('c'), { headers: { 'If-Unmodified-Since': new Date(1700499000 * 1000).toUTCString() } })).status, 412);
    assert.equal((await fetch(u('c'), { headers: { 'If-Unmodified-Since': lm } })).status, 200);
  });

  it('POST writes a .meta that replaces user metadata but keeps the data; older POST → 409', async () => {
    await put('p', 'data', { 'X-Object-Meta-A': '1', 'X-Object-Meta-B': '2' });
    const ts = nextTs();
    const r = await fetch(u('p'), { method: 'POST', headers: { 'X-Timestamp': ts, 'X-Object-Meta-C': '3', 'Content-Type': 'new/type' } });
    assert.equal(r.status, 202);
    assert.ok(readdirSync(loc('p').hashDir).includes(`${ts}.meta`));
    const g = await fetch(u('p'));
    assert.equal(await g.text(), 'data');
    assert.equal(g.headers.get('x-object-meta-a'), null);
    assert.equal(g.headers.get('x-object-meta-c'), '3');
    assert.equal(g.headers.get('content-type'), 'new/type');
    assert.equal(g.headers.get('etag'), md5('data'));
    assert.equal(g.headers.get('x-timestamp'), ts);
    assert.equal((await fetch(u('p'), { method: 'POST', headers: { 'X-Timestamp': '1600000000.00000' } })).status, 409);
    assert.equal((await fetch(u('nothing-here'), { method: 'POST', headers: { 'X-Timestamp': nextTs() } })).status, 404);
  });

  it('DELETE writes a tombstone (404 with X-Backend-Timestamp afterwards); X-If-Delete-At must match', async () => {
    await put('d', 'gone soon');
    const ts = nextTs();
    const r = await fetch(u('d'), { method: 'DELETE', headers: { 'X-Timestamp': ts } });
    assert.equal(r.status, 204);
    assert.deepEqual(readdirSync(loc('d').hashDir), [`${ts}.ts`]);
    const g = await fetch(u('d'));
    assert.equal(g.status, 404);
    assert.equal(g.headers.get('x-backend-timestamp'), ts);
    // A PUT older than the tombstone loses.
    assert.equal((await put('d', 'x', { 'X-Timestamp': '1600000000.00000' })).status, 409);
    // Deleting what never existed still leaves a tombstone but answers 404.
    assert.equal((await fetch(u('never'), { method: 'DELETE', headers: { 'X-Timestamp': nextTs() } })).status, 404);
    assert.equal(readdirSync(loc('never').hashDir).length, 1);

    const at = String(Math.floor(fakeNow / 1000) + 3600);
    await put('x', 'exp', { 'X-Delete-At': at });
    assert.equal((await fetch(u('x'), { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), 'X-If-Delete-At': '123' } })).status, 412);
    assert.equal((await fetch(u('x'), { method: 'DELETE', headers: { 'X-Timestamp': nextTs(), 'X-If-Delete-At': at } })).status, 204);
  });

  it('expired X-Delete-At → 404; X-Delete-At in the past on PUT → 400', async () => {
    const at = Math.floor(fakeNow / 1000) + 10;
    await put('e', 'temporary', { 'X-Delete-At': String(at) });
    assert.equal((await fetch(u('e'))).status, 200);
    fakeNow += 20_000;
    assert.equal((await fetch(u('e'))).status, 404);
    assert.equal((await put('e2', 'x', { 'X-Delete-At': String(at - 100) })).status, 400);
  });

  it('missing device → 507; bad path → 400; unknown verb → 405', async () => {
    assert.equal((await fetch(u('o', 'sdz9'))).status, 507);
    assert.equal((await fetch(`${srv.url}/sda1/7/AUTH_a`)).status, 400);
    assert.equal((await fetch(u('o'), { method: 'PATCH' })).status, 405);
  });

  it('a .data without a complete trailer is never served and gets quarantined', async () => {
    await put('torn', 'complete body');
    const l = loc('torn');
    const file = join(l.hashDir, readdirSync(l.hashDir)[0]);
    const raw = readFileSync(file);
    writeFileSync(file, raw.subarray(0, raw.length - 5)); // as if the write stopped short
    assert.equal((await fetch(u('torn'))).status, 404);
    assert.equal(existsSync(l.hashDir), false);
    const q = join(devs.devices, 'sda1', 'quarantined', 'objects');
    assert.equal(readdirSync(q).filter((n) => n.startsWith(l.hash)).length, 1);
  });

  it('REPLICATE returns suffix hashes that change when an object changes', async () => {
    await put('rep', 'v1');
    const l = loc('rep');
    const rep = async () => (await (await fetch(`${srv.url}/sda1/7`, { method: 'POST', headers: { 'X-Backend-Verb': 'REPLICATE' } })).json()) as Record<string, string>;
    const h1 = await rep();
    assert.match(h1[l.suffix], /^[0-9a-f]{32}$/);
    assert.deepEqual(await rep(), h1);
    await put('rep', 'v2');
    const h2 = await rep();
    assert.notEqual(h2[l.suffix], h1[l.suffix]);
    await fetch(u('rep'), { method: 'POST', headers: { 'X-Timestamp': nextTs() } });
    const h3 = await rep();
    assert.notEqual(h3[l.suffix], h2[l.suffix]);
    // Another node with the same files agrees: the hash depends on file names only.
    const expected = createHash('md5');
    const names = readdirSync(l.suffixDir).sort();
    for (const hsh of names) {
      const files = readdirSync(join(l.suffixDir, hsh)).sort();
      const meta = files.find((f) => f.endsWith('.meta'));
      const data = files.find((f) => f.endsWith('.data'));
      const ts = files.find((f) => f.endsWith('.ts'));
      for (const f of [meta, ts, data]) if (f) expected.update(f);
    }
    assert.equal(h3[l.suffix], expected.digest('hex'));
  });

  it('an overwrite or DELETE has removed the older .data by the time it answers', async () => {
    await put('ow', 'first version');
    const first = readdirSync(loc('ow').hashDir);
    assert.equal((await put('ow', 'second version')).status, 201);
    const second = readdirSync(loc('ow').hashDir);
    assert.equal(second.length, 1);
    assert.notDeepEqual(second, first);
    assert.equal(await (await fetch(u('ow'))).text(), 'second version');
    assert.equal((await fetch(u('ow'), { method: 'DELETE', headers: { 'X-Timestamp': nextTs() } })).status, 204);
    const left = readdirSync(loc('ow').hashDir);
    assert.equal(left.length, 1);
    assert.match(left[0], /\.ts$/);
  });

  it('container update goes to every X-Container-Host; failures become an async pending', async () => {
    const seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
    const fake = http.createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      res.writeHead(201).end();
    });
    const fakeSrv = await listen(fake);
    try {
      const ts = nextTs();
      const r = await put('up', 'update me', {
        'X-Timestamp': ts,
        'X-Container-Host': `${fakeSrv.host},127.0.0.1:1`,
        'X-Container-Device': 'sdb1,sdc1',
        'X-Container-Partition': '42',
      });
      assert.equal(r.status, 201);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].method, 'PUT');
      assert.equal(seen[0].url, '/sdb1/42/AUTH_a/c/up');
      assert.equal(seen[0].headers['x-size'], '9');
      assert.equal(seen[0].headers['x-etag'], md5('update me'));
      assert.equal(seen[0].headers['x-content-type'], 'text/plain');
      assert.equal(seen[0].headers['x-timestamp'], ts);
      const pending = asyncPendingPath(join(devs.devices, 'sda1'), 0, loc('up').hash, ts);
      const doc = JSON.parse(readFileSync(pending, 'utf8'));
      assert.equal(doc.op, 'PUT');
      assert.equal(doc.obj, 'up');
      assert.deepEqual(doc.targets, [{ host: '127.0.0.1:1', device: 'sdc1', partition: '42' }]);
      assert.equal(doc.headers['x-size'], '9');
    } finally {
      await fakeSrv.close();
    }
  });

  it('streams large bodies (3 MiB) intact, with ranges beyond the first read', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    assert.equal((await put('big', big)).status, 201);
    const g = Buffer.from(await (await fetch(u('big'))).arrayBuffer());
    assert.equal(md5(g), md5(big));
    const r = await fetch(u('big'), { headers: { Range: 'bytes=3145720-3145740' } });
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), big.subarray(3145720, 3145741));
  });

  it('bodies hashed on the md5 thread (5 MiB) are checked against the ETag as small ones are', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
    assert.equal((await put('big5', big, { ETag: md5(big.subarray(1)) })).status, 422);
    assert.equal(existsSync(loc('big5').hashDir), false);
    const ok = await put('big5', big, { ETag: md5(big) });
    assert.equal(ok.status, 201);
    assert.equal(ok.headers.get('etag'), md5(big));
    assert.equal(md5(Buffer.from(await (await fetch(u('big5'))).arrayBuffer())), md5(big));
  });
});
