import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * Host aggregates and availability zones: an aggregate's availability_zone metadata is
 * the zone of its hosts, in os-availability-zone, os-services, the scheduler's
 * AvailabilityZoneFilter and the servers' OS-EXT-AZ:availability_zone.
 */
describe('nova aggregates and availability zones', () => {
  let f: NovaFixture;
  let p: Project;
  let netId: string;
  before(async () => {
    f = await startNova();
    for (const h of ['az-h1', 'az-h2']) await f.addCompute(h);
    p = await f.project('aggs');
    netId = (await p.net.post('/v2.0/networks', { network: { name: 'n' } })).body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.2.0.0/24', ip_version: 4 } });
  });
  after(() => f?.close());

  const boot = (name: string, az?: string) =>
    p.member.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '1', networks: [{ uuid: netId }], ...(az ? { availability_zone: az } : {}) } });

  it('CRUD with upstream status codes, fields per microversion and admin-only policy', async () => {
    const c = await f.admin.at('2.40').post('/v2.1/os-aggregates', { aggregate: { name: 'rack1', availability_zone: 'zone-a' } });
    assert.equal(c.status, 200, c.text);
    const agg = c.body.aggregate;
    assert.equal(agg.name, 'rack1');
    assert.equal(agg.availability_zone, 'zone-a');
    assert.equal(agg.deleted, false);
    assert.ok(!('hosts' in agg) && !('metadata' in agg), 'create answers without hosts and metadata');
    assert.ok(!('uuid' in agg), 'uuid only from 2.41');
    assert.equal(typeof agg.id, 'number');
    assert.equal((await f.admin.post('/v2.1/os-aggregates', { aggregate: { name: 'rack1' } })).status, 409);
    assert.equal((await f.admin.post('/v2.1/os-aggregates', { aggregate: { name: 'x', availability_zone: 'a:b' } })).status, 400);
    assert.equal((await f.admin.post('/v2.1/os-aggregates', { aggregate: { name: 'x', extra: 1 } })).status, 400);
    assert.equal((await p.member.get('/v2.1/os-aggregates')).status, 403);
    assert.equal((await p.member.post('/v2.1/os-aggregates', { aggregate: { name: 'mine' } })).status, 403);

    const shown = await f.admin.at('2.41').get(`/v2.1/os-aggregates/${agg.id}`);
    assert.equal(shown.status, 200);
    assert.match(shown.body.aggregate.uuid, /^[0-9a-f-]{36}$/);
    assert.deepEqual(shown.body.aggregate.hosts, []);
    assert.deepEqual(shown.body.aggregate.metadata, { availability_zone: 'zone-a' });
    assert.equal((await f.admin.get('/v2.1/os-aggregates/abc')).status, 400);
    const missing = await f.admin.get('/v2.1/os-aggregates/99999');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.itemNotFound.message, 'Aggregate 99999 could not be found.');

    const u = await f.admin.put(`/v2.1/os-aggregates/${agg.id}`, { aggregate: { name: 'rack-1' } });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.body.aggregate.name, 'rack-1');
    assert.ok(u.body.aggregate.updated_at);
    assert.equal((await f.admin.put(`/v2.1/os-aggregates/${agg.id}`, { aggregate: {} })).status, 400);
    const list = await f.admin.get('/v2.1/os-aggregates');
    assert.deepEqual(list.body.aggregates.map((a: { name: string }) => a.name), ['rack-1']);

    const d = await f.admin.post('/v2.1/os-aggregates', { aggregate: { name: 'tmp' } });
    assert.equal(d.body.aggregate.availability_zone, null);
    const del = await f.admin.delete(`/v2.1/os-aggregates/${d.body.aggregate.id}`);
    assert.equal(del.status, 200);
    assert.equal((await f.admin.get(`/v2.1/os-aggregates/${d.body.aggregate.id}`)).status, 404);
  });

  it('hosts and metadata: the zone moves hosts, conflicts are refused, a non-empty aggregate is not deleted', async () => {
    const agg = (await f.admin.get('/v2.1/os-aggregates')).body.aggregates.find((a: { name: string }) => a.name === 'rack-1');
    const act = (body: unknown, id = agg.id) => f.admin.post(`/v2.1/os-aggregates/${id}/action`, body);
    const add = await act({ add_host: { host: 'az-h1' } });
    assert.equal(add.status, 200, add.text);
    assert.deepEqual(add.body.aggregate.hosts, ['az-h1']);
    assert.equal((await act({ add_host: { host: 'az-h1' } })).status, 409);
    const nohost = await act({ add_host: { host: 'no-such-host' } });
    assert.equal(nohost.status, 404);
    assert.equal(nohost.body.itemNotFound.message, 'Compute host no-such-host could not be found.');
    assert.equal((await act({ add_host: { host: 'az-h1' } }, 99999)).status, 404);
    assert.equal((await act({ frobnicate: {} })).status, 400);

    // A host is in one zone only.
    const other = (await f.admin.post('/v2.1/os-aggregates', { aggregate: { name: 'rack2', availability_zone: 'zone-b' } })).body.aggregate;
    const clash = await act({ add_host: { host: 'az-h1' } }, other.id);
    assert.equal(clash.status, 409, clash.text);
    assert.match(clash.body.conflictingRequest.message, /already in availability zone\(s\) \['zone-a'\]/);

    const md = await act({ set_metadata: { metadata: { ssd: 'true', pool: 'x' } } });
    assert.equal(md.status, 200, md.text);
    assert.deepEqual(md.body.aggregate.metadata, { availability_zone: 'zone-a', ssd: 'true', pool: 'x' });
    const unset = await act({ set_metadata: { metadata: { pool: null } } });
    assert.deepEqual(unset.body.aggregate.metadata, { availability_zone: 'zone-a', ssd: 'true' });
    assert.equal((await act({ set_metadata: { metadata: { availability_zone: null } } })).status, 400, 'a zone is renamed, never emptied');

    const zones = await p.reader.get('/v2.1/os-availability-zone');
    assert.equal(zones.status, 200);
    assert.deepEqual(zones.body.availabilityZoneInfo, [
      { zoneName: 'nova', zoneState: { available: true }, hosts: null },
      { zoneName: 'zone-a', zoneState: { available: true }, hosts: null },
    ]);
    assert.equal((await p.reader.get('/v2.1/os-availability-zone/detail')).status, 403);
    const detail = await f.admin.get('/v2.1/os-availability-zone/detail');
    const byName = Object.fromEntries(detail.body.availabilityZoneInfo.map((z: { zoneName: string }) => [z.zoneName, z]));
    assert.deepEqual(Object.keys(byName['zone-a'].hosts), ['az-h1']);
    assert.equal(byName['zone-a'].hosts['az-h1']['nova-compute'].active, true);
    assert.ok(byName.internal.hosts.controller['nova-conductor'], JSON.stringify(byName.internal));
    const svc = (await f.admin.get('/v2.1/os-services?binary=nova-compute')).body.services;
    assert.deepEqual(Object.fromEntries(svc.map((s: { host: string; zone: string }) => [s.host, s.zone])), { 'az-h1': 'zone-a', 'az-h2': 'nova' });

    const busy = await act({ remove_host: { host: 'az-h2' } });
    assert.equal(busy.status, 404);
    assert.equal(busy.body.itemNotFound.message, `Cannot remove host az-h2 in aggregate ${agg.id}`);
    assert.equal((await f.admin.delete(`/v2.1/os-aggregates/${agg.id}`)).status, 400, 'an aggregate with hosts is not deleted');
    assert.equal((await f.admin.delete(`/v2.1/os-aggregates/${other.id}`)).status, 200);
  });

  it('servers: the requested zone picks its hosts, an unknown zone is a 400, OS-EXT-AZ is the host zone', async () => {
    const bad = await boot('nowhere', 'zone-x');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.badRequest.message, 'The requested availability zone is not available');
    const ids: string[] = [];
    for (const n of ['z1', 'z2']) {
      const r = await boot(n, 'zone-a');
      assert.equal(r.status, 202, r.text);
      ids.push(r.body.server.id);
    }
    for (const id of ids) {
      const s = await f.waitFor(f.admin, id);
      assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
      assert.equal(s['OS-EXT-SRV-ATTR:host'], 'az-h1');
      assert.equal(s['OS-EXT-AZ:availability_zone'], 'zone-a');
    }
    // With hosts running instances the zone cannot change under them.
    const agg = (await f.admin.get('/v2.1/os-aggregates')).body.aggregates.find((a: { name: string }) => a.name === 'rack-1');
    const move = await f.admin.post(`/v2.1/os-aggregates/${agg.id}/action`, { set_metadata: { metadata: { availability_zone: 'zone-c' } } });
    assert.equal(move.status, 400);
    assert.match(move.body.badRequest.message, /One or more hosts contain instances in this zone/);
    // No zone asked: the server is in its host's zone once scheduled.
    const free = await boot('anywhere');
    const s = await f.waitFor(f.admin, free.body.server.id);
    assert.equal(s['OS-EXT-AZ:availability_zone'], s['OS-EXT-SRV-ATTR:host'] === 'az-h1' ? 'zone-a' : 'nova');
    for (const id of [...ids, free.body.server.id]) await p.member.delete(`/v2.1/servers/${id}`);
    for (const id of [...ids, free.body.server.id]) await f.waitFor(p.member, id, (x) => x.status === 'DELETED', 30_000);
  });
});
