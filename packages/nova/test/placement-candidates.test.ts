import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '@onestack/core/clock.ts';
import { openDatabase } from '@onestack/core/db/index.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { Providers } from '../src/placement/domain/providers.ts';
import type { PlacementDB } from '../src/placement/db/schema.ts';
import { computeHost, startPlacement, type PlacementFixture } from './placement-fixture.ts';

let f: PlacementFixture;
const AGG = 'a99a0000-0000-4000-8000-000000000001';
let hostA: { uuid: string; generation: number };
let hostB: { uuid: string; generation: number };
let full: { uuid: string; generation: number };
let nested: { root: string; numa0: string; numa1: string; pf0: string };

before(async () => {
  f = await startPlacement();
  const c = f.service;
  hostA = await computeHost(c, 'cand-a', { VCPU: { total: 8 }, MEMORY_MB: { total: 8192 }, DISK_GB: { total: 100 } });
  hostB = await computeHost(c, 'cand-b', { VCPU: { total: 4 }, MEMORY_MB: { total: 2048 }, DISK_GB: { total: 100 } });
  full = await computeHost(c, 'cand-full', { VCPU: { total: 1 }, MEMORY_MB: { total: 8192 }, DISK_GB: { total: 100 } });
  await c.put(`/allocations/${randomUUID()}`, {
    allocations: { [full.uuid]: { resources: { VCPU: 1 } } },
    project_id: 'p',
    user_id: 'u',
    consumer_generation: null,
    consumer_type: 'INSTANCE',
  });
  await c.put(`/resource_providers/${hostA.uuid}/traits`, { traits: ['HW_CPU_X86_AVX2', 'COMPUTE_VOLUME_MULTI_ATTACH'], resource_provider_generation: hostA.generation });
  await c.put(`/resource_providers/${hostB.uuid}/aggregates`, { aggregates: [AGG], resource_provider_generation: hostB.generation });
  // A host with two NUMA nodes, each with memory and VCPU, and a NIC PF under NUMA 0.
  await c.put('/resource_classes/CUSTOM_VF');
  await c.put('/traits/CUSTOM_PHYSNET_A');
  const root = (await c.post('/resource_providers', { name: 'numa-host' })).body.uuid as string;
  await c.put(`/resource_providers/${root}/traits`, { traits: ['COMPUTE_STATUS_DISABLED'], resource_provider_generation: 0 });
  const child = async (name: string, parent: string, inv: Record<string, { total: number }>, traits: string[] = []) => {
    const rp = (await c.post('/resource_providers', { name, parent_provider_uuid: parent })).body;
    const put = await c.put(`/resource_providers/${rp.uuid}/inventories`, { resource_provider_generation: 0, inventories: inv });
    if (traits.length) await c.put(`/resource_providers/${rp.uuid}/traits`, { traits, resource_provider_generation: put.body.resource_provider_generation });
    return rp.uuid as string;
  };
  const numa0 = await child('numa-host-0', root, { VCPU: { total: 4 }, MEMORY_MB: { total: 4096 } }, ['HW_NUMA_ROOT']);
  const numa1 = await child('numa-host-1', root, { VCPU: { total: 4 }, MEMORY_MB: { total: 4096 } }, ['HW_NUMA_ROOT']);
  const pf0 = await child('numa-host-pf0', numa0, { CUSTOM_VF: { total: 8 } }, ['CUSTOM_PHYSNET_A']);
  nested = { root, numa0, numa1, pf0 };
});
after(async () => {
  await f?.close();
});

const providers = (body: { allocation_requests: { allocations: Record<string, unknown> }[] }) =>
  body.allocation_requests.map((r) => Object.keys(r.allocations).sort().join('+'));

