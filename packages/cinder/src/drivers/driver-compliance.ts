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
