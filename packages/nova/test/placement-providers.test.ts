import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { computeHost, startPlacement, type PlacementFixture } from './placement-fixture.ts';

let f: PlacementFixture;
before(async () => {
  f = await startPlacement();
});
after(async () => {
  await f?.close();
});

describe('placement: version document, auth and policy', () => {
  it('serves the version document without a token, with min and max microversion', async () => {
    const res = await f.admin.withToken(undefined).get('/');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.versions[0], { id: 'v1.0', max_version: '1.39', min_version: '1.0', status: 'CURRENT', links: [{ rel: 'self', href: '' }] });
    assert.equal(res.headers.get('openstack-api-version'), 'placement 1.39');
  });

  it('answers 406 for a microversion above the maximum', async () => {
    const res = await f.admin.at('1.40').get('/resource_providers');
    assert.equal(res.status, 406);
    assert.equal(res.body.errors[0].status, 406);
    assert.equal(res.body.errors[0].max_version, '1.39');
    assert.equal(res.body.errors[0].min_version, '1.0');
  });

  it('refuses requests without a token (401) and project members without admin or service role (403)', async () => {
    const anon = await f.admin.withToken(undefined).get('/resource_providers');
    assert.equal(anon.status, 401);
    const member = await f.member.get('/resource_providers');
    assert.equal(member.status, 403);
    assert.match(member.body.errors[0].detail, /Policy does not allow placement:resource_providers:list to be performed/);
    assert.equal((await f.service.get('/resource_providers')).status, 200);
  });

  it('renders errors in placement format, with code only from 1.23', async () => {
    const missing = '11111111-2222-3333-4444-555555555555';
    const new_ = await f.admin.get(`/resource_providers/${missing}`);
    assert.equal(new_.status, 404);
    const e = new_.body.errors[0];
    assert.equal(e.title, 'Not Found');
    assert.equal(e.code, 'placement.resource_provider.not_found');
    assert.match(e.detail, /No resource provider with uuid 11111111-2222-3333-4444-555555555555 found/);
    assert.match(e.request_id, /^req-/);
    const old = await f.admin.at('1.22').get(`/resource_providers/${missing}`);
    assert.equal(old.status, 404);
    assert.equal('code' in old.body.errors[0], false);
  });

  it('answers 405 with Allow for a known path and an unknown method', async () => {
    const res = await f.admin.patch('/resource_providers', {});
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, POST');
  });
});

