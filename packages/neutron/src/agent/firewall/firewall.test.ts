import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { eventually, localNetwork, nextMac, ping, pings, port, quietLogger } from '../agent-test-kit.ts';
import { LinuxBridgeAgent } from '../l2/linuxbridge-agent.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { emptyHostState, type HostState, type PortState, type SecurityGroupRuleState, type SecurityGroupState } from '../model.ts';
import { Firewall, MarkAllocator } from './firewall.ts';
import { linkLocalFromMac, normalizeCidr, protocolNumber, renderInetTable, ruleMatch } from './nft-ruleset.ts';

const ip = new IpLib({ logger: quietLogger });

function rule(direction: 'ingress' | 'egress', extra: Partial<SecurityGroupRuleState> = {}): SecurityGroupRuleState {
  return { id: randomUUID(), direction, ethertype: 'IPv4', protocol: null, portRangeMin: null, portRangeMax: null, remoteIpPrefix: null, remoteGroupId: null, ...extra };
}

describe('nft rule rendering', () => {
  it('normalizes prefixes, derives EUI-64 link-locals, maps protocols as upstream', () => {
    assert.equal(normalizeCidr('10.0.0.77/24'), '10.0.0.0/24');
    assert.equal(normalizeCidr('10.0.0.77'), '10.0.0.77');
    assert.equal(normalizeCidr('2001:db8:0:0:1::5/64'), '2001:db8::/64');
    assert.equal(linkLocalFromMac('fa:16:3e:00:00:0b'), 'fe80::f816:3eff:fe00:b');
    assert.equal(protocolNumber('tcp', 'IPv4'), 6);
    assert.equal(protocolNumber('icmp', 'IPv6'), 58);
    assert.equal(protocolNumber('132', 'IPv4'), 132);
    assert.equal(protocolNumber(null, 'IPv4'), null);
    assert.throws(() => protocolNumber('nonsense', 'IPv4'), /unknown protocol/);
  });

  it('turns rules into matches: ports, ICMP type/code, prefixes, remote groups', () => {
    const known = new Set(['g1']);
    assert.equal(ruleMatch(rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22 }), known), 'meta nfproto ipv4 meta l4proto 6 th dport 22');
    assert.equal(ruleMatch(rule('ingress', { protocol: 'udp', portRangeMin: 1000, portRangeMax: 2000, remoteIpPrefix: '10.1.2.3/16' }), known), 'meta nfproto ipv4 meta l4proto 17 th dport 1000-2000 ip saddr 10.1.0.0/16');
    assert.equal(ruleMatch(rule('egress', { protocol: 'icmp', portRangeMin: 8, portRangeMax: 0 }), known), 'meta nfproto ipv4 meta l4proto 1 icmp type 8 icmp code 0');
    assert.equal(ruleMatch(rule('egress', { remoteGroupId: 'g1' }), known), 'meta nfproto ipv4 ip daddr @rg-g1-4');
    assert.equal(ruleMatch(rule('egress', { remoteGroupId: 'unknown' }), known), null);
    assert.equal(ruleMatch(rule('ingress', { ethertype: 'IPv6', remoteIpPrefix: '10.0.0.0/8' }), known), null, 'a v4 prefix in a v6 rule matches nothing');
    assert.equal(ruleMatch(rule('ingress', { ethertype: 'IPv6', remoteIpPrefix: '::/0', protocol: 58 }), known), 'meta nfproto ipv6 meta l4proto 58');
  });

  it('renders nothing for ports without port security, and is deterministic', () => {
    const p = port('n', [{ subnetId: 's', ipAddress: '10.0.0.5' }], { portSecurityEnabled: false });
    assert.equal(renderInetTable([{ port: p, index: 1 }], []), null);
    const q = port('n', [{ subnetId: 's', ipAddress: '10.0.0.6' }]);
    assert.equal(renderInetTable([{ port: q, index: 3 }], []), renderInetTable([{ port: q, index: 3 }], []));
  });

  it('keeps marks across allocator instances and reuses freed ones', () => {
    const dir = tempDir('onestack-marks-');
    try {
      const file = `${dir.path}/m.json`;
      const a = new MarkAllocator(file).assign(['b', 'a']);
      assert.deepEqual([...a.entries()].sort(), [['a', 1], ['b', 2]]);
      const b = new MarkAllocator(file).assign(['b', 'c']);
      assert.equal(b.get('b'), 2);
      assert.equal(b.get('c'), 1);
    } finally {
      dir.remove();
    }
  });
});

