import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { multipartParts, startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

describe('swift large objects and bulk delete', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let acct: string;
  const segs = [randomBytes(1000), randomBytes(1000), randomBytes(500)];
  const whole = Buffer.concat(segs);
  before(async () => {
    f = await startSwift();
    p = await f.project('lo');
    acct = `/v1/${p.account}`;
    await p.member.req('PUT', `${acct}/c`);
    await p.member.req('PUT', `${acct}/c_segments`);
    for (const [i, s] of segs.entries()) assert.equal((await p.member.req('PUT', `${acct}/c_segments/big/${i}`, { body: s })).status, 201);
  });
  after(() => f?.close());

  it('SLO: manifest put checks segments, reads whole and by range, raw manifest, delete with segments', async () => {
    const manifest = segs.map((s, i) => ({ path: `/c_segments/big/${i}`, etag: md5(s), size_bytes: s.length }));
    let r = await p.member.req('PUT', `${acct}/c/slo?multipart-manifest=put`, { body: JSON.stringify([{ path: '/c_segments/big/0', etag: 'f'.repeat(32), size_bytes: 1 }]) });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Errors:\n/c_segments/big/0, Size Mismatch, Etag Mismatch\n');
    r = await p.member.req('PUT', `${acct}/c/slo?multipart-manifest=put`, { body: JSON.stringify(manifest), headers: { 'content-type': 'application/x-big', 'x-object-meta-k': 'v' } });
    assert.equal(r.status, 201, await r.text());
    const sloEtag = md5(segs.map((s) => md5(s)).join(''));
    assert.equal(r.headers.get('etag'), `"${sloEtag}"`);
    r = await p.member.req('HEAD', `${acct}/c/slo`);
    assert.equal(r.headers.get('content-length'), String(whole.length));
    assert.equal(r.headers.get('etag'), `"${sloEtag}"`);
    assert.equal(r.headers.get('x-static-large-object'), 'True');
    assert.equal(r.headers.get('content-type'), 'application/x-big');
    assert.equal(r.headers.get('x-object-sysmeta-slo-etag'), null, 'sysmeta stays inside');
    r = await p.member.req('GET', `${acct}/c/slo`);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole));
    r = await p.member.req('GET', `${acct}/c/slo`, { headers: { range: 'bytes=900-2099' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes 900-2099/${whole.length}`);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(900, 2100)), 'a range across three segments');
    r = await p.member.req('GET', `${acct}/c/slo`, { headers: { range: 'bytes=-10' } });
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(-10)));
    r = await p.member.req('GET', `${acct}/c/slo`, { headers: { range: 'bytes=0-1,999-1001,-2' } });
    assert.equal(r.status, 206);
    assert.deepEqual(multipartParts(r.headers.get('content-type'), Buffer.from(await r.arrayBuffer())), [
      { range: `bytes 0-1/${whole.length}`, type: 'application/x-big', body: whole.subarray(0, 2) },
      { range: `bytes 999-1001/${whole.length}`, type: 'application/x-big', body: whole.subarray(999, 1002) },
      { range: `bytes ${whole.length - 2}-${whole.length - 1}/${whole.length}`, type: 'application/x-big', body: whole.subarray(-2) },
    ]);
    r = await p.member.req('GET', `${acct}/c/slo`, { headers: { range: 'bytes=5000-' } });
    assert.equal(r.status, 416);
    await r.text();
    r = await p.member.req('GET', `${acct}/c?format=json`);
    const row = (await r.json()).find((o: { name: string }) => o.name === 'slo');
    assert.equal(row.bytes, whole.length);
    assert.equal(row.hash, sloEtag);
    assert.equal(row.content_type, 'application/x-big');
    r = await p.member.req('GET', `${acct}/c/slo?multipart-manifest=get&format=raw`);
    assert.deepEqual(await r.json(), manifest);
    r = await p.member.req('GET', `${acct}/c/slo?multipart-manifest=get`);
    assert.equal((await r.json())[1].name, '/c_segments/big/1');
    // A copy of a large object is a plain object with its bytes.
    r = await p.member.req('PUT', `${acct}/c/flat`, { headers: { 'x-copy-from': 'c/slo', 'content-length': '0' } });
    assert.equal(r.status, 201);
    r = await p.member.req('GET', `${acct}/c/flat`);
    assert.equal(r.headers.get('x-static-large-object'), null);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole));
    r = await p.member.req('PUT', `${acct}/c/x`, { body: 'x', headers: { 'x-static-large-object': 'true' } });
    assert.equal(r.status, 400);
    await r.text();
    // A reader may read the large object (every segment is authorized as the reader).
    r = await p.reader.req('GET', `${acct}/c/slo`);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    r = await p.member.req('DELETE', `${acct}/c/slo?multipart-manifest=delete`, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    const res = await r.json();
    assert.equal(res['Number Deleted'], 4);
    assert.equal(res['Response Status'], '200 OK');
    for (const path of ['c/slo', 'c_segments/big/0']) assert.equal((await p.member.req('HEAD', `${acct}/${path}`)).status, 404);
  });

  it('DLO: X-Object-Manifest reads the listed segments in order, by range too', async () => {
    for (const [i, s] of segs.entries()) await p.member.req('PUT', `${acct}/c_segments/dlo/${i}`, { body: s });
    let r = await p.member.req('PUT', `${acct}/c/dlo`, { body: '', headers: { 'x-object-manifest': 'c_segments/dlo/' } });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/c/bad`, { body: '', headers: { 'x-object-manifest': 'nocontainer' } });
    assert.equal(r.status, 400);
    await r.text();
    r = await p.member.req('HEAD', `${acct}/c/dlo`);
    assert.equal(r.headers.get('content-length'), String(whole.length));
    assert.equal(r.headers.get('etag'), `"${md5(segs.map((s) => md5(s)).join(''))}"`);
    r = await p.member.req('GET', `${acct}/c/dlo`);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole));
    r = await p.member.req('GET', `${acct}/c/dlo`, { headers: { range: 'bytes=999-1000' } });
    assert.equal(r.status, 206);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole.subarray(999, 1001)));
    // Upstream's DLO ignores a Range of several ranges and answers the whole object.
    r = await p.member.req('GET', `${acct}/c/dlo`, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(whole));
    r = await p.member.req('GET', `${acct}/c/dlo?multipart-manifest=get`);
    assert.equal(r.headers.get('content-length'), '0');
    await r.text();
  });

  it('bulk delete: objects and containers by URL-encoded lines, counts in the asked format', async () => {
    await p.member.req('PUT', `${acct}/bd`);
    await p.member.req('PUT', `${acct}/bd/a b`, { body: '1' });
    await p.member.req('PUT', `${acct}/bd/ü`, { body: '2' });
    let r = await p.member.req('POST', `${acct}?bulk-delete`, { body: '/bd/a%20b\n/bd/%C3%BC\n/bd/missing\n/bd\n', headers: { accept: 'application/json', 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    const res = await r.json();
    assert.deepEqual([res['Number Deleted'], res['Number Not Found'], res.Errors], [3, 1, []]);
    assert.equal((await p.member.req('HEAD', `${acct}/bd`)).status, 404);
    r = await p.reader.req('POST', `${acct}?bulk-delete`, { body: '/c_segments/dlo/0\n' });
    assert.equal(r.status, 200);
    assert.match(await r.text(), /Number Deleted: 0\nNumber Not Found: 0\nResponse Body: \nResponse Status: 400 Bad Request\nErrors:\n\/c_segments\/dlo\/0, 403 Forbidden\n/);
    r = await f.anon.req('GET', '/info');
    const info = await r.json();
    assert.equal(info.slo.max_manifest_segments, 1000);
    assert.equal(info.dlo.max_segments, 10000);
    assert.equal(info.bulk_delete.max_deletes_per_request, 10000);
  });
});
