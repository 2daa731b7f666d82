import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashPath, loadOrCreateHashPathConf, readHashPathConf, swiftConfPath, type HashPathConf } from './hash-path.ts';

const conf: HashPathConf = { prefix: Buffer.from('onestack-prefix'), suffix: Buffer.from('onestack-suffix') };

test('hashPath matches upstream hash_path (vectors from swift.common.utils.hash_path of Debian python3-swift 2.30.1)', () => {
  assert.equal(hashPath(conf, 'AUTH_test'), '33fa3b258a6d3db72f1e5c0edb7a41e8');
  assert.equal(hashPath(conf, 'AUTH_test', 'c'), '81a9736b8be9f3845ee1ba25557f7b59');
  assert.equal(hashPath(conf, 'AUTH_test', 'c', 'o'), '8ceb0adc7e1aae11d1db6b42f5bc7e01');
  assert.equal(hashPath(conf, 'AUTH_ünïcødé', 'cønt', 'ob/j/ect ☃'), '90b3fdf904097dc4b4bfbda586723414');
  // empty container and object count as absent, as upstream's truthiness test does
  assert.equal(hashPath(conf, 'a', '', ''), 'b63aed843f3e604acc4fd43275127fb2');
});

test('hashPath refuses an object without a container', () => {
  assert.throws(() => hashPath(conf, 'a', undefined, 'o'), /container is required/);
});

test('the salt is created once per state dir and read back; the file is upstream-readable swift.conf', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swift-hash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = loadOrCreateHashPathConf(dir);
  const b = loadOrCreateHashPathConf(dir);
  assert.equal(a.prefix.length, 32);
  assert.ok(a.prefix.equals(b.prefix) && a.suffix.equals(b.suffix));
  assert.match(readFileSync(swiftConfPath(dir), 'utf8'), /^\[swift-hash\]\nswift_hash_path_prefix = [0-9a-f]{32}\nswift_hash_path_suffix = [0-9a-f]{32}\n/);
});

test('readHashPathConf takes raw bytes as upstream does and requires one of the two', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swift-hash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'swift.conf');
  writeFileSync(f, Buffer.concat([Buffer.from('[DEFAULT]\nx = 1\n[swift-hash]\n# comment\nswift_hash_path_suffix = s'), Buffer.from([0xe9, 0x0a])]));
  const c = readHashPathConf(f);
  assert.deepEqual([...c.suffix], [...Buffer.from('s'), 0xe9]);
  assert.equal(c.prefix.length, 0);
  writeFileSync(f, '[swift-hash]\n');
  assert.throws(() => readHashPathConf(f), /both swift_hash_path_suffix and swift_hash_path_prefix are missing/);
});
