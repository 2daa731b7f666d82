import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { HashPathConf } from '../common/hash-path.ts';
import { RingBuilder } from './builder.ts';
import { parseRing, readRingFile, serializeRing, writeRingFile } from './ring-data.ts';
import { Ring } from './ring.ts';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const upstreamScript = join(testdata, 'upstream-ring.py');

interface Case {
  path: string[];
  part: number;
  nodes: number[];
  handoffs: number[];
}

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'swift-ring-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function ours(ring: Ring, path: string[], handoffs: number): Case {
  const { partition: part, nodes } = ring.getNodes(path[0], path[1], path[2]);
  nodes.forEach((n, i) => assert.equal(n.index, i));
  const more: number[] = [];
  for (const n of ring.getMoreNodes(part)) {
    if (more.length >= handoffs) break;
    assert.equal(n.handoff_index, more.length);
    more.push(n.id);
  }
  return { path, part, nodes: nodes.map((n) => n.id), handoffs: more };
}

test('a ring built by upstream swift-ring-builder 2.30 gives upstream’s partitions, primaries and handoff order (recorded vectors)', () => {
  const fixture = JSON.parse(readFileSync(join(testdata, 'upstream-2.30-p8.lookups.json'), 'utf8')) as { prefix: string; suffix: string; cases: Case[] };
  const conf: HashPathConf = { prefix: Buffer.from(fixture.prefix, 'latin1'), suffix: Buffer.from(fixture.suffix, 'latin1') };
  const ring = Ring.load(join(testdata, 'upstream-2.30-p8.ring.gz'), conf);
  assert.equal(ring.partPower, 8);
  assert.equal(ring.replicaCount, 3);
  assert.equal(ring.deviceCount, 24);
  const dev = ring.devs[5];
  assert.deepEqual(
    { ip: dev?.ip, port: dev?.port, device: dev?.device, region: dev?.region, zone: dev?.zone, replication_ip: dev?.replication_ip },
    { ip: '10.1.2.1', port: 6200, device: 'd2', region: 1, zone: 2, replication_ip: '10.1.2.1' },
  );
  assert.ok(fixture.cases.length > 100);
  for (const c of fixture.cases) assert.deepEqual(ours(ring, c.path, 30), c, `path ${c.path.join('/')}`);
});

function upstreamSwift(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import swift.common.ring'], { stdio: 'ignore' }).status === 0;
}

function upstreamLookup(ringFile: string, conf: HashPathConf, paths: string[][], handoffs: number): Case[] {
  const out = execFileSync('/usr/bin/python3', [upstreamScript, 'lookup', ringFile, conf.prefix.toString('latin1'), conf.suffix.toString('latin1'), String(handoffs)], {
    input: JSON.stringify(paths),
  });
  return (JSON.parse(out.toString('utf8')) as Omit<Case, 'path'>[]).map((e, i) => ({ path: paths[i], part: e.part, nodes: e.nodes, handoffs: e.handoffs }));
}

function randomPaths(n: number): string[][] {
  const paths: string[][] = [];
  for (let i = 0; i < n; i++) {
    const a = `AUTH_${Math.random().toString(16).slice(2)}`;
    const k = 1 + (i % 3);
    paths.push([a, `c${i}é`, `o/${i}/☃ ${Math.random()}`].slice(0, k));
  }
  return paths;
}

test('live interop with Debian upstream Swift: its ring read by us, our ring read by it', { skip: upstreamSwift() ? false : 'python3-swift not installed' }, (t) => {
  const dir = tmp(t);
  const conf: HashPathConf = { prefix: Buffer.from(`p${Math.random()}`), suffix: Buffer.from(`s${Math.random()}`) };
  const paths = randomPaths(150);

  // upstream builds, we read
  const builder = join(dir, 'object.builder');
  const sh = (...args: string[]) => execFileSync('/usr/bin/python3', [upstreamScript, 'builder', builder, ...args], { stdio: 'ignore' });
  sh('create', '9', '3', '1');
  let n = 0;
  for (const r of [1, 2, 3]) for (const z of [1, 2]) for (const d of [1, 2, 3]) sh('add', `r${r}z${z}-192.168.${r}.${z}:${6200 + d}/sd${d}`, String(20 + ((n++ * 53) % 200)));
  sh('rebalance');
  const upRing = join(dir, 'object.ring.gz');
  const ring = Ring.load(upRing, conf);
  assert.equal(ring.deviceCount, 18);
  for (const c of upstreamLookup(upRing, conf, paths, 40)) assert.deepEqual(ours(ring, c.path, 40), c);

  // we build, upstream reads (byte order, JSON shape and holes included: a removed device leaves a null)
  const b = new RingBuilder(8, 3, 0);
  for (const z of [1, 2, 3, 4]) for (const d of [1, 2]) b.addDevice({ region: 1 + (z % 2), zone: z, ip: `10.0.${z}.1`, port: 6200, device: `d${d}`, weight: 100 * d });
  b.rebalance({ seed: 3 });
  b.removeDevice(2);
  b.rebalance({ seed: 4 });
  const ourFile = join(dir, 'ours.ring.gz');
  writeRingFile(ourFile, b.getRing());
  const ourRing = Ring.load(ourFile, conf);
  for (const c of upstreamLookup(ourFile, conf, paths, 40)) assert.deepEqual(ours(ourRing, c.path, 40), c);
});

