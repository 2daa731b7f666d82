/**
 * The L3 agent against real namespaces: a tenant bridge with a stand-in guest behind a
 * router, the external network's bridge in a namespace with 172.24.4.1, real traffic.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { MetadataProxy } from '../metadata/metadata-proxy.ts';
import { bridgeName, gatewayDevice, internalDevice, tapDevice } from './device-names.ts';
import { ensureExternalGatewayAddress, ensureExternalNetwork } from './external-network.ts';
import { L3Agent } from './l3-agent.ts';
import type { RouterState } from './router-state.ts';

const quiet: ExecLogger = process.env.DEBUG_L3
  ? { info: (o: unknown) => console.error('exec', JSON.stringify(o)), warn: (o: unknown) => console.error('WARN', JSON.stringify(o)) } as unknown as ExecLogger
  : { info: () => {}, warn: () => {} };
const ip = new IpLib({ logger: quiet });

/** A tiny HTTP server inside `ns` answering with the peer address it sees (the SNAT witness). */
async function peerReporter(ns: Netns, port: number): Promise<void> {
  const script = `require('http').createServer((q,s)=>s.end(q.socket.remoteAddress)).listen(${port},'0.0.0.0',()=>console.log('ready'))`;
  const child = ns.spawn(process.execPath, ['-e', script]);
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.match(chunk.toString(), /ready/);
}

async function httpFrom(ns: Netns, url: string, timeoutS = 3): Promise<string> {
  return (await ns.exec('curl', ['-sS', '--max-time', String(timeoutS), url])).stdout;
}

async function pings(ns: Netns, target: string, waitS = 2): Promise<boolean> {
  return ns.exec('busybox', ['ping', '-c', '1', '-W', String(waitS), target]).then(
    () => true,
    () => false,
  );
}

