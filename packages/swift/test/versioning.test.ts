import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../src/conf.ts';
import { createProxyApp } from '../src/proxy/app.ts';
import { readBody } from '../src/proxy/responses.ts';
import { ContainerUpdater } from '../src/storage/container-updater.ts';
import { startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

interface Version {
  name: string;
  version_id: string;
  is_latest: boolean;
  content_type: string;
  bytes: number;
  hash: string;
}

describe('swift proxy: symlinks and object versioning (X-Versions-Enabled)', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let acct: string;
  before(async () => {
    f = await startSwift({ config: { recheck_existence: 0 } });
    p = await f.project('ov');
    acct = `/v1/${p.account}`;
  });
  after(() => f?.close());

  const put = async (path: string, body: string, headers: Record<string, string> = {}) => {
    // Bytes, not a string: fetch would add a Content-Type of its own.
    const r = await p.member.req('PUT', `${acct}/${path}`, { body: Buffer.from(body), headers });
    await r.arrayBuffer();
    return r;
  };
  const text = async (method: string, path: string, headers: Record<string, string> = {}) => {
    const r = await p.member.req(method, `${acct}/${path}`, { headers });
    return { r, body: await r.text() };
  };
  const versions = async (container: string, query = ''): Promise<Version[]> => {
    const { r, body } = await text('GET', `${container}?versions${query}`);
    assert.equal(r.status, 200, body);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    return JSON.parse(body) as Version[];
  };

  it('/info has symlink and object_versioning', async () => {
    const info = (await (await fetch(`${f.url}/info`)).json()) as Record<string, Record<string, unknown>>;
    assert.deepEqual(info.symlink, { symloop_max: 2, static_links: true });
    assert.deepEqual(info.object_versioning, {});
  });

  it('symlinks: GET and HEAD follow, ?symlink=get shows the link, listings show symlink_path', async () => {
    assert.equal((await put('sl', '')).status, 201);
    assert.equal((await put('sl/target', 'hello', { 'content-type': 'text/x-target' })).status, 201);
    const made = await put('sl/link', '', { 'x-symlink-target': 'sl/target' });
    assert.equal(made.status, 201);
    let g = await text('GET', 'sl/link');
    assert.equal(g.r.status, 200);
    assert.equal(g.body, 'hello');
    assert.equal(g.r.headers.get('content-location'), `${acct}/sl/target`);
    assert.equal(g.r.headers.get('content-type'), 'text/x-target');
    // A Range applies to the target, not to the zero-byte link.
    g = await text('GET', 'sl/link', { range: 'bytes=1-2' });
    assert.equal(g.r.status, 206);
    assert.equal(g.body, 'el');
    g = await text('GET', 'sl/link?symlink=get');
    assert.equal(g.r.status, 200);
    assert.equal(g.body, '');
    assert.equal(g.r.headers.get('x-symlink-target'), 'sl/target');
    assert.equal(g.r.headers.get('content-type'), 'application/symlink');
    assert.equal(g.r.headers.get('x-object-sysmeta-symlink-target'), null, 'sysmeta never reaches a client');
    const h = await text('HEAD', 'sl/link');
    assert.equal(h.r.headers.get('content-length'), '5');
    const list = await text('GET', 'sl?format=json');
    const rows = JSON.parse(list.body) as Record<string, unknown>[];
    const link = rows.find((r) => r.name === 'link')!;
    assert.equal(link.symlink_path, `${acct}/sl/target`);
    assert.equal(link.hash, md5(''));
    assert.equal(rows.find((r) => r.name === 'target')!.symlink_path, undefined);
    const xml = await text('GET', 'sl?format=xml');
    assert.match(xml.body, /<symlink_path>\/v1\/AUTH_[0-9a-f]+\/sl\/target<\/symlink_path>/);
    const plain = await text('GET', 'sl');
    assert.equal(plain.body, 'link\ntarget\n');
    // A link to something missing answers 404 with where it looked.
    await put('sl/dangling', '', { 'x-symlink-target': 'sl/nothing' });
    g = await text('GET', 'sl/dangling');
    assert.equal(g.r.status, 404);
    assert.equal(g.r.headers.get('content-location'), `${acct}/sl/nothing`);
    // A POST to a link is applied to the link and answered 307 towards the target.
    const post = await p.member.req('POST', `${acct}/sl/link`, { headers: { 'x-object-meta-a': 'b' } });
    assert.equal(post.status, 307);
    assert.equal(post.headers.get('location'), `${acct}/sl/target`);
    assert.equal(await post.text(), 'The requested POST was applied to a symlink. POST directly to the target to apply requested metadata.');
  });

  it('symlinks: bad input gets upstream answers', async () => {
    const cases: [Record<string, string>, string, number, string][] = [
      [{ 'x-symlink-target': '/sl/target' }, '', 412, 'X-Symlink-Target header must be of the form <container name>/<object name>'],
      [{ 'x-symlink-target': 'justcontainer' }, '', 412, 'X-Symlink-Target header must be of the form <container name>/<object name>'],
      [{ 'x-symlink-target': 'sl/bad' }, '', 400, 'Symlink cannot target itself'],
      [{ 'x-symlink-target': 'sl/target' }, 'data', 400, 'Symlink requests require a zero byte body'],
      [{ 'x-symlink-target': 'sl/target', 'x-symlink-target-account': '' }, '', 412, 'Account name cannot be empty'],
      [{ 'x-symlink-target': 'sl/target', 'x-symlink-target-account': 'a/b' }, '', 412, 'Account name cannot contain slashes'],
      [{ 'x-symlink-target': 'sl/target', 'x-symlink-target-etag': 'a;b' }, '', 400, 'Bad X-Symlink-Target-Etag format'],
      [{ 'x-symlink-target': 'sl/target', 'x-symlink-target-etag': md5('other') }, '', 409, `Object Etag '${md5('hello')}' does not match X-Symlink-Target-Etag header '${md5('other')}'`],
      [{ 'x-symlink-target': 'sl/nothing', 'x-symlink-target-etag': md5('x') }, '', 409, 'X-Symlink-Target does not exist'],
    ];
    for (const [headers, body, status, message] of cases) {
      const r = await p.member.req('PUT', `${acct}/sl/bad`, { body, headers });
      assert.equal(r.status, status, JSON.stringify(headers));
      assert.equal(await r.text(), message);
    }
    assert.equal((await text('HEAD', 'sl/bad')).r.status, 404, 'nothing was made');
    const r = await p.member.req('POST', `${acct}/sl/target`, { headers: { 'x-symlink-target': 'sl/x' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'A PUT request is required to set a symlink target');
    // A link into the reserved namespace made by a user is refused when followed.
    await put('sl/sneaky', '', { 'x-symlink-target': '%00versions%00sl/x' });
    assert.equal((await text('GET', 'sl/sneaky')).r.status, 412);
  });

  it('symlinks: static links pin the target etag; loops stop at symloop_max with 409', async () => {
    const made = await put('sl/static', '', { 'x-symlink-target': 'sl/target', 'x-symlink-target-etag': `"${md5('hello')}"` });
    assert.equal(made.status, 201);
    let g = await text('HEAD', 'sl/static?symlink=get');
    assert.equal(g.r.headers.get('x-symlink-target-etag'), md5('hello'));
    assert.equal(g.r.headers.get('x-symlink-target-bytes'), '5');
    assert.equal(g.r.headers.get('content-type'), 'text/x-target', 'a static link takes the target type');
    const rows = JSON.parse((await text('GET', 'sl?format=json&prefix=static')).body) as Record<string, unknown>[];
    assert.deepEqual([rows[0].symlink_etag, rows[0].symlink_bytes], [md5('hello'), 5]);
    await put('sl/target', 'changed');
    g = await text('GET', 'sl/static');
    assert.equal(g.r.status, 409);
    assert.equal(g.body, `Object Etag '${md5('changed')}' does not match X-Symlink-Target-Etag header '${md5('hello')}'`);
    await put('sl/l1', '', { 'x-symlink-target': 'sl/target' });
    await put('sl/l2', '', { 'x-symlink-target': 'sl/l1' });
    await put('sl/l3', '', { 'x-symlink-target': 'sl/l2' });
    assert.equal((await text('GET', 'sl/l2')).body, 'changed', 'two links deep is allowed');
    g = await text('GET', 'sl/l3');
    assert.equal(g.r.status, 409);
    assert.equal(g.body, 'Too many levels of symbolic links, maximum allowed is 2');
    await put('sl/loop-a', '', { 'x-symlink-target': 'sl/loop-b' });
    await put('sl/loop-b', '', { 'x-symlink-target': 'sl/loop-a' });
    assert.equal((await text('GET', 'sl/loop-a')).r.status, 409);
  });

  it('symlinks: symloop_max is the operator\'s', async () => {
    const values = { ...defaultSwiftValues(), symloop_max: 3 } as SwiftValues;
    const proxy = await createProxyApp({ rings: f.cluster.rings, config: proxyConfig(values, { authUri: f.ks.url }), logger: pino({ level: 'silent' }), tokens: f.ks.tokens, version: '0.1.0' });
    try {
      assert.deepEqual(proxy.info.toJSON().symlink, { symloop_max: 3, static_links: true });
      const get = (path: string) => proxy.handle({ method: 'GET', path: `${acct}/${path}`, query: new URLSearchParams(), headers: { 'x-auth-token': p.member.token! }, env: { transId: 'tx-symloop', extra: {} } });
      const res = await get('sl/l3');
      assert.equal(res.status, 200, 'three links deep is allowed now');
      assert.equal((await readBody(res.body)).toString(), 'changed');
    } finally {
      await proxy.app.close();
    }
  });

  it('symlinks: a reader follows a link only where it may read the target', async () => {
    assert.equal((await put('pub', '', { 'x-container-read': '.r:*' })).status, 201);
    await put('pub/link', '', { 'x-symlink-target': 'sl/target' });
    const r = await f.anon.req('GET', `${acct}/pub/link`);
    assert.equal(r.status, 401);
    await r.arrayBuffer();
  });

  it('versioning: enabling makes the hidden container; PUTs make versions; ?versions lists them', async () => {
    let r = await p.member.req('PUT', `${acct}/v`, { headers: { 'x-versions-enabled': 'true' } });
    assert.equal(r.status, 201);
    let h = await text('HEAD', 'v');
    assert.equal(h.r.headers.get('x-versions-enabled'), 'True');
    assert.equal(h.r.headers.get('x-container-sysmeta-versions-container'), null);
    // The hidden container is no user's business: not listed, not addressable.
    const containers = JSON.parse((await text('GET', '?format=json')).body) as { name: string }[];
    assert.ok(!containers.some((c) => c.name.includes('\0')), JSON.stringify(containers));
    const hidden = await text('GET', '%00versions%00v');
    assert.equal(hidden.r.status, 412);
    assert.equal(hidden.body, 'Invalid UTF8 or contains NULL');
    // Nor through a copy's source, which is a subrequest of the client's naming.
    const viaCopy = await p.member.req('PUT', `${acct}/v/stolen`, { headers: { 'x-copy-from': '%00versions%00v/x', 'content-length': '0' } });
    assert.equal(viaCopy.status, 412);
    assert.equal(await viaCopy.text(), 'Invalid UTF8 or contains NULL');

    const v1 = await put('v/o', 'one', { 'content-type': 'text/one' });
    assert.equal(v1.status, 201);
    const id1 = v1.headers.get('x-object-version-id')!;
    assert.match(id1, /^\d{10}\.\d{5}$/);
    assert.equal(v1.headers.get('etag'), md5('one'));
    const v2 = await put('v/o', 'two!', { 'content-type': 'text/two' });
    const id2 = v2.headers.get('x-object-version-id')!;
    assert.ok(id2 > id1);
    let g = await text('GET', 'v/o');
    assert.equal(g.body, 'two!');
    assert.equal(g.r.headers.get('x-object-version-id'), id2);
    assert.equal(g.r.headers.get('content-location'), `${acct}/v/o?version-id=${id2}`);
    assert.equal(g.r.headers.get('etag'), md5('two!'));
    // A POST to the current object lands on its version.
    r = await p.member.req('POST', `${acct}/v/o`, { headers: { 'x-object-meta-color': 'blue' } });
    assert.equal(r.status, 202);
    await r.text();
    assert.equal((await text('HEAD', 'v/o')).r.headers.get('x-object-meta-color'), 'blue');
    g = await text('GET', `v/o?version-id=${id1}`);
    assert.equal(g.body, 'one');
    assert.equal(g.r.headers.get('content-type'), 'text/one');
    assert.equal(g.r.headers.get('x-object-version-id'), id1);

    // The plain listing shows the current version's size and etag.
    const rows = JSON.parse((await text('GET', 'v?format=json')).body) as Record<string, unknown>[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0].bytes, 4);
    assert.equal(rows[0].hash, md5('two!'));
    assert.equal(rows[0].content_type, 'text/two');
    assert.equal(rows[0].symlink_path, `${acct}/v/o?version-id=${id2}`);
    h = await text('HEAD', 'v');
    assert.equal(h.r.headers.get('x-container-bytes-used'), '7', 'the versions count in the container bytes');
    // So they do in the account listing, once the containers have reported (the container updater's pass).
    for (const n of f.nodes) await new ContainerUpdater(n.devices, { connTimeoutMs: 1000, nodeTimeoutMs: 5000 }).runOnce();
    const listed = JSON.parse((await text('GET', '?format=json')).body) as { name: string; bytes: number }[];
    assert.equal(listed.find((c) => c.name === 'v')?.bytes, 7);
    assert.ok(listed.every((c) => !c.name.includes('\0')));
    assert.deepEqual((await text('GET', '?prefix=v')).body, 'v\n');

    let vs = await versions('v');
    assert.deepEqual(
      vs.map((v) => [v.name, v.version_id, v.is_latest, v.bytes, v.content_type, v.hash]),
      [
        ['o', id2, true, 4, 'text/two', md5('two!')],
        ['o', id1, false, 3, 'text/one', md5('one')],
      ],
    );

    // DELETE leaves a delete marker as the latest version.
    r = await p.member.req('DELETE', `${acct}/v/o`);
    assert.equal(r.status, 204);
    const markerId = r.headers.get('x-object-version-id')!;
    assert.ok(markerId > id2);
    assert.equal((await text('GET', 'v/o')).r.status, 404);
    vs = await versions('v');
    assert.deepEqual(
      vs.map((v) => [v.version_id, v.is_latest, v.content_type]),
      [
        [markerId, true, 'application/x-deleted;swift_versions_deleted=1'],
        [id2, false, 'text/two'],
        [id1, false, 'text/one'],
      ],
    );
    g = await text('GET', `v/o?version-id=${markerId}`);
    assert.equal(g.r.status, 404);
    assert.equal(g.r.headers.get('x-object-version-id'), markerId);
    assert.equal(g.r.headers.get('content-type'), 'application/x-deleted;swift_versions_deleted=1');

    // Restoring an old version makes it the current one.
    r = await p.member.req('PUT', `${acct}/v/o?version-id=${id1}`, { headers: { 'content-length': '0' } });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('x-object-version-id'), id1);
    g = await text('GET', 'v/o');
    assert.equal(g.body, 'one');
    assert.equal(g.r.headers.get('x-object-version-id'), id1);
    vs = await versions('v');
    assert.deepEqual(vs.find((v) => v.version_id === id1)?.is_latest, true);

    // Deleting the current version by id removes the link too; others stay.
    r = await p.member.req('DELETE', `${acct}/v/o?version-id=${id1}`);
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('x-object-version-id'), id1);
    assert.equal(r.headers.get('x-object-current-version-id'), 'null');
    assert.equal((await text('GET', 'v/o')).r.status, 404);
    vs = await versions('v');
    assert.deepEqual(vs.map((v) => v.version_id), [markerId, id2]);
  });

  it('versioning: objects from before it was enabled are the "null" version and are kept', async () => {
    await put('late', '');
    await put('late/o', 'old', { 'content-type': 'text/old' });
    const r = await p.member.req('POST', `${acct}/late`, { headers: { 'x-versions-enabled': 'yes' } });
    assert.equal(r.status, 204);
    let vs = await versions('late');
    assert.deepEqual(vs.map((v) => [v.name, v.version_id, v.is_latest]), [['o', 'null', true]]);
    let g = await text('GET', 'late/o?version-id=null');
    assert.equal(g.body, 'old');
    assert.equal(g.r.headers.get('x-object-version-id'), 'null');
    const v = await put('late/o', 'new');
    vs = await versions('late');
    assert.equal(vs.length, 2);
    assert.deepEqual(vs[0].version_id, v.headers.get('x-object-version-id'));
    assert.ok(vs[1].version_id !== 'null', 'the old object was archived under its own timestamp');
    g = await text('GET', `late/o?version-id=${vs[1].version_id}`);
    assert.equal(g.body, 'old');
    assert.equal((await text('GET', 'late/o?version-id=null')).r.status, 404, 'the current one has a real version now');
    // Suspended: PUTs overwrite in place again, versions stay readable.
    await p.member.req('POST', `${acct}/late`, { headers: { 'x-versions-enabled': 'false' } });
    assert.equal((await text('HEAD', 'late')).r.headers.get('x-versions-enabled'), 'False');
    const plain = await put('late/o', 'plain');
    assert.equal(plain.headers.get('x-object-version-id'), null);
    g = await text('GET', `late/o?version-id=${vs[1].version_id}`);
    assert.equal(g.body, 'old');
    assert.equal((await text('GET', 'late/o')).r.headers.get('x-object-version-id'), 'null');
  });

  it('versioning: bad input and conflicts get upstream answers', async () => {
    let r = await p.member.req('PUT', `${acct}/legacy`, { headers: { 'x-versions-location': 'archive' } });
    assert.equal(r.status, 201);
    r = await p.member.req('POST', `${acct}/legacy`, { headers: { 'x-versions-enabled': 'true' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Cannot enable object versioning on a container that is already using the legacy versioned writes feature.');
    r = await p.member.req('PUT', `${acct}/both`, { headers: { 'x-versions-enabled': 'true', 'x-history-location': 'archive' } });
    assert.equal(r.status, 400);
    await r.text();
    assert.equal((await text('HEAD', 'both')).r.status, 404, 'nothing was made');

    const cases: [string, string, Record<string, string>, number, string | RegExp][] = [
      ['GET', 'v/o?version-id=banana', {}, 400, 'Invalid version parameter'],
      ['POST', 'v/o?version-id=null', {}, 400, 'POST to a specific version is not allowed'],
      ['GET', 'sl/target?version-id=1700000000.00000', {}, 400, 'version-aware operations require that the container is versioned'],
      ['PUT', 'v/o?version-id=null', { 'content-length': '0' }, 400, 'Invalid version parameter'],
      ['PUT', 'v/o?version-id=1000000000.00000', { 'content-length': '0' }, 404, 'The specified version does not exist'],
      ['GET', 'v?versions&version_marker=1', {}, 400, 'version_marker param requires marker'],
      ['GET', 'v?versions&marker=o&version_marker=x', {}, 400, 'invalid version_marker param'],
      ['GET', 'v?versions&delimiter=1', {}, 400, 'invalid delimiter param'],
    ];
    for (const [method, path, headers, status, message] of cases) {
      const res = await p.member.req(method, `${acct}/${path}`, { headers });
      assert.equal(res.status, status, `${method} ${path}`);
      const body = await res.text();
      if (typeof message === 'string') assert.match(body, new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    }
    r = await p.member.req('PUT', `${acct}/v/o?version-id=1000000000.00000`, { body: 'x' });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'PUT version-id requests require a zero byte body');
    // A reader may read the current object but neither the versions nor the listing of them beyond its ACL.
    r = await p.reader.req('PUT', `${acct}/v/x`, { body: 'x' });
    assert.equal(r.status, 403);
    await r.text();
    assert.equal((await versions('v')).some((v) => v.name === 'x'), false, 'a denied PUT left no version');
    // Only the owner turns versioning on or off; a denied attempt leaves the versions container alone.
    r = await p.reader.req('POST', `${acct}/v`, { headers: { 'x-versions-enabled': 'false' } });
    assert.equal(r.status, 403);
    await r.text();
    assert.equal((await text('HEAD', 'v')).r.headers.get('x-versions-enabled'), 'True');
    // A container with versions cannot go until they are gone.
    r = await p.member.req('DELETE', `${acct}/v`);
    assert.equal(r.status, 409);
    assert.equal(await r.text(), 'Delete all versions before deleting container.');
  });

  it('copies: one version by version-id; a link itself with ?symlink=get', async () => {
    await p.member.req('PUT', `${acct}/cp`, { headers: { 'x-versions-enabled': 'true' } });
    const first = (await put('cp/o', 'first')).headers.get('x-object-version-id')!;
    await put('cp/o', 'second');
    let r = await p.member.req('COPY', `${acct}/cp/o?version-id=${first}`, { headers: { destination: 'sl/from-version' } });
    assert.equal(r.status, 201);
    await r.text();
    assert.equal((await text('GET', 'sl/from-version')).body, 'first');
    r = await p.member.req('PUT', `${acct}/sl/link-copy?symlink=get`, { headers: { 'x-copy-from': 'sl/link', 'content-length': '0' } });
    assert.equal(r.status, 201);
    await r.text();
    const g = await text('GET', 'sl/link-copy?symlink=get');
    assert.equal(g.r.headers.get('x-symlink-target'), 'sl/target');
    assert.equal((await text('GET', 'sl/link-copy')).r.headers.get('content-location'), `${acct}/sl/target`);
  });

  it('versioning: ?versions pages with marker/version_marker, prefix, delimiter and limit', async () => {
    await p.member.req('PUT', `${acct}/pg`, { headers: { 'x-versions-enabled': 'true' } });
    const ids: Record<string, string[]> = { 'a/1': [], 'a/2': [], b: [] };
    for (const name of Object.keys(ids)) for (let i = 0; i < 2; i++) ids[name].push((await put(`pg/${name}`, `${name}${i}`)).headers.get('x-object-version-id')!);
    const all = await versions('pg');
    assert.deepEqual(all.map((v) => `${v.name}@${v.version_id}`), ['a/1', 'a/2', 'b'].flatMap((n) => [`${n}@${ids[n][1]}`, `${n}@${ids[n][0]}`]));
    assert.deepEqual((await versions('pg', '&limit=3')).length, 3);
    assert.deepEqual((await versions('pg', '&prefix=a/2')).map((v) => v.version_id), [ids['a/2'][1], ids['a/2'][0]]);
    assert.deepEqual((await versions('pg', `&marker=a/2&version_marker=${ids['a/2'][1]}`)).map((v) => `${v.name}@${v.version_id}`), [`a/2@${ids['a/2'][0]}`, `b@${ids.b[1]}`, `b@${ids.b[0]}`]);
    assert.deepEqual((await versions('pg', '&marker=a/2')).map((v) => v.name), ['b', 'b']);
    const dirs = await versions('pg', '&delimiter=/');
    assert.deepEqual(dirs.map((v) => (v as unknown as { subdir?: string }).subdir ?? v.name), ['a/', 'b', 'b']);
    const rev = await versions('pg', '&reverse=true');
    assert.deepEqual(rev.map((v) => v.name), ['b', 'b', 'a/2', 'a/2', 'a/1', 'a/1']);
    // Deleting every version, then the container, removes the hidden one too.
    for (const v of all) {
      const r = await p.member.req('DELETE', `${acct}/pg/${v.name}?version-id=${v.version_id}`);
      assert.equal(r.status, 204, `${v.name}@${v.version_id}`);
    }
    assert.deepEqual(await versions('pg'), []);
    const r = await p.member.req('DELETE', `${acct}/pg`);
    assert.equal(r.status, 204);
    assert.equal((await text('GET', 'pg?versions')).r.status, 404);
  });
});
