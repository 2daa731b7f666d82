/** The grouped backend PUT (common/colocated.ts) against a real object server with several devices. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPath } from '../common/hash-path.ts';
import { COLOCATED_HEADER, REPLICA_RESULTS_HEADER, replicaResults } from '../common/colocated.ts';
import { hashLocation } from './diskfile.ts';
import { decodeTrailer } from './object-file.ts';
import { createObjectServer } from './object-server.ts';
import { listen, nextTs, TEST_HASH_PATH, tempDevices } from './test-support.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('grouped object PUT', () => {
  const devs = tempDevices(['d1', 'd2', 'd3', 'd4', 'd5']);
  let srv: Awaited<ReturnType<typeof listen>>;
  // A port nothing listens on: every container update fails and is kept as an async pending on its replica's device.
  let deadHost: string;
  before(async () => {
    srv = await listen(createObjectServer({ devices: devs.devices, hashPath: TEST_HASH_PATH, containerUpdateTimeoutMs: 2000, connTimeoutMs: 200 }));
    const dead = await listen(createObjectServer({ devices: devs.devices, hashPath: TEST_HASH_PATH }));
    deadHost = dead.host;
    await dead.close();
  });
  after(async () => {
    await srv.close();
    devs.remove();
  });

  const loc = (dev: string, obj: string) => hashLocation(join(devs.devices, dev), 0, '7', hashPath(TEST_HASH_PATH, 'AUTH_a', 'c', obj));
  const dataFiles = (dev: string, obj: string) => (existsSync(loc(dev, obj).hashDir) ? readdirSync(loc(dev, obj).hashDir).filter((n) => n.endsWith('.data')) : []);
  const tmpFiles = (dev: string) => (existsSync(join(devs.devices, dev, 'tmp')) ? readdirSync(join(devs.devices, dev, 'tmp')) : []);
  const extra = (devices: string[]) => JSON.stringify(devices.map((d) => ({ device: d, containerHost: deadHost, containerDevice: `c-${d}`, containerPartition: '3' })));
  const put = (first: string, others: string[], obj: string, body: Buffer, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}/${first}/7/AUTH_a/c/${obj}`, {
      method: 'PUT',
      body: new Uint8Array(body),
      headers: {
        'X-Timestamp': nextTs(),
        'Content-Type': 'application/x-test',
        'X-Object-Meta-Color': 'red',
        'X-Container-Host': deadHost,
        'X-Container-Device': `c-${first}`,
        'X-Container-Partition': '3',
        [COLOCATED_HEADER]: extra(others),
        ...headers,
      },
    });

  it('writes the one body to every named device, each with its metadata and its own container update', async () => {
    // Larger than the md5 thread's threshold and the background-sync interval, so both paths run.
    const body = randomBytes(9 * 1024 * 1024 + 5);
    const r = await put('d1', ['d2', 'd3'], 'big', body);
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('etag'), md5(body));
    assert.deepEqual(replicaResults(r.headers.get(REPLICA_RESULTS_HEADER) ?? undefined), ['d1', 'd2', 'd3'].map((device) => ({ device, status: 201 })));
    for (const d of ['d1', 'd2', 'd3']) {
      const [f] = dataFiles(d, 'big');
      assert.ok(f, `a .data on ${d}`);
      const raw = readFileSync(join(loc(d, 'big').hashDir, f));
      assert.ok(raw.subarray(0, body.length).equals(body), `body on ${d}`);
      const t = decodeTrailer(raw, raw.length);
      assert.ok('meta' in t);
      assert.equal(t.meta.name, '/AUTH_a/c/big');
      assert.equal(t.meta.ETag, md5(body));
      assert.equal(t.meta['Content-Length'], String(body.length));
      assert.equal(t.meta['X-Object-Meta-Color'], 'red');
      assert.deepEqual(tmpFiles(d), []);
      // The failed row update is owed by this replica, to this replica's container device.
      const asyncDir = join(devs.devices, d, 'async_pending', loc(d, 'big').suffix);
      const [pending] = readdirSync(asyncDir);
      const doc = JSON.parse(readFileSync(join(asyncDir, pending), 'utf8'));
      assert.equal(doc.op, 'PUT');
      assert.equal(doc.obj, 'big');
      assert.deepEqual(doc.targets, [{ host: deadHost, device: `c-${d}`, partition: '3' }]);
      assert.equal(doc.headers['x-etag'], md5(body));
    }
    assert.deepEqual(dataFiles('d4', 'big'), []);
  });

  it('an ETag mismatch is one 422 and leaves nothing on any device', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const r = await put('d1', ['d2', 'd3'], 'bad-etag', body, { ETag: md5(Buffer.from('other')) });
    assert.equal(r.status, 422);
    for (const d of ['d1', 'd2', 'd3']) {
      assert.deepEqual(dataFiles(d, 'bad-etag'), []);
      assert.deepEqual(tmpFiles(d), []);
    }
  });

  it('a missing or broken device fails only its replica', async () => {
    // d5's tmp is a file: its temp file cannot be created.
    rmSync(join(devs.devices, 'd5', 'tmp'), { recursive: true, force: true });
    writeFileSync(join(devs.devices, 'd5', 'tmp'), 'not a directory');
    const body = randomBytes(2 * 1024 * 1024);
    const r = await put('d1', ['gone', 'd5', 'd2'], 'partial', body);
    assert.equal(r.status, 201);
    const results = replicaResults(r.headers.get(REPLICA_RESULTS_HEADER) ?? undefined);
    assert.deepEqual(
      results?.map((x) => [x.device, x.status]),
      [
        ['d1', 201],
        ['gone', 507],
        ['d5', 500],
        ['d2', 201],
      ],
    );
    assert.equal(dataFiles('d1', 'partial').length, 1);
    assert.equal(dataFiles('d2', 'partial').length, 1);
    assert.deepEqual(dataFiles('d5', 'partial'), []);
    // The path's own device missing: the others are still written, the answer is that device's.
    const r2 = await put('gone', ['d3', 'd4'], 'first-gone', body);
    assert.equal(r2.status, 507);
    assert.deepEqual(replicaResults(r2.headers.get(REPLICA_RESULTS_HEADER) ?? undefined)?.map((x) => x.status), [507, 201, 201]);
    assert.equal(dataFiles('d3', 'first-gone').length, 1);
    assert.equal(dataFiles('d4', 'first-gone').length, 1);
    rmSync(join(devs.devices, 'd5', 'tmp'));
  });

  it('a replica that already has a newer write answers 409 with its timestamp; the others take the object', async () => {
    const newer = nextTs();
    const body = randomBytes(100 * 1024);
    assert.equal((await put('d3', [], 'conflict', body, { 'X-Timestamp': newer, [COLOCATED_HEADER]: '' })).status, 201);
    const r = await put('d1', ['d2', 'd3'], 'conflict', body, { 'X-Timestamp': '1600000000.00000' });
    assert.equal(r.status, 201);
    assert.deepEqual(replicaResults(r.headers.get(REPLICA_RESULTS_HEADER) ?? undefined), [
      { device: 'd1', status: 201 },
      { device: 'd2', status: 201 },
      { device: 'd3', status: 409, timestamp: newer },
    ]);
    assert.deepEqual(dataFiles('d3', 'conflict'), [`${newer}.data`]);
  });

  it('a malformed replica list is a 400 and writes nothing', async () => {
    for (const bad of ['not json', '[{"device":"../x"}]', '{"device":"d2"}', '[{"device":"d2","containerHost":3}]', '[{"device":"d1"}]', '[{"device":"d2"},{"device":"d2"}]']) {
      const r = await put('d1', [], 'malformed', Buffer.from('x'), { [COLOCATED_HEADER]: bad });
      assert.equal(r.status, 400, bad);
    }
    assert.deepEqual(dataFiles('d1', 'malformed'), []);
  });
});
