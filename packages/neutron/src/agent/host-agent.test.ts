import assert from 'node:assert/strict';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { dataPlane, dhcpLease, eventually, openGroup, ping, port, quietLogger, removeAgentNamespaces, subnet4, underlayHosts, vxlanNetwork } from './agent-test-kit.ts';
import { HostAgent } from './host-agent.ts';
import { emptyHostState, type HostState } from './model.ts';

describe('host agent: L2 + DHCP + firewall across two namespace hosts', () => {
  let lab: NetnsLab;
  let hosts: Netns[];
  let vteps: string[];
  let guests: Netns[];
  let dirs: { path: string; remove: () => void }[];

  before(async () => {
    lab = NetnsLab.create();
    ({ hosts, vteps } = await underlayHosts(lab, 2, 'ha'));
    guests = [await lab.addNamespace('ha-g0'), await lab.addNamespace('ha-g1')];
    dirs = [tempDir('onestack-ha0-'), tempDir('onestack-ha1-')];
    for (const d of dirs) chmodSync(d.path, 0o755);
  });
  after(async () => {
    for (const h of hosts) await removeAgentNamespaces(`${h.name}-`);
    await lab.cleanup();
    for (const d of dirs) d.remove();
  });

  it('guests on two hosts get DHCP over VXLAN and reach each other; a restart changes nothing; removal removes everything', async () => {
    const net = vxlanNetwork(2002);
    const sub = subnet4(net.id, '10.64.0.0/24', '10.64.0.1', { isolatedMetadata: true });
    const group = openGroup(['10.64.0.11', '10.64.0.12']);
    const dhcpPort = port(net.id, [{ subnetId: sub.id, ipAddress: '10.64.0.2' }], { deviceOwner: 'network:dhcp' });
    const ports = [0, 1].map((i) => port(net.id, [{ subnetId: sub.id, ipAddress: `10.64.0.${11 + i}` }], { securityGroupIds: [group.id] }));
    // Host 0 runs DHCP for the network; host 1 only has its guest. Each host's DHCP entries cover both ports.
    const states: HostState[] = [0, 1].map((i) => ({
      ...emptyHostState(`host${i}`),
      localVtepIp: vteps[i],
      networks: [net],
      subnets: [sub],
      ports: [ports[i]],
      otherPorts: [ports[1 - i]],
      securityGroups: [group],
      dhcpPorts: i === 0 ? [dhcpPort] : [],
      vtepPeers: { [net.id]: [vteps[1 - i]] },
    }));
    const mkAgent = (i: number) =>
      new HostAgent({ logger: quietLogger, hostNamespace: hosts[i].name, namespacePrefix: `${hosts[i].name}-`, stateDir: dirs[i].path });
    const agents = [mkAgent(0), mkAgent(1)];

    const t0 = Date.now();
    for (const i of [0, 1]) {
      await agents[i].l2.plugVethPort(ports[i], guests[i].name);
      const report = await agents[i].reconcile(states[i]);
      assert.deepEqual(report, { host: `host${i}`, wiredPorts: [ports[i].id], unwiredPorts: [], dhcpNetworks: i === 0 ? [net.id] : [], errors: [] });
    }
    const reconcileMs = Date.now() - t0;
    const leases = [];
    for (const i of [0, 1]) leases.push(await dhcpLease(guests[i], 'eth0', dirs[0].path));
    const leaseMs = Date.now() - t0;
    assert.deepEqual(leases.map((l) => [l.ip, l.mtu]), [['10.64.0.11', '1450'], ['10.64.0.12', '1450']]);
    await eventually(() => ping(guests[0], '10.64.0.12'));
    await ping(guests[1], '10.64.0.11');
    // The guest on host 1 reaches the DHCP/metadata address on host 0 across the tunnel.
    await ping(guests[1], '169.254.169.254');

    // Restart: new agents, same state: no device, fdb entry, rule or process changes.
    const before = await Promise.all([0, 1].map((i) => dataPlane(agents[i].ip, hosts[i])));
    const pid = agents[0].dhcp.dnsmasqPid(net.id);
    assert.ok(pid);
    const restarted = [mkAgent(0), mkAgent(1)];
    for (const i of [0, 1]) assert.deepEqual((await restarted[i].reconcile(states[i])).errors, []);
    const afterRestart = await Promise.all([0, 1].map((i) => dataPlane(restarted[i].ip, hosts[i])));
    assert.equal(afterRestart[0], before[0]);
    assert.equal(afterRestart[1], before[1]);
    assert.equal(restarted[0].dhcp.dnsmasqPid(net.id), pid);
    await ping(guests[0], '10.64.0.12');

    // The network gone from both hosts: bridge, vxlan, qdhcp namespace, dnsmasq, rules all gone.
    for (const i of [0, 1]) assert.deepEqual((await restarted[i].reconcile(emptyHostState(`host${i}`))).errors, []);
    for (const i of [0, 1]) {
      const names = (await restarted[i].ip.linkList(hosts[i].name)).map((l) => l.ifname);
      assert.ok(!names.some((n) => n.startsWith('brq') || n.startsWith('vxlan-')), names.join(' '));
      assert.equal((await hosts[i].exec('nft', ['list', 'ruleset'])).stdout.trim(), '');
    }
    assert.equal(await restarted[0].ip.netnsExists(restarted[0].dhcp.namespaceFor(net.id)), false);
    assert.equal(existsSync(`/proc/${pid}`), false);
    assert.equal(existsSync(join(dirs[0].path, 'dhcp', net.id)), false);
    console.log(`# host agents: both reconciled in ${reconcileMs} ms, both leases ${leaseMs} ms after start`);
  });
});
