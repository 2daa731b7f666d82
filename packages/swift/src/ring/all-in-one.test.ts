import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { swiftConfPath } from '../common/hash-path.ts';
import { buildAllInOneRing } from './all-in-one.ts';
import { parseRing, readRingFile } from './ring-data.ts';
import { Ring } from './ring.ts';

test('all-in-one rings: three rings over n device dirs, one zone each, kept on the next start, re-pointed when the port changes', (t) => {
  const state = mkdtempSync(join(tmpdir(), 'swift-aio-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const first = buildAllInOneRing(state, { devices: 4, replicas: 3, ip: '127.0.0.1', ports: { account: 6202, container: 6201, object: 6200 } });
  assert.deepEqual(first.written, ['account', 'container', 'object']);
  assert.deepEqual(first.devices, ['sd1', 'sd2', 'sd3', 'sd4']);
  for (const d of first.devices) assert.ok(statSync(join(first.devicesDir, d)).isDirectory());
  assert.ok(statSync(swiftConfPath(state)).isFile());

  const ring = Ring.load(first.rings.object, first.hashConf);
  assert.equal(ring.replicaCount, 3);
  assert.equal(ring.partPower, 10);
  assert.deepEqual(new Set(ring.devs.map((d) => d?.port)), new Set([6200]));
  assert.equal(Ring.load(first.rings.account, first.hashConf).devs[0]?.port, 6202);
  const { nodes } = ring.getNodes('AUTH_demo', 'c', 'o');
  assert.equal(new Set(nodes.map((n) => n.device)).size, 3);
  assert.equal([...ring.getMoreNodes(ring.getPart('AUTH_demo', 'c', 'o'))].length, 1);

  const before = readFileSync(first.rings.object);
  const again = buildAllInOneRing(state, { devices: 4, ports: { account: 6202, container: 6201, object: 6200 } });
  assert.deepEqual(again.written, []);
  assert.ok(readFileSync(first.rings.object).equals(before));

  const moved = buildAllInOneRing(state, { devices: 4, ports: 7000 });
  assert.deepEqual(moved.written, ['account', 'container', 'object']);
  const table = readRingFile(first.rings.object);
  assert.deepEqual(table.replica2part2dev, parseRing(before).replica2part2dev);
  assert.ok(table.devs.every((d) => d?.port === 7000 && d.replication_port === 7000));

  // a fifth device joins at once but gets partitions only once min_part_hours (1) have passed since the first build
  const now = Date.now() / 1000;
  const grown = buildAllInOneRing(state, { devices: 5, ports: 7000, now });
  assert.deepEqual(grown.written, ['account', 'container', 'object']);
  const five = readRingFile(first.rings.container);
  assert.equal(five.devs.length, 5);
  assert.ok(!five.replica2part2dev.some((row) => row.includes(4)));
  assert.deepEqual(buildAllInOneRing(state, { devices: 5, ports: 7000, now: now + 600 }).written, []);
  assert.deepEqual(buildAllInOneRing(state, { devices: 5, ports: 7000, now: now + 3 * 3600 }).written, ['account', 'container', 'object']);
  const share = readRingFile(first.rings.container).replica2part2dev.reduce((s, row) => s + row.filter((id) => id === 4).length, 0);
  assert.ok(Math.abs(share - (3 * 1024) / 5) < 20, `new device holds ${share}`);
});

test('all-in-one refuses fewer devices than replicas', (t) => {
  const state = mkdtempSync(join(tmpdir(), 'swift-aio-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  assert.throws(() => buildAllInOneRing(state, { devices: 2, replicas: 3, ports: 6200 }), /at least 3 devices/);
});
