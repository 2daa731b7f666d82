import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone unified limits: /v3/registered_limits, /v3/limits', () => {
  let ks: KeystoneFixture;
  let computeId: string;
  let projectA: string;
  let projectB: string;
  let memberA: JsonClient;
  let memberB: JsonClient;
  let domainReader: JsonClient;

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    computeId = (await k.catalog.createService({ type: 'compute', name: 'nova' })).id;
    const other = await k.resource.createProject({ name: 'Other', isDomain: true });
    projectA = (await k.resource.createProject({ name: 'a', domainId: 'default' })).id;
    projectB = (await k.resource.createProject({ name: 'b', domainId: other.id })).id;
    for (const [name, target] of [['alice', { projectId: projectA }], ['bob', { projectId: projectB }], ['dora', { domainId: 'default' }]] as const) {
      const u = await k.identity.createUser({ name, domainId: 'default', password: `${name}-pw` });
      await k.assignment.grant({ userId: u.id }, target, ks.boot.roleIds.member);
    }
    memberA = await ks.login('alice', 'alice-pw', { project: { id: projectA } });
    memberB = await ks.login('bob', 'bob-pw', { project: { id: projectB } });
    domainReader = await ks.login('dora', 'dora-pw', { domain: { id: 'default' } });
  });
  after(() => ks.close());

  const register = (registered_limits: Record<string, unknown>[]) => ks.admin.post('/v3/registered_limits', { registered_limits });
  const limit = (limits: Record<string, unknown>[]) => ks.admin.post('/v3/limits', { limits });
  const ids = (list: { id: string }[]) => list.map((x) => x.id).sort();

  it('reports the flat enforcement model to any token', async () => {
    const res = await memberA.get('/v3/limits/model');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { model: { name: 'flat', description: 'Limit enforcement and validation does not take project hierarchy into consideration.' } });
  });

  it('registers limits, lists them to everyone, updates and deletes them', async () => {
    const res = await register([
      { service_id: computeId, resource_name: 'cores', default_limit: 20, description: 'vCPUs' },
      { service_id: computeId, resource_name: 'ram_mb', default_limit: 51200, region_id: 'RegionOne' },
    ]);
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(Object.keys(res.body), ['registered_limits']);
    const [cores, ram] = res.body.registered_limits;
    assert.deepEqual(cores, {
      id: cores.id,
      service_id: computeId,
      region_id: null,
      resource_name: 'cores',
      default_limit: 20,
      description: 'vCPUs',
      links: { self: `${ks.url}/v3/registered_limits/${cores.id}` },
    });
    assert.equal(ram.region_id, 'RegionOne');

    const listed = await memberA.get('/v3/registered_limits');
    assert.equal(listed.status, 200);
    assert.deepEqual(ids(listed.body.registered_limits), ids([cores, ram]));
    assert.deepEqual(ids((await memberB.get('/v3/registered_limits?resource_name=cores')).body.registered_limits), [cores.id]);
    assert.deepEqual(ids((await memberB.get('/v3/registered_limits?region_id=RegionOne')).body.registered_limits), [ram.id]);
    assert.equal((await memberB.get(`/v3/registered_limits/${cores.id}`)).body.registered_limit.default_limit, 20);

    const patched = await ks.admin.patch(`/v3/registered_limits/${ram.id}`, { registered_limit: { default_limit: 10240, region_id: null } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.registered_limit.default_limit, 10240);
    assert.equal(patched.body.registered_limit.region_id, null);
    const clash = await ks.admin.patch(`/v3/registered_limits/${ram.id}`, { registered_limit: { resource_name: 'cores' } });
    assert.equal(clash.status, 409);

    assert.equal((await ks.admin.delete(`/v3/registered_limits/${ram.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/registered_limits/${ram.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, `Could not find registered limit for ${ram.id}.`);
  });

  it('refuses duplicate and malformed registered limits', async () => {
    const dup = await register([{ service_id: computeId, resource_name: 'cores', default_limit: 5 }]);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.message, 'Conflict occurred attempting to store registered_limit - Duplicate entry.');
    const inBatch = await register([
      { service_id: computeId, resource_name: 'instances', default_limit: 10 },
      { service_id: computeId, resource_name: 'instances', default_limit: 11 },
    ]);
    assert.equal(inBatch.status, 409);
    // The batch is all or nothing.
    assert.deepEqual((await ks.admin.get('/v3/registered_limits?resource_name=instances')).body.registered_limits, []);

    const bad: Record<string, unknown>[] = [
      { service_id: computeId, resource_name: 'x', default_limit: '20' },
      { service_id: computeId, resource_name: 'x', default_limit: -2 },
      { service_id: computeId, resource_name: 'x' },
      { service_id: computeId, resource_name: 'x', default_limit: 1, flavor: 'big' },
      { service_id: 'not-a-uuid', resource_name: 'x', default_limit: 1 },
    ];
    for (const body of bad) assert.equal((await register([body])).status, 400, JSON.stringify(body));
    assert.equal((await register([])).status, 400);
    assert.equal((await ks.admin.post('/v3/registered_limits', { registered_limit: {} })).status, 400);
    const unknownService = await register([{ service_id: ks.ks.ids.hex(), resource_name: 'x', default_limit: 1 }]);
    assert.equal(unknownService.status, 400);
    assert.match(unknownService.body.error.message, /^Expecting to find service_id in registered_limit\./);
    assert.equal((await register([{ service_id: computeId, resource_name: 'x', default_limit: 1, region_id: 'Nowhere' }])).status, 400);
    assert.equal((await ks.admin.patch(`/v3/registered_limits/${ks.ks.ids.hex()}`, { registered_limit: { default_limit: 1 } })).status, 404);

    assert.equal((await memberA.post('/v3/registered_limits', { registered_limits: [{ service_id: computeId, resource_name: 'y', default_limit: 1 }] })).status, 403);
  });

  it('sets project limits that only the project and its readers see', async () => {
    const res = await limit([{ project_id: projectA, service_id: computeId, resource_name: 'cores', resource_limit: 10 }]);
    assert.equal(res.status, 201, res.text);
    const l = res.body.limits[0];
    assert.deepEqual(l, {
      id: l.id,
      project_id: projectA,
      domain_id: null,
      service_id: computeId,
      region_id: null,
      resource_name: 'cores',
      resource_limit: 10,
      description: null,
      links: { self: `${ks.url}/v3/limits/${l.id}` },
    });
    const lb = (await limit([{ project_id: projectB, service_id: computeId, resource_name: 'cores', resource_limit: 4 }])).body.limits[0];

    const seenByA = await memberA.get('/v3/limits');
    assert.equal(seenByA.status, 200);
    assert.deepEqual(ids(seenByA.body.limits), [l.id]);
    assert.deepEqual(ids((await memberB.get('/v3/limits')).body.limits), [lb.id]);
    assert.deepEqual((await memberB.get(`/v3/limits?project_id=${projectA}`)).body.limits, []);
    // A reader of the default domain sees its projects' limits, not the other domain's.
    assert.deepEqual(ids((await domainReader.get('/v3/limits')).body.limits), [l.id]);
    assert.deepEqual(ids((await ks.admin.get('/v3/limits')).body.limits), ids([l, lb]));
    assert.deepEqual(ids((await ks.admin.get(`/v3/limits?project_id=${projectB}`)).body.limits), [lb.id]);

    assert.equal((await memberA.get(`/v3/limits/${l.id}`)).body.limit.resource_limit, 10);
    assert.equal((await memberB.get(`/v3/limits/${l.id}`)).status, 403);
    assert.equal((await memberB.get(`/v3/limits/${ks.ks.ids.hex()}`)).status, 403);
    assert.equal((await ks.admin.get(`/v3/limits/${ks.ks.ids.hex()}`)).status, 404);
    assert.equal((await memberA.patch(`/v3/limits/${l.id}`, { limit: { resource_limit: 100 } })).status, 403);
    assert.equal((await memberA.post('/v3/limits', { limits: [{ project_id: projectA, service_id: computeId, resource_name: 'cores', resource_limit: 100 }] })).status, 403);
    assert.equal((await memberA.delete(`/v3/limits/${l.id}`)).status, 403);
  });

  it('validates limits against registered limits', async () => {
    const dup = await limit([{ project_id: projectA, service_id: computeId, resource_name: 'cores', resource_limit: 11 }]);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.message, 'Conflict occurred attempting to store limit - Duplicate entry.');
    const unregistered = await limit([{ project_id: projectA, service_id: computeId, resource_name: 'gpus', resource_limit: 1 }]);
    assert.equal(unregistered.status, 403);
    assert.equal(unregistered.body.error.message, 'Unable to create a limit that has no corresponding registered limit.');
    const wrongRegion = await limit([{ project_id: projectA, service_id: computeId, resource_name: 'cores', resource_limit: 1, region_id: 'RegionOne' }]);
    assert.equal(wrongRegion.status, 403);

    const base = { service_id: computeId, resource_name: 'cores', resource_limit: 1 };
    const bad: Record<string, unknown>[] = [
      base,
      { ...base, project_id: projectB, domain_id: 'default' },
      { ...base, project_id: projectB, resource_limit: 1.5 },
      { ...base, project_id: projectB, extra: true },
    ];
    for (const body of bad) assert.equal((await limit([body])).status, 400, JSON.stringify(body));
    const unknownProject = await limit([{ ...base, project_id: ks.ks.ids.hex() }]);
    assert.equal(unknownProject.status, 400);
    assert.match(unknownProject.body.error.message, /^Expecting to find project_id in limit\./);
    assert.equal((await ks.admin.post('/v3/limits', { limits: [{ ...base, project_id: projectB }], more: 1 })).status, 400);
  });

  it('makes a domain limit of a project_id naming a domain', async () => {
    const res = await limit([{ project_id: 'default', service_id: computeId, resource_name: 'cores', resource_limit: 100 }]);
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.limits[0].project_id, null);
    assert.equal(res.body.limits[0].domain_id, 'default');
    assert.ok(ids((await domainReader.get('/v3/limits')).body.limits).includes(res.body.limits[0].id));
    assert.ok(!ids((await memberA.get('/v3/limits')).body.limits).includes(res.body.limits[0].id));
    assert.equal((await ks.admin.delete(`/v3/limits/${res.body.limits[0].id}`)).status, 204);
  });

  it('updates and deletes limits; a registered limit in use stays put', async () => {
    const [l] = (await ks.admin.get(`/v3/limits?project_id=${projectA}`)).body.limits;
    const patched = await ks.admin.patch(`/v3/limits/${l.id}`, { limit: { resource_limit: 15, description: 'raised' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.limit.resource_limit, 15);
    assert.equal(patched.body.limit.description, 'raised');
    assert.equal((await ks.admin.patch(`/v3/limits/${l.id}`, { limit: { project_id: projectB } })).status, 400);

    const [cores] = (await ks.admin.get('/v3/registered_limits?resource_name=cores')).body.registered_limits;
    const inUse = await ks.admin.patch(`/v3/registered_limits/${cores.id}`, { registered_limit: { default_limit: 30 } });
    assert.equal(inUse.status, 403);
    assert.match(inUse.body.error.message, /because there are project limits associated with it/);
    assert.equal((await ks.admin.delete(`/v3/registered_limits/${cores.id}`)).status, 403);

    for (const x of (await ks.admin.get('/v3/limits')).body.limits) assert.equal((await ks.admin.delete(`/v3/limits/${x.id}`)).status, 204);
    assert.equal((await ks.admin.get(`/v3/limits/${l.id}`)).status, 404);
    assert.equal((await ks.admin.delete(`/v3/limits/${l.id}`)).status, 404);
    assert.equal((await ks.admin.delete(`/v3/registered_limits/${cores.id}`)).status, 204);
  });
});
