/**
 * Neutron's API rates and list latency, and the time from a port create (API) to its data
 * plane on a host (nftables rules, dnsmasq entry, status ACTIVE), with a real agent:
 *   node --import tsx bench/neutron/run.ts [--quick] [--ports N]
 * Needs root (the agent works in a namespace of its own). Progress to stderr, table to stdout.
 * See README.md.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startApiStack, settled, type ApiStack } from '../../packages/neutron/src/agent/integration/api-stack.ts';

const { values: opts } = parseArgs({ options: { quick: { type: 'boolean', default: false }, ports: { type: 'string', default: '5000' } } });
const PORTS = Number(opts.ports);
const NETWORKS = opts.quick ? 100 : 300;
const SINGLE_PORTS = opts.quick ? 200 : 500;
const CONCURRENCY = 8;
const LIST_SAMPLES = opts.quick ? 5 : 15;
const LATENCY_SAMPLES = opts.quick ? 5 : 10;

const log = (line: string) => process.stderr.write(`${line}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const rows: [string, string][] = [];
const row = (k: string, v: string) => {
  rows.push([k, v]);
  log(`${k}: ${v}`);
};

async function pool<T>(n: number, fn: (i: number) => Promise<T>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

function expect(res: { status: number; text: string }, status: number): void {
  if (res.status !== status) throw new Error(`HTTP ${res.status} (wanted ${status}): ${res.text.slice(0, 300)}`);
}

async function timeList(stack: ApiStack, path: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < LIST_SAMPLES; i++) {
    const t0 = performance.now();
    const res = await stack.fx.admin.get(path);
    expect(res, 200);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Create → (tap plugged, as Nova would right after binding) → rules + dnsmasq entry + ACTIVE. */