describe('placement: resource providers', () => {
  it('creates with 201 and Location before 1.20, with 200 and the provider from 1.20', async () => {
    const old = await f.admin.at('1.19').post('/resource_providers', { name: 'rp-old' });
    assert.equal(old.status, 201);
    assert.match(old.headers.get('location')!, /^\/resource_providers\/[0-9a-f-]{36}$/);
    assert.equal(old.text, '');
    const res = await f.admin.post('/resource_providers', { name: 'rp-new', uuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE' });
    assert.equal(res.status, 200);
    assert.equal(res.body.uuid, 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
    assert.equal(res.body.generation, 0);
    assert.equal(res.body.root_provider_uuid, res.body.uuid);
    assert.equal(res.body.parent_provider_uuid, null);
    assert.deepEqual(
      res.body.links.map((l: { rel: string }) => l.rel),
      ['self', 'inventories', 'usages', 'aggregates', 'traits', 'allocations'],
    );
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.ok(res.headers.get('last-modified'));
  });

  it('refuses a duplicate name with 409 placement.duplicate_name and validates the body', async () => {
    const dup = await f.admin.post('/resource_providers', { name: 'rp-new' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.errors[0].code, 'placement.duplicate_name');
    assert.match(dup.body.errors[0].detail, /Conflicting resource provider name: rp-new already exists/);
    const bad = await f.admin.post('/resource_providers', { name: 'x', bogus: 1 });
    assert.equal(bad.status, 400);
    assert.match(bad.body.errors[0].detail, /JSON does not validate/);
  });

  it('builds trees: children carry parent and root, a parent with children cannot be deleted', async () => {
    const root = (await f.admin.post('/resource_providers', { name: 'tree-root' })).body;
    const child = (await f.admin.post('/resource_providers', { name: 'tree-child', parent_provider_uuid: root.uuid })).body;
    const grandchild = (await f.admin.post('/resource_providers', { name: 'tree-gc', parent_provider_uuid: child.uuid })).body;
    assert.equal(grandchild.root_provider_uuid, root.uuid);
    assert.equal(grandchild.parent_provider_uuid, child.uuid);
    const inTree = await f.admin.get(`/resource_providers?in_tree=${child.uuid}`);
    assert.deepEqual(inTree.body.resource_providers.map((r: { name: string }) => r.name).sort(), ['tree-child', 'tree-gc', 'tree-root']);
    const del = await f.admin.delete(`/resource_providers/${root.uuid}`);
    assert.equal(del.status, 409);
    assert.equal(del.body.errors[0].code, 'placement.resource_provider.cannot_delete_parent');
    // 1.37: re-parenting moves the whole subtree.
    const other = (await f.admin.post('/resource_providers', { name: 'tree-other' })).body;
    const moved = await f.admin.put(`/resource_providers/${child.uuid}`, { name: 'tree-child', parent_provider_uuid: other.uuid });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.root_provider_uuid, other.uuid);
    assert.equal((await f.admin.get(`/resource_providers/${grandchild.uuid}`)).body.root_provider_uuid, other.uuid);
    const before137 = await f.admin.at('1.36').put(`/resource_providers/${child.uuid}`, { name: 'tree-child', parent_provider_uuid: root.uuid });
    assert.equal(before137.status, 400);
    const loop = await f.admin.put(`/resource_providers/${other.uuid}`, { name: 'tree-other', parent_provider_uuid: grandchild.uuid });
    assert.equal(loop.status, 400);
  });

  it('filters the list by name, uuid, resources, required traits and member_of', async () => {
    const a = await computeHost(f.admin, 'filter-a', { VCPU: { total: 8 }, MEMORY_MB: { total: 1024 } });
    const b = await computeHost(f.admin, 'filter-b', { VCPU: { total: 2 } });
    await f.admin.put(`/resource_providers/${a.uuid}/traits`, { traits: ['HW_CPU_X86_AVX2'], resource_provider_generation: a.generation });
    const agg = '7f1b2c3d-0000-4000-8000-000000000001';
    await f.admin.put(`/resource_providers/${b.uuid}/aggregates`, { aggregates: [agg], resource_provider_generation: b.generation });
    const names = async (q: string) => (await f.admin.get(`/resource_providers?${q}`)).body.resource_providers.map((r: { name: string }) => r.name).sort();
    assert.deepEqual(await names('name=filter-a'), ['filter-a']);
    assert.deepEqual(await names(`uuid=${b.uuid}`), ['filter-b']);
    assert.deepEqual(await names('resources=VCPU:4'), ['filter-a']);
    assert.deepEqual(await names('required=HW_CPU_X86_AVX2'), ['filter-a']);
    assert.ok(!(await names('required=!HW_CPU_X86_AVX2')).includes('filter-a'));
    assert.deepEqual(await names(`member_of=in:${agg}`), ['filter-b']);
    const badTrait = await f.admin.get('/resource_providers?required=CUSTOM_NOPE');
    assert.equal(badTrait.status, 400);
    const badRc = await f.admin.get('/resource_providers?resources=NOPE:1');
    assert.equal(badRc.status, 400);
    const badParam = await f.admin.get('/resource_providers?foo=1');
    assert.equal(badParam.status, 400);
    assert.match(badParam.body.errors[0].detail, /Additional properties are not allowed \('foo' was unexpected\)/);
  });
});

describe('placement: inventories', () => {
  it('sets, shows and updates inventories, checking the provider generation', async () => {
    const rp = (await f.admin.post('/resource_providers', { name: 'inv-host' })).body;
    const set = await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, {
      resource_provider_generation: 0,
      inventories: { VCPU: { total: 8, reserved: 1, allocation_ratio: 16.0 }, MEMORY_MB: { total: 2048, max_unit: 1024 } },
    });
    assert.equal(set.status, 200);
    assert.equal(set.body.resource_provider_generation, 1);
    assert.deepEqual(set.body.inventories.VCPU, { total: 8, reserved: 1, min_unit: 1, max_unit: 2147483647, step_size: 1, allocation_ratio: 16 });
    const stale = await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, { resource_provider_generation: 0, inventories: {} });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.errors[0].code, 'placement.concurrent_update');
    const one = await f.admin.get(`/resource_providers/${rp.uuid}/inventories/MEMORY_MB`);
    assert.deepEqual(one.body, { resource_provider_generation: 1, total: 2048, reserved: 0, min_unit: 1, max_unit: 1024, step_size: 1, allocation_ratio: 1 });
    const upd = await f.admin.put(`/resource_providers/${rp.uuid}/inventories/MEMORY_MB`, { resource_provider_generation: 1, total: 4096 });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.resource_provider_generation, 2);
    const post = await f.admin.post(`/resource_providers/${rp.uuid}/inventories`, { resource_class: 'DISK_GB', total: 10 });
    assert.equal(post.status, 201);
    assert.equal(post.headers.get('location'), `/resource_providers/${rp.uuid}/inventories/DISK_GB`);
    const dupPost = await f.admin.post(`/resource_providers/${rp.uuid}/inventories`, { resource_class: 'DISK_GB', total: 10 });
    assert.equal(dupPost.status, 409);
    const usages = await f.admin.get(`/resource_providers/${rp.uuid}/usages`);
    assert.deepEqual(usages.body.usages, { DISK_GB: 0, MEMORY_MB: 0, VCPU: 0 });
    assert.equal((await f.admin.delete(`/resource_providers/${rp.uuid}/inventories/DISK_GB`)).status, 204);
    assert.equal((await f.admin.delete(`/resource_providers/${rp.uuid}/inventories/DISK_GB`)).status, 404);
  });

  it('refuses reserved above total (equal allowed from 1.26), unknown classes and bad amounts', async () => {
    const rp = (await f.admin.post('/resource_providers', { name: 'inv-bad' })).body;
    const inv = (gen: number, v: Record<string, unknown>) => ({ resource_provider_generation: gen, inventories: { VCPU: v } });
    const over = await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, inv(0, { total: 4, reserved: 5 }));
    assert.equal(over.status, 400);
    assert.match(over.body.errors[0].detail, /The reserved value is greater than total/);
    assert.equal((await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, inv(0, { total: 4, reserved: 4 }))).status, 200);
    const old = await f.admin.at('1.25').put(`/resource_providers/${rp.uuid}/inventories`, inv(1, { total: 4, reserved: 4 }));
    assert.equal(old.status, 400);
    const unknown = await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, { resource_provider_generation: 1, inventories: { CUSTOM_NOPE: { total: 1 } } });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.errors[0].detail, /Unknown resource class in inventory/);
    const zero = await f.admin.put(`/resource_providers/${rp.uuid}/inventories`, inv(1, { total: 0 }));
    assert.equal(zero.status, 400);
  });
});

