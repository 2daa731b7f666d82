/**
 * (Every assert.ok here carries a message: without one, a failing assert inside eventually()
 * makes Node re-parse the tsx-compiled source for the message, which takes minutes.)
 *
 * Routers, floating IPs and metadata driven through the Networking API: the API server and a
 * network host's agent (L2, DHCP, L3, metadata proxy) talk over the bus as in a deployment.
 * The external network's bridge lives in the agent's external namespace, which plays the
 * upstream router (it takes the external subnet's gateway, 172.24.4.1); the guest is a veth
 * stand-in plugged as its port's tap. The physical network `public` is also mapped to a
 * veth the test makes in the root namespace (external_interface_mappings), whose peer sits
 * in an "upstream" namespace: the path a real external network takes. Real dnsmasq,
 * bridges, nftables NAT, HTTP.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { verifyInstanceSignature } from '@onestack/core/http/instance-signature.ts';
import { Netns } from '@onestack/testing/netns.ts';
import { runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { dhcpLease, eventually, pings, quietLogger } from '../agent-test-kit.ts';
import { bridgeName, tapDevice } from '../l3/device-names.ts';
import { settled, startApiStack, type ApiStack, type SimHost } from './api-stack.ts';

const SECRET = 'metadata-secret';
/** The stand-in for a real host interface: made in the root namespace, moved by the agent. */
const UPLINK = `oxu${process.pid % 100000}`;
const UPLINK_PEER = `oxp${process.pid % 100000}`;

/** An HTTP server in `ns` answering with the peer address it sees (the SNAT witness). */
async function peerReporter(ns: Netns, port: number): Promise<void> {
  const child = ns.spawn(process.execPath, ['-e', `require('http').createServer((q,s)=>s.end(q.socket.remoteAddress)).listen(${port},'0.0.0.0',()=>console.log('ready'))`]);
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.match(chunk.toString(), /ready/);
}

async function httpFrom(ns: Netns, url: string, timeoutS = 3): Promise<string> {
  return (await ns.exec('curl', ['-sS', '--max-time', String(timeoutS), url])).stdout;
}

async function fails(p: Promise<unknown>): Promise<boolean> {
  return p.then(
    () => false,
    () => true,
  );
}

