import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { reportAgentState } from '../src/domain/agents.ts';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

describe('neutron quotas, tags, subnet pools, agents, notifications', () => {
  let n: NeutronFixture;
  let a: Project;
  before(async () => {
    n = await startNeutron();
    a = await n.project('qta');
  });
  after(() => n?.close());

  it('shows defaults, lets the admin set a quota, enforces it with 409 OverQuota and reports usage', async () => {
    const def = await a.reader.get(`/v2.0/quotas/${a.id}/default`);
    assert.equal(def.status, 200);
    assert.equal(def.body.quota.network, 100);
    assert.equal(def.body.quota.port, 500);
    assert.equal((await a.member.put(`/v2.0/quotas/${a.id}`, { quota: { network: 1 } })).status, 403);
    const set = await n.admin.put(`/v2.0/quotas/${a.id}`, { quota: { network: 1 } });
    assert.equal(set.status, 200, set.text);
    assert.equal(set.body.quota.network, 1);
    assert.equal((await a.member.post('/v2.0/networks', { network: { name: 'q1' } })).status, 201);
    const over = await a.member.post('/v2.0/networks', { network: { name: 'q2' } });
    assert.equal(over.status, 409);
    assert.equal(over.body.NeutronError.type, 'OverQuota');
    const details = await a.reader.get(`/v2.0/quotas/${a.id}/details`);
    assert.deepEqual(details.body.quota.network, { limit: 1, used: 1, reserved: 0 });
    const list = await n.admin.get('/v2.0/quotas');
    assert.ok(list.body.quotas.some((q: { project_id: string }) => q.project_id === a.id));
    assert.equal((await n.admin.delete(`/v2.0/quotas/${a.id}`)).status, 204);
    assert.equal((await a.reader.get(`/v2.0/quotas/${a.id}`)).body.quota.network, 100);
  });

  it('tags networks, filters by tags, and refuses another project', async () => {
    const net = (await a.member.post('/v2.0/networks', { network: { name: 'tagged' } })).body.network;
    const put = await a.member.put(`/v2.0/networks/${net.id}/tags`, { tags: ['red', 'blue'] });
    assert.equal(put.status, 200, put.text);
    assert.deepEqual(put.body.tags, ['blue', 'red']);
    assert.equal((await a.member.put(`/v2.0/networks/${net.id}/tags/green`)).status, 201);
    assert.deepEqual((await a.reader.get(`/v2.0/networks/${net.id}/tags`)).body.tags, ['blue', 'green', 'red']);
    assert.deepEqual((await a.reader.get(`/v2.0/networks/${net.id}`)).body.network.tags, ['blue', 'green', 'red']);
    const byTag = await a.reader.get('/v2.0/networks?tags=red,green');
    assert.deepEqual(byTag.body.networks.map((x: { id: string }) => x.id), [net.id]);
    assert.equal((await a.reader.get('/v2.0/networks?tags-any=nope')).body.networks.length, 0);
    assert.ok(!(await a.reader.get('/v2.0/networks?not-tags-any=red')).body.networks.some((x: { id: string }) => x.id === net.id));
    assert.equal((await a.member.delete(`/v2.0/networks/${net.id}/tags/green`)).status, 204);
    assert.equal((await a.member.delete(`/v2.0/networks/${net.id}/tags/green`)).status, 404);
    const other = await n.project('qtb');
    assert.equal((await other.member.put(`/v2.0/networks/${net.id}/tags/x`)).status, 404);
    assert.equal((await a.reader.put(`/v2.0/networks/${net.id}/tags/x`)).status, 403);
  });

  it('allocates subnets from a subnet pool by prefix length', async () => {
    const pool = await a.member.post('/v2.0/subnetpools', { subnetpool: { name: 'pool', prefixes: ['10.100.0.0/16'], default_prefixlen: 24 } });
    assert.equal(pool.status, 201, pool.text);
    assert.equal(pool.body.subnetpool.ip_version, 4);
    assert.equal(pool.body.subnetpool.address_scope_id, null);
    const net = (await n.admin.post('/v2.0/networks', { network: { name: 'pooled', project_id: a.id } })).body.network;
    const s1 = await a.member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, subnetpool_id: pool.body.subnetpool.id } });
    assert.equal(s1.status, 201, s1.text);
    assert.equal(s1.body.subnet.cidr, '10.100.0.0/24');
    const s2 = await a.member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, subnetpool_id: pool.body.subnetpool.id, prefixlen: 26 } });
    assert.equal(s2.status, 201, s2.text);
    assert.equal(s2.body.subnet.cidr, '10.100.1.0/26');
    const outside = await a.member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, subnetpool_id: pool.body.subnetpool.id, cidr: '192.168.0.0/24' } });
    assert.equal(outside.status, 400);
    assert.equal((await a.member.delete(`/v2.0/subnetpools/${pool.body.subnetpool.id}`)).status, 409);
  });

  it('lists agents to admins with alive from the heartbeat', async () => {
    await reportAgentState(n.database.db, { now: () => Date.now() }, { uuid: () => crypto.randomUUID(), hex: () => '' }, { agentType: 'Linux bridge agent', binary: 'neutron-linuxbridge-agent', topic: 'N/A', host: 'h1', startFlag: true });
    await reportAgentState(n.database.db, { now: () => Date.now() - 3600_000 }, { uuid: () => crypto.randomUUID(), hex: () => '' }, { agentType: 'DHCP agent', binary: 'neutron-dhcp-agent', topic: 'dhcp_agent', host: 'h1' });
    const res = await n.admin.get('/v2.0/agents');
    assert.equal(res.status, 200);
    const byType = Object.fromEntries(res.body.agents.map((x: { agent_type: string; alive: boolean }) => [x.agent_type, x.alive]));
    assert.deepEqual(byType, { 'DHCP agent': false, 'Linux bridge agent': true });
    assert.equal((await a.member.get('/v2.0/agents')).status, 403);
  });

  it('sends network.create.start/end and network.delete.end on the bus', async () => {
    const net = (await a.member.post('/v2.0/networks', { network: { name: 'notified' } })).body.network;
    await a.member.delete(`/v2.0/networks/${net.id}`);
    const seen = await n.eventually(
      async () => n.notifications.filter((x) => JSON.stringify(x.payload).includes(net.id) || (x.event_type === 'network.create.start' && JSON.stringify(x.payload).includes('notified'))).map((x) => x.event_type),
      (t) => t.includes('network.delete.end'),
    );
    assert.ok(seen.includes('network.create.start'), seen.join());
    assert.ok(seen.includes('network.create.end'));
    assert.ok(seen.includes('network.delete.end'));
  });
});
