import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { dhcpLease, eventually, localNetwork, ping, port, quietLogger, removeAgentNamespaces, subnet4 } from '../agent-test-kit.ts';
import { LinuxBridgeAgent } from '../l2/linuxbridge-agent.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { emptyHostState, tapNameFor, type HostState } from '../model.ts';
import { closedAncestor, DhcpAgent, nsDeviceFor, staleLeases } from './dhcp-agent.ts';
import { dnsmasqArgs, hostsFile, optsFile } from './dnsmasq-config.ts';

const ip = new IpLib({ logger: quietLogger });

describe('dnsmasq configuration', () => {
  const net = localNetwork(1450);
  const v4 = subnet4(net.id, '10.0.0.0/24', '10.0.0.1', { isolatedMetadata: true, dnsNameservers: ['8.8.8.8'], hostRoutes: [{ destination: '10.9.0.0/16', nexthop: '10.0.0.254' }] });
  const v6 = { ...subnet4(net.id, 'fd00:1::/64', 'fd00:1::1'), ipVersion: 6 as const, ipv6RaMode: 'dhcpv6-stateful' as const, ipv6AddressMode: 'dhcpv6-stateful' as const };
  const slaac = { ...subnet4(net.id, 'fd00:2::/64', 'fd00:2::1'), ipVersion: 6 as const, ipv6RaMode: 'slaac' as const, ipv6AddressMode: 'slaac' as const };
  const dhcpPort = port(net.id, [{ subnetId: v4.id, ipAddress: '10.0.0.2' }], { deviceOwner: 'network:dhcp' });
  const p = port(net.id, [
    { subnetId: v4.id, ipAddress: '10.0.0.11' },
    { subnetId: v6.id, ipAddress: 'fd00:1::11' },
    { subnetId: slaac.id, ipAddress: 'fd00:2::f816:3eff:fe00:11' },
  ]);
  const files = { dir: '/d', pidFile: '/d/pid', hostsFile: '/d/host', addnHostsFile: '/d/addn_hosts', optsFile: '/d/opts', leaseFile: '/d/leases' };
  const input = { network: net, subnets: [v4, v6, slaac], ports: [p], dhcpPort, interfaceName: 'ns-x', files };

  it('runs static ranges per subnet tag, RA for RA subnets, upstream flags', () => {
    const args = dnsmasqArgs(input);
    for (const flag of ['--no-hosts', '--no-resolv', '--pid-file=/d/pid', '--dhcp-hostsfile=/d/host', '--addn-hosts=/d/addn_hosts', '--dhcp-optsfile=/d/opts', '--dhcp-leasefile=/d/leases', '--bind-interfaces', '--interface=ns-x', '--dhcp-authoritative', '--enable-ra']) {
      assert.ok(args.includes(flag), flag);
    }
    assert.ok(args.includes(`--dhcp-range=set:subnet-${v4.id},10.0.0.0,static,255.255.255.0,86400s`));
    assert.ok(args.includes(`--dhcp-range=set:subnet-${v6.id},fd00:1::,static,64,86400s`));
    assert.ok(args.includes(`--dhcp-range=set:subnet-${slaac.id},fd00:2::,ra-only,64,86400s`));
  });

  it('leases v4 and stateful v6 addresses only, and pushes MTU, DNS, option 121 with metadata and default routes', () => {
    assert.equal(
      hostsFile(input),
      `${p.macAddress},host-10-0-0-11.openstacklocal,10.0.0.11\n${p.macAddress},host-fd00-1--11.openstacklocal,[fd00:1::11]\n`,
    );
    const opts = optsFile(input);
    assert.match(opts, new RegExp(`tag:subnet-${v4.id},option:classless-static-route,169.254.169.254/32,10.0.0.2,10.9.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1\n`));
    assert.match(opts, new RegExp(`tag:subnet-${v4.id},option:router,10.0.0.1\n`));
    assert.match(opts, new RegExp(`tag:subnet-${v4.id},option:mtu,1450\n`));
    assert.match(opts, new RegExp(`tag:subnet-${v4.id},option:dns-server,8.8.8.8\n`));
    const noGw = optsFile({ ...input, subnets: [{ ...v4, gatewayIp: null, isolatedMetadata: false, hostRoutes: [] }] });
    assert.match(noGw, /option:router\n/);
    assert.doesNotMatch(noGw, /classless/);
  });
});

