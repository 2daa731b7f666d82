import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCommand, positional } from '@onestack/core/exec/privileged-exec.ts';
import { VolumeDriverError, type VolumeDriver } from './volume-driver.ts';

/** What the suite needs besides the driver: raw access to a volume's bytes at 4 KiB-aligned offsets. */
export interface ComplianceHarness {
  driver: VolumeDriver;
  write(volumeId: string, offset: number, data: Buffer): Promise<void>;
  /** 4096 bytes at offset; a block never written reads as zeroes (or undefined for sparse fakes). */
  read(volumeId: string, offset: number): Promise<Buffer | undefined>;
  exists(volumeId: string): Promise<boolean>;
  /**
   * Puts an object Cinder does not manage on the backend (manage existing): `good` of
   * sizeBytes with `byte` written at 1 MiB, or `hostile`, one the driver must refuse
   * (for a file backend a qcow2 naming a backing file).
   */
  placeExisting(name: string, kind: 'good' | 'hostile', sizeBytes: number, byte: number): Promise<void>;
  close(): Promise<void>;
}

const logger = { info: () => undefined, warn: () => undefined };
const OFFSET = 1024 * 1024;
const block = (byte: number) => Buffer.alloc(4096, byte);
const isZero = (b: Buffer | undefined) => b === undefined || b.every((x) => x === 0);
let n = 0;
const ref = (size = 1) => ({ id: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`, size });

/**
 * The behaviour every VolumeDriver owes the manager (see volume-driver.ts),
 * run against each driver with real data where the driver is real.
 */
export function volumeDriverCompliance(name: string, open: () => Promise<ComplianceHarness>): void {
  const withHarness = (title: string, fn: (h: ComplianceHarness) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const h = await open();
      try {
        await h.driver.doSetup();
        await fn(h);
      } finally {
        await h.close();
      }
    });

  withHarness('set-up check passes and stats report a pool with capacity', async ({ driver }) => {
    await driver.checkForSetupError();
    const stats = await driver.getVolumeStats();
    assert.equal(stats.volume_backend_name, driver.backendName);
    const [pool] = stats.pools;
    assert.ok(pool.total_capacity_gb > 0 && pool.free_capacity_gb <= pool.total_capacity_gb, JSON.stringify(pool));
    assert.ok(pool.reserved_percentage >= 0 && pool.max_over_subscription_ratio >= 1);
  });

  withHarness('a new volume reads as zeroes, is thin and counts as provisioned', async (h) => {
    const before = (await h.driver.getVolumeStats()).pools[0].provisioned_capacity_gb;
    const v = ref(2);
    await h.driver.createVolume(v);
    assert.ok(await h.exists(v.id));
    assert.ok(isZero(await h.read(v.id, OFFSET)));
    const used = await h.driver.volumeUsage?.(v);
    if (used !== undefined) assert.ok(used < 16 * 1024 * 1024, `a blank 2 GiB volume uses ${used} bytes`);
    assert.equal((await h.driver.getVolumeStats()).pools[0].provisioned_capacity_gb, before + 2);
  });

  withHarness('snapshots keep their point in time; clones and volumes from snapshots carry data and outlive the source', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    await h.write(v.id, OFFSET, block(0xaa));
    const snap = { id: ref().id, volumeId: v.id, volumeSize: v.size };
    await h.driver.createSnapshot(snap);
    await h.write(v.id, OFFSET, block(0xbb));
    const fromSnap = ref(2);
    await h.driver.createVolumeFromSnapshot(fromSnap, snap);
    const clone = ref();
    await h.driver.createClonedVolume(clone, v);
    await h.driver.deleteVolume(v);
    assert.deepEqual(await h.read(fromSnap.id, OFFSET), block(0xaa));
    assert.deepEqual(await h.read(clone.id, OFFSET), block(0xbb));
    await h.driver.deleteSnapshot(snap);
    const again = ref();
    await assert.rejects(h.driver.createVolumeFromSnapshot(again, snap), (e: unknown) => e instanceof VolumeDriverError && e.reason === 'not_found');
    assert.equal(await h.exists(again.id), false, 'a failed create leaves nothing behind');
  });

  withHarness('revert to snapshot puts the snapshot\'s data back and keeps the snapshot', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    await h.write(v.id, OFFSET, block(0x11));
    const snap = { id: ref().id, volumeId: v.id, volumeSize: v.size };
    await h.driver.createSnapshot(snap);
    await h.write(v.id, OFFSET, block(0x22));
    await h.write(v.id, 2 * OFFSET, block(0x33));
    await h.driver.revertToSnapshot(v, snap);
    assert.deepEqual(await h.read(v.id, OFFSET), block(0x11));
    assert.ok(isZero(await h.read(v.id, 2 * OFFSET)), 'what was written after the snapshot is gone');
    const fromSnap = ref();
    await h.driver.createVolumeFromSnapshot(fromSnap, snap);
    assert.deepEqual(await h.read(fromSnap.id, OFFSET), block(0x11));
  });

  withHarness('delete is idempotent', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    await h.driver.deleteVolume(v);
    await h.driver.deleteVolume(v);
    await h.driver.deleteSnapshot({ id: ref().id, volumeId: v.id, volumeSize: 1 });
    assert.equal(await h.exists(v.id), false);
  });

  withHarness('extend keeps the data', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    await h.write(v.id, OFFSET, block(0x5a));
    await h.driver.extendVolume(v, 3);
    assert.deepEqual(await h.read(v.id, OFFSET), block(0x5a));
    assert.ok(isZero(await h.read(v.id, 2 * 1024 ** 3 + OFFSET)), 'the new space reads as zeroes');
  });

  withHarness('initialize_connection answers connection info for an existing volume only', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    const info = await h.driver.initializeConnection(v, { host: 'compute-1' });
    assert.equal(typeof info.driver_volume_type, 'string');
    assert.equal(typeof info.data, 'object');
    await h.driver.terminateConnection(v, { host: 'compute-1' });
    await h.driver.terminateConnection(v, { host: 'compute-1' });
    const opts = { attachmentId: '00000000-0000-4000-8000-0000000000aa', accessMode: 'rw' as const };
    const first = await h.driver.initializeConnection(v, { host: 'compute-1' }, opts);
    assert.deepEqual(await h.driver.initializeConnection(v, { host: 'compute-1' }, opts), first, 'repeatable for one attachment');
    await h.driver.terminateConnection(v, { host: 'compute-1' }, opts);
    await h.driver.terminateConnection(v, { host: 'compute-1' }, opts);
    await assert.rejects(h.driver.initializeConnection(ref(), { host: 'x' }), VolumeDriverError);
  });

  const listed = async (d: VolumeDriver, name: string, kind: 'volume' | 'snapshot', known = new Map<string, string>()) =>
    (await (kind === 'volume' ? d.getManageableVolumes(known) : d.getManageableSnapshots(known))).find((e) => e.reference['source-name'] === name);
  const invalidRef = (e: unknown) => e instanceof VolumeDriverError && e.reason === 'invalid_reference';

  withHarness('manage existing: an object becomes a volume with its data and its size rounded up; unmanage leaves it listed', async (h) => {
    await h.placeExisting('legacy-disk', 'good', 1.5 * 1024 ** 3, 0x3c);
    const entry = await listed(h.driver, 'legacy-disk', 'volume');
    assert.deepEqual(entry && { size: entry.size, safe: entry.safeToManage, owner: entry.cinderId }, { size: 2, safe: true, owner: null });
    const v = ref(2);
    assert.equal(await h.driver.manageExistingGetSize(v, { 'source-name': 'legacy-disk' }), 2);
    await h.driver.manageExisting(v, { 'source-name': 'legacy-disk' });
    assert.deepEqual(await h.read(v.id, OFFSET), block(0x3c));
    assert.equal(await listed(h.driver, 'legacy-disk', 'volume'), undefined, 'the name is gone');
    const own = (await h.driver.getManageableVolumes(new Map([[v.id, 'cinder-id-1']]))).find((e) => e.cinderId === 'cinder-id-1');
    assert.equal(own?.safeToManage, false);
    assert.equal(own?.reasonNotSafe, 'already managed');
    await h.driver.unmanage(v);
    const left = (await h.driver.getManageableVolumes(new Map())).find((e) => e.reference['source-name'] === own!.reference['source-name']);
    assert.equal(left?.safeToManage, true, 'an unmanaged volume is manageable again');
    const again = ref(2);
    await h.driver.manageExisting(again, left!.reference);
    assert.deepEqual(await h.read(again.id, OFFSET), block(0x3c));
  });

  withHarness('manage existing refuses names outside the backend, missing and hostile objects, and leaves them be', async (h) => {
    await h.placeExisting('evil', 'hostile', 1024 ** 3, 0);
    const v = ref();
    for (const bad of [{ 'source-name': '../evil' }, { 'source-name': '/etc/passwd' }, { 'source-name': '.partial' }, { 'source-name': 'missing' }, { 'source-id': 'x' }, { 'source-name': 'evil' }]) {
      await assert.rejects(h.driver.manageExistingGetSize(v, bad), invalidRef, JSON.stringify(bad));
      await assert.rejects(h.driver.manageExisting(v, bad), invalidRef, JSON.stringify(bad));
    }
    assert.equal(await h.exists(v.id), false);
    const evil = await listed(h.driver, 'evil', 'volume');
    assert.equal(evil?.safeToManage, false, 'still there, listed as unsafe');
    assert.ok(evil?.reasonNotSafe);
  });

  withHarness('manage existing snapshots: a snapshot object of a volume becomes a snapshot new volumes can be made from', async (h) => {
    const v = ref();
    await h.driver.createVolume(v);
    const name = `snapshot-${ref().id}.qcow2`;
    await h.placeExisting(name, 'good', 1024 ** 3, 0x4d);
    assert.equal((await listed(h.driver, name, 'snapshot'))?.safeToManage, true);
    const snap = { id: ref().id, volumeId: v.id, volumeSize: 1 };
    assert.equal(await h.driver.manageExistingSnapshotGetSize(snap, { 'source-name': name }), 1);
    await h.driver.manageExistingSnapshot(snap, { 'source-name': name });
    const fromSnap = ref();
    await h.driver.createVolumeFromSnapshot(fromSnap, snap);
    assert.deepEqual(await h.read(fromSnap.id, OFFSET), block(0x4d));
    await assert.rejects(h.driver.manageExistingSnapshot({ ...snap, id: ref().id }, { 'source-name': '../x' }), invalidRef);
    await h.driver.unmanageSnapshot(snap);
    assert.ok((await h.driver.getManageableSnapshots(new Map())).some((e) => e.safeToManage), 'the unmanaged snapshot is listed again');
  });

  withHarness('images: raw and qcow2 accepted; backing file, data file, mislabelled or too large refused', async (h) => {
    const dir = mkdtempSync(join(tmpdir(), 'onestack-cinder-img-'));
    try {
      const raw = join(dir, 'disk.raw');
      writeFileSync(raw, Buffer.concat([block(0x11), Buffer.alloc(1024 * 1024 - 4096)]));
      const qcow2 = join(dir, 'disk.qcow2');
      await qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', positional(raw), positional(qcow2)]);
      const backed = join(dir, 'backed.qcow2');
      await qemuImg(['create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', positional(backed)]);
      const dataFile = join(dir, 'datafile.qcow2');
      await qemuImg(['create', '-f', 'qcow2', '-o', `data_file=${join(dir, 'external.raw')}`, positional(dataFile), '1M']);
      const big = join(dir, 'big.qcow2');
      await qemuImg(['create', '-f', 'qcow2', positional(big), '3G']);
      for (const [path, fmt] of [
        [raw, 'raw'],
        [qcow2, 'qcow2'],
      ] as const) {
        const v = ref();
        await h.driver.createVolume(v);
        await h.driver.copyImageToVolume(v, { path, diskFormat: fmt });
        const first = await h.read(v.id, 0);
        if (first !== undefined && !name.startsWith('fake')) assert.deepEqual(first, block(0x11), `${fmt} image data in the volume`);
      }
      for (const [path, fmt, reason] of [
        [backed, 'qcow2', 'invalid_image'],
        [dataFile, 'qcow2', 'invalid_image'],
        [qcow2, 'raw', 'invalid_image'],
        [raw, 'qcow2', 'invalid_image'],
        [big, 'qcow2', 'capacity'],
      ] as const) {
        const v = ref();
        await h.driver.createVolume(v);
        await assert.rejects(h.driver.copyImageToVolume(v, { path, diskFormat: fmt }), (e: unknown) => e instanceof VolumeDriverError && e.reason === reason, `${path} as ${fmt}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

async function qemuImg(args: Parameters<typeof runCommand>[1]): Promise<void> {
  await runCommand('qemu-img', args, { logger, timeoutMs: 30_000 });
}
