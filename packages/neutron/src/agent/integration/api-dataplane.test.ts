/**
 * The data plane driven through the Networking API: the API server and two agents (two
 * namespace "hosts" with a VXLAN underlay) talk over the bus as in a deployment; the guests
 * are veth stand-ins plugged as the ports' taps. Real dnsmasq, bridges, VXLAN and nftables.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Netns } from '@onestack/testing/netns.ts';
import { dataPlane, dhcpLease, eventually, ping, pings } from '../agent-test-kit.ts';
import { VIF_PLUGGED } from '../../rpc/server-rpc.ts';
import { settled, startApiStack, type ApiStack, type SimHost } from './api-stack.ts';

/** A TCP server on port 22 answering "ok", inside a guest namespace. */
function tcpServer(ns: Netns): void {
  ns.spawn(process.execPath, ['-e', "require('net').createServer(s=>s.end('ok')).listen(22);"]);
}

async function tcpReaches(ns: Netns, address: string, portNo: number): Promise<boolean> {
  const code = `const s=require('net').connect({host:'${address}',port:${portNo}});let d='';s.on('data',c=>d+=c);s.on('end',()=>process.exit(d==='ok'?0:1));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),700);`;
  try {
    await ns.exec(process.execPath, ['-e', code], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('data plane through the API: server RPC + two host agents', () => {
  let stack: ApiStack;
  let guests: Netns[];
  let net: { id: string };
  let ports: { id: string; mac_address: string; device_id: string; fixed_ips: { ip_address: string }[] }[];
  let sg: { id: string };
  let dnsmasqPid: number | undefined;
  let icmpRule: string;

  before(async () => {
    stack = await startApiStack({ hosts: 2, tag: 'api' });
    guests = [await stack.lab.addNamespace('api-g0'), await stack.lab.addNamespace('api-g1')];
  });
  after(async () => {
    await stack?.close();
  });

  it('ports bound to two hosts get DHCP over VXLAN, become ACTIVE with network-vif-plugged; agents are alive', async () => {
    const { fx, hosts } = stack;
    const t0 = Date.now();
    net = (await fx.admin.post('/v2.0/networks', { network: { name: 'api-net' } })).body.network;
    const sub = await fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.72.0.0/24', ip_version: 4, gateway_ip: '10.72.0.1' } });
    assert.equal(sub.status, 201, sub.text);
    // A group with egress only: guests reach out but nothing reaches them until a rule says so.
    sg = (await fx.admin.post('/v2.0/security-groups', { security_group: { name: 'api-sg' } })).body.security_group;
    ports = [];
    for (const i of [0, 1]) {
      const res = await fx.admin.post('/v2.0/ports', {
        port: { network_id: net.id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': hosts[i].name, security_groups: [sg.id] },
      });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.body.port.status, 'DOWN');
      ports.push(res.body.port);
    }
    // Nova's part: the taps appear in the host namespace after the ports are bound.
    for (const i of [0, 1]) await hosts[i].agent.l2.plugVethPort({ id: ports[i].id, macAddress: ports[i].mac_address }, guests[i].name);
    const active = await fx.eventually(
      async () => Promise.all(ports.map(async (p) => (await fx.admin.get(`/v2.0/ports/${p.id}`)).body.port.status)),
      (s) => s.every((x) => x === 'ACTIVE'),
    );
    assert.deepEqual(active, ['ACTIVE', 'ACTIVE']);
    const activeMs = Date.now() - t0;
    const plugged = fx.notifications.filter((n) => n.event_type === VIF_PLUGGED).map((n) => n.payload as { server_uuid: string; tag: string; status: string });
    for (const p of ports) assert.ok(plugged.some((e) => e.tag === p.id && e.server_uuid === p.device_id && e.status === 'completed'), JSON.stringify(plugged));
    assert.ok(fx.notifications.some((n) => n.event_type === 'port.update.end' && (n.payload as { port: { id: string; status: string } }).port.status === 'ACTIVE'));

    const leases = [];
    for (const i of [0, 1]) leases.push(await dhcpLease(guests[i], 'eth0', hosts[0].dir));
    assert.deepEqual(
      leases.map((l) => [l.ip, l.router, l.mtu]),
      ports.map((p) => [p.fixed_ips[0].ip_address, '10.72.0.1', '1450']),
    );
    // Egress only: g0 → g1 blocked at g1's port; then the default-group style rule opens it.
    assert.equal(await pings(guests[0], ports[1].fixed_ips[0].ip_address), false);

    const agents = (await fx.admin.get('/v2.0/agents')).body.agents as { host: string; agent_type: string; alive: boolean; configurations: Record<string, unknown> }[];
    const lb = agents.filter((a) => a.agent_type === 'Linux bridge agent').sort((a, b) => a.host.localeCompare(b.host));
    assert.deepEqual(lb.map((a) => [a.host, a.alive, a.configurations.local_ip]).sort(), hosts.map((h) => [h.name, true, h.vtep]).sort());
    assert.ok(agents.some((a) => a.agent_type === 'DHCP agent' && a.host === hosts[0].name && a.alive));
    console.log(`# api → ACTIVE in ${activeMs} ms; both leases ${Date.now() - t0} ms after the first API call`);
  });

  it('security group rules added through the API allow ICMP and TCP 22, removing them blocks again and cuts established flows (conntrack); a spoofed source is dropped', async () => {
    const { fx } = stack;
    const target = ports[1].fixed_ips[0].ip_address;
    tcpServer(guests[1]);
    guests[1].spawn(process.execPath, ['-e', "require('net').createServer(s=>s.pipe(s)).listen(2222);"]);
    assert.equal(await tcpReaches(guests[0], target, 22), false);
    const rules = [];
    for (const r of [
      { protocol: 'icmp' },
      { protocol: 'tcp', port_range_min: 22, port_range_max: 22 },
      { protocol: 'tcp', port_range_min: 2222, port_range_max: 2222 },
    ]) {
      const res = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', ...r } });
      assert.equal(res.status, 201, res.text);
      rules.push(res.body.security_group_rule.id as string);
    }
    const t0 = Date.now();
    await eventually(() => ping(guests[0], target, { timeoutS: 1 }));
    const ruleMs = Date.now() - t0;
    await eventually(async () => assert.ok(await tcpReaches(guests[0], target, 22)));

    // A guest sending from an address that is not its port's: dropped by anti-spoofing.
    await guests[0].ip('addr', 'add', '10.72.0.250/24', 'dev', 'eth0');
    await assert.rejects(guests[0].exec('busybox', ['ping', '-c', '1', '-W', '1', '-I', '10.72.0.250', target]));
    await guests[0].ip('addr', 'del', '10.72.0.250/24', 'dev', 'eth0');

    // Flows open while the rules go: a steady ping and a TCP connection echoing every 200 ms.
    const pinger = guests[0].spawn('busybox', ['ping', '-i', '0.2', target]);
    const talker = guests[0].spawn(process.execPath, ['-e', `const s=require('net').connect({host:'${target}',port:2222});s.on('data',()=>console.log('echo'));setInterval(()=>s.write('x'),200);`]);
    const replies = { ping: 0, tcp: 0 };
    pinger.stdout!.on('data', (c: Buffer) => (replies.ping += (c.toString().match(/bytes from/g) ?? []).length));
    talker.stdout!.on('data', (c: Buffer) => (replies.tcp += (c.toString().match(/echo/g) ?? []).length));
    try {
      await eventually(async () => assert.ok(replies.ping > 2 && replies.tcp > 2, `flows running: ${JSON.stringify(replies)}`));
      for (const id of rules) assert.equal((await fx.admin.delete(`/v2.0/security-group-rules/${id}`)).status, 204);
      await settled(stack);
      // Conntrack entries of the removed rules' flows are deleted: both established flows stop.
      const atRemoval = { ...replies };
      await new Promise((r) => setTimeout(r, 1500));
      const settledAt = { ...replies };
      await new Promise((r) => setTimeout(r, 2000));
      assert.deepEqual(replies, settledAt, `flows cut after the rules went (at removal ${JSON.stringify(atRemoval)})`);
    } finally {
      pinger.kill();
      talker.kill();
    }
    assert.equal(await pings(guests[0], target), false);
    assert.equal(await tcpReaches(guests[0], target, 22), false);
    // Back on for the restart test.
    const back = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp' } });
    icmpRule = back.body.security_group_rule.id;
    await eventually(() => ping(guests[0], target, { timeoutS: 1 }));
    console.log(`# rule via API → traffic passes in ${ruleMs} ms`);
  });

  it('a network and port only host 0 has: host 0 resyncs, the other agent does not', async () => {
    const { fx, hosts } = stack;
    await settled(stack);
    const syncsOf = (h: SimHost) => stack.syncs.filter((s) => s.host === h.name).length;
    const before = syncsOf(hosts[1]);
    const start0 = syncsOf(hosts[0]);
    const other = (await fx.admin.post('/v2.0/networks', { network: { name: 'api-host0-only' } })).body.network;
    assert.equal((await fx.admin.post('/v2.0/subnets', { subnet: { network_id: other.id, cidr: '10.73.0.0/24', ip_version: 4 } })).status, 201);
    const p = (await fx.admin.post('/v2.0/ports', { port: { network_id: other.id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': hosts[0].name } })).body.port;
    await eventually(async () => assert.ok(await hosts[0].agent.ip.netnsExists(hosts[0].agent.dhcp.namespaceFor(other.id)), 'DHCP of the new network on host 0'));
    assert.equal((await fx.admin.delete(`/v2.0/ports/${p.id}`)).status, 204);
    assert.equal((await fx.admin.delete(`/v2.0/networks/${other.id}`)).status, 204);
    await eventually(async () => assert.equal(await hosts[0].agent.ip.netnsExists(hosts[0].agent.dhcp.namespaceFor(other.id)), false));
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(syncsOf(hosts[0]) > start0, 'host 0 resynced');
    assert.equal(syncsOf(hosts[1]), before, 'host 1 was not asked to resync');
  });

  it('restarting both agents (new instances) changes nothing on either host', async () => {
    const { hosts } = stack;
    await settled(stack);
    const before = await Promise.all(hosts.map((h) => dataPlane(h.agent.ip, h.ns)));
    dnsmasqPid = hosts[0].agent.dhcp.dnsmasqPid(net.id);
    assert.ok(dnsmasqPid);
    const t0 = Date.now();
    for (const h of hosts) await h.restart();
    const restartMs = Date.now() - t0;
    const afterRestart = await Promise.all(hosts.map((h) => dataPlane(h.agent.ip, h.ns)));
    assert.equal(afterRestart[0], before[0]);
    assert.equal(afterRestart[1], before[1]);
    assert.equal(hosts[0].agent.dhcp.dnsmasqPid(net.id), dnsmasqPid);
    await ping(guests[0], ports[1].fixed_ips[0].ip_address);
    console.log(`# both agents restarted and resynced in ${restartMs} ms`);
  });

  it('a port leaving the remote group a rule names loses its established flows (conntrack), not only new ones', async () => {
    const { fx } = stack;
    const target = ports[1].fixed_ips[0].ip_address;
    const peers = (await fx.admin.post('/v2.0/security-groups', { security_group: { name: 'api-peers' } })).body.security_group;
    const byPeers = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp', remote_group_id: peers.id } });
    assert.equal(byPeers.status, 201, byPeers.text);
    assert.equal((await fx.admin.delete(`/v2.0/security-group-rules/${icmpRule}`)).status, 204);
    assert.equal((await fx.admin.put(`/v2.0/ports/${ports[0].id}`, { port: { security_groups: [sg.id, peers.id] } })).status, 200);
    await settled(stack);
    await eventually(() => ping(guests[0], target, { timeoutS: 1 }));
    const pinger = guests[0].spawn('busybox', ['ping', '-i', '0.2', target]);
    let replies = 0;
    pinger.stdout!.on('data', (c: Buffer) => (replies += (c.toString().match(/bytes from/g) ?? []).length));
    try {
      await eventually(async () => assert.ok(replies > 2, `ping running: ${replies}`));
      assert.equal((await fx.admin.put(`/v2.0/ports/${ports[0].id}`, { port: { security_groups: [sg.id] } })).status, 200);
      await settled(stack);
      await new Promise((r) => setTimeout(r, 1500));
      const settledAt = replies;
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(replies, settledAt, 'the established ping stopped once g0 left the remote group');
    } finally {
      pinger.kill();
    }
  });

  it('deleting the ports and the network through the API removes every device, namespace, dnsmasq and rule', async () => {
    const { fx, hosts } = stack;
    for (const i of [0, 1]) await hosts[i].agent.l2.unplugVethPort(ports[i].id);
    for (const p of ports) assert.equal((await fx.admin.delete(`/v2.0/ports/${p.id}`)).status, 204);
    assert.equal((await fx.admin.delete(`/v2.0/networks/${net.id}`)).status, 204);
    await eventually(async () => {
      for (const h of hosts) {
        const names = (await h.agent.ip.linkList(h.ns.name)).map((l) => l.ifname);
        assert.ok(!names.some((n) => n.startsWith('brq') || n.startsWith('vxlan-') || n.startsWith('tap')), names.join(' '));
        assert.equal((await h.ns.exec('nft', ['list', 'ruleset'])).stdout.trim(), '');
      }
      assert.equal(await hosts[0].agent.ip.netnsExists(hosts[0].agent.dhcp.namespaceFor(net.id)), false);
      assert.equal(existsSync(`/proc/${dnsmasqPid}`), false);
    });
  });
});
