import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sharedCloud, type Cloud } from './cloud.ts';

/** The unmodified openstack CLI against Neutron's L3 API: routers (gateway, interfaces, routes) and floating IPs. */
describe('openstack CLI against Neutron routers and floating IPs', () => {
  let c: Cloud;
  before(async () => {
    c = await sharedCloud('neutron-l3-cli');
  });
  after(() => c?.stop());

  it('creates a router with a gateway, adds a subnet and a route, associates a floating IP, and tears it all down', async () => {
    const ext = await c.os('onestack', 'network', 'create', '--external', 'e2e-l3-ext');
    assert.equal(ext['router:external'] ?? ext.router_external, true);
    const extSub = await c.os('onestack', 'subnet', 'create', '--network', ext.id, '--subnet-range', '192.0.2.0/24', '--no-dhcp', 'e2e-l3-ext-sub');
    const net = await c.os('onestack-demo', 'network', 'create', 'e2e-l3-net');
    const sub = await c.os('onestack-demo', 'subnet', 'create', '--network', net.id, '--subnet-range', '10.30.0.0/24', 'e2e-l3-sub');

    const router = await c.os('onestack-demo', 'router', 'create', 'e2e-router');
    assert.equal(router.name, 'e2e-router');
    await c.osRaw('onestack-demo', 'router', 'set', '--external-gateway', ext.id, router.id);
    await c.osRaw('onestack-demo', 'router', 'add', 'subnet', router.id, sub.id);
    await c.osRaw('onestack-demo', 'router', 'add', 'route', '--route', 'destination=172.31.0.0/16,gateway=10.30.0.99', router.id);
    const shown = await c.os('onestack-demo', 'router', 'show', router.id);
    const gw = typeof shown.external_gateway_info === 'string' ? JSON.parse(shown.external_gateway_info) : shown.external_gateway_info;
    assert.equal(gw.network_id, ext.id);
    assert.equal(gw.enable_snat, true);
    assert.equal(gw.external_fixed_ips[0].subnet_id, extSub.id);
    assert.match(JSON.stringify(shown.routes), /172\.31\.0\.0\/16/);
    assert.match(JSON.stringify(shown.interfaces_info ?? []), /10\.30\.0\.1/);
    assert.ok((await c.os('onestack-demo', 'router', 'list')).some((r: { ID: string }) => r.ID === router.id));

    const port = await c.os('onestack-demo', 'port', 'create', '--network', net.id, '--device-owner', 'compute:nova', 'e2e-l3-vm');
    const fip = await c.os('onestack-demo', 'floating', 'ip', 'create', ext.id);
    assert.match(fip.floating_ip_address, /^192\.0\.2\./);
    await c.osRaw('onestack-demo', 'floating', 'ip', 'set', '--port', port.id, fip.id);
    const bound = await c.os('onestack-demo', 'floating', 'ip', 'show', fip.id);
    assert.equal(bound.port_id, port.id);
    assert.equal(bound.router_id, router.id);
    assert.equal(bound.fixed_ip_address, port.fixed_ips[0]?.ip_address ?? JSON.parse(port.fixed_ips)[0].ip_address);
    const listed = await c.os('onestack-demo', 'floating', 'ip', 'list', '--port', port.id);
    assert.deepEqual(listed.map((f: { ID: string }) => f.ID), [fip.id]);
    await c.osRaw('onestack-demo', 'floating', 'ip', 'unset', '--port', fip.id);
    assert.equal((await c.os('onestack-demo', 'floating', 'ip', 'show', fip.id)).port_id, null);
    await c.osRaw('onestack-demo', 'floating', 'ip', 'delete', fip.id);

    await assert.rejects(c.osRaw('onestack-demo', 'router', 'delete', router.id), /in use|still attached|RouterInUse|409/i);
    await c.osRaw('onestack-demo', 'router', 'remove', 'route', '--route', 'destination=172.31.0.0/16,gateway=10.30.0.99', router.id);
    await c.osRaw('onestack-demo', 'router', 'remove', 'subnet', router.id, sub.id);
    await c.osRaw('onestack-demo', 'router', 'delete', router.id);
    await c.osRaw('onestack-demo', 'port', 'delete', port.id);
    await c.osRaw('onestack-demo', 'network', 'delete', net.id);
    await c.osRaw('onestack', 'network', 'delete', ext.id);
  });
});
