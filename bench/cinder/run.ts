/**
 * Cinder's rates through its API on the file driver (thin qcow2), with the real
 * Swift proxy and three storage nodes for backups and a real Glance for images:
 *   node --import tsx bench/cinder/run.ts [--volumes N] [--image FILE]
 * Everything runs in this process (test fixtures on loopback, SQLite); the table goes to stdout.
 */
import { createReadStream, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { GlanceClient, startGlance } from '../../packages/glance/test/fixture.ts';
import { startCinder } from '../../packages/cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../packages/cinder/src/drivers/file-driver.ts';
import { createProxyApp } from '../../packages/swift/src/proxy/app.ts';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../../packages/swift/src/conf.ts';
import { startStorageCluster } from '../../packages/swift/test/storage-cluster.ts';

const { values: opts } = parseArgs({ options: { volumes: { type: 'string', default: '20' }, image: { type: 'string' } } });
const N = Number(opts.volumes);
const log = (line: string) => process.stderr.write(`${line}\n`);
const secs = (t0: number) => (performance.now() - t0) / 1000;

const logger = pino({ level: 'silent' });
const g = await startGlance();
const cluster = await startStorageCluster({ logger });
const proxy = await createProxyApp({ rings: cluster.rings, config: proxyConfig({ ...defaultSwiftValues() } as SwiftValues, { authUri: g.ks.url }), logger, tokens: g.ks.tokens, version: 'bench' });
const swiftUrl = await proxy.app.listen({ host: '127.0.0.1', port: 0 });
await ensureEndpoints(g.ks.ks, { type: 'object-store', name: 'swift', regionId: 'RegionOne', urls: { public: `${swiftUrl}/v1/AUTH_%(project_id)s` } });
const f = await startCinder({ ks: g.ks, config: { glance_api_servers: g.url, quota_volumes: -1, quota_gigabytes: -1 }, driver: (dir) => new FileVolumeDriver({ dir: join(dir, 'volumes'), logger }) });
const rows: [string, string][] = [];
try {
  const p = await f.project('bench');
  const waitAll = async (ids: string[], status: string) => {
    await f.volumes.drain();
    for (const id of ids) await f.waitFor(p.member, 'volumes', id, [status]);
  };

  log(`creating and deleting ${N} volumes of 1 GiB`);
  let t0 = performance.now();
  const ids = await Promise.all(Array.from({ length: N }, async (_, i) => (await p.member.post('/volumes', { volume: { size: 1, name: `b${i}` } })).body.volume.id as string));
  await waitAll(ids, 'available');
  rows.push([`create ${N} volumes (parallel, until available)`, `${(N / secs(t0)).toFixed(1)} volumes/s`]);
  t0 = performance.now();
  await Promise.all(ids.map((id) => p.member.delete(`/volumes/${id}`)));
  await f.volumes.drain();
  rows.push([`delete ${N} volumes`, `${(N / secs(t0)).toFixed(1)} volumes/s`]);

  if (opts.image) {
    const glance = new GlanceClient(g.url, p.member.token);
    const img = (await glance.post('/v2/images', { name: 'bench', disk_format: opts.image.endsWith('.qcow2') ? 'qcow2' : 'raw', container_format: 'bare' })).body.id;
    await glance.upload(img, Readable.toWeb(createReadStream(opts.image)) as ReadableStream, { 'content-length': String(statSync(opts.image).size) });
    log('volume from image');
    t0 = performance.now();
    const v = (await p.member.post('/volumes', { volume: { size: 1, imageRef: img } })).body.volume.id;
    await waitAll([v], 'available');
    rows.push([`volume from image (${(statSync(opts.image).size / 2 ** 20).toFixed(0)} MiB file)`, `${secs(t0).toFixed(1)} s`]);
  }

  log('backup and restore of a 1 GiB volume');
  const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume.id;
  await waitAll([v], 'available');
  t0 = performance.now();
  const b = (await p.member.post('/backups', { backup: { volume_id: v } })).body.backup.id;
  await f.volumes.drain();
  const full = secs(t0);
  rows.push(['full backup of 1 GiB to Swift', `${full.toFixed(1)} s (${(1024 / full).toFixed(0)} MiB/s)`]);
  t0 = performance.now();
  await p.member.post('/backups', { backup: { volume_id: v, incremental: true } });
  await f.volumes.drain();
  rows.push(['incremental backup, nothing changed', `${secs(t0).toFixed(1)} s`]);
  t0 = performance.now();
  await p.member.post(`/backups/${b}/restore`, { restore: {} });
  await f.volumes.drain();
  const restore = secs(t0);
  rows.push(['restore of 1 GiB to a new volume', `${restore.toFixed(1)} s (${(1024 / restore).toFixed(0)} MiB/s)`]);
} finally {
  await f.close();
  await proxy.app.close();
  await cluster.close();
  await g.close();
}
console.log(`| Cinder (load average ${loadavg()[0].toFixed(1)}) | |\n|---|---|`);
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
