import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone catalog: /v3/services, /v3/endpoints, /v3/regions', () => {
  let ks: KeystoneFixture;
  let projectId: string;
  let member: JsonClient;
  let systemReader: JsonClient;

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    projectId = (await k.resource.createProject({ name: 'demo', domainId: 'default' })).id;
    const alice = await k.identity.createUser({ name: 'alice', domainId: 'default', password: 'alice-pw' });
    await k.assignment.grant({ userId: alice.id }, { projectId }, ks.boot.roleIds.member);
    const auditor = await k.identity.createUser({ name: 'auditor', domainId: 'default', password: 'auditor-pw' });
    await k.assignment.grant({ userId: auditor.id }, { system: 'all' }, ks.boot.roleIds.reader);
    member = await ks.login('alice', 'alice-pw', { project: { id: projectId } });
    systemReader = await ks.login('auditor', 'auditor-pw', { system: { all: true } });
  });
  after(() => ks.close());

  const createService = async (service: Record<string, unknown>) => {
    const res = await ks.admin.post('/v3/services', { service });
    assert.equal(res.status, 201, res.text);
    return res.body.service;
  };

  it('creates, shows, lists, updates and deletes services', async () => {
    const s = await createService({ type: 'compute', name: 'nova', description: 'Compute', tier: 'gold' });
    assert.match(s.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...s, links: undefined },
      { id: s.id, type: 'compute', name: 'nova', description: 'Compute', enabled: true, tier: 'gold', links: undefined },
    );
    assert.equal(s.links.self, `${ks.url}/v3/services/${s.id}`);

    const bare = await createService({ type: 'image' });
    assert.equal(bare.name, '');
    assert.ok(!('description' in bare));

    assert.equal((await ks.admin.get(`/v3/services/${s.id}`)).body.service.name, 'nova');
    const byType = await ks.admin.get('/v3/services?type=compute');
    assert.deepEqual(byType.body.services.map((x: { id: string }) => x.id), [s.id]);
    assert.equal(byType.body.links.self, `${ks.url}/v3/services?type=compute`);
    assert.deepEqual((await ks.admin.get('/v3/services?name=nova')).body.services.map((x: { id: string }) => x.id), [s.id]);
    assert.ok((await ks.admin.get('/v3/services')).body.services.length >= 3);

    const patched = await ks.admin.patch(`/v3/services/${s.id}`, { service: { name: 'nova2', enabled: false } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.service.name, 'nova2');
    assert.equal(patched.body.service.enabled, false);
    assert.equal(patched.body.service.description, 'Compute');
    assert.equal(patched.body.service.tier, 'gold');
    assert.equal((await ks.admin.patch(`/v3/services/${s.id}`, { service: { id: 'other' } })).status, 400);

    assert.equal((await ks.admin.delete(`/v3/services/${s.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/services/${s.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, `Could not find service: ${s.id}.`);
  });

  it('validates service bodies', async () => {
    assert.equal((await ks.admin.post('/v3/services', { service: { name: 'x' } })).status, 400);
    assert.equal((await ks.admin.post('/v3/services', { service: { type: 'x', enabled: 'yes' } })).status, 400);
    assert.equal((await ks.admin.post('/v3/services', { service: { type: '' } })).status, 400);
    assert.equal((await ks.admin.post('/v3/services', {})).status, 400);
    assert.equal((await ks.admin.patch('/v3/services/nope', { service: {} })).status, 400);
    assert.equal((await ks.admin.patch('/v3/services/nope', { service: { name: 'x' } })).status, 404);
    assert.equal((await ks.admin.delete('/v3/services/nope')).status, 404);
  });

  it('creates, filters, updates and deletes endpoints', async () => {
    const s = await createService({ type: 'volumev3', name: 'cinder' });
    const res = await ks.admin.post('/v3/endpoints', { endpoint: { interface: 'public', service_id: s.id, url: 'http://c:8776/v3/%(project_id)s', region_id: 'RegionOne' } });
    assert.equal(res.status, 201, res.text);
    const e = res.body.endpoint;
    assert.deepEqual(Object.keys(e).sort(), ['enabled', 'id', 'interface', 'links', 'region', 'region_id', 'service_id', 'url']);
    assert.equal(e.region, 'RegionOne');
    assert.equal(e.enabled, true);
    const internal = (await ks.admin.post('/v3/endpoints', { endpoint: { interface: 'internal', service_id: s.id, url: 'http://c-int:8776/v3' } })).body.endpoint;
    assert.equal(internal.region_id, null);

    const ids = async (q: string) => (await ks.admin.get(`/v3/endpoints?${q}`)).body.endpoints.map((x: { id: string }) => x.id).sort();
    assert.deepEqual(await ids(`service_id=${s.id}`), [e.id, internal.id].sort());
    assert.deepEqual(await ids(`service_id=${s.id}&interface=internal`), [internal.id]);
    assert.ok((await ids('region_id=RegionOne')).includes(e.id));
    assert.ok(!(await ids('region_id=RegionOne')).includes(internal.id));
    assert.equal((await ks.admin.get('/v3/endpoints?interface=private')).status, 400);

    const patched = await ks.admin.patch(`/v3/endpoints/${internal.id}`, { endpoint: { region_id: 'RegionOne', enabled: false } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.endpoint.region, 'RegionOne');
    assert.equal(patched.body.endpoint.enabled, false);
    assert.equal((await ks.admin.get(`/v3/endpoints/${internal.id}`)).body.endpoint.enabled, false);

    assert.equal((await ks.admin.delete(`/v3/endpoints/${internal.id}`)).status, 204);
    assert.equal((await ks.admin.get(`/v3/endpoints/${internal.id}`)).status, 404);
    // Deleting a service takes its endpoints with it.
    assert.equal((await ks.admin.delete(`/v3/services/${s.id}`)).status, 204);
    assert.equal((await ks.admin.get(`/v3/endpoints/${e.id}`)).status, 404);
  });

  it('refuses bad endpoints with 400', async () => {
    const s = await createService({ type: 'network', name: 'neutron' });
    const post = (endpoint: Record<string, unknown>, extra: Record<string, unknown> = {}) => ks.admin.post('/v3/endpoints', { endpoint, ...extra });
    const ok = { interface: 'public', service_id: s.id, url: 'http://n:9696' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...ok, interface: 'private' }, /interface/],
      [{ ...ok, url: undefined }, /'url' is a required property/],
      [{ ...ok, url: 'no-scheme' }, /url/],
      [{ ...ok, url: 'http://n/%(bogus)s' }, /invalid URL/],
      [{ ...ok, url: 'http://n/%(tenant_id)d' }, /invalid URL/],
      [{ ...ok, enabled: 'true' }, /enabled/],
      [{ ...ok, service_id: 'nope' }, /^Expecting to find endpoint service_id in service table/],
      [{ ...ok, region_id: 'Atlantis' }, /^Expecting to find endpoint region_id in region table/],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.error.message, message);
    }
    const unknownKey = await post(ok, { bogus: 1 });
    assert.equal(unknownKey.status, 400);
    assert.match(unknownKey.body.error.message, /'bogus' was unexpected/);
    // Upstream keeps unknown attributes of the endpoint itself, and %% and $(project_id)s are fine.
    const kept = await post({ ...ok, url: 'http://n/$(project_id)s/100%%', note: 'x' });
    assert.equal(kept.status, 201, kept.text);
    assert.equal(kept.body.endpoint.note, 'x');
    assert.equal((await ks.admin.patch(`/v3/endpoints/${kept.body.endpoint.id}`, { endpoint: { service_id: 'nope' } })).status, 400);
    assert.equal((await ks.admin.patch('/v3/endpoints/nope', { endpoint: { enabled: true } })).status, 404);
  });

  it('creates a region named in the legacy "region" attribute', async () => {
    const s = await createService({ type: 'dns', name: 'designate' });
    const res = await ks.admin.post('/v3/endpoints', { endpoint: { interface: 'public', service_id: s.id, url: 'http://d:9001', region: 'RegionLegacy' } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.endpoint.region_id, 'RegionLegacy');
    assert.equal((await ks.admin.get('/v3/regions/RegionLegacy')).status, 200);
  });

  it('manages regions: generated and chosen ids, hierarchy, filters, deletion rules', async () => {
    const made = await ks.admin.post('/v3/regions', { region: { description: 'made up id' } });
    assert.equal(made.status, 201, made.text);
    assert.match(made.body.region.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(made.body.region, { id: made.body.region.id, description: 'made up id', parent_region_id: null, links: { self: `${ks.url}/v3/regions/${made.body.region.id}` } });

    const west = await ks.admin.put('/v3/regions/West', { region: {} });
    assert.equal(west.status, 201, west.text);
    assert.equal(west.body.region.description, '');
    const dup = await ks.admin.put('/v3/regions/West', { region: {} });
    assert.equal(dup.status, 409);
    assert.match(dup.body.error.message, /Duplicate ID, West\./);
    assert.equal((await ks.admin.post('/v3/regions', { region: { id: 'West' } })).status, 409);
    assert.equal((await ks.admin.put('/v3/regions/East', { region: { id: 'North' } })).status, 400);
    assert.equal((await ks.admin.put('/v3/regions/Sub', { region: { parent_region_id: 'Nowhere' } })).status, 404);
    assert.equal((await ks.admin.put('/v3/regions/Bad', { region: { description: 5 } })).status, 400);

    const child = await ks.admin.put('/v3/regions/West-1', { region: { parent_region_id: 'West', zone: 'a' } });
    assert.equal(child.status, 201, child.text);
    assert.equal(child.body.region.zone, 'a');
    const grandchild = await ks.admin.put('/v3/regions/West-1a', { region: { parent_region_id: 'West-1' } });
    assert.equal(grandchild.status, 201);
    const kids = await ks.admin.get('/v3/regions?parent_region_id=West');
    assert.deepEqual(kids.body.regions.map((r: { id: string }) => r.id), ['West-1']);

    const loop = await ks.admin.patch('/v3/regions/West', { region: { parent_region_id: 'West-1a' } });
    assert.equal(loop.status, 400);
    assert.match(loop.body.error.message, /circular region hierarchy/);
    const described = await ks.admin.patch('/v3/regions/West-1', { region: { description: 'first' } });
    assert.equal(described.status, 200, described.text);
    assert.equal(described.body.region.description, 'first');
    assert.equal(described.body.region.zone, 'a');
    assert.equal((await ks.admin.patch('/v3/regions/West-1', { region: {} })).status, 400);

    // An endpoint anywhere below blocks the deletion (403, as upstream); without it the subtree goes.
    const s = await createService({ type: 'object-store', name: 'swift' });
    const ep = (await ks.admin.post('/v3/endpoints', { endpoint: { interface: 'public', service_id: s.id, url: 'http://s:8080', region_id: 'West-1a' } })).body.endpoint;
    const refused = await ks.admin.delete('/v3/regions/West');
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /Unable to delete region West because it or its child regions have associated endpoints/);
    assert.equal((await ks.admin.delete(`/v3/endpoints/${ep.id}`)).status, 204);
    assert.equal((await ks.admin.delete('/v3/regions/West')).status, 204);
    for (const id of ['West', 'West-1', 'West-1a']) assert.equal((await ks.admin.get(`/v3/regions/${id}`)).status, 404);
    assert.equal((await ks.admin.delete('/v3/regions/West')).status, 404);
  });

  it('enforces policy: members read regions only, system readers read the catalog', async () => {
    assert.equal((await member.post('/v3/services', { service: { type: 'evil' } })).status, 403);
    assert.equal((await member.get('/v3/services')).status, 403);
    assert.equal((await member.get('/v3/endpoints')).status, 403);
    assert.equal((await member.put('/v3/regions/Mine', { region: {} })).status, 403);
    const regions = await member.get('/v3/regions');
    assert.equal(regions.status, 200);
    assert.ok(regions.body.regions.some((r: { id: string }) => r.id === 'RegionOne'));
    assert.equal((await member.get('/v3/regions/RegionOne')).status, 200);

    assert.equal((await systemReader.get('/v3/services')).status, 200);
    assert.equal((await systemReader.get('/v3/endpoints')).status, 200);
    assert.equal((await systemReader.post('/v3/services', { service: { type: 'evil' } })).status, 403);
    assert.equal((await systemReader.delete('/v3/regions/RegionOne')).status, 403);
  });

  it('shows catalog changes in tokens issued right after them', async () => {
    const s = await createService({ type: 'compute', name: 'nova-live' });
    const ep = (await ks.admin.post('/v3/endpoints', { endpoint: { interface: 'public', service_id: s.id, url: 'http://nova:8774/v2.1/%(tenant_id)s', region_id: 'RegionOne' } })).body.endpoint;
    const novaUrls = (catalog: { id: string; endpoints: { url: string }[] }[]) => catalog.find((c) => c.id === s.id)?.endpoints.map((e) => e.url) ?? [];

    const token = async () => {
      const res = await ks.client.post('/v3/auth/tokens', {
        auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: ADMIN_PASSWORD } } }, scope: { project: { id: ks.boot.adminProjectId } } },
      });
      assert.equal(res.status, 201, res.text);
      return res.body.token;
    };
    const first = await token();
    assert.deepEqual(novaUrls(first.catalog), [`http://nova:8774/v2.1/${ks.boot.adminProjectId}`]);
    assert.equal(first.catalog.find((c: { id: string }) => c.id === s.id).name, 'nova-live');
    assert.deepEqual(novaUrls((await member.get('/v3/auth/catalog')).body.catalog), [`http://nova:8774/v2.1/${projectId}`]);

    // A system-scoped token has no project to substitute: the endpoint is left out.
    const system = await ks.login('auditor', 'auditor-pw', { system: { all: true } });
    assert.deepEqual(novaUrls((await system.get('/v3/auth/catalog')).body.catalog), []);

    assert.equal((await ks.admin.patch(`/v3/endpoints/${ep.id}`, { endpoint: { enabled: false } })).status, 200);
    assert.deepEqual(novaUrls((await token()).catalog), []);
    assert.equal((await ks.admin.patch(`/v3/services/${s.id}`, { service: { enabled: false } })).status, 200);
    assert.equal((await token()).catalog.find((c: { id: string }) => c.id === s.id), undefined);
  });
});
