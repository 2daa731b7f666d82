import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * The nova-network proxy APIs over the real Neutron: os-security-groups (and rules),
 * the server's groups and add/removeSecurityGroup, os-floating-ips with
 * add/removeFloatingIp, os-networks; served up to 2.35 (2.43 for the floating IP
 * actions), 404 after.
 */
describe('nova proxy APIs backed by Neutron', () => {
  let f: NovaFixture;
  let p: Project;
  let other: Project;
  let netId: string;
  let serverId: string;
  before(async () => {
    f = await startNova();
    await f.addCompute('px-h1');
    p = await f.project('proxy');
    other = await f.project('proxy-other');
    netId = (await p.net.post('/v2.0/networks', { network: { name: 'private' } })).body.network.id;
    const subnetId = (await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.4.0.0/24', ip_version: 4 } })).body.subnet.id;
    const pub = await f.neutronAdmin.post('/v2.0/networks', { network: { name: 'public', 'router:external': true } });
    assert.equal(pub.status, 201, pub.text);
    await f.neutronAdmin.post('/v2.0/subnets', { subnet: { network_id: pub.body.network.id, cidr: '203.0.113.0/24', ip_version: 4 } });
    const router = await p.net.post('/v2.0/routers', { router: { name: 'r', external_gateway_info: { network_id: pub.body.network.id } } });
    assert.equal(router.status, 201, router.text);
    await p.net.put(`/v2.0/routers/${router.body.router.id}/add_router_interface`, { subnet_id: subnetId });
    const s = await p.member.post('/v2.1/servers', { server: { name: 'px', imageRef: f.imageId, flavorRef: '1', networks: [{ uuid: netId }] } });
    assert.equal(s.status, 202, s.text);
    serverId = s.body.server.id;
    assert.equal((await f.waitFor(p.member, serverId)).status, 'ACTIVE');
  });
  after(() => f?.close());

  it('os-security-groups and rules: CRUD through Neutron, the default group undeletable, 404 from 2.36', async () => {
    const c = p.member.at('2.35');
    const list = await c.get('/v2.1/os-security-groups');
    assert.equal(list.status, 200, list.text);
    const dflt = list.body.security_groups.find((g: { name: string }) => g.name === 'default');
    assert.ok(dflt, JSON.stringify(list.body));
    assert.equal(dflt.tenant_id, p.id);

    assert.equal((await c.post('/v2.1/os-security-groups', { security_group: { name: 'web' } })).status, 400, 'description is required');
    const web = await c.post('/v2.1/os-security-groups', { security_group: { name: 'web', description: 'http' } });
    assert.equal(web.status, 200, web.text);
    assert.deepEqual(web.body.security_group.rules, [], 'egress rules are not shown');
    const webId = web.body.security_group.id;

    const rule = await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, ip_protocol: 'tcp', from_port: 80, to_port: 80, cidr: '10.0.0.0/8' } });
    assert.equal(rule.status, 200, rule.text);
    assert.deepEqual({ ...rule.body.security_group_rule, id: undefined }, { id: undefined, parent_group_id: webId, ip_protocol: 'tcp', from_port: 80, to_port: 80, group: {}, ip_range: { cidr: '10.0.0.0/8' } });
    const dup = await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, ip_protocol: 'tcp', from_port: 80, to_port: 80, cidr: '10.0.0.0/8' } });
    assert.equal(dup.status, 400);
    assert.equal(dup.body.badRequest.message, `This rule already exists in group ${webId}`);
    const bad = await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, ip_protocol: 'tcp', from_port: 90, to_port: 80 } });
    assert.equal(bad.body.badRequest.message, 'Invalid port range 90:80. Former value cannot be greater than the later');
    assert.equal((await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, ip_protocol: 'gre', from_port: 1, to_port: 2 } })).status, 400);
    assert.equal((await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, cidr: '10.0.0.1' } })).status, 400, 'a cidr needs its prefix');
    const fromGroup = await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId, ip_protocol: 'icmp', group_id: dflt.id } });
    assert.equal(fromGroup.status, 200, fromGroup.text);
    assert.deepEqual(fromGroup.body.security_group_rule.group, { name: 'default', tenant_id: p.id });
    assert.equal(fromGroup.body.security_group_rule.from_port, -1);
    assert.equal((await c.post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: randomUUID(), ip_protocol: 'tcp', from_port: 1, to_port: 2 } })).status, 404);

    const shown = await c.get(`/v2.1/os-security-groups/${webId}`);
    assert.equal(shown.body.security_group.rules.length, 2);
    assert.equal((await c.get('/v2.1/os-security-groups/not-a-uuid')).status, 400);
    assert.equal((await c.get(`/v2.1/os-security-groups/${randomUUID()}`)).status, 404);
    assert.equal((await other.member.at('2.35').get(`/v2.1/os-security-groups/${webId}`)).status, 404, "another project's group");
    const upd = await c.put(`/v2.1/os-security-groups/${webId}`, { security_group: { name: 'www', description: 'web' } });
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.body.security_group.name, 'www');

    const delRule = await c.delete(`/v2.1/os-security-group-rules/${rule.body.security_group_rule.id}`);
    assert.equal(delRule.status, 202);
    assert.equal((await c.delete(`/v2.1/os-security-group-rules/${rule.body.security_group_rule.id}`)).status, 404);
    assert.equal((await c.delete(`/v2.1/os-security-groups/${dflt.id}`)).status, 400, 'the default group stays');
    assert.equal((await p.reader.at('2.35').post('/v2.1/os-security-groups', { security_group: { name: 'r', description: '' } })).status, 403);

    assert.equal((await p.member.at('2.36').get('/v2.1/os-security-groups')).status, 404);
    assert.equal((await p.member.at('2.36').post('/v2.1/os-security-group-rules', { security_group_rule: { parent_group_id: webId } })).status, 404);
  });

  it("a server's security groups and add/removeSecurityGroup (at every microversion)", async () => {
    const names = async () => (await p.member.get(`/v2.1/servers/${serverId}/os-security-groups`)).body.security_groups.map((g: { name: string }) => g.name);
    assert.deepEqual(await names(), ['default']);
    const act = (body: unknown) => p.member.post(`/v2.1/servers/${serverId}/action`, body);
    assert.equal((await act({ addSecurityGroup: { name: 'www' } })).status, 202);
    assert.deepEqual(await names(), ['default', 'www']);
    const missing = await act({ addSecurityGroup: { name: 'nope' } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.itemNotFound.message, `Security group nope is not found for project ${p.id}`);
    assert.equal((await act({ addSecurityGroup: { name: ' ' } })).status, 400);
    assert.equal((await act({ removeSecurityGroup: { name: 'www' } })).status, 202);
    assert.deepEqual(await names(), ['default']);
    const again = await act({ removeSecurityGroup: { name: 'www' } });
    assert.equal(again.status, 404);
    assert.equal(again.body.itemNotFound.message, `Security group www not associated with the instance ${serverId}`);
    assert.equal((await other.member.get(`/v2.1/servers/${serverId}/os-security-groups`)).status, 404);
    assert.equal((await p.reader.post(`/v2.1/servers/${serverId}/action`, { addSecurityGroup: { name: 'www' } })).status, 403);
  });

  it('os-floating-ips: allocate from the default pool, associate to a server until 2.43, release', async () => {
    const c = p.member.at('2.35');
    assert.equal((await c.post('/v2.1/os-floating-ips', { pool: 'no-such-pool' })).status, 404);
    const a = await c.post('/v2.1/os-floating-ips', {});
    assert.equal(a.status, 200, a.text);
    const fip = a.body.floating_ip;
    assert.equal(fip.pool, 'public');
    assert.equal(fip.instance_id, null);
    assert.match(fip.ip, /^203\.0\.113\./);
    assert.deepEqual((await c.get('/v2.1/os-floating-ips')).body.floating_ips.map((x: { id: string }) => x.id), [fip.id]);
    assert.deepEqual((await other.member.at('2.35').get('/v2.1/os-floating-ips')).body.floating_ips, []);

    const add = await c.post(`/v2.1/servers/${serverId}/action`, { addFloatingIp: { address: fip.ip } });
    assert.equal(add.status, 202, add.text);
    const shown = (await c.get(`/v2.1/os-floating-ips/${fip.id}`)).body.floating_ip;
    assert.equal(shown.instance_id, serverId);
    assert.match(shown.fixed_ip, /^10\.4\.0\./);
    assert.equal((await c.post(`/v2.1/servers/${serverId}/action`, { addFloatingIp: { address: '198.51.100.7' } })).status, 404);
    assert.equal((await p.member.at('2.44').post(`/v2.1/servers/${serverId}/action`, { removeFloatingIp: { address: fip.ip } })).status, 404, 'gone from 2.44');
    assert.equal((await p.member.at('2.43').post(`/v2.1/servers/${serverId}/action`, { removeFloatingIp: { address: fip.ip } })).status, 202);
    const notHere = await c.post(`/v2.1/servers/${serverId}/action`, { removeFloatingIp: { address: fip.ip } });
    assert.equal(notHere.status, 409);
    assert.equal(notHere.body.conflictingRequest.message, `Floating IP ${fip.ip} is not associated with instance ${serverId}.`);

    assert.equal((await c.delete(`/v2.1/os-floating-ips/${fip.id}`)).status, 202);
    const gone = await c.get(`/v2.1/os-floating-ips/${fip.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.itemNotFound.message, `Floating IP not found for ID ${fip.id}`);
    assert.equal((await p.member.at('2.36').get('/v2.1/os-floating-ips')).status, 404);
    assert.deepEqual((await c.get('/v2.1/os-floating-ip-pools')).body.floating_ip_pools, [{ name: 'public' }]);
    assert.equal((await p.member.at('2.36').get('/v2.1/os-floating-ip-pools')).status, 404);
  });

  it('os-networks and os-tenant-networks: read-only until 2.35, writes are gone', async () => {
    const c = p.member.at('2.35');
    const list = await c.get('/v2.1/os-networks');
    assert.equal(list.status, 200, list.text);
    const mine = list.body.networks.find((n: { id: string }) => n.id === netId);
    assert.equal(mine.label, 'private');
    assert.equal(mine.cidr, null);
    assert.ok(!('project_id' in mine), 'admin fields for admins only');
    assert.equal((await c.get(`/v2.1/os-networks/${netId}`)).body.network.label, 'private');
    assert.equal((await c.get(`/v2.1/os-networks/${randomUUID()}`)).status, 404);
    assert.equal((await c.post('/v2.1/os-networks', { network: { label: 'x' } })).status, 410);
    assert.equal((await p.member.at('2.36').get('/v2.1/os-networks')).status, 404);
    const tenant = (await c.get(`/v2.1/os-tenant-networks/${netId}`)).body.network;
    assert.deepEqual(tenant, { id: netId, cidr: 'None', label: 'private' });
    assert.ok((await c.get('/v2.1/os-tenant-networks')).body.networks.some((n: { id: string }) => n.id === netId));
    assert.equal((await c.post('/v2.1/os-tenant-networks', { network: { label: 'x' } })).status, 410);
    assert.equal((await p.member.at('2.36').get('/v2.1/os-tenant-networks')).status, 404);
  });
});
