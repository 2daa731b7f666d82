import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { eventually, ping, pings, port, quietLogger, underlayHosts, vxlanNetwork, localNetwork } from '../agent-test-kit.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { bridgeNameFor, emptyHostState, tapNameFor, type HostState } from '../model.ts';
import { FLOOD_MAC, LinuxBridgeAgent } from './linuxbridge-agent.ts';

const ip = new IpLib({ logger: quietLogger });

/** Link names, masters, MTUs, flags and ifindexes: what a restart must leave as it was. */
async function linkSnapshot(ns: string): Promise<unknown> {
  // Timers (gc_timer …) tick by themselves; everything else must be identical.
  const steady = (data: Record<string, unknown> = {}) => Object.fromEntries(Object.entries(data).filter(([k]) => !k.endsWith('_timer')));
  return (await ip.linkList(ns)).map((l) => [l.ifindex, l.ifname, l.master, l.mtu, l.flags.join(','), steady(l.linkinfo?.info_data)]);
}

describe('linuxbridge L2 agent in real namespaces', () => {
  let lab: NetnsLab;
  let hosts: Netns[];
  let vteps: string[];
  let guests: Netns[];

  before(async () => {
    lab = NetnsLab.create();
    ({ hosts, vteps } = await underlayHosts(lab, 2, 'l2'));
    guests = [await lab.addNamespace('l2-g0'), await lab.addNamespace('l2-g1'), await lab.addNamespace('l2-g2')];
  });
  after(() => lab.cleanup());

  it('carries one vxlan network between two hosts, reconciles idempotently, removes what it made', async () => {
    const net = vxlanNetwork(1001);
    const ports = [port(net.id, []), port(net.id, [])];
    const agents = hosts.map((h) => new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: h.name }));
    const states: HostState[] = [0, 1].map((i) => ({
      ...emptyHostState(`host${i}`),
      localVtepIp: vteps[i],
      networks: [net],
      ports: [ports[i]],
      vtepPeers: { [net.id]: [vteps[1 - i]] },
    }));

    // A port whose tap is not there yet is reported unwired, not an error.
    const early = await agents[0].reconcile(states[0]);
    assert.deepEqual(early, { wiredPorts: [], unwiredPorts: [ports[0].id], errors: [] });

    for (const i of [0, 1]) {
      await agents[i].plugVethPort(ports[i], guests[i].name);
      await guests[i].addAddress('eth0', `10.51.0.${11 + i}/24`);
      const r = await agents[i].reconcile(states[i]);
      assert.deepEqual(r, { wiredPorts: [ports[i].id], unwiredPorts: [], errors: [] });
    }

    const bridge = bridgeNameFor(net.id);
    const tap = await ip.linkShow(hosts[0].name, tapNameFor(ports[0].id));
    assert.equal(tap?.master, bridge);
    assert.equal(tap?.mtu, 1450);
    const vx = await ip.linkShow(hosts[0].name, 'vxlan-1001');
    assert.equal(vx?.master, bridge);
    assert.equal(vx?.linkinfo?.info_data?.local, vteps[0]);
    const flood = (await ip.fdbList(hosts[0].name, 'vxlan-1001')).filter((e) => e.mac === FLOOD_MAC);
    assert.deepEqual(flood.map((e) => e.dst), [vteps[1]]);

    await eventually(() => ping(guests[0], '10.51.0.12'));

    // A restart: a new agent reconciling the same state changes nothing.
    const before = await linkSnapshot(hosts[0].name);
    const fdbBefore = await ip.fdbList(hosts[0].name, 'vxlan-1001');
    const again = await new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: hosts[0].name }).reconcile(states[0]);
    assert.deepEqual(again.errors, []);
    assert.deepEqual(await linkSnapshot(hosts[0].name), before);
    assert.deepEqual(await ip.fdbList(hosts[0].name, 'vxlan-1001'), fdbBefore);

    // Peers follow the state: a peer gone from vtepPeers loses its flood entry, and traffic stops.
    await agents[0].reconcile({ ...states[0], vtepPeers: { [net.id]: [] } });
    assert.deepEqual((await ip.fdbList(hosts[0].name, 'vxlan-1001')).filter((e) => e.mac === FLOOD_MAC && e.dst), []);
    await agents[0].reconcile(states[0]);

    // Removing the network from the state removes the bridge and the vxlan device; the plugger's tap stays.
    for (const i of [0, 1]) {
      const r = await agents[i].reconcile(emptyHostState(`host${i}`));
      assert.deepEqual(r.errors, []);
      const names = (await ip.linkList(hosts[i].name)).map((l) => l.ifname);
      assert.ok(!names.includes(bridge) && !names.includes('vxlan-1001'), names.join(' '));
      assert.ok(names.includes(tapNameFor(ports[i].id)));
      await agents[i].unplugVethPort(ports[i].id);
      assert.equal(await ip.linkShow(hosts[i].name, tapNameFor(ports[i].id)), undefined);
    }
  });

  it('wires a local network, keeps an admin-down port down, and leaves foreign devices alone', async () => {
    const net = localNetwork();
    const up = port(net.id, []);
    const down = port(net.id, [], { adminStateUp: false });
    const agent = new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: hosts[0].name });
    await agent.plugVethPort(up, guests[0].name, { guestIfname: 'eth1' });
    await agent.plugVethPort(down, guests[2].name, { guestIfname: 'eth1' });
    await guests[0].addAddress('eth1', '10.52.0.11/24');
    await guests[2].addAddress('eth1', '10.52.0.12/24');
    // Not ours: a bridge without our prefix must survive every reconcile.
    await ip.linkAddBridge(hosts[0].name, 'br-foreign');
    const state = { ...emptyHostState('host0'), networks: [net], ports: [up, down] };
    const r = await agent.reconcile(state);
    assert.deepEqual(r.wiredPorts.sort(), [up.id, down.id].sort());
    assert.ok(!(await ip.linkShow(hosts[0].name, tapNameFor(down.id)))?.flags.includes('UP'));
    assert.equal(await pings(guests[0], '10.52.0.12'), false);
    await agent.reconcile({ ...state, ports: [up, { ...down, adminStateUp: true }] });
    await eventually(() => ping(guests[0], '10.52.0.12'));
    await agent.reconcile(emptyHostState('host0'));
    assert.ok(await ip.linkShow(hosts[0].name, 'br-foreign'));
    assert.equal(await ip.linkShow(hosts[0].name, bridgeNameFor(net.id)), undefined);
  });

  it('reports an unmapped physical network as an error without stopping other networks', async () => {
    const flat = { id: '0badf1a7-0000-4000-8000-000000000001', mtu: 1500, segment: { networkType: 'flat' as const, segmentationId: null, physicalNetwork: 'physnet9' } };
    const net = localNetwork();
    const agent = new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: hosts[1].name });
    const r = await agent.reconcile({ ...emptyHostState('host1'), networks: [flat, net] });
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0].message, /physnet9/);
    assert.ok(await ip.linkShow(hosts[1].name, bridgeNameFor(net.id)));
    await agent.reconcile(emptyHostState('host1'));
  });
});