describe('placement: allocation candidates', () => {
  it('offers each provider that fits, with summaries of capacity and usage', async () => {
    const res = await f.service.get('/allocation_candidates?resources=VCPU:2,MEMORY_MB:1024');
    assert.equal(res.status, 200, res.text);
    const found = providers(res.body);
    assert.ok(found.includes(hostA.uuid));
    assert.ok(found.includes(hostB.uuid));
    assert.ok(!found.includes(full.uuid), 'a provider without free VCPU is no candidate');
    const req = res.body.allocation_requests.find((r: { allocations: Record<string, unknown> }) => hostA.uuid in r.allocations);
    assert.deepEqual(req, { allocations: { [hostA.uuid]: { resources: { VCPU: 2, MEMORY_MB: 1024 } } }, mappings: { '': [hostA.uuid] } });
    const sum = res.body.provider_summaries[hostA.uuid];
    assert.deepEqual(sum.resources, { DISK_GB: { capacity: 100, used: 0 }, MEMORY_MB: { capacity: 8192, used: 0 }, VCPU: { capacity: 8, used: 0 } });
    assert.deepEqual(sum.traits, ['COMPUTE_VOLUME_MULTI_ATTACH', 'HW_CPU_X86_AVX2']);
    assert.equal(sum.root_provider_uuid, hostA.uuid);
    assert.equal(sum.parent_provider_uuid, null);
  });

  it('uses the list format and requested classes only before 1.12 / 1.27, and is absent before 1.10', async () => {
    assert.equal((await f.service.at('1.9').get('/allocation_candidates?resources=VCPU:1')).status, 404);
    const old = await f.service.at('1.10').get('/allocation_candidates?resources=VCPU:2');
    const one = old.body.allocation_requests.find((r: { allocations: { resource_provider: { uuid: string } }[] }) => r.allocations[0].resource_provider.uuid === hostA.uuid);
    assert.deepEqual(one, { allocations: [{ resource_provider: { uuid: hostA.uuid }, resources: { VCPU: 2 } }] });
    assert.deepEqual(old.body.provider_summaries[hostA.uuid], { resources: { VCPU: { capacity: 8, used: 0 } } });
  });

  it('filters by required and forbidden traits, any-of traits (1.39), member_of, in_tree and limit', async () => {
    const q = async (s: string) => providers((await f.service.get(`/allocation_candidates?resources=VCPU:1&${s}`)).body);
    assert.deepEqual(await q('required=HW_CPU_X86_AVX2'), [hostA.uuid]);
    assert.ok(!(await q('required=!HW_CPU_X86_AVX2')).includes(hostA.uuid));
    assert.deepEqual(await q('required=in:HW_CPU_X86_AVX2,CUSTOM_PHYSNET_A&required=COMPUTE_VOLUME_MULTI_ATTACH'), [hostA.uuid]);
    assert.deepEqual(await q(`member_of=${AGG}`), [hostB.uuid]);
    assert.deepEqual(await q(`in_tree=${hostB.uuid}`), [hostB.uuid]);
    assert.equal((await q('limit=1')).length, 1);
    const anyOld = await f.service.at('1.38').get('/allocation_candidates?resources=VCPU:1&required=in:HW_CPU_X86_AVX2');
    assert.equal(anyOld.status, 400);
  });

  it('answers 400 for a request without resources, unknown classes or traits, and several groups without group_policy', async () => {
    const none = await f.service.get('/allocation_candidates?required=HW_CPU_X86_AVX2');
    assert.equal(none.status, 400);
    assert.equal((await f.service.get('/allocation_candidates?resources=CUSTOM_NOPE:1')).status, 400);
    assert.equal((await f.service.get('/allocation_candidates?resources=VCPU:1&required=CUSTOM_NOPE')).status, 400);
    const policy = await f.service.get('/allocation_candidates?resources1=VCPU:1&resources2=MEMORY_MB:1');
    assert.equal(policy.status, 400);
    assert.match(policy.body.errors[0].detail, /group_policy/);
    assert.equal((await f.service.get('/allocation_candidates?resources=VCPU:0')).status, 400);
  });

  it('spreads the unsuffixed group over a nested tree (1.29) and not before', async () => {
    const res = await f.service.get(`/allocation_candidates?resources=VCPU:2,CUSTOM_VF:1&in_tree=${nested.root}`);
    assert.equal(res.status, 200, res.text);
    const found = providers(res.body).sort();
    assert.deepEqual(found, [[nested.numa0, nested.pf0].sort().join('+'), [nested.numa1, nested.pf0].sort().join('+')].sort());
    assert.equal(Object.keys(res.body.provider_summaries).length, 4, 'summaries cover the whole tree');
    assert.equal(res.body.provider_summaries[nested.pf0].parent_provider_uuid, nested.numa0);
    const old = await f.service.at('1.28').get(`/allocation_candidates?resources=VCPU:2,CUSTOM_VF:1`);
    assert.deepEqual(old.body.allocation_requests, []);
  });

  it('honours granular groups with isolate, mappings, same_subtree with a resourceless group, and root_required', async () => {
    const iso = await f.service.get(`/allocation_candidates?resources1=VCPU:3&resources2=VCPU:3&group_policy=isolate&in_tree=${nested.root}`);
    assert.equal(iso.status, 200, iso.text);
    assert.equal(iso.body.allocation_requests.length, 2);
    for (const r of iso.body.allocation_requests) {
      assert.notEqual(r.mappings['1'][0], r.mappings['2'][0]);
      assert.deepEqual(Object.keys(r.allocations).sort(), [nested.numa0, nested.numa1].sort());
    }
    // Together on one NUMA node 6 VCPUs do not fit: with group_policy=none only the split answers remain.
    const none = await f.service.get(`/allocation_candidates?resources1=VCPU:3&resources2=VCPU:3&group_policy=none&in_tree=${nested.root}`);
    assert.equal(none.body.allocation_requests.length, 2);
    // A VF and VCPU on the same NUMA node: the PF's NUMA node is an ancestor of the PF.
    const same = await f.service.get(
      `/allocation_candidates?resources_CPU=VCPU:1&required_CPU=HW_NUMA_ROOT&resources_NET=CUSTOM_VF:1&required_NET=CUSTOM_PHYSNET_A&same_subtree=_CPU,_NET&group_policy=none`,
    );
    assert.equal(same.status, 200, same.text);
    assert.equal(same.body.allocation_requests.length, 1);
    assert.deepEqual(same.body.allocation_requests[0].mappings, { _CPU: [nested.numa0], _NET: [nested.pf0] });
    const resourceless = await f.service.get(
      `/allocation_candidates?resources_NET=CUSTOM_VF:1&required_NUMA=HW_NUMA_ROOT&same_subtree=_NUMA,_NET&group_policy=none`,
    );
    assert.equal(resourceless.status, 200, resourceless.text);
    assert.deepEqual(resourceless.body.allocation_requests.map((r: { mappings: unknown }) => r.mappings), [{ _NET: [nested.pf0], _NUMA: [nested.numa0] }]);
    assert.deepEqual(Object.keys(resourceless.body.allocation_requests[0].allocations), [nested.pf0]);
    const excluded = await f.service.get(`/allocation_candidates?resources=VCPU:1&root_required=!COMPUTE_STATUS_DISABLED`);
    assert.ok(!providers(excluded.body).some((p) => p.includes(nested.numa0) || p.includes(nested.numa1)));
    assert.ok(providers(excluded.body).includes(hostA.uuid));
  });

  it('sees the changes another API process makes to providers, inventories, traits and aggregates (its provider catalog is kept only while the change counter stands still)', async () => {
    // Another process: its own connection to the same database, its own Providers.
    const other = await openDatabase<PlacementDB>(f.database.url);
    try {
      const elsewhere = new Providers(other, systemClock, randomIds);
      const q = async (s: string) => providers((await f.service.get(`/allocation_candidates?resources=VCPU:1&${s}`)).body);
      assert.ok(!(await q('required=CUSTOM_PHYSNET_A')).includes(hostB.uuid), 'read once before the changes');
      const made = await elsewhere.create({ name: 'cand-elsewhere' });
      const inv = { total: 2, reserved: 0, minUnit: 1, maxUnit: 2, stepSize: 1, allocationRatio: 1 };
      let gen = (await elsewhere.setInventories(made.uuid, made.generation, [{ resourceClass: 'VCPU', ...inv }])).generation;
      assert.ok((await q('limit=1000')).includes(made.uuid), 'a provider made elsewhere is offered');
      const b = (await elsewhere.require(hostB.uuid)).generation;
      await elsewhere.setProviderTraits(hostB.uuid, b, ['CUSTOM_PHYSNET_A']);
      assert.ok((await q('required=CUSTOM_PHYSNET_A')).includes(hostB.uuid), 'a trait set elsewhere counts');
      gen = await elsewhere.setProviderAggregates(made.uuid, gen, [AGG]);
      assert.deepEqual((await q(`member_of=${AGG}`)).sort(), [hostB.uuid, made.uuid].sort(), 'an aggregate set elsewhere counts');
      gen = (await elsewhere.updateInventory(made.uuid, gen, { resourceClass: 'VCPU', ...inv, total: 1, maxUnit: 1 })).generation;
      assert.ok(!providers((await f.service.get(`/allocation_candidates?resources=VCPU:2&member_of=${AGG}`)).body).includes(made.uuid), 'a smaller inventory set elsewhere counts');
      await elsewhere.setProviderTraits(hostB.uuid, (await elsewhere.require(hostB.uuid)).generation, []);
      await elsewhere.delete(made.uuid);
      assert.ok(!(await q('limit=1000')).includes(made.uuid), 'a provider deleted elsewhere is gone');
      assert.ok(!(await q('required=CUSTOM_PHYSNET_A')).includes(hostB.uuid));
    } finally {
      await other.close();
    }
  });
});
