import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import type { ServiceRuntime } from '@onestack/core/service.ts';
import { hashPath, loadOrCreateHashPathConf } from '../common/hash-path.ts';
import { Ring } from '../ring/ring.ts';
import { swiftStorageService } from '../storage/services.ts';
import { swiftReplicatorService } from './service.ts';

it('swift_replicator beside the all-in-one swift_storage: a replica written to one device only reaches all three, recon shows the pass', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'onestack-swift-repl-svc-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const storagePort = 16400 + (process.pid % 500);
  const DEFAULT = { state_dir: state, bind_host: '127.0.0.1' };
  const storageValues = { port: storagePort, devices: '', device_count: 3, ring_ip: '', replicas: 3, conn_timeout: 0.5, node_timeout: 3, container_update_timeout: 1, account_report_delay: 0, updater_interval: 0 };
  const storage = await swiftStorageService.start({ config: { DEFAULT, swift_storage: storageValues } } as unknown as ServiceRuntime);
  t.after(() => storage.close());
  await storage.app.listen({ host: '127.0.0.1', port: storagePort });

  const replValues = {
    ...{ port: 0, devices: '', device_count: 0, swift_dir: '', storage_port: storagePort, storage_ips: [] },
    ...{ replication_interval: 1, replication_concurrency: 2, audit_interval: 60, files_per_second: 0, bytes_per_second: 0, expirer_interval: 60, conn_timeout: 0.5, node_timeout: 3 },
  };
  const pino = (await import('pino')).default;
  const repl = await swiftReplicatorService.start({ config: { DEFAULT, swift_replicator: replValues }, logger: pino({ level: 'silent' }) } as unknown as ServiceRuntime);
  t.after(() => repl.close());
  await repl.app.listen({ host: '127.0.0.1', port: 0 });
  const replPort = (repl.app.server.address() as AddressInfo).port;

  const hash = loadOrCreateHashPathConf(state);
  const ring = Ring.loadNamed(join(state, 'swift'), 'object', hash);
  const { partition, nodes } = ring.getNodes('AUTH_a', 'c', 'o');
  const put = await fetch(`http://127.0.0.1:${storagePort}/${nodes[0].device}/${partition}/AUTH_a/c/o`, {
    method: 'PUT',
    body: 'only here',
    headers: { 'X-Timestamp': `${Date.now() / 1000}`, 'Content-Type': 'text/plain', 'X-Backend-Server-Type': 'object' },
  });
  assert.equal(put.status, 201);

  const h = hashPath(hash, 'AUTH_a', 'c', 'o');
  const devicesDir = join(state, 'swift', 'devices');
  const hasData = (device: string) => {
    try {
      return readdirSync(join(devicesDir, device, 'objects', String(partition), h.slice(-3), h)).some((f) => f.endsWith('.data'));
    } catch {
      return false;
    }
  };
  const copies = () => nodes.filter((n) => hasData(n.device)).length;
  const deadline = Date.now() + 15_000;
  while (copies() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.equal(copies(), 3);

  assert.equal(await (await fetch(`http://127.0.0.1:${replPort}/healthcheck`)).text(), 'OK');
  // The pass that copied the object may still be finishing: its stats appear when it ends.
  let recon: { stats: { partitions: number; failures: number } | null } = { stats: null };
  while (!recon.stats && Date.now() < deadline) {
    recon = (await (await fetch(`http://127.0.0.1:${replPort}/recon/replication/object`)).json()) as typeof recon;
    if (!recon.stats) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(recon.stats && recon.stats.partitions >= 1 && recon.stats.failures === 0, JSON.stringify(recon));
  assert.equal((await fetch(`http://127.0.0.1:${replPort}/recon/replication/nothing`)).status, 404);
});
