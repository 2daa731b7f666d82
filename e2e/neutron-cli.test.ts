import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sharedCloud, type Cloud } from './cloud.ts';

/** The unmodified openstack CLI against Neutron in `onestack up`: networks, subnets, ports, subnet pools, quotas, agents. */
describe('openstack CLI against Neutron', () => {
  let c: Cloud;
  before(async () => {
    c = await sharedCloud('neutron-cli');
  });
  after(() => c?.stop());

  it('creates, lists, shows, sets and deletes networks', async () => {
    const net = await c.os('onestack-demo', 'network', 'create', '--description', 'e2e', 'e2e-net');
    assert.equal(net.name, 'e2e-net');
    assert.equal(net.status, 'ACTIVE');
    assert.equal(net.mtu, 1450);
    const list = await c.os('onestack-demo', 'network', 'list', '--name', 'e2e-net');
    assert.deepEqual(list.map((n: { ID: string }) => n.ID), [net.id]);
    await c.osRaw('onestack-demo', 'network', 'set', '--name', 'e2e-net2', '--tag', 'blue', net.id);
    const shown = await c.os('onestack-demo', 'network', 'show', net.id);
    assert.equal(shown.name, 'e2e-net2');
    assert.deepEqual(shown.tags, ['blue']);
    const adminView = await c.os('onestack', 'network', 'show', net.id);
    assert.equal(adminView['provider:network_type'] ?? adminView.provider_network_type, 'vxlan');
    await c.osRaw('onestack-demo', 'network', 'delete', net.id);
    assert.equal((await c.os('onestack-demo', 'network', 'list', '--name', 'e2e-net2')).length, 0);
  });

  it('creates v4 and v6 subnets and ports, sets and deletes a port', async () => {
    const net = await c.os('onestack-demo', 'network', 'create', 'e2e-ports');
    const v4 = await c.os('onestack-demo', 'subnet', 'create', '--network', net.id, '--subnet-range', '10.20.0.0/24', '--dns-nameserver', '10.20.0.53', 'v4');
    assert.equal(v4.gateway_ip, '10.20.0.1');
    const v6 = await c.os('onestack-demo', 'subnet', 'create', '--network', net.id, '--ip-version', '6', '--subnet-range', '2001:db8:20::/64', '--ipv6-ra-mode', 'slaac', '--ipv6-address-mode', 'slaac', 'v6');
    assert.equal(v6.ipv6_address_mode, 'slaac');
    const port = await c.os('onestack-demo', 'port', 'create', '--network', net.id, '--fixed-ip', `subnet=${v4.id},ip-address=10.20.0.10`, 'e2e-port');
    const ips = JSON.stringify(port.fixed_ips);
    assert.match(ips, /10\.20\.0\.10/);
    assert.match(ips, /2001:db8:20:0:f816:3eff/);
    const ports = await c.os('onestack-demo', 'port', 'list', '--network', net.id);
    assert.ok(ports.some((p: { ID: string }) => p.ID === port.id));
    await c.osRaw('onestack-demo', 'port', 'set', '--name', 'renamed', port.id);
    assert.equal((await c.os('onestack-demo', 'port', 'show', port.id)).name, 'renamed');
    await c.osRaw('onestack-demo', 'port', 'delete', port.id);
    await c.osRaw('onestack-demo', 'network', 'delete', net.id);
  });

  it('creates a subnet pool, shows network quotas and lists agents', async () => {
    const pool = await c.os('onestack-demo', 'subnet', 'pool', 'create', '--pool-prefix', '10.200.0.0/16', '--default-prefix-length', '24', 'e2e-pool');
    assert.deepEqual(pool.prefixes, ['10.200.0.0/16']);
    // This client's `quota show` needs a compute endpoint; `quota list --network --detail` asks Neutron alone.
    const quota = await c.os('onestack', 'quota', 'list', '--network', '--detail', '--project', c.project);
    const networks = quota.find((r: { Resource: string }) => r.Resource === 'networks');
    assert.equal(networks.Limit, 100);
    const agents = await c.os('onestack', 'network', 'agent', 'list');
    assert.ok(Array.isArray(agents));
  });
});
