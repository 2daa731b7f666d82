import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/** os-quota-class-sets and os-quota-sets per microversion (2.36, 2.50, 2.57). */
describe('nova quota classes and quota sets per microversion', () => {
  let f: NovaFixture;
  let p: Project;
  before(async () => {
    f = await startNova();
    await f.addCompute('q-h1');
    p = await f.project('quotas');
  });
  after(() => f?.close());

  it('quota classes: admin only, fields per microversion; the default class is every project default', async () => {
    assert.equal((await p.member.get('/v2.1/os-quota-class-sets/default')).status, 403);
    const v249 = await f.admin.at('2.49').get('/v2.1/os-quota-class-sets/default');
    assert.equal(v249.status, 200, v249.text);
    assert.equal(v249.body.quota_class_set.id, 'default');
    assert.equal(v249.body.quota_class_set.floating_ips, -1);
    assert.ok(!('server_groups' in v249.body.quota_class_set), 'server group quotas from 2.50');
    const v257 = (await f.admin.at('2.57').get('/v2.1/os-quota-class-sets/default')).body.quota_class_set;
    assert.equal(v257.instances, 10);
    assert.equal(v257.server_groups, 10);
    assert.ok(!('injected_files' in v257) && !('floating_ips' in v257), JSON.stringify(v257));

    const bad = await f.admin.at('2.57').put('/v2.1/os-quota-class-sets/default', { quota_class_set: { injected_files: 3 } });
    assert.equal(bad.status, 400, 'injected files are gone from 2.57');
    assert.equal((await f.admin.at('2.49').put('/v2.1/os-quota-class-sets/default', { quota_class_set: { server_groups: 3 } })).status, 400);
    assert.equal((await f.admin.at('2.49').put('/v2.1/os-quota-class-sets/default', { quota_class_set: { floating_ips: 3 } })).status, 200, 'accepted and ignored before 2.50');
    const put = await f.admin.put('/v2.1/os-quota-class-sets/default', { quota_class_set: { instances: 7, cores: -1 } });
    assert.equal(put.status, 200, put.text);
    assert.ok(!('id' in put.body.quota_class_set));
    assert.equal(put.body.quota_class_set.instances, 7);
    assert.equal((await f.admin.put('/v2.1/os-quota-class-sets/default', { quota_class_set: { instances: -2 } })).status, 400);
    assert.equal((await p.member.put('/v2.1/os-quota-class-sets/default', { quota_class_set: { instances: 1 } })).status, 403);

    assert.equal((await p.reader.get(`/v2.1/os-quota-sets/${p.id}/defaults`)).body.quota_set.instances, 7);
    assert.equal((await p.reader.get(`/v2.1/os-quota-sets/${p.id}`)).body.quota_set.cores, -1);
    assert.equal((await p.reader.get('/v2.1/limits')).body.limits.absolute.maxTotalInstances, 7);
    // A project's own limit still wins over the class.
    await f.admin.put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { instances: 4 } });
    assert.equal((await p.reader.get(`/v2.1/os-quota-sets/${p.id}`)).body.quota_set.instances, 4);
    // Another class falls back to the default class.
    const gold = (await f.admin.get('/v2.1/os-quota-class-sets/gold')).body.quota_class_set;
    assert.equal(gold.instances, 7);
  });

  it('quota sets: network quotas until 2.35, injected files until 2.56, in detail and update too', async () => {
    const old = (await p.reader.at('2.35').get(`/v2.1/os-quota-sets/${p.id}/detail`)).body.quota_set;
    assert.deepEqual(old.floating_ips, { limit: -1, in_use: 0, reserved: 0 });
    assert.equal(old.injected_file_path_bytes.limit, 255);
    assert.equal((await f.admin.at('2.35').put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { security_groups: 5 } })).status, 200);
    assert.equal((await f.admin.at('2.36').put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { security_groups: 5 } })).status, 400);
    const now = (await p.reader.at('2.57').get(`/v2.1/os-quota-sets/${p.id}/detail`)).body.quota_set;
    assert.ok(!('injected_files' in now) && !('floating_ips' in now), JSON.stringify(now));
    assert.equal(now.instances.limit, 4);
    assert.equal((await f.admin.at('2.57').put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { injected_files: 1 } })).status, 400);
    assert.equal((await f.admin.at('2.56').put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { injected_files: 1 } })).status, 200);
    const limits = (await p.reader.at('2.57').get('/v2.1/limits')).body.limits.absolute;
    assert.ok(!('maxPersonality' in limits));
  });
});
