import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startSwift, type SwiftClient, type SwiftFixture, type SwiftProject } from './fixture.ts';

describe('swift proxy middleware: quotas, versioning, formpost, CORS, staticweb, extract-archive', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let acct: string;
  let reseller: SwiftClient;
  before(async () => {
    // No info caching: each check below sees the usage the previous request left.
    f = await startSwift({ config: { recheck_existence: 0 } });
    p = await f.project('mw');
    acct = `/v1/${p.account}`;
    const k = f.ks.ks;
    const role = await k.assignment.createRole({ name: 'ResellerAdmin' });
    const u = await k.identity.createUser({ name: 'mw-reseller', domainId: 'default', password: 'mw-pw' });
    await k.assignment.grant({ userId: u.id }, { projectId: p.id }, role.id);
    reseller = f.anon.withToken((await f.ks.login('mw-reseller', 'mw-pw', { project: { id: p.id } })).token);
  });
  after(() => f?.close());

  it('container quotas: bytes and count refuse a PUT or a copy past them with 413; bad values 400', async () => {
    let r = await p.member.req('PUT', `${acct}/q`, { headers: { 'x-container-meta-quota-bytes': 'ten' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Invalid bytes quota.');
    r = await p.member.req('PUT', `${acct}/q`, { headers: { 'x-container-meta-quota-bytes': '10', 'x-container-meta-quota-count': '2' } });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/big`, { body: 'x'.repeat(11) });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'Upload exceeds quota.');
    r = await p.member.req('PUT', `${acct}/q/a`, { body: 'x'.repeat(6) });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/b`, { headers: { 'x-copy-from': 'q/a', 'content-length': '0' } });
    assert.equal(r.status, 413, 'a copy counts its source size');
    await r.text();
    r = await p.member.req('PUT', `${acct}/q/b`, { body: 'x' });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/c`, { body: '' });
    assert.equal(r.status, 413, 'the count quota');
    await r.text();
    // Someone who may not write there sees the denial, not the quota.
    r = await p.reader.req('PUT', `${acct}/q/c`, { body: 'x'.repeat(20) });
    assert.equal(r.status, 403);
    await r.text();
    r = await p.member.req('POST', `${acct}/q`, { headers: { 'x-container-meta-quota-count': '-1' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Invalid count quota.');
  });

  it('account quotas: only a reseller admin sets them; a PUT past them is 413', async () => {
    let r = await p.member.req('POST', acct, { headers: { 'x-account-meta-quota-bytes': '5' } });
    assert.equal(r.status, 403);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-account-meta-quota-bytes': 'x' } });
    assert.equal(r.status, 400);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-account-quota-bytes': '1000000', 'x-account-quota-count': '0' } });
    assert.equal(r.status, 204);
    r = await p.member.req('HEAD', acct);
    assert.equal(r.headers.get('x-account-quota-bytes'), '1000000');
    assert.equal(r.headers.get('x-account-quota-count'), '0');
    assert.equal(r.headers.get('x-account-sysmeta-quota-bytes'), null);
    await p.member.req('PUT', `${acct}/aq`);
    r = await p.member.req('PUT', `${acct}/aq/o`, { body: 'x' });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'Upload exceeds quota.');
    r = await reseller.req('PUT', `${acct}/aq/o`, { body: 'x' });
    assert.equal(r.status, 201, 'a reseller admin is not held by the quota');
    r = await reseller.req('POST', acct, { headers: { 'x-remove-account-quota-count': '1', 'x-account-quota-bytes': '3' } });
    assert.equal(r.status, 204);
    r = await p.member.req('PUT', `${acct}/aq/o2`, { body: 'xxxx' });
    assert.equal(r.status, 413);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-remove-account-quota-bytes': '1' } });
    assert.equal(r.status, 204);
    r = await p.member.req('PUT', `${acct}/aq/o2`, { body: 'xxxx' });
    assert.equal(r.status, 201);
    r = await reseller.req('POST', acct, { headers: { 'x-account-quota-bytes-policy-policy-0': '0' } });
    assert.equal(r.status, 204);
    assert.equal((await p.member.req('HEAD', acct)).headers.get('x-account-quota-bytes-policy-policy-0'), '0');
    r = await p.member.req('PUT', `${acct}/aq/o3`, { body: 'x' });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'Upload exceeds policy quota.');
    r = await p.member.req('POST', acct, { headers: { 'x-remove-account-quota-bytes-policy-policy-0': '1' } });
    assert.equal(r.status, 403, 'only a reseller admin removes it');
    await r.text();
    assert.equal((await reseller.req('POST', acct, { headers: { 'x-remove-account-quota-bytes-policy-policy-0': '1' } })).status, 204);
    const info = await (await f.anon.req('GET', '/info')).json();
    assert.deepEqual([info.container_quotas, info.account_quotas], [{}, {}]);
  });

  it('formpost: signed forms upload their files without a token; bad signature, expiry, size and count refused', async () => {
    await p.member.req('PUT', `${acct}/fp`, { headers: { 'x-container-meta-temp-url-key': 'sekrit' } });
    const path = `${acct}/fp/up/`;
    const expires = String(Math.floor(Date.now() / 1000) + 300);
    const sign = (o: { redirect?: string; size?: string; count?: string; expires?: string; key?: string }) =>
      createHmac('sha256', o.key ?? 'sekrit').update([path, o.redirect ?? '', o.size ?? '100', o.count ?? '2', o.expires ?? expires].join('\n')).digest('hex');
    const boundary = 'XyZ0123';
    const form = (fields: Record<string, string>, files: [string, string][]) =>
      Buffer.concat([
        ...Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)),
        ...files.map(([name, body], i) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file${i}"; filename="${name}"\r\nContent-Type: text/x-test\r\n\r\n${body}\r\n`)),
        Buffer.from(`--${boundary}--\r\n`),
      ]);
    const post = (body: Buffer) => f.anon.req('POST', path, { body: new Uint8Array(body), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    const fields = { max_file_size: '100', max_file_count: '2', expires, signature: sign({}) };
    let r = await post(form(fields, [['a.txt', 'alpha'], ['b.txt', 'x'.repeat(4000)]]));
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'FormPost: max_file_size exceeded');
    r = await p.member.req('GET', `${acct}/fp/up/a.txt`);
    assert.equal(await r.text(), 'alpha', 'the first file was stored before the second failed');
    assert.equal(r.headers.get('content-type'), 'text/x-test');
    assert.equal((await p.member.req('HEAD', `${acct}/fp/up/b.txt`)).status, 404);
    r = await post(form({ ...fields, redirect: 'http://127.0.0.1:9/done', signature: sign({ redirect: 'http://127.0.0.1:9/done' }) }, [['c.txt', 'gamma']]));
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), 'http://127.0.0.1:9/done?status=201&message=');
    await r.text();
    assert.equal(await (await p.member.req('GET', `${acct}/fp/up/c.txt`)).text(), 'gamma');
    r = await post(form(fields, [['d', '1'], ['e', '2'], ['f', '3']]));
    assert.equal(r.status, 400);
    assert.equal(await r.text(), '400 Bad Request\r\nFormPost: Max File Count Exceeded');
    r = await post(form({ ...fields, signature: sign({ key: 'wrong' }) }, [['g', '1']]));
    assert.equal(r.status, 401);
    assert.equal(await r.text(), 'FormPost: Invalid Signature');
    const past = String(Math.floor(Date.now() / 1000) - 10);
    r = await post(form({ ...fields, expires: past, signature: sign({ expires: past }) }, [['g', '1']]));
    assert.equal(r.status, 401);
    assert.equal(await r.text(), 'FormPost: Form Expired');
    r = await post(form(fields, []));
    assert.equal(await r.text(), '400 Bad Request\r\nFormPost: No Files To Process');
    r = await f.anon.req('POST', path, { body: 'garbage', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'FormPost: invalid starting boundary');
    // A form cut short still stores its last file up to where the bytes end, as upstream.
    const cut = form(fields, [['cut.txt', 'partial']]);
    r = await post(cut.subarray(0, cut.indexOf(`\r\n--${boundary}--`)));
    assert.equal(r.status, 201);
    await r.text();
    assert.equal(await (await p.member.req('GET', `${acct}/fp/up/cut.txt`)).text(), 'partial');
    r = await post(form(fields, [['ok.txt', 'fine']]));
    assert.equal(r.status, 201);
    assert.equal(await r.text(), '201 Created');
    const info = await (await f.anon.req('GET', '/info')).json();
    assert.deepEqual(info.formpost.allowed_digests, ['sha1', 'sha256', 'sha512']);
  });

  it('CORS: preflight from the container metadata, allowed origins get Access-Control headers', async () => {
    await p.member.req('PUT', `${acct}/cors`, {
      headers: { 'x-container-meta-access-control-allow-origin': 'http://a.example http://b.example', 'x-container-meta-access-control-max-age': '60', 'x-container-meta-access-control-expose-headers': 'X-Custom' },
    });
    await p.member.req('PUT', `${acct}/cors/o`, { body: 'x', headers: { 'x-object-meta-color': 'red' } });
    let r = await f.anon.req('OPTIONS', `${acct}/cors/o`, { headers: { origin: 'http://a.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-auth-token, content-type' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://a.example');
    assert.equal(r.headers.get('access-control-max-age'), '60');
    assert.deepEqual(r.headers.get('access-control-allow-methods')?.split(', ').sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
    assert.equal(r.headers.get('access-control-allow-headers'), 'x-auth-token, content-type');
    assert.equal(r.headers.get('vary'), 'Origin, Access-Control-Request-Headers');
    r = await f.anon.req('OPTIONS', `${acct}/cors/o`, { headers: { origin: 'http://evil.example', 'access-control-request-method': 'GET' } });
    assert.equal(r.status, 401);
    await r.text();
    r = await f.anon.req('OPTIONS', `${acct}/cors/o`, { headers: { origin: 'http://a.example', 'access-control-request-method': 'PATCH' } });
    assert.equal(r.status, 401);
    await r.text();
    r = await f.anon.req('OPTIONS', `${acct}/cors`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.headers.get('allow')?.split(', ').sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
    r = await p.member.req('GET', `${acct}/cors/o`, { headers: { origin: 'http://b.example' } });
    assert.equal(await r.text(), 'x');
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://b.example');
    const exposed = r.headers.get('access-control-expose-headers')?.split(', ') ?? [];
    for (const h of ['etag', 'x-trans-id', 'x-object-meta-color', 'x-custom']) assert.ok(exposed.includes(h), h);
    r = await p.member.req('GET', `${acct}/cors/o`, { headers: { origin: 'http://evil.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'strict_cors_mode: nothing for an origin not allowed');
    await r.text();
    // A denial still tells the browser it may read the answer.
    r = await f.anon.req('GET', `${acct}/cors/o`, { headers: { origin: 'http://a.example' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://a.example');
    await r.text();
  });

  it('versioned writes: X-Versions-Location stacks overwrites and pops them on DELETE; X-History-Location keeps history and delete markers', async () => {
    const get = async (path: string) => {
      const r = await p.member.req('GET', `${acct}/${path}`);
      return r.status === 200 ? r.text() : (await r.text(), r.status);
    };
    const names = async (c: string) => ((await (await p.member.req('GET', `${acct}/${c}?format=json`)).json()) as { name: string; content_type: string }[]).map((o) => [o.name.replace(/\d{10}\.\d{5}$/, 'TS'), o.content_type.startsWith('application/x-deleted') ? 'marker' : 'data']);
    await p.member.req('PUT', `${acct}/vers`);
    let r = await p.member.req('PUT', `${acct}/vc`, { headers: { 'x-versions-location': 'vers', 'x-history-location': 'vers' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Only one of x-versions-location or x-history-location may be specified');
    r = await p.member.req('PUT', `${acct}/vc`, { headers: { 'x-versions-location': 'vers' } });
    assert.equal(r.status, 201);
    r = await p.member.req('HEAD', `${acct}/vc`);
    assert.equal(r.headers.get('x-versions-location'), 'vers');
    assert.equal(r.headers.get('x-container-sysmeta-versions-location'), null);
    for (const v of ['v1', 'v2', 'v3']) assert.equal((await p.member.req('PUT', `${acct}/vc/o`, { body: v, headers: { 'x-object-meta-v': v } })).status, 201);
    assert.equal(await get('vc/o'), 'v3');
    assert.deepEqual(await names('vers'), [['001o/TS', 'data'], ['001o/TS', 'data']]);
    // A reader may not overwrite, so nothing is archived for it.
    r = await p.reader.req('PUT', `${acct}/vc/o`, { body: 'nope' });
    assert.equal(r.status, 403);
    await r.text();
    assert.equal((await names('vers')).length, 2);
    assert.equal((await p.member.req('DELETE', `${acct}/vc/o`)).status, 204);
    assert.equal(await get('vc/o'), 'v2');
    r = await p.member.req('HEAD', `${acct}/vc/o`);
    assert.equal(r.headers.get('x-object-meta-v'), 'v2');
    assert.equal((await p.member.req('DELETE', `${acct}/vc/o`)).status, 204);
    assert.equal(await get('vc/o'), 'v1');
    assert.equal((await p.member.req('DELETE', `${acct}/vc/o`)).status, 204);
    assert.equal(await get('vc/o'), 404);
    assert.deepEqual(await names('vers'), []);

    r = await p.member.req('POST', `${acct}/vc`, { headers: { 'x-history-location': 'vers' } });
    assert.equal(r.status, 204);
    r = await p.member.req('HEAD', `${acct}/vc`);
    assert.equal(r.headers.get('x-history-location'), 'vers');
    await p.member.req('PUT', `${acct}/vc/h`, { body: 'h1' });
    await p.member.req('PUT', `${acct}/vc/h`, { body: 'h2' });
    assert.equal((await p.member.req('DELETE', `${acct}/vc/h`)).status, 204);
    assert.equal(await get('vc/h'), 404);
    assert.deepEqual(await names('vers'), [
      ['001h/TS', 'data'],
      ['001h/TS', 'data'],
      ['001h/TS', 'marker'],
    ]);
    r = await p.member.req('POST', `${acct}/vc`, { headers: { 'x-remove-history-location': '1' } });
    assert.equal(r.status, 204);
    r = await p.member.req('HEAD', `${acct}/vc`);
    assert.equal(r.headers.get('x-history-location'), null);
    assert.equal(r.headers.get('x-versions-location'), null);
    await p.member.req('PUT', `${acct}/vc/h`, { body: 'h3' });
    await p.member.req('PUT', `${acct}/vc/h`, { body: 'h4' });
    assert.equal((await names('vers')).length, 3, 'no versioning once removed');
    const info = await (await f.anon.req('GET', '/info')).json();
    assert.deepEqual(info.versioned_writes, { allowed_flags: ['x-versions-location', 'x-history-location'] });
  });

  it('extract-archive: tar, tar.gz and tar.bz2 (made by tar(1)) become containers and objects; reports as upstream', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swift-ea-'));
    try {
      const src = join(dir, 'src');
      for (const d of ['ea1/sub', 'ea2']) mkdirSync(join(src, d), { recursive: true });
      writeFileSync(join(src, 'ea1/a.txt'), 'alpha');
      writeFileSync(join(src, 'ea1/sub/b.bin'), Buffer.alloc(70000, 7));
      writeFileSync(join(src, 'ea2/ü'), 'unicode');
      writeFileSync(join(src, 'top.txt'), 'ignored: no container');
      const run = promisify(execFile);
      const archives: Record<string, string> = { tar: '-cf', 'tar.gz': '-czf', 'tar.bz2': '-cjf' };
      for (const [kind, flag] of Object.entries(archives)) await run('tar', [flag, join(dir, `a.${kind}`), '-C', src, 'ea1', 'ea2', 'top.txt']);
      let r = await p.member.req('PUT', `${acct}?extract-archive=tar`, { body: new Uint8Array(readFileSync(join(dir, 'a.tar'))), headers: { accept: 'application/json', 'x-object-meta-batch': '1' } });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { 'Number Files Created': 3, 'Response Body': '', 'Response Status': '201 Created', Errors: [] });
      assert.equal(await (await p.member.req('GET', `${acct}/ea1/a.txt`)).text(), 'alpha');
      r = await p.member.req('GET', `${acct}/ea1/sub/b.bin`);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(Buffer.alloc(70000, 7)));
      assert.equal(r.headers.get('x-object-meta-batch'), '1');
      assert.equal(await (await p.member.req('GET', `${acct}/ea2/%C3%BC`)).text(), 'unicode');
      r = await p.member.req('PUT', `${acct}/eagz/pre?extract-archive=tar.gz`, { body: new Uint8Array(readFileSync(join(dir, 'a.tar.gz'))) });
      assert.equal(await r.text(), 'Number Files Created: 4\nResponse Body: \nResponse Status: 201 Created\nErrors:\n');
      assert.equal(await (await p.member.req('GET', `${acct}/eagz/pre/top.txt`)).text(), 'ignored: no container');
      r = await p.member.req('PUT', `${acct}/eabz?extract-archive=.tar.bz2.`, { body: new Uint8Array(readFileSync(join(dir, 'a.tar.bz2'))), headers: { accept: 'application/json' } });
      assert.equal((await r.json())['Number Files Created'], 4);
      r = await p.reader.req('PUT', `${acct}/ea1?extract-archive=tar`, { body: new Uint8Array(readFileSync(join(dir, 'a.tar'))), headers: { accept: 'application/json' } });
      const denied = await r.json();
      assert.equal(denied['Response Status'], '400 Bad Request');
      assert.deepEqual(denied.Errors.sort(), [['ea1/ea1/a.txt', '403 Forbidden'], ['ea1/ea1/sub/b.bin', '403 Forbidden'], ['ea1/ea2/%C3%BC', '403 Forbidden'], ['ea1/top.txt', '403 Forbidden']]);
      r = await p.member.req('PUT', `${acct}?extract-archive=tar.gz`, { body: 'not gzip at all', headers: { accept: 'application/xml' } });
      // As upstream: an answer done before the first heartbeat has no XML declaration.
      assert.match(await r.text(), /^<extract>\n<number_files_created>0<\/number_files_created>\n<response_body>Invalid Tar File: .+<\/response_body>\n<response_status>400 Bad Request<\/response_status>\n<errors>\n<\/errors>\n<\/extract>\n$/);
      r = await p.member.req('PUT', `${acct}?extract-archive=zip`, { body: 'x' });
      assert.equal(r.status, 400);
      assert.equal(await r.text(), 'Unsupported archive format');
      const info = await (await f.anon.req('GET', '/info')).json();
      assert.deepEqual(info.bulk_upload, { max_containers_per_extraction: 10000, max_failed_extractions: 1000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('staticweb: index, listings, error pages and slash redirects for anonymous readers', async () => {
    await p.member.req('PUT', `${acct}/web`, { headers: { 'x-container-read': '.r:*,.rlistings', 'x-container-meta-web-index': 'index.html', 'x-container-meta-web-error': 'error.html' } });
    for (const [name, body] of [
      ['index.html', '<h1>home</h1>'],
      ['404error.html', 'custom not found'],
      ['docs/a.txt', 'doc a'],
      ['docs/index.html', 'docs home'],
      ['files/x y.txt', 'xy'],
    ]) assert.equal((await p.member.req('PUT', `${acct}/web/${encodeURI(name)}`, { body })).status, 201);
    let r = await f.anon.req('GET', `${acct}/web`);
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), `${f.url}${acct}/web/`);
    await r.text();
    r = await f.anon.req('GET', `${acct}/web/`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '<h1>home</h1>');
    r = await f.anon.req('GET', `${acct}/web/docs`);
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), `${f.url}${acct}/web/docs/`);
    await r.text();
    assert.equal(await (await f.anon.req('GET', `${acct}/web/docs/`)).text(), 'docs home');
    r = await f.anon.req('GET', `${acct}/web/missing`);
    assert.equal(r.status, 404);
    assert.equal(await r.text(), 'custom not found');
    // Without listings, a directory without an index is the "listing disabled" page.
    r = await f.anon.req('GET', `${acct}/web/files/`);
    assert.equal(r.status, 404);
    assert.match(await r.text(), /custom not found/);
    await p.member.req('POST', `${acct}/web`, { headers: { 'x-container-meta-web-listings': 'true', 'x-container-meta-web-error': '' } });
    r = await f.anon.req('GET', `${acct}/web/files/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=UTF-8');
    const html = await r.text();
    assert.match(html, /<title>Listing of \/v1\/AUTH_[0-9a-f]+\/web\/files\/<\/title>/);
    assert.match(html, /<a href="\.\.\/">\.\.\/<\/a>/);
    assert.match(html, /<tr class="item type-text type-plain;charset=utf-8">\n    <td class="colname"><a href="\.\/x%20y%2Etxt">x y\.txt<\/a><\/td>\n    <td class="colsize">2<\/td>/);
    // A token user gets the plain API unless asking for web mode.
    r = await p.member.req('GET', `${acct}/web/files/`);
    assert.equal(r.status, 404);
    await r.text();
    r = await p.member.req('GET', `${acct}/web/files/`, { headers: { 'x-web-mode': 'true' } });
    assert.equal(r.status, 200);
    await r.text();
    // Without .rlistings anonymous readers may not list the container.
    await p.member.req('POST', `${acct}/web`, { headers: { 'x-container-read': '.r:*' } });
    r = await f.anon.req('GET', `${acct}/web/`);
    assert.equal(r.status, 401);
    await r.text();
    const info = await (await f.anon.req('GET', '/info')).json();
    assert.deepEqual(info.staticweb, {});
  });
});
