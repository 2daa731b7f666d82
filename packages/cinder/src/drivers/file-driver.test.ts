import { mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { volumeDriverCompliance } from './driver-compliance.ts';
import { FileVolumeDriver } from './file-driver.ts';
import { NbdExports } from './nbd-exports.ts';

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
    close: async () => {
      // Left running only if a test failed midway: stop them before the files go.
      await exports?.stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
