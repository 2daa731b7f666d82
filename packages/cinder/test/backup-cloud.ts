import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createProxyApp, type ProxyApp } from '../../swift/src/proxy/app.ts';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../../swift/src/conf.ts';
import { startStorageCluster, type StorageCluster } from '../../swift/test/storage-cluster.ts';
import { FileVolumeDriver } from '../src/drivers/file-driver.ts';
import { GiB } from '../src/drivers/volume-driver.ts';
import { startCinder, type CinderFixture } from './fixture.ts';

const execFileAsync = promisify(execFile);

/** What the backup tests run on: Cinder with the file driver, the real Swift proxy over three storage nodes in the catalog, one Keystone. */
export interface BackupCloud {
  ks: KeystoneFixture;
  f: CinderFixture;
  /** The proxy's root, without /v1. */
  swiftUrl: string;
  /** Makes the 1 GiB volume hold `pieces` (zeroes elsewhere) through the driver; answers a sparse raw copy of it (in the state dir, gone with close()). */
  writeVolume(volumeId: string, pieces: [number, Buffer][]): Promise<string>;
  /** The volume holds what the raw copy does (qemu-img compare: contents, whatever the allocation; a larger volume reads as zeroes past it). */
  assertHolds(volumeId: string, raw: string): Promise<void>;
  close(): Promise<void>;
}

export async function startBackupCloud(logger: Logger): Promise<BackupCloud> {
  let ks: KeystoneFixture | undefined;
  let cluster: StorageCluster | undefined;
  let proxy: ProxyApp | undefined;
  let f: CinderFixture | undefined;
  const close = async () => {
    await f?.close();
    await proxy?.app.close();
    await cluster?.close();
    await ks?.close();
  };
  try {
    ks = await startKeystone();
    cluster = await startStorageCluster({ logger });
    proxy = await createProxyApp({ rings: cluster.rings, config: proxyConfig({ ...defaultSwiftValues() } as SwiftValues, { authUri: ks.url }), logger, tokens: ks.tokens, version: '0.1.0' });
    const swiftUrl = await proxy.app.listen({ host: '127.0.0.1', port: 0 });
    await ensureEndpoints(ks.ks, { type: 'object-store', name: 'swift', regionId: 'RegionOne', urls: { public: `${swiftUrl}/v1/AUTH_%(project_id)s` } });
    const cinder = await startCinder({ ks, driver: (dir) => new FileVolumeDriver({ dir: join(dir, 'volumes'), backendName: 'file', logger }) });
    f = cinder;
    const writeVolume = async (volumeId: string, pieces: [number, Buffer][]): Promise<string> => {
      const raw = join(cinder.config.stateDir, `scratch-${randomBytes(4).toString('hex')}.raw`);
      const fh = await open(raw, 'wx');
      await fh.truncate(GiB);
      for (const [offset, data] of pieces) await fh.write(data, 0, data.length, offset);
      await fh.close();
      await cinder.driver.copyImageToVolume({ id: volumeId, size: 1 }, { path: raw, diskFormat: 'raw' });
      return raw;
    };
    const assertHolds = async (volumeId: string, raw: string) => {
      await execFileAsync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, join(cinder.config.stateDir, 'volumes', `volume-${volumeId}.qcow2`)]);
    };
    return { ks, f: cinder, swiftUrl, writeVolume, assertHolds, close };
  } catch (e) {
    await close();
    throw e;
  }
}
