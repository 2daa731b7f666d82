import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadBuilder, saveBuilder } from './builder-file.ts';
import { RingBuilder, type BuilderDevice } from './builder.ts';

/** 2 regions × 3 zones × 2 servers × 2 disks, equal weights. */
function bigCluster(partPower = 10, minPartHours = 1): RingBuilder {
  const b = new RingBuilder(partPower, 3, minPartHours);
  for (const r of [1, 2]) for (const z of [1, 2, 3]) for (const s of [1, 2]) for (const d of [1, 2]) b.addDevice({ region: r, zone: z, ip: `10.${r}.${z}.${s}`, port: 6200, device: `sd${d}`, weight: 100 });
  return b;
}

function zonesOf(b: RingBuilder, part: number): string[] {
  return b.getPartDevices(part).map((d) => `${d.region}/${d.zone}`);
}

function snapshot(b: RingBuilder): Uint16Array[] {
  return (b.state.replica2part2dev as Uint16Array[]).map((r) => Uint16Array.from(r));
}

function partsMovedSince(b: RingBuilder, before: Uint16Array[]): Set<number> {
  const moved = new Set<number>();
  (b.state.replica2part2dev as Uint16Array[]).forEach((row, r) => row.forEach((id, p) => id !== before[r][p] && moved.add(p)));
  return moved;
}

test('placement: every partition has its 3 replicas in 3 different zones and both regions; balanced; validate passes', () => {
  const b = bigCluster();
  const res = b.rebalance({ seed: 1 });
  assert.equal(res.changedParts, 3 * 1024);
  assert.equal(res.dispersion, 0);
  for (let p = 0; p < b.parts; p++) {
    const zones = zonesOf(b, p);
    assert.equal(new Set(zones).size, 3, `partition ${p} zones ${zones}`);
    assert.equal(new Set(b.getPartDevices(p).map((d) => d.region)).size, 2);
  }
  const v = b.validate(true);
  assert.ok(v && v.worst < 2, `worst skew ${v?.worst}`);
  assert.ok(b.getBalance() < 2);
});

test('weights: partitions per device proportional to weight within a few percent', () => {
  const b = new RingBuilder(10, 3, 0);
  // zones of equal weight, so weights and zone-uniqueness never conflict (with overload 0 upstream lets weight win)
  const weights = [100, 200, 300, 200, 200, 150, 300, 200, 150];
  weights.forEach((w, i) => b.addDevice({ region: 1, zone: 1 + (i % 3), ip: `10.0.${i % 3}.1`, port: 6200, device: `d${i}`, weight: w }));
  b.rebalance({ seed: 2 });
  const total = weights.reduce((s, w) => s + w, 0);
  for (const d of b.devices()) {
    const want = (3 * 1024 * d.weight) / total;
    assert.ok(Math.abs(d.parts - want) / want < 0.03, `dev ${d.id} weight ${d.weight}: ${d.parts} parts, wants ${want.toFixed(1)}`);
  }
  for (let p = 0; p < b.parts; p++) assert.equal(new Set(zonesOf(b, p)).size, 3);
});

test('with fewer zones than replicas, replicas still land on distinct servers and zones are used evenly', () => {
  const b = new RingBuilder(8, 3, 0);
  for (const z of [1, 2]) for (const s of [1, 2]) b.addDevice({ region: 1, zone: z, ip: `10.0.${z}.${s}`, port: 6200, device: 'sdb', weight: 1 });
  b.rebalance({ seed: 3 });
  for (let p = 0; p < b.parts; p++) {
    const ds = b.getPartDevices(p);
    assert.equal(ds.length, 3);
    assert.equal(new Set(ds.map((d) => d.zone)).size, 2);
  }
  assert.equal(b.dispersionReport().dispersion, 0);
});

