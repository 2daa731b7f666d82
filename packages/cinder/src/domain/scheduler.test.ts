import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeVolumeDriver } from '../drivers/fake-driver.ts';
import type { BackendStats, PoolStats } from '../drivers/volume-driver.ts';
import { NoValidBackend, Scheduler } from './scheduler.ts';

/** A fake backend reporting the pool given: how the capacity arithmetic is pinned down. */
function backend(host: string, pool: Partial<PoolStats>, az = 'nova') {
  const driver = new FakeVolumeDriver({ backendName: host });
  driver.getVolumeStats = async (): Promise<BackendStats> => ({
    volume_backend_name: host,
    vendor_name: 'x',
    driver_version: '1',
    storage_protocol: 'fake',
    pools: [
      {
        pool_name: host,
        total_capacity_gb: 100,
        free_capacity_gb: 50,
        provisioned_capacity_gb: 0,
        allocated_capacity_gb: 0,
        max_over_subscription_ratio: 1,
        reserved_percentage: 0,
        thin_provisioning_support: false,
        thick_provisioning_support: true,
        multiattach: false,
        QoS_support: false,
        ...pool,
      },
    ],
  });
  return { host: `h@${host}`, availabilityZone: az, driver };
}

test('thick pools need the free space, less the reserved percentage; the emptiest pool wins', async () => {
  const s = new Scheduler([backend('a', { free_capacity_gb: 30 }), backend('b', { free_capacity_gb: 60, reserved_percentage: 20 })]);
  assert.equal((await s.choose({ size: 10, extraSpecs: {} })).host, 'h@b#b');
  assert.equal((await s.choose({ size: 35, extraSpecs: {} })).host, 'h@b#b');
  await assert.rejects(s.choose({ size: 41, extraSpecs: {} }), (e: unknown) => e instanceof NoValidBackend && /h@a#a: insufficient free space: 30.00GB free, 41GB requested; h@b#b: insufficient free space: 40.00GB free/.test(e.message));
});

test('thin pools are bounded by max_over_subscription_ratio, not by free space', async () => {
  const s = new Scheduler([backend('t', { thin_provisioning_support: true, max_over_subscription_ratio: 2, provisioned_capacity_gb: 150, free_capacity_gb: 5 })]);
  assert.equal((await s.choose({ size: 50, extraSpecs: {} })).host, 'h@t#t');
  await assert.rejects(s.choose({ size: 51, extraSpecs: {} }), /provisioned ratio 2.01 would exceed max_over_subscription_ratio 2/);
});

test('extra specs and availability zone filter backends, with the reason kept', async () => {
  const s = new Scheduler([backend('a', { multiattach: false }), backend('b', { multiattach: true }, 'other')]);
  assert.equal((await s.choose({ size: 1, extraSpecs: { volume_backend_name: 'a' } })).host, 'h@a#a');
  await assert.rejects(s.choose({ size: 1, extraSpecs: { multiattach: '<is> True' }, availabilityZone: 'nova' }), /capability multiattach is not true/);
  assert.equal((await s.choose({ size: 1, extraSpecs: { multiattach: '<is> True' }, availabilityZone: 'other' })).host, 'h@b#b');
  await assert.rejects(new Scheduler([]).choose({ size: 1, extraSpecs: {} }), /No volume backends are enabled/);
});
