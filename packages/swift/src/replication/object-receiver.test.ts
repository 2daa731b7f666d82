import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { encodeTrailer } from '../storage/object-file.ts';
import { createObjectServer } from '../storage/object-server.ts';
import { listen, tempDevices, TEST_HASH_PATH } from '../storage/test-support.ts';
import { frameHeader } from './transfer.ts';

const HASH = 'd41d8cd98f00b204e9800998ecf8427e';
const SUFFIX = HASH.slice(-3);

function push(url: string, body: Buffer): Promise<Response> {
  return fetch(`${url}/sda1/7`, { method: 'POST', body: body as BodyInit, headers: { 'X-Backend-Verb': 'REPLICATE-PUSH' } });
}

it('REPLICATE-PUSH publishes whole files, refuses torn ones and bad frames; REPLICATE-LIST shows what arrived', async (t) => {
  const dev = tempDevices();
  t.after(() => dev.remove());
  const srv = await listen(createObjectServer({ devices: dev.devices, hashPath: TEST_HASH_PATH }));
  t.after(() => srv.close());
  const good = Buffer.concat([Buffer.from('hello'), encodeTrailer({ name: '/a/c/o', 'X-Timestamp': '1700000000.00000', 'Content-Length': '5', ETag: '5d41402abc4b2a76b9719d911017c592' })]);
  const name = '1700000000.00000.data';

  const ok = await push(srv.url, Buffer.concat([frameHeader(SUFFIX, HASH, name, good.length), good]));
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { written: 1 });
  const hashDir = join(dev.devices, 'sda1', 'objects', '7', SUFFIX, HASH);
  assert.deepEqual(readdirSync(hashDir), [name]);

  // Body cut short: the trailer does not parse, nothing is published.
  const torn = good.subarray(0, good.length - 3);
  const bad = await push(srv.url, Buffer.concat([frameHeader(SUFFIX, HASH, '1700000001.00000.data', torn.length), torn]));
  assert.equal(bad.status, 422);
  assert.deepEqual(readdirSync(hashDir), [name]);
  assert.deepEqual(readdirSync(join(dev.devices, 'sda1', 'tmp')), [], 'temp file removed');

  // A name outside the layout (path tricks, other extensions) is a bad frame.
  const evil = await push(srv.url, Buffer.concat([Buffer.from(`${SUFFIX}/${HASH}/../../x.data 3\n`), Buffer.from('abc')]));
  assert.equal(evil.status, 400);
  assert.ok(!existsSync(join(dev.devices, 'sda1', 'objects', '7', 'x.data')));

  const list = await fetch(`${srv.url}/sda1/7`, { method: 'POST', body: JSON.stringify([SUFFIX, 'fff']), headers: { 'X-Backend-Verb': 'REPLICATE-LIST' } });
  assert.deepEqual(await list.json(), { [SUFFIX]: { [HASH]: [name] }, fff: {} });
  const hashes = await fetch(`${srv.url}/sda1/7`, { method: 'POST', headers: { 'X-Backend-Verb': 'REPLICATE' } });
  assert.ok(((await hashes.json()) as Record<string, string>)[SUFFIX], 'the suffix hash covers the pushed file');
});