test('adding a device moves about its weighted share and no more; replicas stay zone-unique', () => {
  // One new disk in every zone keeps zone weights equal, so the only work is filling the new disks.
  const b = bigCluster(10, 1);
  b.rebalance({ seed: 4, now: 1_000_000 });
  const before = snapshot(b);
  for (const r of [1, 2]) for (const z of [1, 2, 3]) b.addDevice({ region: r, zone: z, ip: `10.${r}.${z}.1`, port: 6200, device: 'sd9', weight: 100 });
  const res = b.rebalance({ seed: 5, now: 1_000_000 + 2 * 3600 });
  const expected = (3 * 1024 * 6) / 30;
  assert.ok(Math.abs(res.changedParts - expected) / expected <= 0.2, `moved ${res.changedParts}, expected about ${expected}`);
  const newDevs = b.devices().filter((d) => d.device === 'sd9');
  for (const d of newDevs) assert.ok(Math.abs(d.parts - expected / 6) / (expected / 6) < 0.2, `new device got ${d.parts}`);
  for (let p = 0; p < b.parts; p++) assert.equal(new Set(zonesOf(b, p)).size, 3);
  // no partition lost more than one replica in one rebalance: the other two stay readable while data moves
  (b.state.replica2part2dev as Uint16Array[])[0].forEach((_, p) => {
    let changed = 0;
    for (let r = 0; r < 3; r++) if ((b.state.replica2part2dev as Uint16Array[])[r][p] !== before[r][p]) changed++;
    assert.ok(changed <= 1, `partition ${p} moved ${changed} replicas`);
  });
});

test('adding a device to one zone moves about what upstream moves (upstream 2.30: 227 of 3072 on this layout)', () => {
  const b = new RingBuilder(10, 3, 1);
  for (const r of [1, 2]) for (const z of [1, 2, 3]) for (let d = 0; d < 3; d++) b.addDevice({ region: r, zone: z, ip: `10.${r}.${z}.1`, port: 6200, device: `sd${d}`, weight: 100 });
  b.rebalance({ seed: 1 });
  b.addDevice({ region: 1, zone: 1, ip: '10.1.1.2', port: 6200, device: 'sdx', weight: 100 });
  b.pretendMinPartHoursPassed();
  const res = b.rebalance({ seed: 2 });
  // upstream's figures for the same steps: (227, balance 6.6); the new device got 151
  assert.ok(res.changedParts > 180 && res.changedParts < 275, `moved ${res.changedParts}`);
  const added = b.devices().find((d) => d.device === 'sdx') as BuilderDevice;
  assert.ok(added.parts > 130 && added.parts < 175, `new device has ${added.parts}`);
});

test('min_part_hours: a partition moved in one rebalance is not moved again until the hours pass', () => {
  const b = bigCluster(9, 24);
  const t0 = 2_000_000;
  b.rebalance({ seed: 6, now: t0 });
  const base = snapshot(b);
  b.addDevice({ region: 1, zone: 1, ip: '10.1.1.9', port: 6200, device: 'new1', weight: 400 });
  // the initial placement counts as a move: nothing may move for 24 hours
  assert.equal(b.rebalance({ seed: 7, now: t0 + 3600 }).changedParts, 0);
  b.rebalance({ seed: 7, now: t0 + 25 * 3600 });
  const first = partsMovedSince(b, base);
  assert.ok(first.size > 0);
  const mid = snapshot(b);
  b.addDevice({ region: 2, zone: 2, ip: '10.2.2.9', port: 6200, device: 'new2', weight: 400 });
  b.rebalance({ seed: 8, now: t0 + 26 * 3600 });
  const second = partsMovedSince(b, mid);
  assert.ok(second.size > 0, 'parts not moved last time may move');
  for (const p of second) assert.ok(!first.has(p), `partition ${p} moved twice within min_part_hours`);
  assert.ok(b.minPartSecondsLeft(t0 + 26 * 3600) > 0);

  // Once the hours have passed, the ring finishes balancing.
  const balanceBefore = b.getBalance();
  b.rebalance({ seed: 9, now: t0 + 60 * 3600 });
  assert.ok(b.getBalance() < balanceBefore, `${b.getBalance()} < ${balanceBefore}`);
});

test('removing a device moves all its partitions at once, min_part_hours notwithstanding', () => {
  const b = bigCluster(9, 24);
  b.rebalance({ seed: 10, now: 5_000_000 });
  const gone = b.devices()[3];
  b.removeDevice(gone.id);
  const res = b.rebalance({ seed: 11, now: 5_000_000 + 60 });
  assert.equal(res.removedDevices, 1);
  assert.equal(b.state.devs[gone.id], null);
  for (const row of b.state.replica2part2dev as Uint16Array[]) assert.ok(!row.includes(gone.id));
  b.validate();
  for (let p = 0; p < b.parts; p++) assert.equal(new Set(zonesOf(b, p)).size, 3);
  // the hole is reused by the next device added
  assert.equal(b.addDevice({ region: 1, zone: 1, ip: '10.9.9.9', port: 6200, device: 'z', weight: 1 }), gone.id);
});