describe('routers, floating IPs and metadata through the API: network host agent with L3', () => {
  let stack: ApiStack;
  let host: SimHost;
  let guest: Netns;
  let ext: Netns;
  let upstream: Netns;
  let fakeNova: http.Server;
  const seen: { instance: string; tenant: string; signed: boolean; forwardedFor: string }[] = [];
  let publicNet: { id: string };
  let tenantNet: { id: string };
  let tenantSubnet: { id: string };
  let router: { id: string; external_gateway_info: { external_fixed_ips: { ip_address: string }[] } };
  let port: { id: string; mac_address: string; device_id: string; project_id: string; fixed_ips: { ip_address: string }[] };
  let fip: { id: string; floating_ip_address: string };
  let gatewayIp: string;
  let routerPortId: string;

  before(async () => {
    // The fake metadata service: answers with the instance id when the signature is right.
    fakeNova = http.createServer((req, res) => {
      const instance = String(req.headers['x-instance-id'] ?? '');
      const signed = verifyInstanceSignature(SECRET, instance, req.headers['x-instance-id-signature'] as string | undefined);
      seen.push({ instance, tenant: String(req.headers['x-tenant-id'] ?? ''), signed, forwardedFor: String(req.headers['x-forwarded-for'] ?? '') });
      res.writeHead(signed ? 200 : 403).end(signed ? instance : 'bad signature');
    });
    await new Promise<void>((r) => fakeNova.listen(0, '127.0.0.1', r));
    stack = await startApiStack({
      hosts: 1,
      tag: 'l3a',
      l3: { metadataUrl: `http://127.0.0.1:${(fakeNova.address() as AddressInfo).port}`, sharedSecret: SECRET, externalInterfaceMappings: { public: UPLINK } },
    });
    host = stack.hosts[0];
    guest = await stack.lab.addNamespace('l3a-g0');
    upstream = await stack.lab.addNamespace('l3a-up');
    await runCommand('ip', ['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', UPLINK_PEER, 'netns', upstream.name], { logger: quietLogger, timeoutMs: 15_000 });
    await upstream.exec('ip', ['addr', 'add', '172.24.4.2/24', 'dev', UPLINK_PEER]);
    await upstream.exec('ip', ['link', 'set', UPLINK_PEER, 'up']);
  });
  after(async () => {
    await stack?.close();
    fakeNova?.close();
    // Gone with the external namespace normally; not if the agent never moved it.
    await runCommand('ip', ['link', 'del', UPLINK], { logger: quietLogger, timeoutMs: 15_000 }).catch(() => undefined);
  });

  it('a router with an external gateway and an interface: the guest gets DHCP and leaves through SNAT as the gateway address', async () => {
    const { fx } = stack;
    const t0 = Date.now();
    publicNet = (
      await fx.admin.post('/v2.0/networks', {
        network: { name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public' },
      })
    ).body.network;
    const pub = await fx.admin.post('/v2.0/subnets', {
      subnet: { network_id: publicNet.id, cidr: '172.24.4.0/24', ip_version: 4, gateway_ip: '172.24.4.1', enable_dhcp: false, allocation_pools: [{ start: '172.24.4.10', end: '172.24.4.254' }] },
    });
    assert.equal(pub.status, 201, pub.text);
    tenantNet = (await fx.admin.post('/v2.0/networks', { network: { name: 'l3a-net' } })).body.network;
    const sub = await fx.admin.post('/v2.0/subnets', { subnet: { network_id: tenantNet.id, cidr: '10.74.0.0/24', ip_version: 4, gateway_ip: '10.74.0.1' } });
    assert.equal(sub.status, 201, sub.text);
    tenantSubnet = sub.body.subnet;
    const r = await fx.admin.post('/v2.0/routers', { router: { name: 'l3a-router', external_gateway_info: { network_id: publicNet.id } } });
    assert.equal(r.status, 201, r.text);
    router = r.body.router;
    gatewayIp = router.external_gateway_info.external_fixed_ips[0].ip_address;
    const itf = await fx.admin.put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: tenantSubnet.id });
    assert.equal(itf.status, 200, itf.text);
    routerPortId = itf.body.port_id;

    const sg = (await fx.admin.post('/v2.0/security-groups', { security_group: { name: 'l3a-sg' } })).body.security_group;
    for (const rule of [{ protocol: 'icmp' }, { protocol: 'tcp', port_range_min: 8080, port_range_max: 8080 }]) {
      const res = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', ...rule } });
      assert.equal(res.status, 201, res.text);
    }
    const p = await fx.admin.post('/v2.0/ports', {
      port: { network_id: tenantNet.id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': host.name, security_groups: [sg.id] },
    });
    assert.equal(p.status, 201, p.text);
    port = p.body.port;
    await host.agent.l2.plugVethPort({ id: port.id, macAddress: port.mac_address }, guest.name);
    const lease = await dhcpLease(guest, 'eth0', host.dir);
    assert.deepEqual([lease.ip, lease.router], [port.fixed_ips[0].ip_address, '10.74.0.1']);

    // The agent made the external namespace; the test serves from it.
    ext = new Netns(stack.lab, host.externalNamespace!);
    // The agent makes the bridge, then gives it the gateway address: wait for both.
    await eventually(async () => {
      assert.ok(await host.agent.ip.linkShow(ext.name, bridgeName(publicNet.id)), 'external bridge');
      assert.deepEqual(await host.agent.ip.addrCidrs(ext.name, bridgeName(publicNet.id)), ['172.24.4.1/24']);
    });
    await peerReporter(ext, 8000);
    await peerReporter(guest, 8080);
    // The router's port is wired by the L3 agent: its veth peer on the tenant bridge.
    assert.equal((await host.agent.ip.linkShow(host.ns.name, tapDevice(routerPortId)))?.master, bridgeName(tenantNet.id));
    const source = await eventually(() => httpFrom(guest, 'http://172.24.4.1:8000/', 2));
    assert.equal(source, gatewayIp);
    console.log(`# api → guest leaves through SNAT in ${Date.now() - t0} ms`);

    // Router ports are the L3 agent's: never firewalled as a guest's port, never in `ports`.
    const state = await fx.ks.bus.call<{ ports: { deviceOwner: string }[]; routers: unknown[] }>(stack.topics.plugin, 'get_host_state', { host: host.name });
    assert.deepEqual(state.ports.map((x) => x.deviceOwner), ['compute:nova']);
    assert.equal(state.routers.length, 1);
    const agents = (await fx.admin.get('/v2.0/agents')).body.agents as { host: string; agent_type: string; alive: boolean }[];
    assert.ok(agents.some((a) => a.agent_type === 'L3 agent' && a.host === host.name && a.alive), JSON.stringify(agents));
  });

  it('the metadata proxy in the router namespace answers the guest with its own instance id, signed', async () => {
    // The proxy starts at the end of the router's sync (the NAT already works before).
    await settled(stack);
    const body = await httpFrom(guest, 'http://169.254.169.254/latest/meta-data/instance-id');
    assert.equal(body, port.device_id);
    assert.deepEqual(seen.at(-1), { instance: port.device_id, tenant: port.project_id, signed: true, forwardedFor: port.fixed_ips[0].ip_address });
    // A forged header from the guest changes nothing.
    const forged = (await guest.exec('curl', ['-sS', '--max-time', '3', '-H', `X-Instance-ID: ${randomUUID()}`, 'http://169.254.169.254/'])).stdout;
    assert.equal(forged, port.device_id);
  });

  it('a floating IP associated through the API: reachable from the external namespace (ping, TCP), outbound leaves as the FIP', async () => {
    const { fx } = stack;
    const t0 = Date.now();
    const res = await fx.admin.post('/v2.0/floatingips', { floatingip: { floating_network_id: publicNet.id, port_id: port.id } });
    assert.equal(res.status, 201, res.text);
    fip = res.body.floatingip;
    await eventually(async () => assert.ok(await pings(ext, fip.floating_ip_address, 1), 'floating IP answers'));
    const fipMs = Date.now() - t0;
    assert.equal(await httpFrom(ext, `http://${fip.floating_ip_address}:8080/`), '172.24.4.1', 'DNAT keeps the external source');
    assert.equal(await httpFrom(guest, 'http://172.24.4.1:8000/'), fip.floating_ip_address, 'SNAT to the floating IP');
    console.log(`# floating IP via API → reachable in ${fipMs} ms`);
  });

  it('external_interface_mappings: the mapped interface is on the external bridge and a network behind it reaches the floating IP', async () => {
    assert.equal((await host.agent.ip.linkShow(ext.name, UPLINK))?.master, bridgeName(publicNet.id));
    await eventually(async () => assert.ok(await pings(upstream, fip.floating_ip_address, 1), 'floating IP answers over the mapped interface'));
    assert.equal(await httpFrom(upstream, `http://${fip.floating_ip_address}:8080/`), '172.24.4.2', 'DNAT keeps the upstream source');
  });

  it('disassociating the floating IP stops inbound traffic; outbound is SNATed to the gateway again', async () => {
    const { fx } = stack;
    const res = await fx.admin.put(`/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: null } });
    assert.equal(res.status, 200, res.text);
    await eventually(async () => assert.equal(await httpFrom(guest, 'http://172.24.4.1:8000/'), gatewayIp));
    assert.equal(await pings(ext, fip.floating_ip_address, 1), false);
    assert.equal(await fails(httpFrom(ext, `http://${fip.floating_ip_address}:8080/`, 1)), true);
  });

  it('restarting the agent keeps the router and its metadata working', async () => {
    await settled(stack);
    await host.restart();
    assert.equal(await httpFrom(guest, 'http://172.24.4.1:8000/'), gatewayIp);
    assert.equal(await httpFrom(guest, 'http://169.254.169.254/latest/meta-data/instance-id'), port.device_id);
  });

  it('removing the interface, the gateway and the router through the API removes the namespace, devices and bridge', async () => {
    const { fx } = stack;
    const routerNs = host.agent.l3!.namespaceOf(router.id);
    assert.equal(await host.agent.ip.netnsExists(routerNs), true);
    assert.equal((await fx.admin.delete(`/v2.0/floatingips/${fip.id}`)).status, 204);
    const rm = await fx.admin.put(`/v2.0/routers/${router.id}/remove_router_interface`, { subnet_id: tenantSubnet.id });
    assert.equal(rm.status, 200, rm.text);
    await eventually(async () => {
      const names = (await host.agent.ip.linkList(host.ns.name)).map((l) => l.ifname);
      assert.ok(names.includes(tapDevice(port.id)), 'the guest tap stays');
      assert.ok(!names.includes(tapDevice(routerPortId)), names.join(' '));
    });
    assert.equal(await fails(httpFrom(guest, 'http://172.24.4.1:8000/', 1)), true);
    assert.equal((await fx.admin.delete(`/v2.0/routers/${router.id}`)).status, 204);
    await eventually(async () => {
      assert.equal(await host.agent.ip.netnsExists(routerNs), false);
      // The subnet has no router any more: its metadata is served from the DHCP namespace (isolated metadata).
      assert.deepEqual(host.metadata!.namespaces(), [host.agent.dhcp.namespaceFor(tenantNet.id)]);
      const extLinks = await host.agent.ip.linkList(ext.name);
      // The mapped interface stays where it was given (the external namespace), on no bridge.
      assert.deepEqual(extLinks.filter((l) => l.ifname !== 'lo').map((l) => [l.ifname, l.master ?? null]), [[UPLINK, null]], extLinks.map((l) => l.ifname).join(' '));
    });
  });
});
