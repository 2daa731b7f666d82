import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { computeHost, startPlacement, type PlacementFixture } from './placement-fixture.ts';

let f: PlacementFixture;
before(async () => {
  f = await startPlacement();
});
after(async () => {
  await f?.close();
});

const PROJECT = 'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0';
const USER = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';

function claim(rp: string, resources: Record<string, number>, consumerGeneration: number | null, extra: Record<string, unknown> = {}) {
  return { allocations: { [rp]: { resources } }, project_id: PROJECT, user_id: USER, consumer_generation: consumerGeneration, consumer_type: 'INSTANCE', ...extra };
}

describe('placement: allocations', () => {
  it('claims, shows, replaces and deletes a consumer’s allocations with consumer generations', async () => {
    const host = await computeHost(f.service, 'alloc-host');
    const consumer = randomUUID();
    const put = await f.service.put(`/allocations/${consumer}`, claim(host.uuid, { VCPU: 2, MEMORY_MB: 512 }, null));
    assert.equal(put.status, 204, put.text);
    const got = await f.service.get(`/allocations/${consumer}`);
    assert.deepEqual(got.body, {
      allocations: { [host.uuid]: { generation: host.generation + 1, resources: { VCPU: 2, MEMORY_MB: 512 } } },
      project_id: PROJECT,
      user_id: USER,
      consumer_generation: 1,
      consumer_type: 'INSTANCE',
    });
    const stale = await f.service.put(`/allocations/${consumer}`, claim(host.uuid, { VCPU: 1 }, null));
    assert.equal(stale.status, 409);
    assert.equal(stale.body.errors[0].code, 'placement.concurrent_update');
    assert.match(stale.body.errors[0].detail, /consumer generation conflict - expected 1 but got None|consumer generation conflict - expected 1 but got null/);
    assert.equal((await f.service.put(`/allocations/${consumer}`, claim(host.uuid, { VCPU: 1 }, 1))).status, 204);
    const usages = await f.service.get(`/resource_providers/${host.uuid}/usages`);
    assert.deepEqual(usages.body.usages, { DISK_GB: 0, MEMORY_MB: 0, VCPU: 1 });
    const byRp = await f.service.get(`/resource_providers/${host.uuid}/allocations`);
    assert.deepEqual(byRp.body.allocations[consumer], { resources: { VCPU: 1 }, consumer_generation: 2 });
    const inUse = await f.service.delete(`/resource_providers/${host.uuid}`);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.errors[0].code, 'placement.resource_provider.inuse');
    const dropInv = await f.service.put(`/resource_providers/${host.uuid}/inventories`, {
      resource_provider_generation: (await f.service.get(`/resource_providers/${host.uuid}`)).body.generation,
      inventories: { MEMORY_MB: { total: 4096 } },
    });
    assert.equal(dropInv.status, 409);
    assert.equal(dropInv.body.errors[0].code, 'placement.inventory.inuse');
    // Before 1.28 a PUT must allocate something; from 1.28 an empty PUT releases everything, checked by generation.
    assert.equal((await f.service.at('1.27').put(`/allocations/${consumer}`, { allocations: {}, project_id: PROJECT, user_id: USER })).status, 400);
    assert.equal((await f.service.put(`/allocations/${consumer}`, { ...claim(host.uuid, {}, 1), allocations: {} })).status, 409);
    assert.equal((await f.service.put(`/allocations/${consumer}`, { ...claim(host.uuid, {}, 2), allocations: {} })).status, 204);
    assert.deepEqual((await f.service.get(`/allocations/${consumer}`)).body, { allocations: {} });
    assert.equal((await f.service.put(`/allocations/${consumer}`, claim(host.uuid, { VCPU: 1 }, null))).status, 204);
    assert.equal((await f.service.delete(`/allocations/${consumer}`)).status, 204);
    assert.deepEqual((await f.service.get(`/allocations/${consumer}`)).body, { allocations: {} });
    assert.equal((await f.service.delete(`/allocations/${consumer}`)).status, 404);
    assert.equal((await f.service.delete(`/resource_providers/${host.uuid}`)).status, 204);
  });

  it('refuses claims over capacity, outside inventory constraints, on unknown providers or classes', async () => {
    const host = await computeHost(f.service, 'cap-host', { VCPU: { total: 4, reserved: 1, allocation_ratio: 2.0, max_unit: 8 }, MEMORY_MB: { total: 1024, step_size: 256 } });
    // capacity (4 - 1) * 2 = 6
    const over = await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { VCPU: 7 }, null));
    assert.equal(over.status, 409);
    assert.match(over.body.errors[0].detail, /Unable to allocate inventory.*exceed the capacity/s);
    assert.equal((await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { VCPU: 4 }, null))).status, 204);
    assert.equal((await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { VCPU: 3 }, null))).status, 409);
    assert.equal((await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { VCPU: 2 }, null))).status, 204);
    const step = await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { MEMORY_MB: 100 }, null));
    assert.equal(step.status, 409);
    assert.match(step.body.errors[0].detail, /violate inventory constraints/);
    const noInv = await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { DISK_GB: 1 }, null));
    assert.equal(noInv.status, 409);
    const noRp = await f.service.put(`/allocations/${randomUUID()}`, claim(randomUUID(), { VCPU: 1 }, null));
    assert.equal(noRp.status, 400);
    assert.match(noRp.body.errors[0].detail, /that does not exist/);
    const noRc = await f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { CUSTOM_NOPE: 1 }, null));
    assert.equal(noRc.status, 400);
    const noGen = await f.service.put(`/allocations/${randomUUID()}`, { allocations: {}, project_id: PROJECT, user_id: USER, consumer_type: 'INSTANCE' });
    assert.equal(noGen.status, 400);
    assert.match(noGen.body.errors[0].detail, /'consumer_generation' is a required property/);
  });

  it('accepts the list format before 1.12 and the dict format after', async () => {
    const host = await computeHost(f.service, 'format-host');
    const consumer = randomUUID();
    const old = await f.service.at('1.8').put(`/allocations/${consumer}`, {
      allocations: [{ resource_provider: { uuid: host.uuid }, resources: { VCPU: 1 } }],
      project_id: PROJECT,
      user_id: USER,
    });
    assert.equal(old.status, 204, old.text);
    const got = await f.service.at('1.8').get(`/allocations/${consumer}`);
    assert.deepEqual(got.body, { allocations: { [host.uuid]: { generation: host.generation + 1, resources: { VCPU: 1 } } } });
    const noProject = await f.service.at('1.8').put(`/allocations/${consumer}`, { allocations: [{ resource_provider: { uuid: host.uuid }, resources: { VCPU: 1 } }] });
    assert.equal(noProject.status, 400);
  });

  it('moves allocations between consumers atomically with POST /allocations (migration)', async () => {
    const src = await computeHost(f.service, 'move-src', { VCPU: { total: 2 } });
    const dst = await computeHost(f.service, 'move-dst', { VCPU: { total: 2 } });
    const instance = randomUUID();
    const migration = randomUUID();
    assert.equal((await f.service.put(`/allocations/${instance}`, claim(src.uuid, { VCPU: 2 }, null))).status, 204);
    // The instance moves to dst, the migration record takes over its source allocation.
    const move = await f.service.post('/allocations', {
      [instance]: claim(dst.uuid, { VCPU: 2 }, 1),
      [migration]: { ...claim(src.uuid, { VCPU: 2 }, null), consumer_type: 'MIGRATION' },
    });
    assert.equal(move.status, 204, move.text);
    assert.deepEqual(Object.keys((await f.service.get(`/allocations/${instance}`)).body.allocations), [dst.uuid]);
    assert.equal((await f.service.get(`/allocations/${migration}`)).body.consumer_type, 'MIGRATION');
    // A failing part fails the whole write: nothing changes.
    const bad = await f.service.post('/allocations', {
      [migration]: { ...claim(src.uuid, {}, 1), allocations: {} },
      [instance]: claim(dst.uuid, { VCPU: 3 }, 2),
    });
    assert.equal(bad.status, 409);
    assert.deepEqual(Object.keys((await f.service.get(`/allocations/${migration}`)).body.allocations), [src.uuid]);
    const usages = await f.service.get(`/usages?project_id=${PROJECT}&user_id=${USER}`);
    assert.equal(usages.status, 200);
    assert.ok(usages.body.usages.INSTANCE.VCPU >= 2);
    assert.ok(usages.body.usages.MIGRATION.consumer_count >= 1);
    const old = await f.service.at('1.37').get(`/usages?project_id=${PROJECT}`);
    assert.equal(typeof old.body.usages.VCPU, 'number');
  });

  it('lets a project reader see its own usages but no other project’s', async () => {
    const own = await f.reader.get(`/usages?project_id=${f.memberProjectId}`);
    assert.equal(own.status, 200);
    assert.deepEqual(own.body, { usages: {} });
    assert.equal((await f.reader.get(`/usages?project_id=${PROJECT}`)).status, 403);
    assert.equal((await f.reader.get(`/allocations/${randomUUID()}`)).status, 403);
  });
});

