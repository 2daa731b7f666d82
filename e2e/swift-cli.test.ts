import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';
import { openstack as runOpenstack } from './openstack-cli.ts';

const run = promisify(execFile);
const SWIFT = '/usr/bin/swift';
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The unmodified swift CLI (python3-swiftclient) and `openstack container/object` against Swift in `onestack up`. */
describe('swift and openstack object-store CLIs against onestack up', () => {
  let c: Cloud;
  let swiftEnv: NodeJS.ProcessEnv;
  const files = tempDir('onestack-swift-e2e-');
  const file = (name: string) => join(files.path, name);
  const small = randomBytes(4000);
  const big = randomBytes(2 * MiB + 4321);

  /** `swift ARGS` in the files directory (object names are the relative paths): stdout. */
  const swift = async (...args: string[]): Promise<string> => {
    try {
      return (await run(SWIFT, args, { env: swiftEnv, cwd: files.path, timeout: 120_000 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`swift ${args.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}${err.message}`);
    }
  };
  const openstack = async (...args: string[]): Promise<string> => {
    try {
      return (await runOpenstack(['--os-cloud', 'onestack-demo', ...args], { env: c.env, cwd: files.path, timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`openstack ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  };
  const lines = (s: string) => s.split('\n').filter(Boolean);
  /** `swift stat` output as a map of its "Key: value" lines. */
  const stat = async (...args: string[]) => Object.fromEntries(lines(await swift('stat', ...args)).map((l) => l.split(/:\s+(.*)/s).map((x) => x.trim()).slice(0, 2)));

  before(async () => {
    c = await sharedCloud('swift-cli');
    // The swift CLI reads no clouds.yaml: the demo cloud's credentials as OS_* variables, Identity v3.
    const auth = parse(readFileSync(c.cloudsYaml, 'utf8')).clouds['onestack-demo'].auth as Record<string, string>;
    swiftEnv = {
      PATH: process.env.PATH,
      HOME: files.path,
      OS_AUTH_URL: auth.auth_url,
      OS_USERNAME: auth.username,
      OS_PASSWORD: auth.password,
      OS_PROJECT_NAME: auth.project_name,
      OS_USER_DOMAIN_NAME: auth.user_domain_name,
      OS_PROJECT_DOMAIN_NAME: auth.project_domain_name,
      OS_IDENTITY_API_VERSION: '3',
      OS_AUTH_VERSION: '3',
    };
    writeFileSync(file('small.txt'), small);
    mkdirSync(file('dir'));
    writeFileSync(file('dir/a.txt'), 'a');
    writeFileSync(file('dir/b.txt'), 'b');
    writeFileSync(file('big.bin'), big);
    writeFileSync(file('big-dlo.bin'), big);
  });
  after(async () => {
    await c?.stop();
    files.remove();
  });

  it('swift upload, list (prefix, delimiter), stat, post, copy, download byte-identical, delete', async () => {
    await swift('upload', 'c1', 'small.txt', 'dir/a.txt', 'dir/b.txt');
    assert.deepEqual(lines(await swift('list', 'c1')), ['dir/a.txt', 'dir/b.txt', 'small.txt']);
    assert.deepEqual(lines(await swift('list', 'c1', '--prefix', 'dir/')), ['dir/a.txt', 'dir/b.txt']);
    assert.deepEqual(lines(await swift('list', 'c1', '--delimiter', '/')), ['dir/', 'small.txt']);
    let s = await stat('c1', 'small.txt');
    assert.equal(s['Content Length'], String(small.length));
    assert.equal(s.ETag, createHash('md5').update(small).digest('hex'));
    await swift('post', 'c1', 'small.txt', '-m', 'color:blue');
    s = await stat('c1', 'small.txt');
    assert.equal(s['Meta Color'], 'blue');
    await swift('post', 'c2');
    await swift('copy', 'c1', 'small.txt', '--destination', '/c2/copy.txt');
    s = await stat('c2', 'copy.txt');
    assert.equal(s['Meta Color'], 'blue', 'a copy keeps the metadata');
    await swift('download', 'c2', 'copy.txt', '-o', 'copy.out');
    assert.ok(readFileSync(file('copy.out')).equals(small), 'downloaded byte-identical');
    const acct = await stat();
    assert.equal(acct.Containers, '2');
    await swift('delete', 'c2', 'copy.txt');
    assert.deepEqual(lines(await swift('list', 'c2')), []);
    await swift('delete', 'c2');
    assert.deepEqual(lines(await swift('list')), ['c1']);
  });

  it('swift upload --segment-size: SLO (--use-slo) and DLO, downloads byte-identical, delete takes the segments', async () => {
    await swift('upload', 'c1', 'big.bin', '--segment-size', String(MiB), '--use-slo');
    let s = await stat('c1', 'big.bin');
    assert.equal(s['Content Length'], String(big.length));
    assert.equal(lines(await swift('list', 'c1_segments', '--prefix', 'big.bin/')).length, 3);
    await swift('download', 'c1', 'big.bin', '-o', 'big.slo.out');
    assert.equal(sha256(readFileSync(file('big.slo.out'))), sha256(big));
    const listed = lines(await swift('list', 'c1', '--long', '--prefix', 'big.bin')).find((l) => l.endsWith('big.bin'));
    assert.match(listed ?? '', new RegExp(`^\\s*${big.length}\\s`), 'the listing shows the large object\'s size');

    await swift('upload', 'c1', 'big-dlo.bin', '--segment-size', String(MiB));
    s = await stat('c1', 'big-dlo.bin');
    assert.match(s.Manifest, /^c1_segments\/big-dlo\.bin\/.+\/$/);
    assert.equal(s['Content Length'], String(big.length));
    await swift('download', 'c1', 'big-dlo.bin', '-o', 'big.dlo.out');
    assert.equal(sha256(readFileSync(file('big.dlo.out'))), sha256(big));

    await swift('delete', 'c1', 'big.bin', 'big-dlo.bin');
    assert.deepEqual(lines(await swift('list', 'c1_segments')), [], 'SLO and DLO segments deleted with their manifests');
  });

  it('swift tempurl signs a URL that plain HTTP can GET without a token', async () => {
    await swift('post', '-m', 'Temp-URL-Key:e2e-secret');
    const storageUrl = /OS_STORAGE_URL=(\S+)/.exec(await swift('auth'))![1];
    const u = new URL(storageUrl);
    const path = (await swift('tempurl', 'GET', '300', `${u.pathname}/c1/small.txt`, 'e2e-secret')).trim();
    let r = await fetch(`${u.origin}${path}`);
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(small));
    r = await fetch(`${u.origin}${u.pathname}/c1/small.txt`);
    assert.equal(r.status, 401, 'without the signature a token is needed');
    await r.text();
    await swift('delete', 'c1');
    assert.deepEqual(lines(await swift('list')), ['c1_segments']);
  });

  it('swift CLI drives the middleware: capabilities, multi-range, container quotas, versions, extract-archive, staticweb, CORS', async () => {
    const caps = await swift('capabilities', '--json');
    const info = JSON.parse(caps);
    for (const k of ['container_quotas', 'account_quotas', 'versioned_writes', 'formpost', 'staticweb', 'bulk_upload']) assert.ok(k in info, `capabilities list ${k}`);
    await swift('upload', 'mw', 'small.txt');
    await swift('download', 'mw', 'small.txt', '-o', 'ranges.out', '--ignore-checksum', '-H', 'Range: bytes=0-1,-2');
    const parts = readFileSync(file('ranges.out')).toString('latin1');
    assert.match(parts, /Content-Range: bytes 0-1\/4000\r\n/);
    assert.match(parts, /Content-Range: bytes 3998-3999\/4000\r\n/);

    await swift('post', 'mwq', '-H', 'X-Container-Meta-Quota-Bytes: 100');
    await assert.rejects(swift('upload', 'mwq', 'small.txt'), /413|Upload exceeds quota/);

    await swift('post', 'mwv-archive');
    await swift('post', 'mwv', '-H', 'X-Versions-Location: mwv-archive');
    writeFileSync(file('v.txt'), 'one');
    await swift('upload', 'mwv', 'v.txt');
    writeFileSync(file('v.txt'), 'two');
    await swift('upload', 'mwv', 'v.txt');
    assert.equal(lines(await swift('list', 'mwv-archive')).length, 1, 'the overwritten version archived');
    await swift('delete', 'mwv', 'v.txt');
    await swift('download', 'mwv', 'v.txt', '-o', 'v.out');
    assert.equal(readFileSync(file('v.out'), 'utf8'), 'one', 'DELETE restored the previous version');

    await run('tar', ['-cf', file('site.tar'), '-C', files.path, 'dir']);
    const storageUrl = /OS_STORAGE_URL=(\S+)/.exec(await swift('auth'))![1];
    const token = /OS_AUTH_TOKEN=(\S+)/.exec(await swift('auth'))![1];
    let r = await fetch(`${storageUrl}/mwweb?extract-archive=tar`, { method: 'PUT', body: new Uint8Array(readFileSync(file('site.tar'))), headers: { 'x-auth-token': token, accept: 'application/json' } });
    assert.equal((await r.json())['Number Files Created'], 2);
    assert.deepEqual(lines(await swift('list', 'mwweb')), ['dir/a.txt', 'dir/b.txt']);
    await swift('post', 'mwweb', '-r', '.r:*,.rlistings', '-m', 'web-listings:true', '-m', 'Access-Control-Allow-Origin:http://app.example');
    r = await fetch(`${storageUrl}/mwweb/dir/`, { redirect: 'manual' });
    assert.equal(r.status, 200);
    assert.match(await r.text(), /<a href="\.\/a%2Etxt">a\.txt<\/a>/);
    r = await fetch(`${storageUrl}/mwweb/dir/a.txt`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'GET' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    await r.text();
    for (const cont of ['mw', 'mwq', 'mwv', 'mwv-archive', 'mwweb']) await swift('delete', cont);
  });

  it('swift CLI with object versioning (X-Versions-Enabled): list --versions, download/stat/delete --version-id, symlinks', async () => {
    const info = JSON.parse(await swift('capabilities', '--json'));
    assert.ok('object_versioning' in info && 'symlink' in info, 'capabilities list object_versioning and symlink');
    await swift('post', 'ov', '-H', 'X-Versions-Enabled: true');
    assert.equal((await stat('ov'))['X-Versions-Enabled'], 'True');
    writeFileSync(file('ov.txt'), 'first');
    await swift('upload', 'ov', 'ov.txt');
    writeFileSync(file('ov.txt'), 'second!');
    await swift('upload', 'ov', 'ov.txt');
    assert.deepEqual(lines(await swift('list', 'ov')), ['ov.txt']);
    assert.ok(!lines(await swift('list')).some((l) => l.includes('versions')), 'the hidden versions container is not listed');
    // "<bytes> <date> <time> <version id> <content type> <name>", newest first.
    const listed = lines(await swift('list', 'ov', '--versions')).map((l) => l.trim().split(/\s+/));
    assert.deepEqual(listed.map((f) => [f[0], f[5]]), [['7', 'ov.txt'], ['5', 'ov.txt']]);
    const [newest, oldest] = listed.map((f) => f[3]);
    assert.match(oldest, /^\d{10}\.\d{5}$/);
    await swift('download', 'ov', 'ov.txt', '--version-id', oldest, '-o', 'ov.out');
    assert.equal(readFileSync(file('ov.out'), 'utf8'), 'first');
    assert.equal((await stat('ov', 'ov.txt'))['X-Object-Version-Id'], newest);
    await swift('delete', 'ov', 'ov.txt');
    await assert.rejects(swift('download', 'ov', 'ov.txt', '-o', 'ov.gone'), /not found/i);
    assert.equal(lines(await swift('list', 'ov', '--versions')).length, 3, 'a delete marker on top of both versions');
    await swift('delete', 'ov', 'ov.txt', '--version-id', oldest);
    assert.equal(lines(await swift('list', 'ov', '--versions')).length, 2);
    await assert.rejects(swift('delete', 'ov'), /409|Conflict/);
    // A symlink made with the CLI's header option is followed by download.
    await swift('post', 'ovl');
    await swift('upload', 'ovl', 'small.txt');
    const storageUrl = /OS_STORAGE_URL=(\S+)/.exec(await swift('auth'))![1];
    const token = /OS_AUTH_TOKEN=(\S+)/.exec(await swift('auth'))![1];
    const r = await fetch(`${storageUrl}/ovl/link`, { method: 'PUT', headers: { 'x-auth-token': token, 'x-symlink-target': 'ovl/small.txt', 'content-length': '0' } });
    assert.equal(r.status, 201);
    await swift('download', 'ovl', 'link', '-o', 'link.out');
    assert.equal(sha256(readFileSync(file('link.out'))), sha256(small));
    // --versions deletes every version (delete markers too), then the container.
    await swift('delete', 'ov', '--versions');
    assert.ok(!lines(await swift('list')).includes('ov'));
    await swift('delete', 'ovl');
  });

  it('openstack container create/list/show/delete and object create/list/show/save/delete', async () => {
    const created = JSON.parse(await openstack('container', 'create', 'oc1', '-f', 'json'));
    assert.equal(created[0].container, 'oc1');
    assert.ok(JSON.parse(await openstack('container', 'list', '-f', 'json')).some((x: { Name: string }) => x.Name === 'oc1'));
    const obj = JSON.parse(await openstack('object', 'create', 'oc1', 'small.txt', '-f', 'json'));
    assert.equal(obj[0].object, 'small.txt');
    assert.deepEqual(JSON.parse(await openstack('object', 'list', 'oc1', '-f', 'json')).map((x: { Name: string }) => x.Name), ['small.txt']);
    const shown = JSON.parse(await openstack('object', 'show', 'oc1', 'small.txt', '-f', 'json'));
    assert.equal(shown['content-length'], String(small.length));
    assert.equal(shown.etag, createHash('md5').update(small).digest('hex'));
    const cont = JSON.parse(await openstack('container', 'show', 'oc1', '-f', 'json'));
    assert.equal(cont.object_count, '1');
    await openstack('object', 'save', 'oc1', 'small.txt', '--file', 'saved.out');
    assert.ok(readFileSync(file('saved.out')).equals(small));
    await openstack('object', 'delete', 'oc1', 'small.txt');
    await openstack('container', 'delete', 'oc1');
    assert.ok(!JSON.parse(await openstack('container', 'list', '-f', 'json')).some((x: { Name: string }) => x.Name === 'oc1'));
  });
});
