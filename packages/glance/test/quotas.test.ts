import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { faultMessage, startGlance, type GlanceFixture, type Project } from './fixture.ts';

const MiB = 1024 * 1024;

describe('glance quotas from Keystone unified limits', () => {
  let g: GlanceFixture;
  let a: Project;
  let b: Project;
  let serviceId: string;

  before(async () => {
    g = await startGlance({ config: { use_keystone_limits: true, limits_cache_time: 0 } });
    a = await g.project('quotaa');
    b = await g.project('quotab');
    serviceId = (await g.ksAdmin.get('/v3/services?type=image')).body.services[0].id;
    const registered = await g.ksAdmin.post('/v3/registered_limits', {
      registered_limits: [
        { service_id: serviceId, resource_name: 'image_count_total', default_limit: 2, region_id: 'RegionOne' },
        { service_id: serviceId, resource_name: 'image_size_total', default_limit: 1 },
        { service_id: serviceId, resource_name: 'image_stage_total', default_limit: 1 },
        { service_id: serviceId, resource_name: 'image_count_uploading', default_limit: 1 },
      ],
    });
    assert.equal(registered.status, 201, registered.text);
  });
  after(() => g.close());

  it('counts images per project against image_count_total, a project limit overriding the default', async () => {
    assert.equal((await a.member.post('/v2/images', { name: 'one' })).status, 201);
    assert.equal((await a.member.post('/v2/images', { name: 'two' })).status, 201);
    const third = await a.member.post('/v2/images', { name: 'three' });
    assert.equal(third.status, 413);
    assert.match(
      faultMessage(third),
      new RegExp(`Project ${a.id} is over a limit for \\[Resource image_count_total is over limit of 2 due to current usage 2 and delta 1\\]`),
    );
    const raised = await g.ksAdmin.post('/v3/limits', { limits: [{ service_id: serviceId, project_id: a.id, resource_name: 'image_count_total', resource_limit: 3, region_id: 'RegionOne' }] });
    assert.equal(raised.status, 201, raised.text);
    assert.equal((await a.member.post('/v2/images', { name: 'three' })).status, 201);
    // Another project still has the registered default.
    assert.equal((await b.member.post('/v2/images', { name: 'b1' })).status, 201);
  });

  it('refuses uploads that would pass image_size_total, before reading them', async () => {
    const id = (await b.member.post('/v2/images', { name: 'big', disk_format: 'raw', container_format: 'bare' })).body.id;
    const res = await b.member.upload(id, randomBytes(2 * MiB));
    assert.equal(res.status, 413);
    assert.match(faultMessage({ text: await res.text() }), /Resource image_size_total is over limit of 1 due to current usage 0 and delta 2/);
    assert.equal((await b.member.get(`/v2/images/${id}`)).body.status, 'queued');
    assert.equal((await b.member.upload(id, randomBytes(MiB))).status, 204);
  });

  it('refuses staging past image_stage_total', async () => {
    const lim = await g.ksAdmin.post('/v3/limits', { limits: [{ service_id: serviceId, project_id: b.id, resource_name: 'image_count_total', resource_limit: 10, region_id: 'RegionOne' }] });
    assert.equal(lim.status, 201);
    const id = (await b.member.post('/v2/images', { name: 'stage-big', disk_format: 'raw', container_format: 'bare' })).body.id;
    const res = await b.member.raw('PUT', `/v2/images/${id}/stage`, randomBytes(2 * MiB), { 'content-type': 'application/octet-stream' });
    assert.equal(res.status, 413);
    assert.match(faultMessage({ text: await res.text() }), /Resource image_stage_total is over limit of 1/);
    assert.equal((await b.member.get(`/v2/images/${id}`)).body.status, 'queued');
  });

  it('reports usage and limits at /v2/info/usage', async () => {
    const res = await a.member.get('/v2/info/usage');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.usage.image_count_total, { limit: 3, usage: 3 });
    assert.deepEqual(res.body.usage.image_size_total, { limit: 1, usage: 0 });
    assert.deepEqual(res.body.usage.image_count_uploading, { limit: 1, usage: 0 });
  });
});
