/** Helpers for the storage servers' unit tests: temp device dirs and servers on ephemeral ports. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HashPathConf } from '../common/hash-path.ts';

export const TEST_HASH_PATH: HashPathConf = { prefix: Buffer.from('pre'), suffix: Buffer.from('suf') };

export function tempDevices(names = ['sda1']): { devices: string; remove(): void } {
  const devices = mkdtempSync(join(tmpdir(), 'onestack-swift-storage-'));
  for (const n of names) mkdirSync(join(devices, n));
  return { devices, remove: () => rmSync(devices, { recursive: true, force: true }) };
}

export async function listen(server: http.Server): Promise<{ url: string; host: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Strictly increasing X-Timestamps near now (tombstones older than a week are reclaimed at once). */
let tsSeq = Math.floor(Date.now() / 1000);
export function nextTs(): string {
  tsSeq += 1;
  return `${tsSeq}.00000`;
}
