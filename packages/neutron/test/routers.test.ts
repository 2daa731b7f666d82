import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { l3Services } from '../src/api/router-routes.ts';
import { routerStates } from '../src/domain/router-states.ts';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';
import { assertError, createRouter, externalNetwork, tenantNetwork } from './l3-helpers.ts';

describe('neutron routers', () => {
  let n: NeutronFixture;
  let p: Project;
  let other: Project;
  let ext: { net: any; subnet: any };
  const changed: string[][] = [];
  before(async () => {
    n = await startNeutron();
    p = await n.project('rtp');
    other = await n.project('rto');
    ext = await externalNetwork(n);
    l3Services.get(n.deps)!.routers.changed.push((ids) => changed.push(ids));
  });
  after(() => n?.close());

  it('creates a router with a gateway port on the external network, SNAT on by default, and notifies', async () => {
    const r = await createRouter(p.member, { name: 'edge', external_gateway_info: { network_id: ext.net.id } });
    assert.equal(r.name, 'edge');
    assert.equal(r.status, 'ACTIVE');
    assert.equal(r.admin_state_up, true);
    assert.equal(r.project_id, p.id);
    assert.deepEqual(r.routes, []);
    assert.equal(r.flavor_id, null);
    assert.equal('distributed' in r, false, 'distributed is admin-only to read');
    assert.equal(r.external_gateway_info.network_id, ext.net.id);
    assert.equal(r.external_gateway_info.enable_snat, true);
    assert.equal(r.external_gateway_info.external_fixed_ips.length, 1);
    assert.equal(r.external_gateway_info.external_fixed_ips[0].subnet_id, ext.subnet.id);
    const gw = await n.admin.get(`/v2.0/ports?device_id=${r.id}&device_owner=network:router_gateway`);
    assert.equal(gw.body.ports.length, 1);
    assert.equal(gw.body.ports[0].network_id, ext.net.id);
    assert.equal(gw.body.ports[0].project_id, '');
    assert.deepEqual(gw.body.ports[0].fixed_ips, r.external_gateway_info.external_fixed_ips);
    const asAdmin = await n.admin.get(`/v2.0/routers/${r.id}`);
    assert.equal(asAdmin.body.router.distributed, false);
    assert.equal(asAdmin.body.router.ha, false);
    const events = await n.eventually(
      async () => n.notifications.filter((x) => x.event_type === 'router.create.end').map((x) => (x.payload as any).router.id),
      (ids) => ids.includes(r.id),
    );
    assert.ok(events.includes(r.id));
    assert.ok(changed.some((c) => c.includes(r.id)), 'changed listeners hear of the new gateway');
  });

  it('lets only an admin set enable_snat or the gateway fixed IPs', async () => {
    const snat = await p.member.post('/v2.0/routers', { router: { external_gateway_info: { network_id: ext.net.id, enable_snat: false } } });
    assertError(snat, 403, 'PolicyNotAuthorized', '(rule:create_router:external_gateway_info:enable_snat) is disallowed by policy');
    const ips = await p.member.post('/v2.0/routers', { router: { external_gateway_info: { network_id: ext.net.id, external_fixed_ips: [{ ip_address: '203.0.113.50' }] } } });
    assertError(ips, 403, 'PolicyNotAuthorized');
    const r = await createRouter(n.admin, { tenant_id: p.id, external_gateway_info: { network_id: ext.net.id, enable_snat: false, external_fixed_ips: [{ subnet_id: ext.subnet.id, ip_address: '203.0.113.50' }] } });
    assert.equal(r.external_gateway_info.enable_snat, false);
    assert.deepEqual(r.external_gateway_info.external_fixed_ips, [{ subnet_id: ext.subnet.id, ip_address: '203.0.113.50' }]);
    const moved = await n.admin.put(`/v2.0/routers/${r.id}`, { router: { external_gateway_info: { network_id: ext.net.id, enable_snat: true, external_fixed_ips: [{ ip_address: '203.0.113.51' }] } } });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual(moved.body.router.external_gateway_info.external_fixed_ips, [{ subnet_id: ext.subnet.id, ip_address: '203.0.113.51' }]);
    assert.equal(moved.body.router.external_gateway_info.enable_snat, true);
    const same = await n.admin.put(`/v2.0/routers/${r.id}`, { router: { external_gateway_info: { network_id: ext.net.id, external_fixed_ips: [{ ip_address: '203.0.113.1' }] } } });
    assertError(same, 400, 'BadRequest', 'Bad router request: External IP 203.0.113.1 is the same as the gateway IP.');
    const cleared = await p.member.put(`/v2.0/routers/${r.id}`, { router: { external_gateway_info: {} } });
    assert.equal(cleared.status, 200, cleared.text);
    assert.equal(cleared.body.router.external_gateway_info, null);
    assert.equal((await n.admin.get(`/v2.0/ports?device_id=${r.id}`)).body.ports.length, 0);
    assert.equal((await p.member.delete(`/v2.0/routers/${r.id}`)).status, 204);
  });

  it('refuses a gateway on a network that is not external or does not exist, and bad bodies', async () => {
    const t = await tenantNetwork(p.member, '10.90.0.0/24');
    const notExt = await p.member.post('/v2.0/routers', { router: { external_gateway_info: { network_id: t.net.id } } });
    assertError(notExt, 400, 'BadRequest', `Bad router request: Network ${t.net.id} is not an external network.`);
    const missing = await p.member.post('/v2.0/routers', { router: { external_gateway_info: { network_id: '5a3bd2b6-3ad3-4b3e-9a56-2b6a9e3f6f10' } } });
    assertError(missing, 404, 'NetworkNotFound');
    const noNet = await p.member.post('/v2.0/routers', { router: { external_gateway_info: { enable_snat: true } } });
    assertError(noNet, 400, 'HTTPBadRequest', /Validation of dictionary's keys failed/);
    assertError(await p.member.post('/v2.0/routers', { router: { colour: 'red' } }), 400, 'HTTPBadRequest', "Unrecognized attribute(s) 'colour'");
    assertError(await p.member.post('/v2.0/routers', { router: { admin_state_up: 'maybe' } }), 400, 'HTTPBadRequest');
    assertError(await p.member.post('/v2.0/routers', { router: { distributed: false } }), 403, 'PolicyNotAuthorized', '(rule:create_router:distributed) is disallowed by policy');
    assertError(await n.admin.post('/v2.0/routers', { router: { ha: true } }), 400, 'BadRequest');
  });

  it('adds an interface by subnet with the gateway IP, refuses duplicates, overlaps and subnets without a gateway', async () => {
    const r = await createRouter(p.member, { external_gateway_info: { network_id: ext.net.id } });
    const t = await tenantNetwork(p.member, '10.1.0.0/24');
    const res = await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id });
    assert.equal(res.status, 200, res.text);
    const info = res.body;
    assert.deepEqual(Object.keys(info).sort(), ['id', 'network_id', 'port_id', 'project_id', 'subnet_id', 'subnet_ids', 'tenant_id']);
    assert.equal(info.id, r.id);
    assert.equal(info.subnet_id, t.subnet.id);
    assert.deepEqual(info.subnet_ids, [t.subnet.id]);
    assert.equal(info.network_id, t.net.id);
    assert.equal(info.project_id, p.id);
    const port = (await p.member.get(`/v2.0/ports/${info.port_id}`)).body.port;
    assert.equal(port.device_owner, 'network:router_interface');
    assert.equal(port.device_id, r.id);
    assert.deepEqual(port.fixed_ips, [{ subnet_id: t.subnet.id, ip_address: '10.1.0.1' }]);
    assert.deepEqual(port.security_groups, []);

    const dup = await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id });
    assertError(dup, 400, 'BadRequest', `Bad router request: Router already has a port on subnet ${t.subnet.id}.`);
    const o = await tenantNetwork(p.member, '10.1.0.0/16');
    const overlap = await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: o.subnet.id });
    assertError(overlap, 400, 'BadRequest', `Bad router request: Cidr 10.1.0.0/16 of subnet ${o.subnet.id} overlaps with cidr 10.1.0.0/24 of subnet ${t.subnet.id}.`);
    const extOverlap = await tenantNetwork(p.member, '203.0.113.0/25');
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: extOverlap.subnet.id }), 400, 'BadRequest', /overlaps with cidr 203\.0\.113\.0\/24/);
    const noGw = await tenantNetwork(p.member, '10.2.0.0/24', { gateway_ip: null });
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: noGw.subnet.id }), 400, 'BadRequest', 'Bad router request: Subnet for router interface must have a gateway IP.');
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, {}), 400, 'BadRequest', 'Bad router request: Either subnet_id or port_id must be specified.');
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id, port_id: info.port_id }), 400, 'BadRequest', 'Bad router request: Cannot specify both subnet-id and port-id.');
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: 'nope' }), 400, 'BadRequest');
    const theirs = await tenantNetwork(other.member, '10.3.0.0/24');
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: theirs.subnet.id }), 404, 'SubnetNotFound');

    const events = await n.eventually(
      async () => n.notifications.filter((x) => x.event_type === 'router.interface.create').map((x) => (x.payload as any).router_interface),
      (l) => l.some((i: any) => i.port_id === info.port_id),
    );
    assert.deepEqual(events.find((i: any) => i.port_id === info.port_id), info);
  });

  it('guards routers, subnets and router ports in use, and removes interfaces by subnet or port', async () => {
    const r = await createRouter(p.member);
    const t = await tenantNetwork(p.member, '10.4.0.0/24');
    const info = (await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id })).body;
    const del = await p.member.delete(`/v2.0/routers/${r.id}`);
    assertError(del, 409, 'RouterInUse', `Router ${r.id} has ports still attached: ${info.port_id}`);
    assertError(await p.member.delete(`/v2.0/subnets/${t.subnet.id}`), 409, 'SubnetInUse');
    assertError(await p.member.delete(`/v2.0/networks/${t.net.id}`), 409, 'NetworkInUse');
    const portDel = await n.admin.delete(`/v2.0/ports/${info.port_id}`);
    assertError(portDel, 409, 'L3PortInUse', `Port ${info.port_id} has owner network:router_interface and therefore cannot be deleted directly via the port API.`);

    const wrong = '0e0b8a7c-1d2e-4f50-8a9b-0c1d2e3f4a5b';
    assertError(await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { port_id: wrong }), 404, 'RouterInterfaceNotFound', `Router ${r.id} does not have an interface with id ${wrong}`);
    const removed = await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: t.subnet.id });
    assert.equal(removed.status, 200, removed.text);
    assert.equal(removed.body.port_id, info.port_id);
    assert.equal(removed.body.subnet_id, t.subnet.id);
    assert.equal((await n.admin.get(`/v2.0/ports/${info.port_id}`)).status, 404);
    assertError(await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: t.subnet.id }), 404, 'RouterInterfaceNotFoundForSubnet', `Router ${r.id} has no interface on subnet ${t.subnet.id}`);
    await n.eventually(
      async () => n.notifications.filter((x) => x.event_type === 'router.interface.delete').map((x) => (x.payload as any).router_interface.port_id),
      (ids) => ids.includes(info.port_id),
    );

    // By port: a port of the project without a device becomes the router's.
    const port = (await p.member.post('/v2.0/ports', { port: { network_id: t.net.id, fixed_ips: [{ subnet_id: t.subnet.id, ip_address: '10.4.0.254' }] } })).body.port;
    const byPort = await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { port_id: port.id });
    assert.equal(byPort.status, 200, byPort.text);
    assert.equal(byPort.body.port_id, port.id);
    assert.equal(byPort.body.subnet_id, t.subnet.id);
    const now = (await p.member.get(`/v2.0/ports/${port.id}`)).body.port;
    assert.equal(now.device_owner, 'network:router_interface');
    assert.equal(now.device_id, r.id);
    const again = await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { port_id: port.id });
    assertError(again, 409, 'PortInUse');
    const mismatch = await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { port_id: port.id, subnet_id: wrong });
    assertError(mismatch, 400, 'SubnetMismatchForPort');
    assert.equal((await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { port_id: port.id })).status, 200);
    assert.equal((await p.member.get(`/v2.0/ports/${port.id}`)).status, 404, 'the attached port goes with the interface, as upstream');

    const bare = (await p.member.post('/v2.0/ports', { port: { network_id: t.net.id, fixed_ips: [] } })).body.port;
    assertError(await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { port_id: bare.id }), 400, 'BadRequest', 'Bad router request: Router port must have at least one fixed IP.');
    assert.equal((await p.member.delete(`/v2.0/routers/${r.id}`)).status, 204);
    assert.equal((await p.member.delete(`/v2.0/subnets/${t.subnet.id}`)).status, 204);
  });

  it('keeps extra routes whose nexthop is on a connected subnet, atomically adds and removes them', async () => {
    const r = await createRouter(p.member);
    const t = await tenantNetwork(p.member, '10.5.0.0/24');
    await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id });
    const far = await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.16.0.0/16', nexthop: '10.9.9.9' }] } });
    assertError(far, 400, 'InvalidRoutes', "Invalid format for routes: [{'destination': '172.16.0.0/16', 'nexthop': '10.9.9.9'}], the nexthop is not connected with router.");
    const own = await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.16.0.0/16', nexthop: '10.5.0.1' }] } });
    assertError(own, 400, 'InvalidRoutes', /the nexthop is used by router/);
    assertError(await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.16.0.1/16', nexthop: '10.5.0.9' }] } }), 400, 'HTTPBadRequest', /'172\.16\.0\.0\/16' is recommended/);
    assertError(await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.16.0.0/16' }] } }), 400, 'HTTPBadRequest');
    const set = await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.16.0.0/16', nexthop: '10.5.0.9' }] } });
    assert.equal(set.status, 200, set.text);
    assert.deepEqual(set.body.router.routes, [{ destination: '172.16.0.0/16', nexthop: '10.5.0.9' }]);
    const added = await p.member.put(`/v2.0/routers/${r.id}/add_extraroutes`, { router: { routes: [{ destination: '172.17.0.0/16', nexthop: '10.5.0.10' }, { destination: '172.16.0.0/16', nexthop: '10.5.0.9' }] } });
    assert.equal(added.status, 200, added.text);
    assert.deepEqual(added.body.router.routes, [
      { destination: '172.16.0.0/16', nexthop: '10.5.0.9' },
      { destination: '172.17.0.0/16', nexthop: '10.5.0.10' },
    ]);
    assertError(await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: t.subnet.id }), 409, 'RouterInterfaceInUseByRoute');
    const removed = await p.member.put(`/v2.0/routers/${r.id}/remove_extraroutes`, { router: { routes: [{ destination: '172.16.0.0/16', nexthop: '10.5.0.9' }, { destination: '192.168.0.0/24', nexthop: '10.5.0.7' }] } });
    assert.equal(removed.status, 200, removed.text);
    assert.deepEqual(removed.body.router.routes, [{ destination: '172.17.0.0/16', nexthop: '10.5.0.10' }]);
    assert.equal((await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [] } })).status, 200);
    assert.equal((await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: t.subnet.id })).status, 200);
  });

  it('adds interfaces to one router concurrently, each once, and moves its revision', async () => {
    const r = await createRouter(p.member);
    const nets = await Promise.all(['10.7.1.0/24', '10.7.2.0/24', '10.7.3.0/24'].map((c) => tenantNetwork(p.member, c)));
    const results = await Promise.all(nets.map((t) => p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id })));
    assert.deepEqual(results.map((x) => x.status), [200, 200, 200], results.map((x) => x.text).join('\n'));
    const ports = (await p.member.get(`/v2.0/ports?device_id=${r.id}`)).body.ports;
    assert.deepEqual(ports.map((x: any) => x.fixed_ips[0].ip_address).sort(), ['10.7.1.1', '10.7.2.1', '10.7.3.1']);
    assert.equal((await p.member.get(`/v2.0/routers/${r.id}`)).body.router.revision_number, r.revision_number + 3);
    for (const t of nets) assert.equal((await p.member.put(`/v2.0/routers/${r.id}/remove_router_interface`, { subnet_id: t.subnet.id })).status, 200);
    assert.equal((await p.member.delete(`/v2.0/routers/${r.id}`, { 'If-Match': 'revision_number=1' })).status, 412);
    assert.equal((await p.member.delete(`/v2.0/routers/${r.id}`)).status, 204);
  });

  it('keeps projects apart and lets readers only read', async () => {
    const r = await createRouter(p.member, { name: 'private' });
    for (const res of [
      await other.member.get(`/v2.0/routers/${r.id}`),
      await other.member.put(`/v2.0/routers/${r.id}`, { router: { name: 'x' } }),
      await other.member.delete(`/v2.0/routers/${r.id}`),
      await other.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: r.id }),
    ]) {
      assertError(res, 404, 'RouterNotFound', `Router ${r.id} could not be found`);
    }
    assert.ok(!(await other.member.get('/v2.0/routers')).body.routers.some((x: any) => x.id === r.id));
    assert.ok((await n.admin.get('/v2.0/routers')).body.routers.some((x: any) => x.id === r.id));
    assert.equal((await p.reader.get(`/v2.0/routers/${r.id}`)).status, 200);
    assertError(await p.reader.put(`/v2.0/routers/${r.id}`, { router: { name: 'x' } }), 403, 'PolicyNotAuthorized');
    assertError(await p.reader.post('/v2.0/routers', { router: {} }), 403, 'PolicyNotAuthorized');
    const listed = await p.reader.get('/v2.0/routers?name=private&fields=id&fields=name');
    assert.deepEqual(listed.body.routers, [{ id: r.id, name: 'private' }]);
    assertError(await p.reader.get('/v2.0/routers?colour=red'), 400, 'HTTPBadRequest');
    const tagged = await p.member.put(`/v2.0/routers/${r.id}/tags/blue`);
    assert.equal(tagged.status, 201, tagged.text);
    assert.deepEqual((await p.reader.get(`/v2.0/routers?tags=blue`)).body.routers.map((x: any) => x.id), [r.id]);
    assert.deepEqual((await p.reader.get(`/v2.0/routers/${r.id}`)).body.router.tags, ['blue']);
    assert.equal((await p.member.delete(`/v2.0/routers/${r.id}`)).status, 204);
  });

  it('enforces the router quota', async () => {
    const q = await n.project('rtq');
    assert.equal((await n.admin.get(`/v2.0/quotas/${q.id}`)).body.quota.router, 10);
    assert.equal((await n.admin.put(`/v2.0/quotas/${q.id}`, { quota: { router: 1 } })).status, 200);
    await createRouter(q.member);
    assertError(await q.member.post('/v2.0/routers', { router: {} }), 409, 'OverQuota', "Quota exceeded for resources: ['router'].");
  });

  it('builds the routers part of the host state from the database', async () => {
    const r = await createRouter(p.member, { external_gateway_info: { network_id: ext.net.id } });
    const t = await tenantNetwork(p.member, '10.6.0.0/24');
    const info = (await p.member.put(`/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: t.subnet.id })).body;
    await p.member.put(`/v2.0/routers/${r.id}`, { router: { routes: [{ destination: '172.20.0.0/16', nexthop: '10.6.0.5' }] } });
    const gwPort = (await n.admin.get(`/v2.0/ports?device_id=${r.id}&device_owner=network:router_gateway`)).body.ports[0];
    const ifPort = (await n.admin.get(`/v2.0/ports/${info.port_id}`)).body.port;
    const [state] = await routerStates(n.database.db, [r.id]);
    assert.deepEqual(state, {
      id: r.id,
      adminStateUp: true,
      interfaces: [{ portId: info.port_id, networkId: t.net.id, macAddress: ifPort.mac_address, fixedIps: [{ ipAddress: '10.6.0.1', prefixlen: 24, subnetId: t.subnet.id }], mtu: t.net.mtu }],
      routes: [{ destination: '172.20.0.0/16', nexthop: '10.6.0.5' }],
      floatingIps: [],
      gateway: {
        portId: gwPort.id,
        networkId: ext.net.id,
        macAddress: gwPort.mac_address,
        fixedIps: [{ ipAddress: gwPort.fixed_ips[0].ip_address, prefixlen: 24, subnetId: ext.subnet.id }],
        enableSnat: true,
        externalGatewayIps: ['203.0.113.1'],
        mtu: ext.net.mtu,
      },
    });
    assert.ok((await routerStates(n.database.db)).some((s) => s.id === r.id));
    assert.deepEqual(await routerStates(n.database.db, []), []);
    await p.member.put(`/v2.0/routers/${r.id}`, { router: { admin_state_up: false } });
    assert.equal((await routerStates(n.database.db, [r.id]))[0].adminStateUp, false);
  });
});
