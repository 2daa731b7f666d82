import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sharedCloud, type Cloud } from './cloud.ts';

/**
 * More of the unmodified openstack CLI against Neutron in `onestack up`:
 * security groups and rules, set/unset of networks, ports and subnets,
 * subnet pools, network RBAC and quotas.
 */
describe('openstack CLI against Neutron (more)', () => {
  let c: Cloud;
  before(async () => {
    c = await sharedCloud('neutron-cli-more');
  });
  after(() => c?.stop());

  it('security groups: create, list, show, set, rules (tcp 22, icmp, remote group), list --long, delete', async () => {
    const sg = await c.os('onestack-demo', 'security', 'group', 'create', '--description', 'e2e', 'e2e-sg');
    assert.equal(sg.name, 'e2e-sg');
    const listed = await c.os('onestack-demo', 'security', 'group', 'list');
    assert.ok(listed.some((g: { ID: string }) => g.ID === sg.id));
    await c.osRaw('onestack-demo', 'security', 'group', 'set', '--name', 'e2e-sg2', '--description', 'changed', sg.id);
    const shown = await c.os('onestack-demo', 'security', 'group', 'show', sg.id);
    assert.equal(shown.name, 'e2e-sg2');
    assert.equal(shown.description, 'changed');

    const ssh = await c.os('onestack-demo', 'security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', '--remote-ip', '0.0.0.0/0', sg.id);
    assert.equal(ssh.protocol, 'tcp');
    assert.equal(ssh.port_range_min, 22);
    assert.equal(ssh.port_range_max, 22);
    const icmp = await c.os('onestack-demo', 'security', 'group', 'rule', 'create', '--protocol', 'icmp', sg.id);
    assert.equal(icmp.protocol, 'icmp');
    const fromGroup = await c.os('onestack-demo', 'security', 'group', 'rule', 'create', '--remote-group', sg.id, '--ingress', sg.id);
    assert.equal(fromGroup.remote_group_id, sg.id);
    const long = await c.os('onestack-demo', 'security', 'group', 'rule', 'list', '--long', sg.id);
    const ids = long.map((r: { ID: string }) => r.ID);
    for (const r of [ssh, icmp, fromGroup]) assert.ok(ids.includes(r.id), r.id);
    const sshRow = long.find((r: { ID: string }) => r.ID === ssh.id);
    assert.equal(sshRow.Direction, 'ingress');
    await c.osRaw('onestack-demo', 'security', 'group', 'rule', 'delete', icmp.id);
    const after = (await c.os('onestack-demo', 'security', 'group', 'rule', 'list', sg.id)).map((r: { ID: string }) => r.ID);
    assert.ok(!after.includes(icmp.id));
    await c.osRaw('onestack-demo', 'security', 'group', 'delete', sg.id);
    assert.ok(!(await c.os('onestack-demo', 'security', 'group', 'list')).some((g: { ID: string }) => g.ID === sg.id));
  });

  it('network set --share/--no-share, unset --tag; port unset --fixed-ip/--security-group; subnet set/unset', async () => {
    const net = await c.os('onestack', 'network', 'create', '--tag', 'red', '--tag', 'blue', 'e2e-set');
    await c.osRaw('onestack', 'network', 'set', '--share', net.id);
    assert.equal((await c.os('onestack', 'network', 'show', net.id)).shared, true);
    await c.osRaw('onestack', 'network', 'set', '--no-share', net.id);
    assert.equal((await c.os('onestack', 'network', 'show', net.id)).shared, false);
    await c.osRaw('onestack', 'network', 'unset', '--tag', 'red', net.id);
    assert.deepEqual((await c.os('onestack', 'network', 'show', net.id)).tags, ['blue']);

    const sub = await c.os('onestack', 'subnet', 'create', '--network', net.id, '--subnet-range', '10.30.0.0/24', '--allocation-pool', 'start=10.30.0.10,end=10.30.0.20', 'e2e-set-v4');
    await c.osRaw('onestack', 'subnet', 'set', '--dns-nameserver', '10.30.0.53', '--allocation-pool', 'start=10.30.0.100,end=10.30.0.110', sub.id);
    let s = await c.os('onestack', 'subnet', 'show', sub.id);
    assert.deepEqual(s.dns_nameservers, ['10.30.0.53']);
    assert.equal(s.allocation_pools.length, 2);
    await c.osRaw('onestack', 'subnet', 'unset', '--dns-nameserver', '10.30.0.53', '--allocation-pool', 'start=10.30.0.100,end=10.30.0.110', sub.id);
    s = await c.os('onestack', 'subnet', 'show', sub.id);
    assert.deepEqual(s.dns_nameservers, []);
    assert.deepEqual(s.allocation_pools, [{ start: '10.30.0.10', end: '10.30.0.20' }]);

    const sg = await c.os('onestack', 'security', 'group', 'create', 'e2e-port-sg');
    const port = await c.os('onestack', 'port', 'create', '--network', net.id, '--fixed-ip', `subnet=${sub.id},ip-address=10.30.0.11`, '--fixed-ip', `subnet=${sub.id},ip-address=10.30.0.12`, '--security-group', sg.id, 'e2e-unset');
    assert.equal(port.fixed_ips.length, 2);
    await c.osRaw('onestack', 'port', 'unset', '--fixed-ip', `subnet=${sub.id},ip-address=10.30.0.12`, '--security-group', sg.id, port.id);
    const p = await c.os('onestack', 'port', 'show', port.id);
    assert.deepEqual(p.fixed_ips.map((f: { ip_address: string }) => f.ip_address), ['10.30.0.11']);
    assert.ok(!p.security_group_ids.includes(sg.id));
    await c.osRaw('onestack', 'port', 'delete', port.id);
    await c.osRaw('onestack', 'security', 'group', 'delete', sg.id);
    await c.osRaw('onestack', 'network', 'delete', net.id);
  });

  it('subnet pool set and delete', async () => {
    const pool = await c.os('onestack-demo', 'subnet', 'pool', 'create', '--pool-prefix', '10.210.0.0/16', '--default-prefix-length', '24', 'e2e-pool2');
    await c.osRaw('onestack-demo', 'subnet', 'pool', 'set', '--name', 'e2e-pool3', '--pool-prefix', '10.211.0.0/16', pool.id);
    const shown = await c.os('onestack-demo', 'subnet', 'pool', 'show', pool.id);
    assert.equal(shown.name, 'e2e-pool3');
    assert.deepEqual([...shown.prefixes].sort(), ['10.210.0.0/16', '10.211.0.0/16']);
    await c.osRaw('onestack-demo', 'subnet', 'pool', 'delete', pool.id);
    assert.ok(!(await c.os('onestack-demo', 'subnet', 'pool', 'list')).some((x: { ID: string }) => x.ID === pool.id));
  });

  it('network rbac create, list, show, delete: the target project sees the network', async () => {
    const demo = await c.os('onestack', 'project', 'show', c.project);
    const net = await c.os('onestack', 'network', 'create', 'e2e-rbac');
    assert.ok(!(await c.os('onestack-demo', 'network', 'list')).some((n: { ID: string }) => n.ID === net.id));
    const rbac = await c.os('onestack', 'network', 'rbac', 'create', '--type', 'network', '--action', 'access_as_shared', '--target-project', demo.id, net.id);
    assert.equal(rbac.object_id, net.id);
    assert.equal(rbac.target_project_id, demo.id);
    const list = await c.os('onestack', 'network', 'rbac', 'list');
    assert.ok(list.some((r: { ID: string }) => r.ID === rbac.id));
    const shown = await c.os('onestack', 'network', 'rbac', 'show', rbac.id);
    assert.equal(shown.action, 'access_as_shared');
    assert.ok((await c.os('onestack-demo', 'network', 'list')).some((n: { ID: string }) => n.ID === net.id));
    await c.osRaw('onestack', 'network', 'rbac', 'delete', rbac.id);
    assert.ok(!(await c.os('onestack-demo', 'network', 'list')).some((n: { ID: string }) => n.ID === net.id));
    await c.osRaw('onestack', 'network', 'delete', net.id);
  });

  it('quota set --networks, then quota list --network --detail', async () => {
    await c.osRaw('onestack', 'quota', 'set', '--networks', '7', c.project);
    const quota = await c.os('onestack', 'quota', 'list', '--network', '--detail', '--project', c.project);
    const networks = quota.find((r: { Resource: string }) => r.Resource === 'networks');
    assert.equal(networks.Limit, 7);
  });
});