describe('placement: reshaper', () => {
  it('moves inventory and allocations from a root to a new child in one step (1.30), for services only', async () => {
    await f.service.put('/resource_classes/CUSTOM_RESHAPE_GPU');
    const root = await computeHost(f.service, 'reshape-root', { VCPU: { total: 4 }, CUSTOM_RESHAPE_GPU: { total: 4 } });
    const consumer = randomUUID();
    assert.equal((await f.service.put(`/allocations/${consumer}`, claim(root.uuid, { VCPU: 1, CUSTOM_RESHAPE_GPU: 2 }, null))).status, 204);
    const child = (await f.service.post('/resource_providers', { name: 'reshape-gpu0', parent_provider_uuid: root.uuid })).body;
    const rootGen = (await f.service.get(`/resource_providers/${root.uuid}`)).body.generation;
    const body = (rootGeneration: number) => ({
      inventories: {
        [root.uuid]: { resource_provider_generation: rootGeneration, inventories: { VCPU: { total: 4 } } },
        [child.uuid]: { resource_provider_generation: 0, inventories: { CUSTOM_RESHAPE_GPU: { total: 4 } } },
      },
      allocations: {
        [consumer]: {
          allocations: { [root.uuid]: { resources: { VCPU: 1 } }, [child.uuid]: { resources: { CUSTOM_RESHAPE_GPU: 2 } } },
          project_id: PROJECT,
          user_id: USER,
          consumer_generation: 1,
          consumer_type: 'INSTANCE',
        },
      },
    });
    assert.equal((await f.admin.post('/reshaper', body(rootGen))).status, 403);
    const stale = await f.service.post('/reshaper', body(rootGen - 1));
    assert.equal(stale.status, 409);
    assert.equal(stale.body.errors[0].code, 'placement.concurrent_update');
    const res = await f.service.post('/reshaper', body(rootGen));
    assert.equal(res.status, 204, res.text);
    const got = (await f.service.get(`/allocations/${consumer}`)).body.allocations;
    assert.deepEqual(got[child.uuid].resources, { CUSTOM_RESHAPE_GPU: 2 });
    assert.deepEqual(got[root.uuid].resources, { VCPU: 1 });
    assert.deepEqual(Object.keys((await f.service.get(`/resource_providers/${root.uuid}/inventories`)).body.inventories), ['VCPU']);
    // Dropping a class that keeps allocations is refused and changes nothing.
    const gens = async (u: string) => (await f.service.get(`/resource_providers/${u}`)).body.generation;
    const inUse = await f.service.post('/reshaper', {
      inventories: { [child.uuid]: { resource_provider_generation: await gens(child.uuid), inventories: {} } },
      allocations: {},
    });
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.errors[0].code, 'placement.inventory.inuse');
    assert.equal((await f.service.at('1.29').post('/reshaper', body(rootGen))).status, 404);
  });
});

