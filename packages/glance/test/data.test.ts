import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { faultMessage, startGlance, type GlanceFixture, type Project } from './fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const quiet: ExecLogger = { info: () => {}, warn: () => {} };

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('glance image data: upload, download, stage and import', () => {
  let g: GlanceFixture;
  let a: Project;
  let b: Project;
  let qcow2: Buffer;
  let backed: Buffer;

  const create = async (body: Record<string, unknown> = {}) => {
    const res = await a.member.post('/v2/images', { disk_format: 'raw', container_format: 'bare', ...body });
    assert.equal(res.status, 201, res.text);
    return res.body.id as string;
  };
  const show = async (id: string) => (await a.member.get(`/v2/images/${id}`)).body;
  const storeFiles = () => g.config.stores.flatMap((s) => { try { return s.type === 'file' ? filesUnder(s.dir) : []; } catch { return []; } });
  const stagedFiles = () => { try { return filesUnder(join(g.stateDir, 'glance', 'staging')); } catch { return []; } };

  before(async () => {
    g = await startGlance({ config: { image_size_cap: MiB, enabled_backends: ['file:file', 'fast:file'] } });
    a = await g.project('dataa');
    b = await g.project('datab');
    const dir = g.stateDir;
    await runCommand('qemu-img', ['create', '-f', 'qcow2', join(dir, 'good.qcow2'), '64M'], { logger: quiet, timeoutMs: 60_000 });
    await runCommand('qemu-img', ['create', '-f', 'qcow2', '-b', join(dir, 'good.qcow2'), '-F', 'qcow2', join(dir, 'backed.qcow2')], { logger: quiet, timeoutMs: 60_000 });
    qcow2 = readFileSync(join(dir, 'good.qcow2'));
    backed = readFileSync(join(dir, 'backed.qcow2'));
  });
  after(() => g.close());

  it('uploads raw data: queued → active with checksums, sizes and a store', async () => {
    const id = await create({ name: 'raw' });
    const bytes = randomBytes(300 * KiB);
    const res = await a.member.upload(id, bytes);
    assert.equal(res.status, 204, await res.text());
    const img = await show(id);
    assert.equal(img.status, 'active');
    assert.equal(img.size, bytes.length);
    assert.equal(img.virtual_size, bytes.length);
    assert.equal(img.checksum, md5(bytes));
    assert.equal(img.os_hash_algo, 'sha512');
    assert.equal(img.os_hash_value, sha512(bytes));
    assert.equal(img.stores, 'file');

    const down = await a.member.raw('GET', `/v2/images/${id}/file`);
    assert.equal(down.status, 200);
    assert.equal(down.headers.get('content-type'), 'application/octet-stream');
    assert.equal(down.headers.get('content-md5'), md5(bytes));
    assert.equal(down.headers.get('content-length'), String(bytes.length));
    assert.ok(Buffer.from(await down.arrayBuffer()).equals(bytes));
  });

  it('streams uploads of unknown length and computes qcow2 virtual sizes', async () => {
    const id = await create({ name: 'qcow', disk_format: 'qcow2' });
    const chunks = [qcow2.subarray(0, 1000), qcow2.subarray(1000, 70_000), qcow2.subarray(70_000)];
    const body = Readable.toWeb(Readable.from(chunks)) as ReadableStream;
    const res = await a.member.upload(id, body);
    assert.equal(res.status, 204, await res.text());
    const img = await show(id);
    assert.equal(img.status, 'active');
    assert.equal(img.size, qcow2.length);
    assert.equal(img.virtual_size, 64 * MiB);
    assert.equal(img.checksum, md5(qcow2));
  });

  it('serves byte ranges, 416 past the end, 400 for several ranges', async () => {
    const id = await create({ name: 'ranges' });
    const bytes = randomBytes(10_000);
    await a.member.upload(id, bytes);
    const part = await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=100-199' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 100-199/10000');
    assert.equal(part.headers.get('content-length'), '100');
    assert.equal(part.headers.get('content-md5'), md5(bytes));
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 200)));
    const tail = await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=-10' });
    assert.equal(tail.headers.get('content-range'), 'bytes 9990-9999/10000');
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(9990)));
    const open = await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=9000-' });
    assert.equal(open.headers.get('content-range'), 'bytes 9000-9999/10000');
    await open.arrayBuffer();
    const past = await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=10000-' });
    assert.equal(past.status, 416);
    assert.match(faultMessage({ text: await past.text() }), /Invalid start position in Range header/);
    assert.equal((await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=0-1,5-6' })).status, 400);
    assert.equal((await a.member.raw('GET', `/v2/images/${id}/file`, undefined, { range: 'lines=1-2' })).status, 416);
  });

  it('answers 204 for an image without data, and hides others\' data', async () => {
    const id = await create({ name: 'empty' });
    const res = await a.member.raw('GET', `/v2/images/${id}/file`);
    assert.equal(res.status, 204);
    assert.equal((await b.member.raw('GET', `/v2/images/${id}/file`)).status, 404);
  });

  it('refuses uploads to non-queued images, without formats, of other types, or by readers', async () => {
    const id = await create({ name: 'once' });
    assert.equal((await a.member.upload(id, 'first')).status, 204);
    const again = await a.member.upload(id, 'second');
    assert.equal(again.status, 409);
    assert.match(faultMessage({ text: await again.text() }), /Image status transition from active to saving is not allowed/);
    const down = await a.member.raw('GET', `/v2/images/${id}/file`);
    assert.equal(await down.text(), 'first');

    const bare = (await a.member.post('/v2/images', { name: 'formatless' })).body.id;
    const noFormats = await a.member.upload(bare, 'x');
    assert.equal(noFormats.status, 400);
    assert.match(faultMessage({ text: await noFormats.text() }), /Properties disk_format, container_format must be set prior to saving data\./);
    assert.equal((await show(bare)).status, 'queued');

    const typed = await create({ name: 'typed' });
    const wrongType = await a.member.upload(typed, 'x', { 'content-type': 'text/plain' });
    assert.equal(wrongType.status, 415);
    assert.match(faultMessage({ text: await wrongType.text() }), /Invalid content type text\/plain/);
    assert.equal((await a.reader.upload(typed, 'x')).status, 403);
    assert.equal((await b.member.upload(typed, 'x')).status, 404);
    assert.equal((await show(typed)).status, 'queued');
  });

  it('refuses data over image_size_cap with 413 and keeps nothing', async () => {
    const before = storeFiles();
    const id = await create({ name: 'too-big' });
    const res = await a.member.upload(id, randomBytes(MiB + 1));
    assert.equal(res.status, 413);
    assert.match(faultMessage({ text: await res.text() }), /The incoming image is too large: The provided image is too large\./);
    const img = await show(id);
    assert.equal(img.status, 'queued');
    assert.equal(img.size, null);
    assert.deepEqual(storeFiles(), before);
    // The image can take data again afterwards.
    assert.equal((await a.member.upload(id, 'small enough')).status, 204);
  });

  it('answers 413 to a client that sends the whole body before it reads', async () => {
    const id = await create({ name: 'stubborn' });
    const body = randomBytes(9 * MiB);
    const url = new URL(g.url);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const head = [`PUT /v2/images/${id}/file HTTP/1.1`, `Host: ${url.host}`, `X-Auth-Token: ${a.member.token}`, 'Content-Type: application/octet-stream', `Content-Length: ${body.length}`, '', ''].join('\r\n');
    // Like python-requests: every byte is sent before the answer is read.
    await new Promise<void>((resolve, reject) => socket.write(Buffer.concat([Buffer.from(head), body]), (e) => (e ? reject(e) : resolve())));
    const answer = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    socket.destroy();
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.equal((await show(id)).status, 'queued');
  });

  it('refuses content that is not its disk_format or is unsafe (415), keeping nothing', async () => {
    const before = storeFiles();
    const mismatch = await create({ name: 'liar', disk_format: 'qcow2' });
    const res = await a.member.upload(mismatch, randomBytes(4096));
    assert.equal(res.status, 415);
    assert.match(faultMessage({ text: await res.text() }), /Image disk_format qcow2 does not match stream data raw/);
    assert.equal((await show(mismatch)).status, 'queued');

    const unsafe = await create({ name: 'backed', disk_format: 'qcow2' });
    const bad = await a.member.upload(unsafe, backed);
    assert.equal(bad.status, 415);
    assert.match(faultMessage({ text: await bad.text() }), /Image failed safety checks/);
    const img = await show(unsafe);
    assert.equal(img.status, 'queued');
    assert.equal(img.checksum, null);
    assert.deepEqual(storeFiles(), before);
    // Non-bare containers are not inspected, as upstream.
    const ova = await create({ name: 'ova', disk_format: 'qcow2', container_format: 'ova' });
    assert.equal((await a.member.upload(ova, 'not a qcow2 at all')).status, 204);
  });

  it('deletes the bytes with the image', async () => {
    const id = await create({ name: 'doomed' });
    await a.member.upload(id, randomBytes(1000));
    const withData = storeFiles().length;
    assert.equal((await a.member.delete(`/v2/images/${id}`)).status, 204);
    assert.equal(storeFiles().length, withData - 1);
  });

  it('stages and imports with glance-direct, asynchronously', async () => {
    const id = await create({ name: 'imported', disk_format: 'qcow2' });
    const staged = await a.member.raw('PUT', `/v2/images/${id}/stage`, qcow2, { 'content-type': 'application/octet-stream' });
    assert.equal(staged.status, 204, await staged.text());
    let img = await show(id);
    assert.equal(img.status, 'uploading');
    assert.equal(img.size, qcow2.length);
    assert.equal(stagedFiles().length, 1);
    const again = await a.member.raw('PUT', `/v2/images/${id}/stage`, qcow2, { 'content-type': 'application/octet-stream' });
    assert.equal(again.status, 409);
    const imp = await a.member.post(`/v2/images/${id}/import`, { method: { name: 'glance-direct' } });
    assert.equal(imp.status, 202, imp.text);
    img = await g.eventually(() => show(id), (i) => i.status === 'active');
    assert.equal(img.status, 'active');
    assert.equal(img.checksum, md5(qcow2));
    assert.equal(img.os_hash_value, sha512(qcow2));
    assert.equal(img.virtual_size, 64 * MiB);
    assert.equal(img.os_glance_importing_to_stores, '');
    assert.equal(img.os_glance_failed_import, '');
    // The import task lets go of its lock once it has finished.
    await g.eventually(() => show(id), (i) => !('os_glance_import_task' in i));
    assert.deepEqual(stagedFiles(), []);
    const down = await a.member.raw('GET', `/v2/images/${id}/file`);
    assert.ok(Buffer.from(await down.arrayBuffer()).equals(qcow2));
    const tasks = (await a.member.get(`/v2/images/${id}/tasks`)).body.tasks;
    assert.equal(tasks.length, 1);
    assert.equal(tasks[0].type, 'api_image_import');
    assert.equal(tasks[0].status, 'success');
    assert.deepEqual(tasks[0].result, { image_id: id });
    assert.deepEqual(tasks[0].input.import_req, { method: { name: 'glance-direct' } });
    assert.equal((await b.member.get(`/v2/images/${id}/tasks`)).status, 404);
    const twice = await a.member.post(`/v2/images/${id}/import`, { method: { name: 'glance-direct' } });
    assert.equal(twice.status, 409);
    assert.match(faultMessage(twice), /Image with status active cannot be target for import/);
  });

  it('puts a failed import back to queued and removes the staged bytes', async () => {
    const id = await create({ name: 'bad-import', disk_format: 'qcow2' });
    await a.member.raw('PUT', `/v2/images/${id}/stage`, backed, { 'content-type': 'application/octet-stream' });
    assert.equal((await a.member.post(`/v2/images/${id}/import`, { method: { name: 'glance-direct' } })).status, 202);
    const img = await g.eventually(() => show(id), (i) => i.status === 'queued');
    assert.equal(img.status, 'queued');
    assert.equal(img.os_glance_failed_import, 'file');
    assert.equal(img.size, null);
    assert.deepEqual(stagedFiles(), []);
    await g.eventually(() => show(id), (i) => !('os_glance_import_task' in i));
  });

  it('refuses bad import requests', async () => {
    const queued = await create({ name: 'not-staged' });
    const cases: [unknown, number, RegExp][] = [
      [{}, 400, /Import request requires a 'method' field\./],
      [{ method: {} }, 400, /Import request requires a 'name' field\./],
      [{ method: { name: 'web-download', uri: 'http://example.com/x' } }, 400, /Unknown import method name 'web-download'\./],
      [{ method: { name: 'glance-direct' }, all_stores: 'yes' }, 400, /'all_stores' must be boolean value only/],
      [{ method: { name: 'glance-direct' } }, 409, /Image needs to be staged before 'glance-direct' method can be used/],
      [{ method: { name: 'copy-image' } }, 409, /Only images with status active can be targeted for copying/],
    ];
    for (const [body, status, message] of cases) {
      const res = await a.member.post(`/v2/images/${queued}/import`, body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      assert.match(faultMessage(res), message);
    }
    const big = await create({ name: 'big-stage' });
    const over = await a.member.raw('PUT', `/v2/images/${big}/stage`, randomBytes(MiB + 1), { 'content-type': 'application/octet-stream' });
    assert.equal(over.status, 413);
    assert.equal((await show(big)).status, 'queued');
    assert.deepEqual(stagedFiles(), []);
  });

  it('copies an active image into another store (copy-image, admin only)', async () => {
    const id = await create({ name: 'copied' });
    const bytes = randomBytes(5000);
    await a.member.upload(id, bytes);
    const refused = await a.member.post(`/v2/images/${id}/import`, { method: { name: 'copy-image' }, stores: ['fast'] });
    assert.equal(refused.status, 403);
    const present = await g.admin.post(`/v2/images/${id}/import`, { method: { name: 'copy-image' }, stores: ['file'] });
    assert.equal(present.status, 400);
    assert.match(faultMessage(present), /Image is already present at store 'file'/);
    const unknown = await g.admin.post(`/v2/images/${id}/import`, { method: { name: 'copy-image' }, stores: ['nowhere'] });
    assert.equal(unknown.status, 409);
    const res = await g.admin.post(`/v2/images/${id}/import`, { method: { name: 'copy-image' }, stores: ['fast'] });
    assert.equal(res.status, 202, res.text);
    const img = await g.eventually(() => show(id), (i) => i.stores === 'file,fast');
    assert.equal(img.stores, 'file,fast');
    assert.equal(img.status, 'active');
    const fromFast = await a.member.raw('GET', `/v2/images/${id}/file?prefer=fast`);
    assert.ok(Buffer.from(await fromFast.arrayBuffer()).equals(bytes));
    const all = await g.admin.post(`/v2/images/${id}/import`, { method: { name: 'copy-image' }, all_stores: true });
    assert.equal(all.status, 202);
    assert.equal((await a.member.raw('GET', `/v2/images/${id}/file?prefer=elsewhere`)).status, 400);

    // DELETE /v2/stores/{store}/{image}: an admin drops one copy, never the last.
    assert.equal((await a.member.delete(`/v2/stores/fast/${id}`)).status, 403);
    assert.equal((await g.admin.delete(`/v2/stores/nowhere/${id}`)).status, 409);
    assert.equal((await g.admin.delete(`/v2/stores/fast/${id}`)).status, 204);
    assert.equal((await show(id)).stores, 'file');
    assert.equal((await g.admin.delete(`/v2/stores/fast/${id}`)).status, 403);
    const last = await g.admin.delete(`/v2/stores/file/${id}`);
    assert.equal(last.status, 403);
    assert.match(faultMessage(last), /Cannot delete image data from the only store containing it/);
    const down = await a.member.raw('GET', `/v2/images/${id}/file`);
    assert.ok(Buffer.from(await down.arrayBuffer()).equals(bytes));
  });
});