async function portToDataPlane(stack: ApiStack, netId: string, samples: number): Promise<{ rules: number[]; dhcp: number[]; active: number[] }> {
  const h = stack.hosts[0];
  const guest = await stack.lab.addNamespace(`bn-g${Math.floor(Math.random() * 1e6)}`);
  const out = { rules: [] as number[], dhcp: [] as number[], active: [] as number[] };
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const res = await stack.fx.admin.post('/v2.0/ports', { port: { network_id: netId, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': h.name } });
    expect(res, 201);
    const p = res.body.port as { id: string; mac_address: string; fixed_ips: { ip_address: string }[] };
    await h.agent.l2.plugVethPort({ id: p.id, macAddress: p.mac_address }, guest.name, { guestIfname: 'eth0' });
    const ip = p.fixed_ips[0]!.ip_address;
    let rules = 0;
    let dhcp = 0;
    let active = 0;
    const hosts = join(h.dir, 'dhcp', netId, 'host');
    while (!(rules && dhcp && active)) {
      const now = () => performance.now() - t0;
      if (!rules && (await h.ns.exec('nft', ['list', 'ruleset'])).stdout.includes(ip)) rules = now();
      if (!dhcp) {
        try {
          if (readFileSync(hosts, 'utf8').includes(p.mac_address)) dhcp = now();
        } catch {
          // not written yet
        }
      }
      if (!active && (await stack.fx.admin.get(`/v2.0/ports/${p.id}?fields=status`)).body.port.status === 'ACTIVE') active = now();
      if (now() > 30_000) throw new Error(`port ${p.id}: data plane not in place after 30 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    out.rules.push(rules);
    out.dhcp.push(dhcp);
    out.active.push(active);
    await h.agent.l2.unplugVethPort(p.id);
    expect(await stack.fx.admin.delete(`/v2.0/ports/${p.id}`), 204);
    await settled(stack);
  }
  return out;
}

function latencyRows(label: string, r: { rules: number[]; dhcp: number[]; active: number[] }): void {
  for (const k of ['rules', 'dhcp', 'active'] as const) row(`${label}: port create → ${k === 'rules' ? 'nft rules' : k === 'dhcp' ? 'dnsmasq entry' : 'status ACTIVE'} p50 / max`, `${fmt(pct(r[k], 50))} / ${fmt(Math.max(...r[k]))} ms`);
}

async function main(): Promise<void> {
  log('starting Keystone + Neutron (SQLite, in-process bus) and one host agent in a namespace…');
  const stack = await startApiStack({ hosts: 1, tag: 'bench', pollIntervalMs: 50 });
  try {
    const { fx } = stack;
    expect(await fx.admin.put(`/v2.0/quotas/${fx.adminProjectId}`, { quota: { network: -1, subnet: -1, port: -1 } }), 200);
    // 1. The data plane on an almost empty cloud.
    const a = (await fx.admin.post('/v2.0/networks', { network: { name: 'bench-a' } })).body.network;
    expect(await fx.admin.post('/v2.0/subnets', { subnet: { network_id: a.id, cidr: '10.90.0.0/24', ip_version: 4 } }), 201);
    await settled(stack);
    stack.syncs.length = 0;
    latencyRows('empty cloud', await portToDataPlane(stack, a.id, LATENCY_SAMPLES));
    row('empty cloud: one host resync (get_host_state + reconcile) p50 / max', `${fmt(pct(stack.syncs.map((s) => s.ms), 50))} / ${fmt(Math.max(...stack.syncs.map((s) => s.ms)))} ms`);

    // 2. API rates, networks.
    let t0 = performance.now();
    await pool(NETWORKS, async (i) => expect(await fx.admin.post('/v2.0/networks', { network: { name: `bench-n${i}` } }), 201));
    row(`network create (${NETWORKS}, ${CONCURRENCY} at a time)`, `${fmt(NETWORKS / ((performance.now() - t0) / 1000))} /s`);
    const netList = await timeList(stack, '/v2.0/networks');
    row(`network list (${NETWORKS + 1}) p50 / p99`, `${fmt(pct(netList, 50))} / ${fmt(pct(netList, 99))} ms`);

    // 3. Ports: one network without DHCP (API figures alone), single creates then bulk to PORTS.
    const b = (await fx.admin.post('/v2.0/networks', { network: { name: 'bench-b' } })).body.network;
    expect(await fx.admin.post('/v2.0/subnets', { subnet: { network_id: b.id, cidr: '10.96.0.0/16', ip_version: 4, enable_dhcp: false } }), 201);
    t0 = performance.now();
    await pool(SINGLE_PORTS, async () => expect(await fx.admin.post('/v2.0/ports', { port: { network_id: b.id } }), 201));
    row(`port create (${SINGLE_PORTS}, ${CONCURRENCY} at a time)`, `${fmt(SINGLE_PORTS / ((performance.now() - t0) / 1000))} /s`);
    t0 = performance.now();
    const bulk = 100;
    const rest = Math.max(0, PORTS - SINGLE_PORTS);
    for (let done = 0; done < rest; done += bulk) {
      const n = Math.min(bulk, rest - done);
      expect(await fx.admin.post('/v2.0/ports', { ports: Array.from({ length: n }, () => ({ network_id: b.id })) }), 201);
    }
    if (rest) row(`port bulk create (${rest}, ${bulk} per request)`, `${fmt(rest / ((performance.now() - t0) / 1000))} /s`);
    const portList = await timeList(stack, '/v2.0/ports');
    row(`port list (${PORTS + LATENCY_SAMPLES > 0 ? PORTS + 1 : PORTS} ports, one page) p50 / p99`, `${fmt(pct(portList, 50))} / ${fmt(pct(portList, 99))} ms`);
    const portPage = await timeList(stack, '/v2.0/ports?limit=25');
    row('port list (limit=25) p50 / p99', `${fmt(pct(portPage, 50))} / ${fmt(pct(portPage, 99))} ms`);
    const filtered = await timeList(stack, `/v2.0/ports?network_id=${a.id}`);
    row('port list filtered by network_id p50', `${fmt(pct(filtered, 50))} ms`);

    // 4. The same latency with the network host's state carrying every port (DHCP now on for network b).
    const subB = (await fx.admin.get(`/v2.0/subnets?network_id=${b.id}`)).body.subnets[0];
    expect(await fx.admin.put(`/v2.0/subnets/${subB.id}`, { subnet: { enable_dhcp: true } }), 200);
    stack.syncs.length = 0;
    await settled(stack);
    await settled(stack);
    row(`full host resync with ${PORTS} DHCP entries (get_host_state + reconcile)`, `${fmt(pct(stack.syncs.map((s) => s.ms), 50))} ms p50 of ${stack.syncs.length}`);
    latencyRows(`${PORTS} ports in DHCP`, await portToDataPlane(stack, a.id, Math.max(3, Math.floor(LATENCY_SAMPLES / 2))));
  } finally {
    await stack.close();
  }
  console.log('\n| figure | value |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
