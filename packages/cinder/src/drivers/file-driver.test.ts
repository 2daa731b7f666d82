import assert from 'node:assert/strict';
import { existsSync, linkSync, lstatSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { volumeDriverCompliance } from './driver-compliance.ts';
import { FileVolumeDriver } from './file-driver.ts';
import { NbdExports } from './nbd-exports.ts';
import { VolumeDriverError } from './volume-driver.ts';

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
