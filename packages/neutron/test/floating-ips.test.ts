import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { l3Services } from '../src/api/router-routes.ts';
import { routerStates } from '../src/domain/router-states.ts';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';
import { assertError, createRouter, externalNetwork, tenantNetwork } from './l3-helpers.ts';

describe('neutron floating IPs', () => {
  let n: NeutronFixture;
  let p: Project;
  let other: Project;
  let ext: { net: any; subnet: any };
  let t: { net: any; subnet: any };
  let router: any;
  const changed: string[][] = [];
  before(async () => {
    n = await startNeutron();
    p = await n.project('fipp');
    other = await n.project('fipo');
    ext = await externalNetwork(n, '198.51.100.0/24');
    t = await tenantNetwork(p.member, '10.10.0.0/24');
    router = await createRouter(p.member, { external_gateway_info: { network_id: ext.net.id } });
    const add = await p.member.put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: t.subnet.id });
    assert.equal(add.status, 200, add.text);
    l3Services.get(n.deps)!.routers.changed.push((ids) => changed.push(ids));
  });
  after(() => n?.close());

  const vmPort = async (c = p.member, net = t.net.id) => {
    const res = await c.post('/v2.0/ports', { port: { network_id: net, device_owner: 'compute:nova', device_id: 'vm-1' } });
    assert.equal(res.status, 201, res.text);
    return res.body.port;
  };
  const createFip = async (body: Record<string, unknown> = {}, c = p.member) => {
    const res = await c.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, ...body } });
    assert.equal(res.status, 201, res.text);
    return res.body.floatingip;
  };

  it('allocates an address on the external network held by a floatingip port, DOWN while unassociated', async () => {
    const f = await createFip({ description: 'web' });
    assert.equal(f.floating_network_id, ext.net.id);
    assert.match(f.floating_ip_address, /^198\.51\.100\.\d+$/);
    assert.equal(f.status, 'DOWN');
    assert.equal(f.port_id, null);
    assert.equal(f.fixed_ip_address, null);
    assert.equal(f.router_id, null);
    assert.equal(f.port_details, null);
    assert.equal(f.description, 'web');
    assert.equal(f.dns_name, '');
    assert.equal(f.dns_domain, '');
    assert.equal(f.qos_policy_id, null);
    assert.deepEqual(f.tags, []);
    assert.equal(f.project_id, p.id);
    const ports = (await n.admin.get(`/v2.0/ports?device_id=${f.id}`)).body.ports;
    assert.equal(ports.length, 1);
    assert.equal(ports[0].device_owner, 'network:floatingip');
    assert.equal(ports[0].status, 'N/A');
    assert.deepEqual(ports[0].fixed_ips, [{ subnet_id: ext.subnet.id, ip_address: f.floating_ip_address }]);
    assertError(await n.admin.delete(`/v2.0/ports/${ports[0].id}`), 409, 'L3PortInUse');
    assert.equal((await p.member.delete(`/v2.0/floatingips/${f.id}`)).status, 204);
    assert.equal((await n.admin.get(`/v2.0/ports/${ports[0].id}`)).status, 404);
    await n.eventually(
      async () => n.notifications.map((x) => x.event_type),
      (e) => e.includes('floatingip.delete.end') && e.includes('floatingip.create.end'),
    );
  });

  it('refuses non-external networks, unknown networks and a chosen address from a plain member', async () => {
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: t.net.id } }), 400, 'BadRequest', `Bad floatingip request: Network ${t.net.id} is not a valid external network.`);
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: '3f0b4d5e-6a7b-4c8d-9e0f-1a2b3c4d5e6f' } }), 404, 'NetworkNotFound');
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: {} }), 400, 'HTTPBadRequest', "Failed to parse request. Required attribute 'floating_network_id' not specified");
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, floating_ip_address: '198.51.100.77' } }), 403, 'PolicyNotAuthorized');
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, floating_ip_address: 'nope' } }), 400, 'HTTPBadRequest');
    assertError(await p.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, fixed_ip_address: '10.10.0.5' } }), 400, 'BadRequest', 'Bad floatingip request: fixed_ip_address cannot be specified without a port_id.');
    const chosen = await createFip({ floating_ip_address: '198.51.100.77', tenant_id: p.id }, n.admin);
    assert.equal(chosen.floating_ip_address, '198.51.100.77');
    assertError(await n.admin.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, floating_ip_address: '198.51.100.77' } }), 409, 'IpAddressAlreadyAllocated');
    assert.equal((await p.member.delete(`/v2.0/floatingips/${chosen.id}`)).status, 204);
  });

  it('associates with a port behind a router (ACTIVE, router_id, port_details), disassociates, and notifies', async () => {
    const port = await vmPort();
    const f = await createFip();
    const before = changed.length;
    const res = await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: port.id } });
    assert.equal(res.status, 200, res.text);
    const a = res.body.floatingip;
    assert.equal(a.port_id, port.id);
    assert.equal(a.fixed_ip_address, port.fixed_ips[0].ip_address);
    assert.equal(a.router_id, router.id);
    assert.equal(a.status, 'ACTIVE');
    assert.deepEqual(a.port_details, { name: '', network_id: t.net.id, mac_address: port.mac_address, admin_state_up: true, status: port.status, device_id: 'vm-1', device_owner: 'compute:nova' });
    assert.ok(changed.slice(before).some((c) => c.includes(router.id)));
    const [state] = await routerStates(n.database.db, [router.id]);
    assert.deepEqual(state.floatingIps, [{ id: f.id, floatingIpAddress: f.floating_ip_address, fixedIpAddress: a.fixed_ip_address, portId: port.id }]);
    assert.deepEqual((await p.reader.get(`/v2.0/floatingips?port_id=${port.id}`)).body.floatingips.map((x: any) => x.id), [f.id]);

    const second = await createFip();
    const dup = await p.member.put(`/v2.0/floatingips/${second.id}`, { floatingip: { port_id: port.id } });
    assertError(dup, 409, 'FloatingIPPortAlreadyAssociated', new RegExp(`with port ${port.id} using fixed IP ${a.fixed_ip_address.replace(/\./g, '\\.')}, as that fixed IP already has a floating IP on external network ${ext.net.id}`));

    assertError(await p.member.put(`/v2.0/routers/${router.id}`, { router: { external_gateway_info: {} } }), 409, 'RouterExternalGatewayInUseByFloatingIp');
    assertError(await p.member.put(`/v2.0/routers/${router.id}/remove_router_interface`, { subnet_id: t.subnet.id }), 409, 'RouterInterfaceInUseByFloatingIP');

    const off = await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: null } });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.floatingip.port_id, null);
    assert.equal(off.body.floatingip.router_id, null);
    assert.equal(off.body.floatingip.status, 'DOWN');
    assert.equal(off.body.floatingip.port_details, null);
    assert.deepEqual((await routerStates(n.database.db, [router.id]))[0].floatingIps, []);
    const updates = await n.eventually(
      async () => n.notifications.filter((x) => x.event_type === 'floatingip.update.end').map((x) => (x.payload as any).floatingip),
      (l) => l.filter((x: any) => x.id === f.id).length >= 2,
    );
    assert.deepEqual(updates.filter((x: any) => x.id === f.id).map((x: any) => x.status), ['ACTIVE', 'DOWN']);
    for (const id of [f.id, second.id]) assert.equal((await p.member.delete(`/v2.0/floatingips/${id}`)).status, 204);
  });

  it('lets only one of two concurrent associations to the same fixed IP win', async () => {
    const port = await vmPort();
    const [f1, f2] = [await createFip(), await createFip()];
    const results = await Promise.all([f1, f2].map((f) => p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: port.id } })));
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 409], results.map((r) => r.text).join('\n'));
    assert.equal(results.find((r) => r.status === 409)!.body.NeutronError.type, 'FloatingIPPortAlreadyAssociated');
    assert.equal((await p.member.get(`/v2.0/floatingips?port_id=${port.id}`)).body.floatingips.length, 1);
    for (const f of [f1, f2]) assert.equal((await p.member.delete(`/v2.0/floatingips/${f.id}`)).status, 204);
  });

  it('associates at create, and loses the association when the port is deleted', async () => {
    const port = await vmPort();
    const ip = port.fixed_ips[0].ip_address;
    const f = await createFip({ port_id: port.id, fixed_ip_address: ip });
    assert.equal(f.port_id, port.id);
    assert.equal(f.fixed_ip_address, ip);
    assert.equal(f.status, 'ACTIVE');
    assert.equal(f.router_id, router.id);
    const before = changed.length;
    assert.equal((await p.member.delete(`/v2.0/ports/${port.id}`)).status, 204);
    const after = (await p.member.get(`/v2.0/floatingips/${f.id}`)).body.floatingip;
    assert.equal(after.port_id, null);
    assert.equal(after.fixed_ip_address, null);
    assert.equal(after.router_id, null);
    assert.equal(after.status, 'DOWN');
    assert.ok(changed.slice(before).some((c) => c.includes(router.id)), 'the router hears that its floating IP went');
    assert.equal((await p.member.delete(`/v2.0/floatingips/${f.id}`)).status, 204);
  });

  it('refuses ports without a route to the external network, wrong fixed IPs and router ports', async () => {
    const lonely = await tenantNetwork(p.member, '10.11.0.0/24');
    const port = await vmPort(p.member, lonely.net.id);
    const f = await createFip();
    const unreachable = await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: port.id } });
    assertError(
      unreachable,
      404,
      'ExternalGatewayForFloatingIPNotFound',
      `External network ${ext.net.id} is not reachable from subnet ${lonely.subnet.id}.  Therefore, cannot associate Port ${port.id} with a Floating IP.`,
    );
    const inside = await vmPort();
    assertError(await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: inside.id, fixed_ip_address: '10.10.0.250' } }), 400, 'BadRequest', `Bad floatingip request: Port ${inside.id} does not have fixed ip 10.10.0.250.`);
    const rport = (await n.admin.get(`/v2.0/ports?device_id=${router.id}&device_owner=network:router_interface`)).body.ports[0];
    assertError(await n.admin.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: rport.id } }), 400, 'BadRequest', `Bad floatingip request: Port ${rport.id} is unable to be assigned a floating IP.`);
    assertError(await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: '1f0b4d5e-6a7b-4c8d-9e0f-1a2b3c4d5e6f' } }), 404, 'PortNotFound');
    assertError(await p.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { floating_ip_address: '198.51.100.9' } }), 400, 'HTTPBadRequest');
    assert.equal((await p.member.delete(`/v2.0/floatingips/${f.id}`)).status, 204);
  });

  it('keeps projects apart: another project neither sees nor changes a floating IP, nor uses it for its ports', async () => {
    const f = await createFip();
    for (const res of [
      await other.member.get(`/v2.0/floatingips/${f.id}`),
      await other.member.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: null } }),
      await other.member.delete(`/v2.0/floatingips/${f.id}`),
    ]) {
      assertError(res, 404, 'FloatingIPNotFound', `Floating IP ${f.id} could not be found`);
    }
    assert.ok(!(await other.member.get('/v2.0/floatingips')).body.floatingips.some((x: any) => x.id === f.id));
    const ot = await tenantNetwork(other.member, '10.12.0.0/24');
    const theirs = await vmPort(other.member, ot.net.id);
    const cross = await n.admin.put(`/v2.0/floatingips/${f.id}`, { floatingip: { port_id: theirs.id } });
    assertError(cross, 404, 'ExternalGatewayForFloatingIPNotFound');
    const mine = await other.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id, port_id: (await vmPort()).id } });
    assertError(mine, 400, 'BadRequest', /since that port is owned by a different project/);
    assertError(await p.reader.put(`/v2.0/floatingips/${f.id}`, { floatingip: { description: 'x' } }), 403, 'PolicyNotAuthorized');
    assert.equal((await p.reader.get(`/v2.0/floatingips/${f.id}`)).status, 200);
    assert.equal((await p.member.put(`/v2.0/floatingips/${f.id}/tags/prod`)).status, 201);
    assert.deepEqual((await p.reader.get('/v2.0/floatingips?tags=prod')).body.floatingips.map((x: any) => x.id), [f.id]);
    assert.equal((await p.member.delete(`/v2.0/floatingips/${f.id}`)).status, 204);
  });

  it('lists floating IP pools, and enforces the floatingip quota', async () => {
    const pools = await p.reader.get('/v2.0/floatingip_pools');
    assert.equal(pools.status, 200, pools.text);
    assert.deepEqual(
      pools.body.floatingip_pools.filter((x: any) => x.network_id === ext.net.id),
      [{ subnet_id: ext.subnet.id, subnet_name: ext.subnet.name, tenant_id: n.adminProjectId, project_id: n.adminProjectId, network_id: ext.net.id, cidr: '198.51.100.0/24' }],
    );
    assert.ok(!pools.body.floatingip_pools.some((x: any) => x.network_id === t.net.id));
    const q = await n.project('fipq');
    assert.equal((await n.admin.get(`/v2.0/quotas/${q.id}`)).body.quota.floatingip, 50);
    assert.equal((await n.admin.put(`/v2.0/quotas/${q.id}`, { quota: { floatingip: 1 } })).status, 200);
    await createFip({}, q.member);
    assertError(await q.member.post('/v2.0/floatingips', { floatingip: { floating_network_id: ext.net.id } }), 409, 'OverQuota', "Quota exceeded for resources: ['floatingip'].");
  });

  it('lists the extensions it implements', async () => {
    const aliases = (await p.reader.get('/v2.0/extensions')).body.extensions.map((e: any) => e.alias);
    for (const a of ['router', 'ext-gw-mode', 'extraroute', 'extraroute-atomic', 'fip-port-details', 'floatingip-pools']) assert.ok(aliases.includes(a), a);
    assert.ok(!aliases.includes('l3_agent_scheduler'));
  });
});