describe('DHCP agent with dnsmasq in real namespaces', () => {
  let lab: NetnsLab;
  let host: Netns;
  let guests: Netns[];
  let state: { path: string; remove: () => void };
  let prefix: string;

  before(async () => {
    lab = NetnsLab.create();
    host = await lab.addNamespace('dhcp-h0');
    guests = [await lab.addNamespace('dhcp-g0'), await lab.addNamespace('dhcp-g1'), await lab.addNamespace('dhcp-g2')];
    state = tempDir('onestack-dhcp-');
    // dnsmasq re-reads its files as its own unprivileged user.
    chmodSync(state.path, 0o755);
    prefix = `${host.name}-`;
  });
  after(async () => {
    await removeAgentNamespaces(prefix);
    await lab.cleanup();
    state.remove();
  });

  it('serves leases with MTU and routes, reloads on port changes keeping leases, survives a restart, and cleans up', async () => {
    const net = localNetwork(1400);
    const sub = subnet4(net.id, '10.61.0.0/24', '10.61.0.1', { isolatedMetadata: true, dnsNameservers: ['10.61.0.53'] });
    const dhcpPort = port(net.id, [{ subnetId: sub.id, ipAddress: '10.61.0.2' }], { deviceOwner: 'network:dhcp' });
    const ports = [0, 1, 2].map((i) => port(net.id, [{ subnetId: sub.id, ipAddress: `10.61.0.${11 + i}` }]));
    const l2 = new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: host.name });
    const mkAgent = () => new DhcpAgent({ ip, logger: quietLogger, hostNamespace: host.name, namespacePrefix: prefix, stateDir: state.path });
    const dhcp = mkAgent();
    const hostState = (n: number): HostState => ({
      ...emptyHostState('h0'),
      networks: [net],
      subnets: [sub],
      ports: ports.slice(0, n),
      dhcpPorts: [dhcpPort],
    });

    for (const i of [0, 1, 2]) await l2.plugVethPort(ports[i], guests[i].name);
    await l2.reconcile(hostState(2));
    const t0 = Date.now();
    const r = await dhcp.reconcile(hostState(2));
    assert.deepEqual(r, { dhcpNetworks: [net.id], errors: [] });
    const nsName = dhcp.namespaceFor(net.id);
    assert.deepEqual(await ip.addrCidrs(nsName, nsDeviceFor(dhcpPort.id)), ['10.61.0.2/24', '169.254.169.254/32']);
    const pid = dhcp.dnsmasqPid(net.id);
    assert.ok(pid, 'dnsmasq runs');

    const lease0 = await dhcpLease(guests[0], 'eth0', state.path);
    const leaseMs = Date.now() - t0;
    assert.equal(lease0.ip, '10.61.0.11');
    assert.equal(lease0.mask, '24');
    assert.equal(lease0.router, '10.61.0.1');
    assert.equal(lease0.mtu, '1400');
    assert.equal(lease0.dns, '10.61.0.53');
    assert.equal(lease0.staticroutes, '169.254.169.254/32 10.61.0.2 0.0.0.0/0 10.61.0.1');
    const lease1 = await dhcpLease(guests[1], 'eth0', state.path);
    assert.equal(lease1.ip, '10.61.0.12');
    await eventually(() => ping(guests[0], '10.61.0.12'));
    await ping(guests[1], '10.61.0.2');

    // A new port: files rewritten, same dnsmasq (SIGHUP), earlier leases kept.
    await l2.reconcile(hostState(3));
    await dhcp.reconcile(hostState(3));
    assert.equal(dhcp.dnsmasqPid(net.id), pid);
    assert.match(readFileSync(dhcp.files(net.id).hostsFile, 'utf8'), new RegExp(`${ports[2].macAddress},host-10-61-0-13`));
    assert.equal((await dhcpLease(guests[2], 'eth0', state.path)).ip, '10.61.0.13');
    const leases = readFileSync(dhcp.files(net.id).leaseFile, 'utf8');
    for (const ip4 of ['10.61.0.11', '10.61.0.12', '10.61.0.13']) assert.match(leases, new RegExp(` ${ip4.replace(/\./g, '\\.')} `));

    // A port deleted and its address given to a new port (another MAC): the old lease is
    // released (dhcp_release), or dnsmasq would keep the address for the old MAC.
    const reused = port(net.id, [{ subnetId: sub.id, ipAddress: '10.61.0.13' }]);
    await l2.unplugVethPort(ports[2].id);
    ports[2] = reused;
    await l2.plugVethPort(reused, guests[2].name);
    await l2.reconcile(hostState(3));
    await dhcp.reconcile(hostState(3));
    assert.equal(dhcp.dnsmasqPid(net.id), pid);
    assert.equal((await dhcpLease(guests[2], 'eth0', state.path)).ip, '10.61.0.13');

    // Restart: a new agent with the same state keeps the process and the namespace as they are.
    const links = JSON.stringify(await ip.linkList(nsName));
    const again = await mkAgent().reconcile(hostState(3));
    assert.deepEqual(again.errors, []);
    assert.equal(dhcp.dnsmasqPid(net.id), pid);
    assert.equal(JSON.stringify(await ip.linkList(nsName)), links);

    // A changed MTU is an option (reloaded); a new subnet is a new range on the command line (restart).
    await mkAgent().reconcile({ ...hostState(3), networks: [{ ...net, mtu: 1300 }] });
    assert.equal(dhcp.dnsmasqPid(net.id), pid);
    assert.match(readFileSync(dhcp.files(net.id).optsFile, 'utf8'), /option:mtu,1300/);
    const sub2 = subnet4(net.id, '10.62.0.0/24', '10.62.0.1');
    await mkAgent().reconcile({ ...hostState(3), subnets: [sub, sub2] });
    const pid2 = dhcp.dnsmasqPid(net.id);
    assert.ok(pid2 && pid2 !== pid, 'restarted');
    assert.equal(existsSync(`/proc/${pid}`), false);

    // The network gone: process, namespace, veth and files gone.
    await mkAgent().reconcile(emptyHostState('h0'));
    assert.equal(await ip.netnsExists(nsName), false);
    assert.equal(existsSync(`/proc/${pid2}`), false);
    assert.equal(existsSync(dhcp.files(net.id).dir), false);
    assert.equal(await ip.linkShow(host.name, tapNameFor(dhcpPort.id)), undefined);
    console.log(`# dhcp: first lease ${leaseMs} ms after reconcile start`);
  });
});