/** A TCP server on ports 22 and 23 answering "ok", inside a guest namespace. */
function tcpServer(ns: Netns): void {
  const code = "const n=require('net');for(const p of [22,23])n.createServer(s=>s.end('ok')).listen(p);";
  ns.spawn(process.execPath, ['-e', code]);
}

/** True when a TCP connection from `ns` gets the server's answer within 0.7 s. */
async function tcpReaches(ns: Netns, address: string, portNo: number, opts: { source?: string } = {}): Promise<boolean> {
  const code = `const s=require('net').connect({host:'${address}',port:${portNo}${opts.source ? `,localAddress:'${opts.source}'` : ''}});let d='';s.on('data',c=>d+=c);s.on('end',()=>process.exit(d==='ok'?0:1));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),700);`;
  try {
    await ns.exec(process.execPath, ['-e', code], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('firewall with nftables in real namespaces', () => {
  let lab: NetnsLab;
  let host: Netns;
  let g: Netns[];
  let dir: { path: string; remove: () => void };

  before(async () => {
    lab = NetnsLab.create();
    host = await lab.addNamespace('fw-h0');
    g = [await lab.addNamespace('fw-g0'), await lab.addNamespace('fw-g1'), await lab.addNamespace('fw-g2')];
    dir = tempDir('onestack-fw-');
  });
  after(async () => {
    await lab.cleanup();
    dir.remove();
  });

  it('allows and blocks ICMP and TCP 22 as the groups say, incl. remote groups, drops spoofing, survives a restart, cleans up', async () => {
    const net = localNetwork();
    const sub = 'sub-1';
    const client: SecurityGroupState = { id: randomUUID(), stateful: true, rules: [rule('egress')], memberIps: [] };
    const other: SecurityGroupState = { id: randomUUID(), stateful: true, rules: [rule('egress')], memberIps: [] };
    const server: SecurityGroupState = {
      id: randomUUID(),
      stateful: true,
      rules: [rule('egress'), rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22 }), rule('ingress', { protocol: 'icmp', remoteGroupId: client.id })],
      memberIps: [],
    };
    const a = port(net.id, [{ subnetId: sub, ipAddress: '10.63.0.11' }], { securityGroupIds: [server.id] });
    const b = port(net.id, [{ subnetId: sub, ipAddress: '10.63.0.12' }], { securityGroupIds: [client.id] });
    const c = port(net.id, [{ subnetId: sub, ipAddress: '10.63.0.13' }], { securityGroupIds: [other.id] });
    server.memberIps = ['10.63.0.11'];
    client.memberIps = ['10.63.0.12'];
    other.memberIps = ['10.63.0.13'];
    const ports = [a, b, c];
    const l2 = new LinuxBridgeAgent({ ip, logger: quietLogger, hostNamespace: host.name });
    for (const [i, p] of ports.entries()) {
      await l2.plugVethPort(p, g[i].name);
      await g[i].addAddress('eth0', `${p.fixedIps[0].ipAddress}/24`);
    }
    const state = (over: Partial<HostState> = {}): HostState => ({
      ...emptyHostState('h0'),
      networks: [net],
      ports,
      securityGroups: [server, client, other],
      ...over,
    });
    await l2.reconcile(state());
    tcpServer(g[0]);
    const fw = new Firewall({ ip, logger: quietLogger, hostNamespace: host.name, stateDir: dir.path });
    const t0 = Date.now();
    const r = await fw.reconcile(state());
    const applyMs = Date.now() - t0;
    assert.deepEqual(r, { applied: ['bridge onestack-ports', 'inet onestack-sg'], errors: [] });

    // ICMP: allowed from the remote group's member only; replies of b's own pings come back (stateful).
    await eventually(() => ping(g[1], '10.63.0.11'));
    assert.equal(await pings(g[2], '10.63.0.11'), false, 'c is not in the remote group');
    assert.equal(await pings(g[0], '10.63.0.12'), false, 'b allows no ingress');
    // TCP: 22 from anyone, 23 from no one.
    assert.ok(await eventually(async () => assert.ok(await tcpReaches(g[2], '10.63.0.11', 22)) ?? true));
    assert.equal(await tcpReaches(g[1], '10.63.0.11', 23), false);

    // Spoofing: another source IP, then another MAC, are dropped at b's port.
    await g[1].addAddress('eth0', '10.63.0.98/24');
    assert.equal(await tcpReaches(g[1], '10.63.0.11', 22, { source: '10.63.0.98' }), false, 'spoofed IP dropped');
    assert.ok(await tcpReaches(g[1], '10.63.0.11', 22, { source: '10.63.0.12' }));
    await g[1].ip('link', 'set', 'eth0', 'address', nextMac());
    assert.equal(await pings(g[1], '10.63.0.11'), false, 'spoofed MAC dropped');
    await g[1].ip('link', 'set', 'eth0', 'address', b.macAddress);
    // An allowed address pair makes the extra address legitimate.
    const bPair: PortState = { ...b, allowedAddressPairs: [{ ipAddress: '10.63.0.96/30', macAddress: b.macAddress }] };
    await fw.reconcile(state({ ports: [a, bPair, c] }));
    assert.ok(await eventually(async () => assert.ok(await tcpReaches(g[1], '10.63.0.11', 22, { source: '10.63.0.98' })) ?? true));
    // Port security off: c's spoofed source passes its port (a's TCP 22 rule is open to all).
    await g[2].addAddress('eth0', '10.63.0.99/24');
    assert.equal(await tcpReaches(g[2], '10.63.0.11', 22, { source: '10.63.0.99' }), false);
    const cOpen = { ...c, portSecurityEnabled: false };
    await fw.reconcile(state({ ports: [a, b, cOpen] }));
    assert.ok(await tcpReaches(g[2], '10.63.0.11', 22, { source: '10.63.0.99' }));

    // Remote-group members kept current: c joins the client group's members, its pings pass.
    await fw.reconcile(state());
    assert.equal(await pings(g[2], '10.63.0.11'), false);
    const client2 = { ...client, memberIps: ['10.63.0.12', '10.63.0.13'] };
    const c2 = { ...c, securityGroupIds: [client.id] };
    await fw.reconcile(state({ ports: [a, b, c2], securityGroups: [server, client2, other] }));
    await eventually(() => ping(g[2], '10.63.0.11'));

    // Restart: a new Firewall with the same state applies nothing and the ruleset is byte-identical.
    const rules = await host.exec('nft', ['-j', 'list', 'ruleset']);
    const again = await new Firewall({ ip, logger: quietLogger, hostNamespace: host.name, stateDir: dir.path }).reconcile(
      state({ ports: [a, b, c2], securityGroups: [server, client2, other] }),
    );
    assert.deepEqual(again, { applied: [], errors: [] });
    assert.equal((await host.exec('nft', ['-j', 'list', 'ruleset'])).stdout, rules.stdout);

    // Someone flushed our table: the next reconcile notices (no hash) and restores it.
    await host.exec('nft', ['flush', 'table', 'inet', 'onestack-sg']);
    assert.deepEqual((await fw.reconcile(state({ ports: [a, b, c2], securityGroups: [server, client2, other] }))).applied, ['inet onestack-sg']);

    // Ports gone: both tables gone.
    await fw.reconcile({ ...emptyHostState('h0') });
    assert.equal((await host.exec('nft', ['list', 'ruleset'])).stdout.trim(), '');
    console.log(`# firewall: first apply of 3 ports ${applyMs} ms`);
  });
});
