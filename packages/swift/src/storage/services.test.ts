import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import type { ServiceRuntime } from '@onestack/core/service.ts';
import { swiftObjectService } from './services.ts';

it('swift_object starts as a service: device dirs created, listens through the runtime contract, closes', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'onestack-swift-svc-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const rt = {
    config: { DEFAULT: { state_dir: state }, swift_object: { devices: '', device_count: 2, conn_timeout: 0.5, node_timeout: 3, container_update_timeout: 1, updater_interval: 0 } },
  } as unknown as ServiceRuntime;
  const running = await swiftObjectService.start(rt);
  try {
    await running.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = running.app.server.address() as AddressInfo;
    assert.ok(existsSync(join(state, 'swift', 'devices', 'sd2')));
    const put = await fetch(`http://127.0.0.1:${port}/sd1/0/a/c/o`, { method: 'PUT', body: Buffer.from('hi'), headers: { 'X-Timestamp': `${Date.now() / 1000}`, 'Content-Type': 'text/plain' } });
    assert.equal(put.status, 201);
    assert.equal((await fetch(`http://127.0.0.1:${port}/sd9/0/a/c/o`)).status, 507);
  } finally {
    await running.close();
  }
});

it('swift_storage builds the all-in-one rings for its port, serves all three server types and a healthcheck', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'onestack-swift-svc-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const { swiftStorageService } = await import('./services.ts');
  const { Ring } = await import('../ring/ring.ts');
  const { loadOrCreateHashPathConf } = await import('../common/hash-path.ts');
  const values = { port: 16299, devices: '', device_count: 3, ring_ip: '', replicas: 3, conn_timeout: 0.5, node_timeout: 3, container_update_timeout: 1, account_report_delay: 0, updater_interval: 0 };
  const rt = { config: { DEFAULT: { state_dir: state, bind_host: '0.0.0.0' }, swift_storage: values } } as unknown as ServiceRuntime;
  const running = await swiftStorageService.start(rt);
  try {
    await running.app.listen({ host: '127.0.0.1', port: 0 });
    const ring = Ring.loadNamed(join(state, 'swift'), 'object', loadOrCreateHashPathConf(state));
    assert.equal(ring.replicaCount, 3);
    const { nodes } = ring.getNodes('AUTH_a', 'c', 'o');
    assert.deepEqual(new Set(nodes.map((n) => `${n.ip}:${n.port}`)), new Set(['127.0.0.1:16299']));
    assert.equal(new Set(nodes.map((n) => n.device)).size, 3, 'one replica per device dir');
    const { port } = running.app.server.address() as AddressInfo;
    const ts = `${Date.now() / 1000}`;
    const acct = await fetch(`http://127.0.0.1:${port}/sd1/0/AUTH_a`, { method: 'PUT', headers: { 'X-Timestamp': ts, 'X-Backend-Server-Type': 'account' } });
    assert.equal(acct.status, 201);
    const obj = await fetch(`http://127.0.0.1:${port}/sd1/0/AUTH_a/c/o`, { method: 'PUT', body: 'x', headers: { 'X-Timestamp': ts, 'Content-Type': 'text/plain' } });
    assert.equal(obj.status, 201);
    const health = await fetch(`http://127.0.0.1:${port}/healthcheck`, { headers: { accept: 'application/json' } });
    assert.equal((await health.json()).status, 'up');
  } finally {
    await running.close();
  }
});
