import assert from 'node:assert/strict';
import { existsSync, linkSync, lstatSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { volumeDriverCompliance } from './driver-compliance.ts';
import { FileVolumeDriver } from './file-driver.ts';
import { NbdExports } from './nbd-exports.ts';
import { VolumeDriverError, type AssistedCreateInfo, type OnlineSnapshot } from './volume-driver.ts';

const logger = { info: () => undefined, warn: () => undefined };

/** The file driver on real qcow2 and raw files with real qemu-img; bytes are written and read with qemu-io. */
const variants = [
  { format: 'qcow2', nbd: false },
  { format: 'raw', nbd: false },
  { format: 'qcow2', nbd: true },
] as const;
for (const { format, nbd } of variants) volumeDriverCompliance(`file driver (${format}${nbd ? ', NBD exports' : ''})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onestack-cinder-file-'));
  const exports = nbd ? new NbdExports({ runDir: join(dir, 'nbd'), listenAddress: '127.0.0.1', logger }) : undefined;
  const driver = new FileVolumeDriver({ dir, logger, format, host: 'volume-host', ...(exports ? { nbd: { exports, mode: 'always' as const } } : {}) });
  return {
    driver,
    write: async (id, offset, data) => {
      await runCommand('qemu-io', ['-f', format, '-c', `write -P ${data[0]} ${offset} ${data.length}`, positional(driver.volumePath(id))], { logger, timeoutMs: 30_000 });
    },
    read: async (id, offset) => {
      const { stdout } = await runCommand('qemu-io', ['-f', format, '-r', '-c', `read -v ${offset} 4096`, positional(driver.volumePath(id))], { logger, timeoutMs: 30_000 });
      const bytes = stdout
        .split('\n')
        .filter((l) => /^[0-9a-f]{8}:/.test(l))
        .flatMap((l) => l.slice(10, 10 + 16 * 3).trim().split(/\s+/).map((h) => parseInt(h, 16)));
      return Buffer.from(bytes);
    },
    exists: async (id) => stat(driver.volumePath(id)).then(() => true, () => false),
    placeExisting: async (name, kind, size, byte) => {
      const path = join(dir, name);
      // A snapshot file is qcow2 whatever the backend's format.
      const fmt = name.startsWith('snapshot-') ? 'qcow2' : format;
      if (kind === 'hostile') {
        await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', positional(path), String(size)], { logger, timeoutMs: 30_000 });
        return;
      }
      await runCommand('qemu-img', ['create', '-q', '-f', fmt, positional(path), String(size)], { logger, timeoutMs: 30_000 });
      await runCommand('qemu-io', ['-f', fmt, '-c', `write -P ${byte} ${1024 * 1024} 4096`, positional(path)], { logger, timeoutMs: 30_000 });
    },
    close: async () => {
      // Left running only if a test failed midway: stop them before the files go.
      await exports?.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

test('file driver: manage existing refuses a symbolic link and a file with a second hard link, leaving both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onestack-cinder-file-'));
  try {
    const driver = new FileVolumeDriver({ dir, logger });
    await driver.doSetup();
    const outside = join(dir, '.partial', 'outside.qcow2');
    await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', positional(outside), '1G'], { logger, timeoutMs: 30_000 });
    symlinkSync(outside, join(dir, 'via-symlink'));
    linkSync(outside, join(dir, 'via-hardlink'));
    const v = { id: '00000000-0000-4000-8000-00000000f00d', size: 1 };
    for (const name of ['via-symlink', 'via-hardlink']) {
      await assert.rejects(driver.manageExisting(v, { 'source-name': name }), (e: unknown) => e instanceof VolumeDriverError && e.reason === 'invalid_reference' && /link/.test(e.message), name);
      assert.ok(lstatSync(join(dir, name)), `${name} is left where it was`);
    }
    assert.equal(existsSync(driver.volumePath(v.id)), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("file driver: an in-use volume's snapshot comes from the guest's hypervisor (assisted): its file vetted, a bad or failed one removed", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'onestack-cinder-file-'));
  try {
    const driver = new FileVolumeDriver({ dir, logger, host: 'volume-host' });
    await driver.doSetup();
    const v = { id: '00000000-0000-4000-8000-0000000a55ed', size: 1 };
    await driver.createVolume(v);
    const snap = (n: number) => ({ id: `00000000-0000-4000-8000-00000000000${n}`, volumeId: v.id, volumeSize: 1 });
    const asked: { instance: string; info: AssistedCreateInfo }[] = [];
    /** A hypervisor that writes `make(path)` where asked, or fails. */
    const online = (make: (path: string) => Promise<void>, connector = { host: 'volume-host' }): OnlineSnapshot => ({
      attachments: [{ instanceUuid: 'server-1', connector }],
      assisted: async (instance, info) => {
        asked.push({ instance, info });
        await make(join(dir, info.new_file));
      },
    });
    const qcow2 = (path: string) => runCommand('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'qcow2', positional(driver.volumePath(v.id)), positional(path)], { logger, timeoutMs: 30_000 }).then(() => undefined);

    await driver.createSnapshot(snap(1), online(qcow2));
    assert.deepEqual(asked.map((a) => [a.instance, a.info]), [['server-1', { snapshot_id: snap(1).id, type: 'qcow2', new_file: `snapshot-${snap(1).id}.qcow2.nova`, id: snap(1).id }]]);
    assert.ok(existsSync(driver.snapshotPath(snap(1).id)));

    // Raw bytes where a qcow2 was asked for; a copy with a backing file; a hypervisor that failed after writing.
    const raw = (path: string) => runCommand('qemu-img', ['create', '-q', '-f', 'raw', positional(path), '1G'], { logger, timeoutMs: 30_000 }).then(() => undefined);
    const backed = (path: string) => runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', positional(driver.volumePath(v.id)), positional(path)], { logger, timeoutMs: 30_000 }).then(() => undefined);
    const failing = async (path: string) => {
      await qcow2(path);
      throw new VolumeDriverError('Nova returned "error" status while creating snapshot.');
    };
    for (const [n, make] of [[2, raw], [3, backed], [4, failing]] as const) {
      await assert.rejects(driver.createSnapshot(snap(n), online(make)), VolumeDriverError, `case ${n}`);
      assert.equal(existsSync(driver.snapshotPath(snap(n).id)), false);
    }
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.nova')), [], 'no copy left behind');

    // A guest on another host reads an NBD export, not the file: no hypervisor to ask here, qemu-img copies.
    asked.length = 0;
    const exporting = new FileVolumeDriver({ dir, logger, host: 'volume-host', nbd: { exports: new NbdExports({ runDir: join(dir, 'nbd'), listenAddress: '127.0.0.1', logger }), mode: 'remote' } });
    await exporting.createSnapshot(snap(5), online(qcow2, { host: 'other-host' }));
    assert.deepEqual(asked, []);
    assert.ok(existsSync(driver.snapshotPath(snap(5).id)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
