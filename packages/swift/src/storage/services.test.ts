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
