import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

describe('neutron rbac-policies', () => {
  let n: NeutronFixture;
  let owner: Project;
  let guest: Project;
  let third: Project;
  before(async () => {
    n = await startNeutron();
    owner = await n.project('rbown');
    guest = await n.project('rbguest');
    third = await n.project('rbthird');
  });
  after(() => n?.close());

  const newNet = async (name: string) => {
    const net = (await owner.member.post('/v2.0/networks', { network: { name } })).body.network;
    const sub = await owner.member.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.9.0.0/24', ip_version: 4 } });
    assert.equal(sub.status, 201, sub.text);
    return { net, subnet: sub.body.subnet };
  };
  const share = (netId: string, target: string, who = owner.member) =>
    who.post('/v2.0/rbac-policies', { rbac_policy: { object_type: 'network', object_id: netId, action: 'access_as_shared', target_tenant: target } });

  it('is advertised as an extension', async () => {
    const ext = await owner.reader.get('/v2.0/extensions/rbac-policies');
    assert.equal(ext.status, 200, ext.text);
  });

  it('shares a network with one project: it sees the network and subnet and creates a port; a third project does not', async () => {
    const { net, subnet } = await newNet('rb1');
    const created = await share(net.id, guest.id);
    assert.equal(created.status, 201, created.text);
    const p = created.body.rbac_policy;
    assert.equal(p.object_type, 'network');
    assert.equal(p.object_id, net.id);
    assert.equal(p.action, 'access_as_shared');
    assert.equal(p.target_tenant, guest.id);
    assert.equal(p.target_project, guest.id);
    assert.equal(p.project_id, owner.id);

    const seen = await guest.reader.get(`/v2.0/networks/${net.id}`);
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.body.network.shared, true);
    assert.ok((await guest.reader.get('/v2.0/networks')).body.networks.some((x: { id: string }) => x.id === net.id));
    assert.equal((await guest.reader.get(`/v2.0/subnets/${subnet.id}`)).status, 200);
    const port = await guest.member.post('/v2.0/ports', { port: { network_id: net.id } });
    assert.equal(port.status, 201, port.text);
    assert.equal(port.body.port.fixed_ips[0].subnet_id, subnet.id);

    assert.equal((await third.reader.get(`/v2.0/networks/${net.id}`)).status, 404);
    assert.ok(!(await third.reader.get('/v2.0/networks')).body.networks.some((x: { id: string }) => x.id === net.id));
    assert.equal((await third.member.post('/v2.0/ports', { port: { network_id: net.id } })).status, 404);
    // The owner's own view is unchanged: shared with one project is not `shared`.
    assert.equal((await owner.reader.get(`/v2.0/networks/${net.id}`)).body.network.shared, false);

    // Only the creator (and admins) see the policy.
    assert.equal((await owner.reader.get(`/v2.0/rbac-policies/${p.id}`)).status, 200);
    assert.equal((await guest.reader.get(`/v2.0/rbac-policies/${p.id}`)).status, 404);
    assert.equal((await n.admin.get(`/v2.0/rbac-policies/${p.id}`)).status, 200);
    const listed = await owner.reader.get(`/v2.0/rbac-policies?object_id=${net.id}&target_tenant=${guest.id}`);
    assert.deepEqual(listed.body.rbac_policies.map((x: { id: string }) => x.id), [p.id]);

    // The guest still has a port: the policy cannot go (409 RbacPolicyInUse) until the port does.
    const inUse = await owner.member.delete(`/v2.0/rbac-policies/${p.id}`);
    assert.equal(inUse.status, 409, inUse.text);
    assert.equal(inUse.body.NeutronError.type, 'RbacPolicyInUse');
    const retarget = await owner.member.put(`/v2.0/rbac-policies/${p.id}`, { rbac_policy: { target_tenant: third.id } });
    assert.equal(retarget.status, 409);
    assert.equal(retarget.body.NeutronError.type, 'RbacPolicyInUse');
    assert.equal((await guest.member.delete(`/v2.0/ports/${port.body.port.id}`)).status, 204);

    const moved = await owner.member.put(`/v2.0/rbac-policies/${p.id}`, { rbac_policy: { target_tenant: third.id } });
    assert.equal(moved.status, 200, moved.text);
    assert.equal(moved.body.rbac_policy.target_tenant, third.id);
    assert.equal((await third.reader.get(`/v2.0/networks/${net.id}`)).status, 200);
    assert.equal((await guest.reader.get(`/v2.0/networks/${net.id}`)).status, 404);
    assert.equal((await owner.member.delete(`/v2.0/rbac-policies/${p.id}`)).status, 204);
    assert.equal((await third.reader.get(`/v2.0/networks/${net.id}`)).status, 404);
  });

  it('refuses duplicates (409), strangers (404/400), a wildcard from a member (403) and bad actions (400)', async () => {
    const { net } = await newNet('rb2');
    assert.equal((await share(net.id, guest.id)).status, 201);
    const dup = await share(net.id, guest.id);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.NeutronError.type, 'DuplicateRbacPolicy');
    // Not visible to the third project: the network is not found.
    assert.equal((await share(net.id, third.id, third.member)).status, 404);
    // Visible to the guest (shared to it) but not its own: only admins manipulate others' networks.
    const notOwner = await share(net.id, third.id, guest.member);
    assert.equal(notOwner.status, 400);
    assert.equal(notOwner.body.NeutronError.type, 'InvalidInput');
    const wildcard = await share(net.id, '*');
    assert.equal(wildcard.status, 403);
    assert.equal(wildcard.body.NeutronError.type, 'PolicyNotAuthorized');
    const badAction = await owner.member.post('/v2.0/rbac-policies', { rbac_policy: { object_type: 'network', object_id: net.id, action: 'access_as_owner', target_tenant: guest.id } });
    assert.equal(badAction.status, 400);
    assert.equal(badAction.body.NeutronError.type, 'InvalidActionForType');
    const badType = await owner.member.post('/v2.0/rbac-policies', { rbac_policy: { object_type: 'qos_policy', object_id: net.id, action: 'access_as_shared', target_tenant: guest.id } });
    assert.equal(badType.status, 400);
  });

  it('an admin wildcard entry is `shared`; `shared=false` removes it; deleting it while others have ports is 409', async () => {
    const { net } = await newNet('rb3');
    const wild = await share(net.id, '*', n.admin);
    assert.equal(wild.status, 201, wild.text);
    assert.equal((await owner.reader.get(`/v2.0/networks/${net.id}`)).body.network.shared, true);
    assert.equal((await third.reader.get(`/v2.0/networks/${net.id}`)).status, 200);
    const port = await third.member.post('/v2.0/ports', { port: { network_id: net.id } });
    assert.equal(port.status, 201, port.text);
    const inUse = await n.admin.delete(`/v2.0/rbac-policies/${wild.body.rbac_policy.id}`);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.NeutronError.type, 'RbacPolicyInUse');
    // A specific entry for the port's project keeps its access: now the wildcard can go.
    assert.equal((await share(net.id, third.id)).status, 201);
    assert.equal((await n.admin.delete(`/v2.0/rbac-policies/${wild.body.rbac_policy.id}`)).status, 204);
    assert.equal((await owner.reader.get(`/v2.0/networks/${net.id}`)).body.network.shared, false);
    assert.equal((await guest.reader.get(`/v2.0/networks/${net.id}`)).status, 404);
    assert.equal((await third.reader.get(`/v2.0/networks/${net.id}`)).status, 200);
    // shared=true through the network API writes the wildcard entry the RBAC API shows.
    assert.equal((await n.admin.put(`/v2.0/networks/${net.id}`, { network: { shared: true } })).status, 200);
    const entries = (await n.admin.get(`/v2.0/rbac-policies?object_id=${net.id}&target_tenant=*`)).body.rbac_policies;
    assert.equal(entries.length, 1);
  });

  it('counts against the rbac_policy quota', async () => {
    const { net } = await newNet('rb4');
    assert.equal((await n.admin.put(`/v2.0/quotas/${owner.id}`, { quota: { rbac_policy: 0 } })).status, 200);
    try {
      const over = await share(net.id, third.id);
      assert.equal(over.status, 409);
      assert.equal(over.body.NeutronError.type, 'OverQuota');
    } finally {
      await n.admin.delete(`/v2.0/quotas/${owner.id}`);
    }
  });
});
