/**
 * Which agents the server asks to resync: only the hosts a change affects (the binding host,
 * the network's other hosts and the network host, the hosts expanding a remote group), with
 * `[neutron] network_host` naming where DHCP and routers run. The agents are recording
 * stand-ins on the bus (named fakes); the real agents' resync is in src/agent/integration.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RpcServer } from '@onestack/core/bus/bus.ts';
import { NeutronServerRpc } from '../src/rpc/server-rpc.ts';
import { rpcTopics, type HostStateChanged } from '../src/rpc/topics.ts';
import { startNeutron, type NeutronFixture } from './fixture.ts';

const HOSTS = ['nethost', 'h1', 'h2'];

describe('server → agents: only the affected hosts resync', () => {
  let fx: NeutronFixture;
  let server: NeutronServerRpc;
  const fakeAgents: RpcServer[] = [];
  const told = new Set<string>();
  let netA: string;
  let netB: string;
  let sg1: string;
  let p1: { id: string; fixed_ips: { subnet_id: string; ip_address: string }[] };

  before(async () => {
    fx = await startNeutron({ config: { network_host: 'nethost' } });
    const topics = rpcTopics(`notify-${process.pid}-${randomUUID().slice(0, 8)}`);
    server = new NeutronServerRpc({
      db: fx.database.db,
      bus: fx.ks.bus,
      clock: fx.deps.clock,
      ids: fx.deps.ids,
      logger: fx.deps.logger,
      hooks: fx.deps.hooks,
      notifier: fx.deps.notifier,
      topics,
      networkHost: fx.config.networkHost,
      debounceMs: 20,
    });
    await server.start();
    for (const host of HOSTS) {
      fakeAgents.push(
        await fx.ks.bus.serve(topics.agent, host, {
          host_state_changed: async (a: HostStateChanged) => {
            if (!a?.hosts || a.hosts.includes(host)) told.add(host);
            return null;
          },
        }),
      );
    }
  });
  after(async () => {
    for (const a of fakeAgents) await a.stop();
    await server?.stop();
    await fx?.close();
  });

  /** Runs `change`, waits for every expected host to be told, then a while for any other. */
  async function toldAfter(change: () => Promise<void>, expected: string[]): Promise<string[]> {
    told.clear();
    await change();
    for (let i = 0; i < 300 && !expected.every((h) => told.has(h)); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    return [...told].sort();
  }

  const post = async (path: string, body: object) => {
    const res = await fx.admin.post(path, body);
    assert.equal(res.status, 201, res.text);
    return res.body;
  };
  const port = (network_id: string, host: string, groups: string[]) =>
    post('/v2.0/ports', { port: { network_id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': host, security_groups: groups } });

  it('a new network with DHCP concerns the network host only, whose name the DHCP port is bound to', async () => {
    const hosts = await toldAfter(async () => {
      netA = (await post('/v2.0/networks', { network: { name: 'notify-a' } })).network.id;
      await post('/v2.0/subnets', { subnet: { network_id: netA, cidr: '10.81.0.0/24', ip_version: 4 } });
    }, ['nethost']);
    assert.deepEqual(hosts, ['nethost']);
    const dhcp = (await fx.admin.get(`/v2.0/ports?network_id=${netA}&device_owner=network:dhcp`)).body.ports;
    assert.deepEqual(dhcp.map((p: Record<string, unknown>) => p['binding:host_id']), ['nethost']);
  });

  it('a port bound to h1: h1 and the network host (its DHCP and l2pop peer), not h2', async () => {
    sg1 = (await post('/v2.0/security-groups', { security_group: { name: 'notify-sg1' } })).security_group.id;
    const hosts = await toldAfter(async () => {
      p1 = (await port(netA, 'h1', [sg1])).port;
    }, ['nethost', 'h1']);
    assert.deepEqual(hosts, ['h1', 'nethost']);
  });

  it("a rule of a group concerns the hosts of the group's ports only; a group without ports, nobody", async () => {
    assert.deepEqual(
      await toldAfter(() => post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg1, direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp' } }).then(() => undefined), ['h1']),
      ['h1'],
    );
    const lonely = (await post('/v2.0/security-groups', { security_group: { name: 'notify-lonely' } })).security_group.id;
    assert.deepEqual(await toldAfter(() => post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: lonely, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp' } }).then(() => undefined), []), []);
  });

  it("a port's new address reaches the hosts whose rules name its group as remote group", async () => {
    netB = (await post('/v2.0/networks', { network: { name: 'notify-b' } })).network.id;
    await post('/v2.0/subnets', { subnet: { network_id: netB, cidr: '10.82.0.0/24', ip_version: 4 } });
    const sg2 = (await post('/v2.0/security-groups', { security_group: { name: 'notify-sg2' } })).security_group.id;
    await post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg2, direction: 'ingress', ethertype: 'IPv4', remote_group_id: sg1 } });
    await port(netB, 'h2', [sg2]);
    const hosts = await toldAfter(async () => {
      const res = await fx.admin.put(`/v2.0/ports/${p1.id}`, { port: { fixed_ips: [{ subnet_id: p1.fixed_ips[0].subnet_id, ip_address: '10.81.0.77' }] } });
      assert.equal(res.status, 200, res.text);
    }, ['nethost', 'h1', 'h2']);
    assert.deepEqual(hosts, ['h1', 'h2', 'nethost']);
  });

  it('a port moved from h1 to h2 concerns both, and a router interface the network host and the network hosts', async () => {
    const moved = await toldAfter(async () => {
      const res = await fx.admin.put(`/v2.0/ports/${p1.id}`, { port: { 'binding:host_id': 'h2', security_groups: [] } });
      assert.equal(res.status, 200, res.text);
    }, ['h1', 'h2']);
    assert.deepEqual(moved, ['h1', 'h2', 'nethost']);

    const router = (await post('/v2.0/routers', { router: { name: 'notify-r' } })).router.id;
    const subnetB = (await fx.admin.get(`/v2.0/subnets?network_id=${netB}`)).body.subnets[0].id;
    const hosts = await toldAfter(async () => {
      const res = await fx.admin.put(`/v2.0/routers/${router}/add_router_interface`, { subnet_id: subnetB });
      assert.equal(res.status, 200, res.text);
    }, ['nethost', 'h2']);
    assert.deepEqual(hosts, ['h2', 'nethost']);
  });
});
