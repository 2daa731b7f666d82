import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

describe('neutron subnets, ports and IPAM', () => {
  let n: NeutronFixture;
  let a: Project;
  let b: Project;
  let net: { id: string };
  before(async () => {
    n = await startNeutron();
    a = await n.project('ipa');
    b = await n.project('ipb');
    net = (await a.member.post('/v2.0/networks', { network: { name: 'ipam' } })).body.network;
  });
  after(() => n?.close());

  it('creates a v4 subnet with gateway, default pool and a DHCP port holding the first address', async () => {
    const res = await a.member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.0.0.0/24', dns_nameservers: ['8.8.8.8'], host_routes: [{ destination: '10.1.0.0/16', nexthop: '10.0.0.254' }] } });
    assert.equal(res.status, 201, res.text);
    const s = res.body.subnet;
    assert.equal(s.gateway_ip, '10.0.0.1');
    assert.deepEqual(s.allocation_pools, [{ start: '10.0.0.2', end: '10.0.0.254' }]);
    assert.equal(s.enable_dhcp, true);
    assert.deepEqual(s.dns_nameservers, ['8.8.8.8']);
    assert.deepEqual(s.host_routes, [{ destination: '10.1.0.0/16', nexthop: '10.0.0.254' }]);
    const dhcp = await n.admin.get(`/v2.0/ports?network_id=${net.id}&device_owner=network:dhcp`);
    assert.equal(dhcp.body.ports.length, 1);
    assert.deepEqual(dhcp.body.ports[0].fixed_ips, [{ subnet_id: s.id, ip_address: '10.0.0.2' }]);
    const shown = await n.admin.get(`/v2.0/networks/${net.id}`);
    assert.deepEqual(shown.body.network.subnets, [s.id]);
  });

  it('refuses bad CIDRs, overlaps, gateways outside the subnet and bad pools', async () => {
    const bad = async (subnet: Record<string, unknown>, status: number, type?: string) => {
      const res = await a.member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, ...subnet } });
      assert.equal(res.status, status, `${JSON.stringify(subnet)} → ${res.text}`);
      if (type) assert.equal(res.body.NeutronError.type, type);
    };
    await bad({ cidr: '10.9.0.1/24' }, 400);
    await bad({ cidr: 'banana' }, 400);
    await bad({ cidr: '10.0.0.128/25' }, 400, 'InvalidInput');
    await bad({ cidr: '10.5.0.0/24', gateway_ip: '10.6.0.1' }, 400, 'InvalidInput');
    await bad({ cidr: '10.5.0.0/24', allocation_pools: [{ start: '10.5.0.20', end: '10.5.0.10' }] }, 400, 'InvalidAllocationPool');
    await bad({ cidr: '10.5.0.0/24', allocation_pools: [{ start: '10.5.0.20', end: '10.5.1.10' }] }, 400, 'OutOfBoundsAllocationPool');
    await bad({ cidr: '10.5.0.0/24', allocation_pools: [{ start: '10.5.0.1', end: '10.5.0.10' }] }, 409, 'GatewayConflictWithAllocationPools');
    await bad({ cidr: '2001:db8::/64' }, 400, 'InvalidInput');
  });

  it('allocates fixed IPs by subnet and by address, 409 for an address in use, releases on delete', async () => {
    const subnet = (await a.member.get(`/v2.0/subnets?network_id=${net.id}`)).body.subnets[0];
    const p1 = await a.member.post('/v2.0/ports', { port: { network_id: net.id, name: 'p1' } });
    assert.equal(p1.status, 201, p1.text);
    assert.match(p1.body.port.mac_address, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
    assert.equal(p1.body.port.status, 'DOWN');
    assert.equal(p1.body.port.fixed_ips[0].ip_address, '10.0.0.3');
    assert.ok(!('binding:vif_type' in p1.body.port));
    const p2 = await a.member.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ subnet_id: subnet.id, ip_address: '10.0.0.50' }] } });
    assert.equal(p2.status, 201, p2.text);
    const dup = await a.member.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ ip_address: '10.0.0.50' }] } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.NeutronError.type, 'IpAddressAlreadyAllocated');
    const outside = await a.member.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ ip_address: '192.168.9.9' }] } });
    assert.equal(outside.status, 400);
    assert.equal((await a.member.delete(`/v2.0/ports/${p2.body.port.id}`)).status, 204);
    const reuse = await a.member.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ ip_address: '10.0.0.50' }] } });
    assert.equal(reuse.status, 201, reuse.text);
    const moved = await a.member.put(`/v2.0/ports/${reuse.body.port.id}`, { port: { fixed_ips: [{ subnet_id: subnet.id, ip_address: '10.0.0.60' }] } });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual(moved.body.port.fixed_ips.map((f: { ip_address: string }) => f.ip_address), ['10.0.0.60']);
    const again = await a.member.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ ip_address: '10.0.0.50' }] } });
    assert.equal(again.status, 201, again.text);
  });

  it('never hands out one address twice under concurrency and answers IpAddressGenerationFailure when exhausted', async () => {
    const small = (await a.member.post('/v2.0/networks', { network: { name: 'small' } })).body.network;
    await a.member.post('/v2.0/subnets', { subnet: { network_id: small.id, ip_version: 4, cidr: '192.168.7.0/29', enable_dhcp: false } });
    const results = await Promise.all(Array.from({ length: 7 }, () => a.member.post('/v2.0/ports', { port: { network_id: small.id } })));
    const ok = results.filter((r) => r.status === 201);
    assert.equal(ok.length, 5, results.map((r) => r.status).join(','));
    const ips = ok.map((r) => r.body.port.fixed_ips[0].ip_address);
    assert.equal(new Set(ips).size, 5);
    for (const r of results.filter((x) => x.status !== 201)) {
      assert.equal(r.status, 409);
      assert.equal(r.body.NeutronError.type, 'IpAddressGenerationFailure');
    }
    const del = await a.member.delete(`/v2.0/networks/${small.id}`);
    assert.equal(del.status, 409);
    assert.equal(del.body.NeutronError.type, 'NetworkInUse');
  });

  it('gives SLAAC ports their EUI-64 address and validates IPv6 modes', async () => {
    const v6net = (await a.member.post('/v2.0/networks', { network: { name: 'v6' } })).body.network;
    const bad = await a.member.post('/v2.0/subnets', { subnet: { network_id: v6net.id, ip_version: 6, cidr: '2001:db8:1::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'dhcpv6-stateful' } });
    assert.equal(bad.status, 400);
    const bad2 = await a.member.post('/v2.0/subnets', { subnet: { network_id: v6net.id, ip_version: 6, cidr: '2001:db8:1::/80', ipv6_address_mode: 'slaac' } });
    assert.equal(bad2.status, 400);
    const s = await a.member.post('/v2.0/subnets', { subnet: { network_id: v6net.id, ip_version: 6, cidr: '2001:db8:1::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' } });
    assert.equal(s.status, 201, s.text);
    assert.equal(s.body.subnet.gateway_ip, '2001:db8:1::1');
    const port = await a.member.post('/v2.0/ports', { port: { network_id: v6net.id, mac_address: 'fa:16:3e:11:22:33' } });
    assert.equal(port.status, 201, port.text);
    assert.equal(port.body.port.fixed_ips[0].ip_address, '2001:db8:1:0:f816:3eff:fe11:2233');
    const stateful = await a.member.post('/v2.0/subnets', { subnet: { network_id: v6net.id, ip_version: 6, cidr: '2001:db8:2::/64', ipv6_address_mode: 'dhcpv6-stateful' } });
    assert.equal(stateful.status, 201, stateful.text);
  });

  it('sets bindings for admins (linuxbridge: vif_type bridge) and hides them from members', async () => {
    const p = await n.admin.post('/v2.0/ports', { port: { network_id: net.id, 'binding:host_id': 'compute1', device_owner: 'compute:nova', device_id: 'vm1' } });
    assert.equal(p.status, 201, p.text);
    assert.equal(p.body.port['binding:vif_type'], 'bridge');
    assert.deepEqual(p.body.port['binding:vif_details'], { port_filter: true, connectivity: 'l2' });
    const member = await a.member.post('/v2.0/ports', { port: { network_id: net.id, 'binding:host_id': 'compute1' } });
    assert.equal(member.status, 403);
    const mac = await a.member.post('/v2.0/ports', { port: { network_id: net.id, mac_address: p.body.port.mac_address } });
    assert.equal(mac.status, 409);
    assert.equal(mac.body.NeutronError.type, 'MacAddressInUse');
  });

  it('keeps other projects out: their subnets and ports are 404, a port on a foreign private network is 404', async () => {
    const subnet = (await a.member.get(`/v2.0/subnets?network_id=${net.id}`)).body.subnets[0];
    assert.equal((await b.member.get(`/v2.0/subnets/${subnet.id}`)).status, 404);
    assert.equal((await b.member.post('/v2.0/ports', { port: { network_id: net.id } })).status, 404);
    assert.equal((await b.member.get(`/v2.0/ports?network_id=${net.id}`)).body.ports.length, 0);
  });

  it('deletes a subnet in use with 409 SubnetInUse, and a network with only its DHCP port', async () => {
    const solo = (await a.member.post('/v2.0/networks', { network: { name: 'solo' } })).body.network;
    const s = (await a.member.post('/v2.0/subnets', { subnet: { network_id: solo.id, ip_version: 4, cidr: '172.16.0.0/24' } })).body.subnet;
    const port = (await a.member.post('/v2.0/ports', { port: { network_id: solo.id } })).body.port;
    const inUse = await a.member.delete(`/v2.0/subnets/${s.id}`);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.NeutronError.type, 'SubnetInUse');
    await a.member.delete(`/v2.0/ports/${port.id}`);
    assert.equal((await a.member.delete(`/v2.0/networks/${solo.id}`)).status, 204);
    assert.equal((await n.admin.get(`/v2.0/ports?network_id=${solo.id}`)).body.ports.length, 0);
  });
});