test('ring file round trip keeps devices, table and version; big-endian rings are read too', () => {
  const b = new RingBuilder(6, 3, 0);
  for (const z of [1, 2, 3]) b.addDevice({ region: 1, zone: z, ip: `10.0.0.${z}`, port: 6200 + z, device: 'sdb', weight: 1, meta: 'ünï' });
  b.rebalance({ seed: 1 });
  const data = b.getRing();
  const back = parseRing(serializeRing(data));
  assert.deepEqual(back.devs, data.devs);
  assert.deepEqual(back.replica2part2dev, data.replica2part2dev);
  assert.equal(back.partShift, 26);
  assert.equal(back.version, data.version);

  // A ring written on a big-endian host carries byteorder "big": rebuild one by hand.
  const gz = serializeRing(data);
  const raw = gunzipSync(gz);
  const jsonLen = raw.readUInt32BE(6);
  const meta = JSON.parse(raw.subarray(10, 10 + jsonLen).toString());
  meta.byteorder = 'big';
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.from(raw.subarray(0, 10));
  head.writeUInt32BE(json.length, 6);
  const table = Buffer.from(raw.subarray(10 + jsonLen));
  table.swap16();
  const big = parseRing(gzipSync(Buffer.concat([head, json, table])));
  assert.deepEqual(big.replica2part2dev, data.replica2part2dev);
});

test('a ring loaded from a file reloads when the file’s mtime changes, checking at most every reload interval', (t) => {
  const dir = tmp(t);
  const file = join(dir, 'object.ring.gz');
  const conf: HashPathConf = { prefix: Buffer.from('a'), suffix: Buffer.from('b') };
  copyFileSync(join(testdata, 'upstream-2.30-p8.ring.gz'), file);
  let now = 1_000_000;
  const ring = Ring.load(file, conf, { reloadSeconds: 15, now: () => now });
  assert.equal(ring.deviceCount, 24);
  const b = new RingBuilder(4, 1, 0);
  b.addDevice({ region: 1, zone: 1, ip: '1.2.3.4', port: 1, device: 'x', weight: 1 });
  b.rebalance();
  writeRingFile(file, b.getRing());
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  now += 10_000;
  assert.equal(ring.devs.length, 24, 'not yet time to look');
  now += 6_000;
  assert.equal(ring.devs.length, 1);
  assert.equal(ring.getNodes('a', 'c', 'o').nodes[0].ip, '1.2.3.4');
  assert.equal(readRingFile(file).devs.length, 1);
});

test('handoffs never repeat a primary or each other and reach every device holding partitions', () => {
  const b = new RingBuilder(8, 3, 0);
  for (const r of [1, 2]) for (const z of [1, 2, 3]) for (const d of [1, 2]) b.addDevice({ region: r, zone: z, ip: `10.${r}.${z}.1`, port: 6200, device: `d${d}`, weight: 100 });
  b.rebalance({ seed: 9 });
  const ring = Ring.fromData(b.getRing(), { prefix: Buffer.from('x'), suffix: Buffer.from('y') });
  for (let part = 0; part < 256; part += 17) {
    const primaries = ring.getPartNodes(part);
    assert.equal(new Set(primaries.map((n) => n.zone + '/' + n.region)).size, 3, 'primaries in three zones');
    const handoffs = [...ring.getMoreNodes(part)];
    const ids = [...primaries, ...handoffs].map((n) => n.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(ids.length, 12);
    // the first handoff goes to the region the primaries use least, then fresh zones come before reused ones
    const freshZones = new Set(primaries.map((n) => `${n.region}/${n.zone}`));
    for (const h of handoffs.slice(0, 3)) {
      assert.ok(!freshZones.has(`${h.region}/${h.zone}`));
      freshZones.add(`${h.region}/${h.zone}`);
    }
  }
});