describe('placement: resource classes, traits, aggregates', () => {
  it('lists standard classes and manages custom ones', async () => {
    const list = await f.admin.get('/resource_classes');
    const names = list.body.resource_classes.map((r: { name: string }) => r.name);
    for (const n of ['VCPU', 'MEMORY_MB', 'DISK_GB', 'PCPU']) assert.ok(names.includes(n));
    assert.equal((await f.admin.post('/resource_classes', { name: 'CUSTOM_GPU' })).status, 201);
    assert.equal((await f.admin.post('/resource_classes', { name: 'CUSTOM_GPU' })).status, 409);
    assert.equal((await f.admin.post('/resource_classes', { name: 'GPU' })).status, 400);
    assert.equal((await f.admin.put('/resource_classes/CUSTOM_FPGA')).status, 201);
    assert.equal((await f.admin.put('/resource_classes/CUSTOM_FPGA')).status, 204);
    assert.deepEqual((await f.admin.get('/resource_classes/CUSTOM_GPU')).body, { name: 'CUSTOM_GPU', links: [{ rel: 'self', href: '/resource_classes/CUSTOM_GPU' }] });
    assert.equal((await f.admin.delete('/resource_classes/VCPU')).status, 400);
    const rp = await computeHost(f.admin, 'gpu-host', { CUSTOM_GPU: { total: 2 } });
    assert.ok(rp.uuid);
    assert.equal((await f.admin.delete('/resource_classes/CUSTOM_GPU')).status, 409);
    assert.equal((await f.admin.delete('/resource_classes/CUSTOM_FPGA')).status, 204);
    assert.equal((await f.admin.get('/resource_classes/CUSTOM_FPGA')).status, 404);
  });

  it('lists standard traits, creates custom ones and sets them on providers', async () => {
    const all = await f.admin.get('/traits');
    assert.ok(all.body.traits.includes('HW_CPU_X86_AVX2'));
    assert.ok(all.body.traits.includes('COMPUTE_STATUS_DISABLED'));
    assert.equal((await f.admin.put('/traits/CUSTOM_FAST')).status, 201);
    assert.equal((await f.admin.put('/traits/CUSTOM_FAST')).status, 204);
    assert.equal((await f.admin.put('/traits/FAST')).status, 400);
    assert.equal((await f.admin.get('/traits/CUSTOM_FAST')).status, 204);
    assert.deepEqual((await f.admin.get('/traits?name=startswith:CUSTOM_')).body.traits, ['CUSTOM_FAST']);
    const rp = (await f.admin.post('/resource_providers', { name: 'trait-host' })).body;
    const put = await f.admin.put(`/resource_providers/${rp.uuid}/traits`, { traits: ['CUSTOM_FAST', 'HW_CPU_X86_SSE'], resource_provider_generation: 0 });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, { traits: ['CUSTOM_FAST', 'HW_CPU_X86_SSE'], resource_provider_generation: 1 });
    const stale = await f.admin.put(`/resource_providers/${rp.uuid}/traits`, { traits: [], resource_provider_generation: 0 });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.errors[0].code, 'placement.concurrent_update');
    assert.equal((await f.admin.put(`/resource_providers/${rp.uuid}/traits`, { traits: ['CUSTOM_NOPE'], resource_provider_generation: 1 })).status, 400);
    assert.deepEqual((await f.admin.get('/traits?name=in:CUSTOM_FAST,HW_CPU_X86_SSE&associated=true')).body.traits.sort(), ['CUSTOM_FAST', 'HW_CPU_X86_SSE']);
    assert.equal((await f.admin.delete('/traits/CUSTOM_FAST')).status, 409);
    assert.equal((await f.admin.delete('/traits/HW_CPU_X86_SSE')).status, 400);
    assert.equal((await f.admin.delete(`/resource_providers/${rp.uuid}/traits`)).status, 204);
    assert.equal((await f.admin.delete('/traits/CUSTOM_FAST')).status, 204);
  });

  it('sets aggregates with a generation from 1.19, as a bare list before', async () => {
    const rp = (await f.admin.post('/resource_providers', { name: 'agg-host' })).body;
    const a1 = '5a1e0000-0000-4000-8000-000000000001';
    const old = await f.admin.at('1.18').put(`/resource_providers/${rp.uuid}/aggregates`, [a1]);
    assert.equal(old.status, 200);
    assert.deepEqual(old.body, { aggregates: [a1] });
    const got = await f.admin.get(`/resource_providers/${rp.uuid}/aggregates`);
    assert.deepEqual(got.body, { aggregates: [a1], resource_provider_generation: 0 });
    const put = await f.admin.put(`/resource_providers/${rp.uuid}/aggregates`, { aggregates: [], resource_provider_generation: 0 });
    assert.deepEqual(put.body, { aggregates: [], resource_provider_generation: 1 });
    const stale = await f.admin.put(`/resource_providers/${rp.uuid}/aggregates`, { aggregates: [a1], resource_provider_generation: 0 });
    assert.equal(stale.status, 409);
  });
});
