/**
 * (Every assert.ok here carries a message: see api-l3.test.ts.)
 *
 * IPv6 through the Networking API with real traffic: the network host's agent (L2, DHCP, L3)
 * serves three v6 subnets, one per address mode, to veth stand-ins for guests. As upstream,
 * SLAAC prefixes and default routes come from the router's advertisements (radvd in the
 * router namespace; l3/router-advertisements.ts) and DHCPv6 from the DHCP agent's dnsmasq;
 * the guests' DHCPv6 client is agent-test-kit's dhcpv6() (busybox has no udhcpc6).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Netns } from '@onestack/testing/netns.ts';
import { canonicalV6, dhcpv6, eventually, globalV6 } from '../agent-test-kit.ts';
import { startApiStack, type ApiStack } from './api-stack.ts';

interface Port {
  id: string;
  mac_address: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}

async function pings6(ns: Netns, address: string): Promise<boolean> {
  try {
    await ns.exec('busybox', ['ping6', '-c', '1', '-W', '2', address]);
    return true;
  } catch {
    return false;
  }
}

async function tcp6Reaches(ns: Netns, address: string, portNo: number): Promise<boolean> {
  const code = `const s=require('net').connect({host:'${address}',port:${portNo}});let d='';s.on('data',c=>d+=c);s.on('end',()=>process.exit(d==='ok'?0:1));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),2000);`;
  try {
    await ns.exec(process.execPath, ['-e', code], { timeoutMs: 8000 });
    return true;
  } catch {
    return false;
  }
}

describe('IPv6 data plane through the API: SLAAC, DHCPv6 stateful/stateless, security groups, routing', () => {
  let stack: ApiStack;
  const subnets: Record<'slaac' | 'stateful' | 'stateless', { id: string; network_id: string; gateway_ip: string }> = {} as never;
  let sg: string;
  let router: string;
  const ports: Port[] = [];
  const guests: Netns[] = [];

  before(async () => {
    // No metadata in these tests: the proxy's upstream is a port nothing listens on.
    stack = await startApiStack({ hosts: 1, tag: 'v6', l3: { metadataUrl: 'http://127.0.0.1:9', sharedSecret: 'unused' } });
    const { fx } = stack;
    // TCP 22 over IPv6 only: no ICMPv6 rule, so neighbour discovery passing is the firewall's doing.
    sg = (await fx.admin.post('/v2.0/security-groups', { security_group: { name: 'v6-sg' } })).body.security_group.id;
    const rule = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg, direction: 'ingress', ethertype: 'IPv6', protocol: 'tcp', port_range_min: 22, port_range_max: 22 } });
    assert.equal(rule.status, 201, rule.text);
    const modes = { slaac: ['slaac', 'a'], stateful: ['dhcpv6-stateful', 'b'], stateless: ['dhcpv6-stateless', 'c'] } as const;
    for (const [key, [mode, tag]] of Object.entries(modes) as [keyof typeof modes, (typeof modes)[keyof typeof modes]][]) {
      const net = (await fx.admin.post('/v2.0/networks', { network: { name: `v6-${key}` } })).body.network;
      const res = await fx.admin.post('/v2.0/subnets', {
        subnet: { network_id: net.id, ip_version: 6, cidr: `2001:db8:${tag}::/64`, ipv6_ra_mode: mode, ipv6_address_mode: mode, dns_nameservers: [`2001:db8:${tag}::53`] },
      });
      assert.equal(res.status, 201, res.text);
      subnets[key] = res.body.subnet;
    }
    router = (await fx.admin.post('/v2.0/routers', { router: { name: 'v6-router' } })).body.router.id;
    for (const key of ['slaac', 'stateless'] as const) {
      const res = await fx.admin.put(`/v2.0/routers/${router}/add_router_interface`, { subnet_id: subnets[key].id });
      assert.equal(res.status, 200, res.text);
    }
    // Guests: two on the SLAAC network, one on each DHCPv6 network.
    for (const [i, key] of (['slaac', 'slaac', 'stateful', 'stateless'] as const).entries()) {
      const res = await fx.admin.post('/v2.0/ports', {
        port: { network_id: subnets[key].network_id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': stack.hosts[0].name, security_groups: [sg] },
      });
      assert.equal(res.status, 201, res.text);
      ports.push(res.body.port);
      const g = await stack.lab.addNamespace(`v6-g${i}`);
      guests.push(g);
      await stack.hosts[0].agent.l2.plugVethPort({ id: res.body.port.id, macAddress: res.body.port.mac_address }, g.name);
      // A guest that is not a router accepts RAs (the default); no DAD wait for the test's sake.
      await g.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.eth0.accept_dad=0']);
    }
    await fx.eventually(
      async () => Promise.all(ports.map(async (p) => (await fx.admin.get(`/v2.0/ports/${p.id}`)).body.port.status)),
      (s) => s.every((x) => x === 'ACTIVE'),
    );
  });
  after(async () => {
    await stack?.close();
  });

  /** Waits for the RA-made address; re-plugs the link so the guest solicits again if the first RS went unanswered. */
  async function slaacAddress(g: Netns): Promise<string[]> {
    return eventually(
      async () => {
        const a = await globalV6(g, 'eth0');
        if (a.length === 0) {
          await g.ip('link', 'set', 'eth0', 'down');
          await g.ip('link', 'set', 'eth0', 'up');
          throw new Error(`no SLAAC address yet in ${g.name}`);
        }
        return a;
      },
      60_000,
      2000,
    );
  }

  it('slaac: the guests configure the EUI-64 address the API gave their ports from the RA; TCP passes the group (ND allowed), ping6 does not until a rule allows ICMPv6', async () => {
    const { fx } = stack;
    const t0 = Date.now();
    for (const i of [0, 1]) assert.deepEqual(await slaacAddress(guests[i]), [ports[i].fixed_ips[0].ip_address]);
    const slaacMs = Date.now() - t0;
    // The router advertised itself too: a default route via its link-local address.
    const routes = JSON.parse((await guests[0].exec('ip', ['-j', '-6', 'route', 'show', 'default'])).stdout) as { gateway?: string }[];
    assert.ok(routes.some((r) => r.gateway?.startsWith('fe80:')), `default route from the RA: ${JSON.stringify(routes)}`);
    const target = ports[1].fixed_ips[0].ip_address;
    guests[1].spawn(process.execPath, ['-e', "require('net').createServer(s=>s.end('ok')).listen(22,'::');"]);
    await eventually(async () => assert.ok(await tcp6Reaches(guests[0], target, 22), 'TCP 22 over IPv6 reaches g1'), 20_000, 500);
    assert.equal(await pings6(guests[0], target), false, 'ping6 blocked: no ICMPv6 ingress rule');
    const rule = await fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg, direction: 'ingress', ethertype: 'IPv6', protocol: 'ipv6-icmp' } });
    assert.equal(rule.status, 201, rule.text);
    await eventually(async () => assert.ok(await pings6(guests[0], target), 'ping6 g0 → g1 after the ICMPv6 rule'), 20_000, 500);
    console.log(`# SLAAC addresses in ${slaacMs} ms`);
  });

  it('dhcpv6-stateful: dnsmasq hands the port its fixed address (IA_NA) and the DNS server', async () => {
    const reply = await dhcpv6(guests[2], 'eth0', 'solicit');
    assert.deepEqual(reply.addresses, [ports[2].fixed_ips[0].ip_address]);
    assert.deepEqual(reply.dns, [canonicalV6('2001:db8:b::53')]);
    // The RA says "managed": no SLAAC address besides DHCPv6's.
    assert.deepEqual(await globalV6(guests[2], 'eth0'), []);
    await guests[2].ip('-6', 'addr', 'add', `${reply.addresses[0]}/64`, 'dev', 'eth0', 'nodad');
  });

  it('dhcpv6-stateless: a SLAAC address from the RA and the DNS server from an Information-Request', async () => {
    assert.deepEqual(await slaacAddress(guests[3]), [ports[3].fixed_ips[0].ip_address]);
    const reply = await dhcpv6(guests[3], 'eth0', 'information-request');
    assert.deepEqual(reply, { addresses: [], dns: [canonicalV6('2001:db8:c::53')] });
  });

  it('the router routes between two v6 subnets, each guest by its RA default route (stateful: managed, no SLAAC prefix); removing an interface cuts it', async () => {
    const { fx } = stack;
    const add = await fx.admin.put(`/v2.0/routers/${router}/add_router_interface`, { subnet_id: subnets.stateful.id });
    assert.equal(add.status, 200, add.text);
    await eventually(
      async () => {
        const routes = JSON.parse((await guests[2].exec('ip', ['-j', '-6', 'route', 'show', 'default'])).stdout) as { gateway?: string }[];
        if (routes.some((r) => r.gateway?.startsWith('fe80:'))) return;
        // Solicit again: the first RS may have gone out before radvd listened.
        await guests[2].ip('link', 'set', 'eth0', 'down');
        await guests[2].ip('link', 'set', 'eth0', 'up');
        await guests[2].ip('-6', 'addr', 'replace', `${ports[2].fixed_ips[0].ip_address}/64`, 'dev', 'eth0', 'nodad');
        throw new Error(`no default route from the router's RA yet: ${JSON.stringify(routes)}`);
      },
      60_000,
      2000,
    );
    assert.deepEqual(await globalV6(guests[2], 'eth0'), [ports[2].fixed_ips[0].ip_address], 'the stateful prefix is not autonomous: only the DHCPv6 address');
    const far = ports[2].fixed_ips[0].ip_address;
    await eventually(async () => assert.ok(await pings6(guests[0], far), 'ping6 across the router'), 30_000, 500);
    const res = await fx.admin.put(`/v2.0/routers/${router}/remove_router_interface`, { subnet_id: subnets.stateful.id });
    assert.equal(res.status, 200, res.text);
    await eventually(async () => assert.equal(await pings6(guests[0], far), false, 'no route once the interface is gone'), 30_000, 500);
  });
});
