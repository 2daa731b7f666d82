import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ClaimConflict } from '../src/placement/client.ts';
import { startPlacement, type PlacementFixture } from './placement-fixture.ts';

let f: PlacementFixture;
before(async () => {
  f = await startPlacement();
});
after(async () => {
  await f?.close();
});

const COMPUTE = { VCPU: { total: 4, allocation_ratio: 2.0 }, MEMORY_MB: { total: 4096, reserved: 512 }, DISK_GB: { total: 40 } };

describe('PlacementClient (what Nova uses, over HTTP with its service token)', () => {
  it('ensures a compute host provider idempotently, then keeps its inventory current', async () => {
    const uuid = randomUUID();
    const first = await f.client.ensureProvider({ name: 'client-host', uuid, inventories: COMPUTE, traits: ['COMPUTE_NET_ATTACH_INTERFACE', 'CUSTOM_CLIENT_TEST'] });
    assert.equal(first.uuid, uuid);
    const again = await f.client.ensureProvider({ name: 'client-host', inventories: { ...COMPUTE, DISK_GB: { total: 80 } }, traits: ['CUSTOM_CLIENT_TEST'] });
    assert.equal(again.uuid, uuid);
    const inv = await f.service.get(`/resource_providers/${uuid}/inventories`);
    assert.equal(inv.body.inventories.DISK_GB.total, 80);
    assert.equal(inv.body.inventories.VCPU.allocation_ratio, 2);
    assert.deepEqual((await f.service.get(`/resource_providers/${uuid}/traits`)).body.traits, ['CUSTOM_CLIENT_TEST']);
    assert.equal(again.generation, inv.body.resource_provider_generation);
  });

  it('retries inventory updates that race on the generation, and does not retry an inventory in use', async () => {
    const host = await f.client.ensureProvider({ name: 'client-race', inventories: COMPUTE });
    await Promise.all([1, 2, 3, 4].map((n) => f.client.ensureProvider({ name: 'client-race', inventories: { ...COMPUTE, DISK_GB: { total: 10 * n } } })));
    const disk = (await f.service.get(`/resource_providers/${host.uuid}/inventories`)).body.inventories.DISK_GB.total;
    assert.ok([10, 20, 30, 40].includes(disk));
    await f.client.claim(randomUUID(), { [host.uuid]: { DISK_GB: 5 } }, { projectId: 'p', userId: 'u', consumerGeneration: null });
    await assert.rejects(f.client.ensureProvider({ name: 'client-race', inventories: { VCPU: { total: 4 } } }), /placement answered 409.*placement\.inventory\.inuse/);
  });

  it('finds candidates, claims with consumer generations, refuses a stale claim, and gives everything back', async () => {
    const host = await f.client.ensureProvider({ name: 'client-host-2', inventories: COMPUTE, traits: ['CUSTOM_CLIENT_TWO'] });
    const cands = await f.client.allocationCandidates({ resources: { VCPU: 2, MEMORY_MB: 1024 }, required: ['CUSTOM_CLIENT_TWO'], limit: 5 });
    assert.equal(cands.allocation_requests.length, 1);
    const pick = cands.allocation_requests[0].allocations;
    assert.deepEqual(Object.keys(pick), [host.uuid]);
    assert.deepEqual(cands.provider_summaries[host.uuid].resources.MEMORY_MB, { capacity: 3584, used: 0 });
    const instance = randomUUID();
    const who = { projectId: 'p1', userId: 'u1' };
    await f.client.claim(instance, { [host.uuid]: pick[host.uuid].resources }, { ...who, consumerGeneration: null });
    const held = await f.client.allocations(instance);
    assert.equal(held.consumer_generation, 1);
    assert.equal(held.consumer_type, 'INSTANCE');
    await assert.rejects(
      f.client.claim(instance, { [host.uuid]: { VCPU: 1 } }, { ...who, consumerGeneration: null }),
      (e: unknown) => e instanceof ClaimConflict && e.code === 'placement.concurrent_update',
    );
    await assert.rejects(f.client.claim(randomUUID(), { [host.uuid]: { VCPU: 7 } }, { ...who, consumerGeneration: null }), ClaimConflict);
    assert.equal(await f.client.deleteAllocations(instance), true);
    assert.equal(await f.client.deleteAllocations(instance), false);
    await f.client.deleteProvider(host.uuid);
    assert.equal(await f.client.findProvider('client-host-2'), undefined);
  });
});
