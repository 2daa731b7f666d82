import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

describe('neutron networks', () => {
  let n: NeutronFixture;
  let a: Project;
  let b: Project;
  before(async () => {
    n = await startNeutron({ config: { vni_ranges: ['100:102'], network_vlan_ranges: ['physnet1:10:11'], flat_networks: ['public'] } });
    a = await n.project('neta');
    b = await n.project('netb');
  });
  after(() => n?.close());

  it('creates a tenant network on a VXLAN segment, provider attributes for admins only', async () => {
    const res = await a.member.post('/v2.0/networks', { network: { name: 'net1' } });
    assert.equal(res.status, 201, res.text);
    const net = res.body.network;
    assert.equal(net.name, 'net1');
    assert.equal(net.project_id, a.id);
    assert.equal(net.tenant_id, a.id);
    assert.equal(net.status, 'ACTIVE');
    assert.equal(net.mtu, 1450);
    assert.equal(net.admin_state_up, true);
    assert.equal(net.shared, false);
    assert.equal(net['router:external'], false);
    assert.equal(net.revision_number, 1);
    assert.ok(!('provider:network_type' in net));
    const shown = await n.admin.get(`/v2.0/networks/${net.id}`);
    assert.equal(shown.body.network['provider:network_type'], 'vxlan');
    assert.ok(shown.body.network['provider:segmentation_id'] >= 100 && shown.body.network['provider:segmentation_id'] <= 102);
    assert.equal(shown.body.network['provider:physical_network'], null);
  });

  it('refuses provider attributes and shared from a member (403 PolicyNotAuthorized)', async () => {
    const res = await a.member.post('/v2.0/networks', { network: { name: 'x', shared: true } });
    assert.equal(res.status, 403);
    assert.equal(res.body.NeutronError.type, 'PolicyNotAuthorized');
    const res2 = await a.member.post('/v2.0/networks', { network: { 'provider:network_type': 'vlan' } });
    assert.equal(res2.status, 403);
  });

  it('allocates VLANs from the range without duplicates under concurrency and releases them on delete', async () => {
    const create = () => n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet1' } });
    const results = await Promise.all([create(), create(), create()]);
    const ok = results.filter((r) => r.status === 201);
    assert.equal(ok.length, 2, results.map((r) => r.text).join('\n'));
    const ids = ok.map((r) => r.body.network['provider:segmentation_id']).sort();
    assert.deepEqual(ids, [10, 11]);
    const failed = results.find((r) => r.status !== 201)!;
    assert.equal(failed.status, 503);
    assert.equal(failed.body.NeutronError.type, 'NoNetworkAvailable');
    assert.equal((await n.admin.delete(`/v2.0/networks/${ok[0].body.network.id}`)).status, 204);
    const again = await create();
    assert.equal(again.status, 201);
    assert.equal(again.body.network['provider:segmentation_id'], ok[0].body.network['provider:segmentation_id']);
  });

  it('refuses a VLAN id in use (409) and an unknown physnet (400)', async () => {
    const first = await n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet1', 'provider:segmentation_id': 500 } });
    assert.equal(first.status, 201, first.text);
    const dup = await n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'physnet1', 'provider:segmentation_id': 500 } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.NeutronError.type, 'VlanIdInUse');
    const bad = await n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'vlan', 'provider:physical_network': 'nope' } });
    assert.equal(bad.status, 400);
    const flat = await n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'flat', 'provider:physical_network': 'public', 'router:external': true } });
    assert.equal(flat.status, 201, flat.text);
    assert.equal(flat.body.network.mtu, 1500);
    const flat2 = await n.admin.post('/v2.0/networks', { network: { 'provider:network_type': 'flat', 'provider:physical_network': 'public' } });
    assert.equal(flat2.status, 409);
    assert.equal(flat2.body.NeutronError.type, 'FlatNetworkInUse');
  });

  it('isolates projects: own, shared and external networks are visible, another project\'s is 404', async () => {
    const mine = (await b.member.post('/v2.0/networks', { network: { name: 'b-private' } })).body.network;
    const shared = (await n.admin.post('/v2.0/networks', { network: { name: 'everyone', shared: true } })).body.network;
    const list = await a.reader.get('/v2.0/networks');
    assert.equal(list.status, 200);
    const names = list.body.networks.map((x: { name: string }) => x.name);
    assert.ok(names.includes('net1'));
    assert.ok(names.includes('everyone'));
    assert.ok(!names.includes('b-private'));
    assert.ok(list.body.networks.some((x: { 'router:external': boolean }) => x['router:external']));
    assert.equal((await a.member.get(`/v2.0/networks/${mine.id}`)).status, 404);
    assert.equal((await a.member.delete(`/v2.0/networks/${mine.id}`)).status, 404);
    assert.equal((await a.member.delete(`/v2.0/networks/${shared.id}`)).status, 403);
    assert.equal((await a.reader.post('/v2.0/networks', { network: { name: 'r' } })).status, 403);
  });

  it('filters, sorts, pages with links and selects fields', async () => {
    for (const name of ['p1', 'p2', 'p3']) await b.member.post('/v2.0/networks', { network: { name, admin_state_up: name !== 'p2' } });
    const filtered = await b.member.get('/v2.0/networks?name=p1&name=p3&fields=name&fields=id');
    assert.deepEqual(filtered.body.networks.map((x: { name: string }) => x.name).sort(), ['p1', 'p3']);
    assert.deepEqual(Object.keys(filtered.body.networks[0]).sort(), ['id', 'name']);
    const down = await b.member.get('/v2.0/networks?admin_state_up=False');
    assert.deepEqual(down.body.networks.map((x: { name: string }) => x.name), ['p2']);
    const bad = await b.member.get('/v2.0/networks?colour=red');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.NeutronError.message, '[colour] is invalid attribute for filtering');
    const sorted = await b.member.get(`/v2.0/networks?project_id=${b.id}&sort_key=name&sort_dir=desc`);
    const sortedNames = sorted.body.networks.map((x: { name: string }) => x.name);
    assert.deepEqual(sortedNames, [...sortedNames].sort().reverse());
    const page1 = await b.member.get(`/v2.0/networks?project_id=${b.id}&sort_key=name&sort_dir=asc&limit=2`);
    assert.equal(page1.body.networks.length, 2);
    const next = page1.body.networks_links.find((l: { rel: string }) => l.rel === 'next').href as string;
    const page2 = await b.member.get(next.slice(n.url.length));
    const all = [...page1.body.networks, ...page2.body.networks].map((x: { name: string }) => x.name);
    assert.deepEqual(all.slice(0, 4), ['b-private', 'p1', 'p2', 'p3'].slice(0, all.length > 4 ? 4 : all.length));
    assert.ok(page2.body.networks_links.some((l: { rel: string }) => l.rel === 'previous'));
  });

  it('updates with If-Match on revision_number (412 on mismatch) and bumps the revision', async () => {
    const net = (await a.member.post('/v2.0/networks', { network: { name: 'rev' } })).body.network;
    const stale = await a.member.put(`/v2.0/networks/${net.id}`, { network: { name: 'x' } }, { 'if-match': 'revision_number=99' });
    assert.equal(stale.status, 412);
    const ok = await a.member.put(`/v2.0/networks/${net.id}`, { network: { name: 'rev2', description: 'd' } }, { 'if-match': `revision_number=${net.revision_number}` });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.network.name, 'rev2');
    assert.equal(ok.body.network.revision_number, net.revision_number + 1);
    const unknown = await a.member.put(`/v2.0/networks/${net.id}`, { network: { colour: 'red' } });
    assert.equal(unknown.status, 400);
  });

  it('creates networks in bulk, all or nothing', async () => {
    const res = await a.member.post('/v2.0/networks', { networks: [{ name: 'bulk1' }, { name: 'bulk2' }] });
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.body.networks.map((x: { name: string }) => x.name), ['bulk1', 'bulk2']);
    const bad = await a.member.post('/v2.0/networks', { networks: [{ name: 'bulk3' }, { name: 'bulk4', shared: true }] });
    assert.equal(bad.status, 403);
    const list = await a.member.get('/v2.0/networks?name=bulk3');
    assert.equal(list.body.networks.length, 0);
  });
});