describe('staleLeases', () => {
  it('names the v4 leases whose address no port holds with that MAC; keeps the rest and v6 leases', () => {
    const net = localNetwork(1500);
    const sub = subnet4(net.id, '10.9.0.0/24', '10.9.0.1');
    const a = port(net.id, [{ subnetId: sub.id, ipAddress: '10.9.0.5' }], { macAddress: 'fa:16:3e:00:00:05' });
    const file = [
      '1700000000 fa:16:3e:00:00:05 10.9.0.5 host-10-9-0-5 *',
      '1700000000 fa:16:3e:00:00:06 10.9.0.6 host-10-9-0-6 01:fa:16:3e:00:00:06',
      '1700000000 fa:16:3e:00:00:07 10.9.0.5 host-10-9-0-5 *',
      'duid 00:01:00:01:2c:00:00:01:fa:16:3e:00:00:01',
      '1700000000 1234 2001:db8::5 host-2001-db8--5 00:03:00:01:fa:16:3e:00:00:09',
      '',
    ].join('\n');
    assert.deepEqual(
      staleLeases(file, [a]).map((l) => [l.mac, l.ip, l.clientId]),
      [
        ['fa:16:3e:00:00:06', '10.9.0.6', '01:fa:16:3e:00:00:06'],
        ['fa:16:3e:00:00:07', '10.9.0.5', undefined],
      ],
    );
  });
});

describe('closedAncestor', () => {
  it('names the first directory above that others cannot pass through, so the agent can say why dnsmasq would be blind', () => {
    const outer = tempDir('onestack-dhcp-closed-');
    try {
      const inner = join(outer.path, 'state', 'dhcp');
      mkdirSync(inner, { recursive: true, mode: 0o755 });
      chmodSync(outer.path, 0o700);
      assert.equal(closedAncestor(inner), outer.path);
      chmodSync(outer.path, 0o711);
      assert.equal(closedAncestor(inner), undefined);
    } finally {
      outer.remove();
    }
  });
});