test('a zero-weight device is drained when the hours allow, and set-weight rebalances toward the new weight', () => {
  const b = bigCluster(9, 0);
  b.rebalance({ seed: 12 });
  const [a, c] = b.devices();
  b.setDeviceWeight(a.id, 0);
  b.setDeviceWeight(c.id, 200);
  b.rebalance({ seed: 13 });
  b.rebalance({ seed: 14 });
  assert.equal(a.parts, 0);
  const want = (3 * 512 * 200) / (23 * 100 + 100);
  assert.ok(Math.abs(c.parts - want) / want < 0.1, `${c.parts} vs ${want}`);
});

test('rebalance refuses fewer devices than replicas; pretend_min_part_hours_passed unlocks moves', () => {
  const b = new RingBuilder(4, 3, 1);
  b.addDevice({ region: 1, zone: 1, ip: '1.1.1.1', port: 1, device: 'a', weight: 1 });
  b.addDevice({ region: 1, zone: 2, ip: '1.1.1.2', port: 1, device: 'a', weight: 1 });
  assert.throws(() => b.rebalance(), /Replica count of 3 requires more than 2 devices/);
  b.addDevice({ region: 1, zone: 3, ip: '1.1.1.3', port: 1, device: 'a', weight: 1 });
  b.rebalance({ now: 100 });
  b.addDevice({ region: 1, zone: 4, ip: '1.1.1.4', port: 1, device: 'a', weight: 1 });
  assert.equal(b.rebalance({ now: 200 }).changedParts, 0, 'every partition moved within the hour');
  b.pretendMinPartHoursPassed();
  assert.ok(b.rebalance({ now: 300 }).changedParts > 0);
  assert.throws(() => b.addDevice({ id: 0, region: 1, zone: 1, ip: 'x', port: 1, device: 'a', weight: 1 }), /Duplicate device id/);
});

test('dispersion report counts replicas beyond what the topology allows', () => {
  const b = new RingBuilder(6, 3, 0);
  for (const z of [1, 2, 3]) b.addDevice({ region: 1, zone: z, ip: `10.0.0.${z}`, port: 1, device: 'a', weight: 1 });
  b.rebalance({ seed: 1 });
  assert.equal(b.dispersionReport().dispersion, 0);
  // force two replicas of partition 0 into one zone by hand: that is one part-replica at risk
  const table = b.state.replica2part2dev as Uint16Array[];
  const inZone = b.addDevice({ region: 1, zone: table[0][0] === 0 ? 1 : b.state.devs[table[0][0]]!.zone, ip: '10.0.0.99', port: 1, device: 'b', weight: 0 });
  table[1][0] = inZone;
  const report = b.dispersionReport();
  assert.equal(report.partsAtRisk, 1);
  assert.ok(Math.abs(report.dispersion - 100 / (64 * 3)) < 1e-9);
});

test('builder file round trip: a loaded builder continues exactly where the saved one was', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swift-builder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const b = bigCluster(8, 1);
  b.rebalance({ seed: 1, now: 7_000_000 });
  b.removeDevice(5);
  const f = join(dir, 'object.builder');
  saveBuilder(f, b);
  const l = loadBuilder(f);
  assert.deepEqual(l.state, b.state);
  assert.deepEqual(l.rebalance({ seed: 2, now: 7_000_100 }), b.rebalance({ seed: 2, now: 7_000_100 }));
  assert.deepEqual(l.getRing(), b.getRing());
});

test('overload: weights win by default (as upstream), enough overload keeps every partition in three zones', () => {
  // zone 3 weighs half the cluster: by weight alone it would hold 1.5 replicas of each partition
  const build = (overload: number) => {
    const b = new RingBuilder(8, 3, 0);
    [100, 100, 100, 100, 400].forEach((w, i) => b.addDevice({ region: 1, zone: i < 2 ? 1 : i < 4 ? 2 : 3, ip: `10.0.0.${i}`, port: 1, device: 'a', weight: w }));
    b.addDevice({ region: 1, zone: 3, ip: '10.0.0.9', port: 1, device: 'a', weight: 400 });
    if (overload) b.setOverload(overload);
    b.rebalance({ seed: 1 });
    return b;
  };
  const weightsFirst = build(0);
  assert.ok(weightsFirst.dispersionReport().dispersion > 10);
  const dispersed = build(1);
  assert.equal(dispersed.dispersionReport().dispersion, 0);
  for (let p = 0; p < dispersed.parts; p++) assert.equal(new Set(zonesOf(dispersed, p)).size, 3);
});