describe('L3 agent: router namespace, SNAT, floating IPs, extra routes', () => {
  let lab: NetnsLab;
  let host: Netns;
  let ext: Netns;
  let g1: Netns;
  let g2: Netns;
  let agent: L3Agent;
  let proxy: MetadataProxy;
  let fakeNova: http.Server;
  const tenantNet = randomUUID();
  const extNet = randomUUID();
  const routerId = randomUUID();
  const qrPort = randomUUID();
  const qgPort = randomUUID();
  const gwMac = 'fa:16:3e:00:00:0a';
  let routerNs: string;

  const router = (over: Partial<RouterState> = {}): RouterState => ({
    id: routerId,
    adminStateUp: true,
    interfaces: [{ portId: qrPort, networkId: tenantNet, macAddress: 'fa:16:3e:00:00:01', fixedIps: [{ ipAddress: '10.0.0.1', prefixlen: 24, subnetId: 's1' }] }],
    gateway: {
      portId: qgPort,
      networkId: extNet,
      macAddress: gwMac,
      fixedIps: [{ ipAddress: '172.24.4.10', prefixlen: 24, subnetId: 'ext-s' }],
      enableSnat: true,
      externalGatewayIps: ['172.24.4.1'],
    },
    routes: [],
    floatingIps: [],
    ...over,
  });
  const fip = { id: randomUUID(), floatingIpAddress: '172.24.4.100', fixedIpAddress: '10.0.0.11', portId: randomUUID() };

  before(async () => {
    lab = NetnsLab.create();
    [host, ext, g1, g2] = await Promise.all(['l3host', 'l3ext', 'l3g1', 'l3g2'].map((r) => lab.addNamespace(r)));
    // The tenant bridge is the L2 agent's; here the test makes it.
    await host.addBridge(bridgeName(tenantNet));
    await lab.addVeth({ ns: host, name: 'tapg1', master: bridgeName(tenantNet) }, { ns: g1, name: 'eth0', addresses: ['10.0.0.11/24'] });
    await lab.addVeth({ ns: host, name: 'tapg2', master: bridgeName(tenantNet) }, { ns: g2, name: 'eth0', addresses: ['10.0.0.12/24'] });
    await g1.ip('route', 'add', 'default', 'via', '10.0.0.1');
    await g2.ip('route', 'add', 'default', 'via', '10.0.0.1');
    // g2 stands in for a router behind the router: 192.168.50.0/24 lives behind it (extra-route test).
    await g2.ip('addr', 'add', '192.168.50.1/32', 'dev', 'lo');
    await ensureExternalNetwork(ip, quiet, { namespace: ext.name, networkId: extNet });
    await ensureExternalGatewayAddress(ip, { namespace: ext.name, networkId: extNet, cidr: '172.24.4.1/24' });
    // Learn addresses from gratuitous ARP, so the test can see the FIP announcement.
    await ext.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.all.arp_accept=1']);
    await peerReporter(ext, 8000);
    await peerReporter(g1, 8080);
    // A fake metadata service that reports which instance the router's proxy said was asking.
    fakeNova = http.createServer((req, res) => res.end(String(req.headers['x-instance-id'])));
    await new Promise<void>((r) => fakeNova.listen(0, '127.0.0.1', r));
    proxy = new MetadataProxy({
      ipLib: ip,
      logger: quiet,
      metadataUrl: `http://127.0.0.1:${(fakeNova.address() as AddressInfo).port}`,
      sharedSecret: 's',
      lookup: async ({ ip: addr, networkIds }) =>
        networkIds.includes(tenantNet) && addr === '10.0.0.11' ? { instanceId: 'instance-g1', projectId: 'p' } : undefined,
    });
    agent = new L3Agent({
      ipLib: ip,
      logger: quiet,
      hostNamespace: host.name,
      externalNamespace: ext.name,
      namespacePrefix: `onestack-t${process.pid}-0-`,
      hooks: proxy,
    });
    routerNs = agent.namespaceOf(routerId);
  });
  after(async () => {
    await agent?.reconcile([]).catch(() => {});
    await ip.netnsDelete(routerNs, { mayNotExist: true }).catch(() => {});
    await proxy?.close();
    await lab.cleanup();
    fakeNova?.close();
  });

  it('routes a guest out through the gateway with SNAT to the gateway address', async () => {
    const t0 = Date.now();
    const res = await agent.reconcile([router()]);
    assert.deepEqual(res, { changed: [routerId], removed: [], failed: {} });
    console.log(`  first reconcile: ${Date.now() - t0} ms`);
    assert.equal((await ip.exec(routerNs, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
    assert.equal((await host.exec('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'forwarding stays off outside the router');
    const tap = await ip.linkShow(host.name, tapDevice(qrPort));
    assert.equal(tap?.master, bridgeName(tenantNet));
    assert.equal((await ip.linkShow(ext.name, tapDevice(qgPort)))?.master, bridgeName(extNet));
    assert.equal((await ip.linkShow(routerNs, gatewayDevice(qgPort)))?.address, gwMac);
    assert.equal(await httpFrom(g1, 'http://172.24.4.1:8000/'), '172.24.4.10');
  });

  it('serves metadata in the router namespace to the guests behind it', async () => {
    assert.deepEqual(proxy.namespaces(), [routerNs]);
    assert.equal(await httpFrom(g1, 'http://169.254.169.254/latest/meta-data/'), 'instance-g1');
    const { stdout } = await g2.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', 'http://169.254.169.254/']);
    assert.equal(stdout, '404');
  });

  it('changes nothing when reconciled again with the same state', async () => {
    const snapshot = async () =>
      Promise.all([
        ip.exec(routerNs, 'nft', ['-j', 'list', 'ruleset']).then((r) => r.stdout),
        ip.ip(routerNs, ['-j', 'link']),
        ip.ip(routerNs, ['-j', 'addr']),
        ip.ip(routerNs, ['-j', 'route']),
        ip.ip(host.name, ['-j', 'link']),
        ip.ip(ext.name, ['-j', 'link']),
      ]);
    await agent.reconcile([router({ floatingIps: [fip] })]);
    const before = await snapshot();
    const t0 = Date.now();
    const res = await agent.reconcile([router({ floatingIps: [fip] })]);
    console.log(`  no-op reconcile: ${Date.now() - t0} ms`);
    assert.deepEqual(res, { changed: [], removed: [], failed: {} });
    assert.deepEqual(await snapshot(), before);
  });

  it('makes a guest with a floating IP reachable from outside, its traffic leaving as the FIP, announced by gratuitous ARP', async () => {
    await agent.reconcile([router({ floatingIps: [fip] })]);
    assert.ok(await pings(ext, '172.24.4.100'), 'ping to the floating IP');
    assert.equal(await httpFrom(ext, 'http://172.24.4.100:8080/'), '172.24.4.1', 'DNAT keeps the external source');
    assert.equal(await httpFrom(g1, 'http://172.24.4.1:8000/'), '172.24.4.100', 'SNAT to the floating IP');
    assert.equal(await httpFrom(g2, 'http://172.24.4.1:8000/'), '172.24.4.10', 'a guest without FIP still leaves as the gateway');
    assert.equal(await httpFrom(g2, 'http://172.24.4.100:8080/'), '10.0.0.1', 'hairpin from inside works (masqueraded)');
    const neigh = await ext.ip('-j', 'neigh', 'show', '172.24.4.100');
    assert.equal((JSON.parse(neigh) as { lladdr?: string }[])[0]?.lladdr, gwMac, 'the external side learnt the FIP from the gratuitous ARP');
  });

  it('removes exactly the floating IP: address, rules, reachability', async () => {
    await agent.reconcile([router()]);
    const nft = (await ip.exec(routerNs, 'nft', ['list', 'table', 'ip', 'onestack-l3-nat'])).stdout;
    assert.doesNotMatch(nft, /172\.24\.4\.100/);
    assert.match(nft, /snat to 172\.24\.4\.10/);
    assert.deepEqual(await ip.addrCidrs(routerNs, gatewayDevice(qgPort)), ['172.24.4.10/24']);
    assert.equal(await pings(ext, '172.24.4.100', 1), false);
    assert.equal(await httpFrom(g1, 'http://172.24.4.1:8000/'), '172.24.4.10');
  });

  it('does no SNAT with enable_snat=false', async () => {
    await agent.reconcile([router({ gateway: { ...router().gateway!, enableSnat: false } })]);
    const nft = (await ip.exec(routerNs, 'nft', ['list', 'table', 'ip', 'onestack-l3-nat'])).stdout;
    assert.doesNotMatch(nft, /snat/);
    // Without SNAT the external side needs a route back to the tenant subnet, and then sees the guest's own address.
    await ext.ip('route', 'add', '10.0.0.0/24', 'via', '172.24.4.10');
    try {
      assert.equal(await httpFrom(g1, 'http://172.24.4.1:8000/'), '10.0.0.11');
    } finally {
      await ext.ip('route', 'del', '10.0.0.0/24', 'via', '172.24.4.10');
    }
  });

  it('adds and removes extra routes', async () => {
    await agent.reconcile([router({ routes: [{ destination: '192.168.50.0/24', nexthop: '10.0.0.12' }] })]);
    assert.ok(await pings(g1, '192.168.50.1'), 'g1 → router → nexthop g2');
    await agent.reconcile([router()]);
    const routes = JSON.parse(await ip.ip(routerNs, ['-j', 'route'])) as { dst: string }[];
    assert.ok(!routes.some((r) => r.dst === '192.168.50.0/24'));
    assert.ok(routes.some((r) => r.dst === 'default'));
  });

  it('removes an interface, then the whole router: devices, peers, namespace', async () => {
    await agent.reconcile([router({ interfaces: [] })]);
    assert.equal(await ip.linkShow(routerNs, internalDevice(qrPort)), undefined);
    assert.equal(await ip.linkShow(host.name, tapDevice(qrPort)), undefined);
    assert.ok(await ip.linkShow(routerNs, gatewayDevice(qgPort)));
    const res = await agent.reconcile([]);
    assert.deepEqual(res.removed, [routerId]);
    assert.deepEqual(proxy.namespaces(), [], 'the metadata socket no longer holds the namespace');
    assert.equal(await ip.netnsExists(routerNs), false);
    assert.equal(await ip.linkShow(ext.name, tapDevice(qgPort)), undefined);
    assert.ok(await ip.linkShow(ext.name, bridgeName(extNet)), 'the external bridge is not the router’s');
  });
});