describe('placement: atomic claims under concurrency', () => {
  it('20 concurrent claims of 1 VCPU on a 5-VCPU provider: exactly 5 succeed, usage never exceeds capacity', async () => {
    const host = await computeHost(f.service, 'race-host', { VCPU: { total: 5 }, MEMORY_MB: { total: 100000 } });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => f.service.put(`/allocations/${randomUUID()}`, claim(host.uuid, { VCPU: 1, MEMORY_MB: 128 }, null))),
    );
    const ok = results.filter((r) => r.status === 204).length;
    const refused = results.filter((r) => r.status === 409);
    assert.equal(ok, 5, results.map((r) => `${r.status} ${r.text}`).join('\n'));
    assert.equal(refused.length, 15);
    for (const r of refused) assert.match(r.body.errors[0].detail, /exceed the capacity|changed while attempting to allocate/);
    const usage = await f.service.get(`/resource_providers/${host.uuid}/usages`);
    assert.deepEqual(usage.body.usages, { MEMORY_MB: 5 * 128, VCPU: 5 });
    const rows = await f.database.db.selectFrom('allocations').select('consumer_uuid').where('resource_provider_uuid', '=', host.uuid).where('resource_class', '=', 'VCPU').execute();
    assert.equal(rows.length, 5);
  });

  it('20 concurrent claims spread over two providers through the client never oversubscribe either', async () => {
    const a = await computeHost(f.service, 'race-a', { VCPU: { total: 3 } });
    const b = await computeHost(f.service, 'race-b', { VCPU: { total: 3 } });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, async (_x, i) => {
        try {
          await f.client.claim(randomUUID(), { [i % 2 ? a.uuid : b.uuid]: { VCPU: 1 } }, { projectId: PROJECT, userId: USER, consumerGeneration: null });
          return 'ok';
        } catch (e) {
          return (e as Error).constructor.name;
        }
      }),
    );
    assert.equal(outcomes.filter((o) => o === 'ok').length, 6);
    assert.equal(outcomes.filter((o) => o === 'ClaimConflict').length, 14);
    for (const rp of [a, b]) assert.equal((await f.service.get(`/resource_providers/${rp.uuid}/usages`)).body.usages.VCPU, 3);
  });
});
