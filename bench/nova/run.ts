/**
 * Nova's boot times with real QEMU beside the guest's own boot time, and its control plane's
 * rates with the fake driver on many fake hosts:
 *   node --import tsx bench/nova/run.ts [--quick] [--no-qemu] [--no-fake] [--hosts N] [--servers N]
 * Needs root for the QEMU part (test namespaces, taps). Progress to stderr, table to stdout.
 * See README.md.
 */
import { randomUUID } from 'node:crypto';
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { tempDir } from '@onestack/testing/index.ts';
import { startNova, type NovaClient, type NovaFixture } from '../../packages/nova/test/fixture.ts';
import { BOOT_TIMEOUT_MS, READY, startQemuTestHost, type QemuTestHost } from '../../packages/nova/src/compute/qemu-test-host.ts';
import { tapName } from '../../packages/nova/src/compute/manager.ts';
import { buildQemuArgs, FILES, type InstanceDefinition } from '../../packages/nova/src/virt/qemu-command.ts';
import type { InstanceSpec } from '../../packages/nova/src/virt/driver.ts';

const run = promisify(execFile);
const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-qemu': { type: 'boolean', default: false },
    'no-fake': { type: 'boolean', default: false },
    hosts: { type: 'string', default: '1000' },
    servers: { type: 'string', default: '10000' },
    rounds: { type: 'string' },
  },
});
const QEMU_ROUNDS = Number(opts.rounds ?? (opts.quick ? 2 : 5));
/** 8 TCG guests on 2 loaded cores can take minutes to boot. */
const GUEST_TIMEOUT_MS = 600_000;
const CONCURRENT = 8;
const FAKE_HOSTS = Number(opts.hosts);
const LISTED = Number(opts.servers);
const CHURN = opts.quick ? 100 : 300;
const LIST_SAMPLES = opts.quick ? 10 : 30;
/** Servers of the list booted through the API; the rest are copies of their database rows (booting 10,000 would take most of an hour here). */
const SEEDED = opts.quick ? 200 : 1000;

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const ms = (x: number) => (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`);
const dist = (xs: number[]) => `p50 ${ms(pct(xs, 50))}, p95 ${ms(pct(xs, 95))} (n=${xs.length})`;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const rows: [string, string][] = [];
const row = (k: string, v: string) => {
  rows.push([k, v]);
  log(`${k}: ${v}`);
};

function expect(res: { status: number; text: string }, status: number, what: string): void {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} (wanted ${status}): ${res.text.slice(0, 300)}`);
}

/** Polls the server every `everyMs` until `done`; the time is taken when the answer arrives. */
async function until(c: NovaClient, id: string, done: (s: { status: string; fault?: unknown } | undefined) => boolean, timeoutMs: number, everyMs = 20): Promise<number> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const r = await c.get(`/v2.1/servers/${id}`);
    const s = r.status === 404 ? undefined : r.body.server;
    if (s?.status === 'ERROR') throw new Error(`server ${id} went to ERROR: ${JSON.stringify(s.fault)}`);
    if (done(s)) return performance.now();
    if (performance.now() > end) throw new Error(`server ${id}: still ${s?.status ?? 'gone'} after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

// ---- (a) real QEMU ---------------------------------------------------------

interface BootTimes {
  active: number;
  ssh: number;
  /** From the driver's spawn call to QEMU daemonized. */
  qemuStart: number;
  /** From POST to the driver's spawn call. */
  beforeSpawn: number;
}

/**
 * The guests' sshd, watched from a namespace by one long-lived ssh-prober.ts process there: an
 * ssh-keyscan started every 100 ms per guest made fork() (synchronous, and slower the larger the
 * process) the largest item on the very event loop whose latency the bench measures.
 */
class SshProber {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly waiting = new Map<string, (epochMs: number) => void>();

  constructor(ns: string) {
    const script = fileURLToPath(new URL('./ssh-prober.ts', import.meta.url));
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, script], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const [ip, at] = line.split(' ');
      this.waiting.get(ip!)?.(Number(at));
      this.waiting.delete(ip!);
    });
  }

  /** When (on performance.now()'s clock) the guest at `ip` answered with an SSH banner. */
  answered(ip: string, t0: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${ip}: no SSH banner after ${GUEST_TIMEOUT_MS} ms`)), GUEST_TIMEOUT_MS - (performance.now() - t0));
      this.waiting.set(ip, (at) => {
        clearTimeout(timer);
        resolve(performance.now() - (Date.now() - at));
      });
      this.child.stdin.write(`${ip}\n`);
    });
  }

  close(): void {
    this.child.kill();
  }
}

const probers = new Map<string, SshProber>();

function waitSsh(ns: string, ip: string, t0: number): Promise<number> {
  const prober = probers.get(ns) ?? probers.set(ns, new SshProber(ns)).get(ns)!;
  return prober.answered(ip, t0);
}

/** Spawn calls of the QEMU driver, timed, by instance. */
function timeSpawns(h: QemuTestHost): Map<string, { start: number; end: number }> {
  const seen = new Map<string, { start: number; end: number }>();
  const spawn = h.driver.spawn.bind(h.driver);
  h.driver.spawn = async (spec: InstanceSpec) => {
    const t = { start: performance.now(), end: 0 };
    seen.set(spec.uuid, t);
    await spawn(spec);
    t.end = performance.now();
  };
  return seen;
}

async function qemuPart(): Promise<void> {
  log('starting Keystone, Neutron (one host agent in a namespace), Glance, Placement and Nova with the QEMU driver (TCG)…');
  const h = await startQemuTestHost('nbq', { nova: { quota_instances: -1, quota_cores: -1, quota_ram: -1 } });
  const spawns = timeSpawns(h);
  try {
    const { fx, stack } = h;
    const net = (await stack.fx.admin.post('/v2.0/networks', { network: { name: 'nbq-net' } })).body.network;
    expect(await stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.77.0.0/24', ip_version: 4, gateway_ip: '10.77.0.1' } }), 201, 'subnet');
    // Nova and Neutron share the fixture's admin project: its default security group admits only its members.
    const sg = (await stack.fx.admin.post('/v2.0/security-groups', { security_group: { name: 'nbq-ssh' } })).body.security_group;
    expect(await stack.fx.admin.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '0.0.0.0/0' } }), 201, 'rule');
    const host = stack.hosts[0]!;
    let knownDhcpNs: string | undefined;
    const dhcpNs = async () => {
      for (let i = 0; !knownDhcpNs && i < 100; i++) {
        const { stdout } = await run('ip', ['netns', 'list']);
        knownDhcpNs = stdout.split('\n').map((l) => l.split(' ')[0]!).find((n) => n.startsWith(`${host.ns.name}-qdhcp-`) && n.includes(net.id.slice(0, 8)));
        if (!knownDhcpNs) await sleep(100);
      }
      if (!knownDhcpNs) throw new Error('no DHCP namespace for the network');
      return knownDhcpNs;
    };

    // Every guest gets an address never used before in the run: Neutron hands a freed one out
    // again at once, while dnsmasq still holds the deleted port's lease on it and answers no one.
    let nextIp = 10;
    const freshPort = async (o: Record<string, unknown> = {}) => {
      const r = await stack.fx.admin.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ ip_address: `10.77.0.${nextIp++}` }], ...o } });
      expect(r, 201, 'port create');
      return r.body.port as { id: string; mac_address: string; fixed_ips: { ip_address: string }[] };
    };
    const ports = new Map<string, string>();
    const boot = async (name: string): Promise<BootTimes & { id: string }> => {
      const port = await freshPort({ security_groups: [sg.id] });
      const t0 = performance.now();
      const r = await fx.admin.post('/v2.1/servers', { server: { name, imageRef: h.imageId, flavorRef: '42', networks: [{ port: port.id }], config_drive: true } });
      expect(r, 202, 'server create');
      const id = r.body.server.id as string;
      ports.set(id, port.id);
      const active = await until(fx.admin, id, (s) => s?.status === 'ACTIVE', BOOT_TIMEOUT_MS);
      const ssh = await waitSsh(await dhcpNs(), port.fixed_ips[0]!.ip_address, t0);
      const sp = spawns.get(id)!;
      return { id, active: active - t0, ssh: ssh - t0, qemuStart: sp.end - sp.start, beforeSpawn: sp.start - t0 };
    };
    const remove = async (ids: string[]) => {
      for (const id of ids) expect(await fx.admin.delete(`/v2.1/servers/${id}`), 204, 'server delete');
      for (const id of ids) await until(fx.admin, id, (s) => s === undefined, 120_000, 200);
      // A port given to Nova outlives its server.
      for (const id of ids) expect(await stack.fx.admin.delete(`/v2.0/ports/${ports.get(id)}`), 204, 'port delete');
    };

    log('warm-up boot (fills the image cache, as the first boot on a host does)');
    const warm = await boot('nbq-warm');
    row('first boot on the host (image fetched from Glance): POST → ACTIVE / SSH', `${ms(warm.active)} / ${ms(warm.ssh)}`);
    // The floor reuses its definition and config drive; the host's 8 vCPUs (2 cores × 4) are for the rounds.
    const floorSource = await keepForFloor(h, warm.id);
    await remove([warm.id]);

    const one: BootTimes[] = [];
    const eight: BootTimes[] = [];
    const floor1: { ready: number; ssh: number }[] = [];
    const floor8: { ready: number; ssh: number }[] = [];
    for (let round = 0; round < QEMU_ROUNDS; round++) {
      log(`round ${round + 1}/${QEMU_ROUNDS}: 1 server, 8 concurrent servers, then QEMU alone for 1 and 8`);
      const b = await boot(`nbq-1-${round}`);
      one.push(b);
      await remove([b.id]);
      const bs = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => boot(`nbq-8-${round}-${i}`)));
      eight.push(...bs);
      await remove(bs.map((x) => x.id));
      const floorPort = () => freshPort({ port_security_enabled: false, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': host.name });
      floor1.push(...(await qemuAlone(h, floorSource, floorPort, await dhcpNs(), 1)));
      floor8.push(...(await qemuAlone(h, floorSource, floorPort, await dhcpNs(), CONCURRENT)));
    }
    for (const [label, xs, floor] of [['1 server', one, floor1], [`${CONCURRENT} concurrent servers`, eight, floor8]] as const) {
      row(`${label}: POST /servers → ACTIVE`, dist(xs.map((x) => x.active)));
      row(`${label}: POST /servers → SSH banner`, dist(xs.map((x) => x.ssh)));
      row(`${label}: QEMU alone → SSH banner (the floor)`, dist(floor.map((x) => x.ssh)));
      row(`${label}: QEMU alone → console READY`, dist(floor.map((x) => x.ready)));
      row(`${label}: QEMU start inside the driver (overlay, config drive, daemonize)`, dist(xs.map((x) => x.qemuStart)));
      row(`${label}: control plane's share (ACTIVE − QEMU start)`, `${dist(xs.map((x) => x.active - x.qemuStart))}; of it before the driver's spawn: ${dist(xs.map((x) => x.beforeSpawn))}`);
    }
  } finally {
    for (const prober of probers.values()) prober.close();
    probers.clear();
    await removeAll(h.fx).catch((err) => log(`could not delete every server: ${err}`));
    await h.close();
  }
}

/** Deletes what a failed run left, so that no QEMU outlives the bench. */
async function removeAll(fx: NovaFixture): Promise<void> {
  const ids = ((await fx.admin.get('/v2.1/servers?all_tenants=1')).body.servers as { id: string }[]).map((x) => x.id);
  for (const id of ids) await fx.admin.delete(`/v2.1/servers/${id}`);
  for (const id of ids) await until(fx.admin, id, (x) => x === undefined, 120_000, 200).catch(() => undefined);
}

interface FloorSource {
  definition: InstanceDefinition;
  /** The cached base image under the instance's overlay. */
  backing: string;
  configDrive: string;
}

async function keepForFloor(h: QemuTestHost, id: string): Promise<FloorSource> {
  const dir = join(h.instancesDir, id);
  const keep = join(h.instancesDir, '..', 'floor-source');
  await mkdir(keep, { recursive: true });
  const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', join(dir, FILES.disk)])).stdout) as { 'full-backing-filename': string };
  await copyFile(join(dir, FILES.configDrive), join(keep, FILES.configDrive));
  return { definition: JSON.parse(await readFile(join(dir, FILES.definition), 'utf8')), backing: info['full-backing-filename'], configDrive: join(keep, FILES.configDrive) };
}

/**
 * The physical floor: QEMU started directly with the argv the driver gives an instance
 * (same base image under a fresh overlay, the booted instance's config drive, a port of
 * its own bound to the host so the agent wires the tap and dnsmasq answers), timed from
 * exec to the READY line on the console. No Nova in the path.
 */
async function qemuAlone(h: QemuTestHost, floor: FloorSource, newPort: () => Promise<{ id: string; mac_address: string; fixed_ips: { ip_address: string }[] }>, sshNs: string, n: number): Promise<{ ready: number; ssh: number }[]> {
  const { stack } = h;
  const source = floor.definition;
  const scratch = tempDir('onestack-novabench-floor-');
  const pids: number[] = [];
  const ports: string[] = [];
  try {
    const prepared = await Promise.all(
      Array.from({ length: n }, async () => {
        const uuid = randomUUID();
        const dir = join(scratch.path, uuid);
        await mkdir(dir, { recursive: true });
        const p = await newPort();
        ports.push(p.id);
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', floor.backing, join(dir, FILES.disk), `${source.flavor.rootGb}G`]);
        await copyFile(floor.configDrive, join(dir, FILES.configDrive));
        const def: InstanceDefinition = { ...source, uuid, nics: [{ portId: p.id, mac: p.mac_address, tapName: tapName(p.id), slot: 0 }] };
        await writeFile(join(dir, FILES.definition), JSON.stringify(def));
        return { dir, def, ip: p.fixed_ips[0]!.ip_address };
      }),
    );
    const times = await Promise.all(
      prepared.map(async ({ dir, def, ip }) => {
        const t0 = performance.now();
        await run('ip', ['netns', 'exec', stack.hosts[0]!.ns.name, 'qemu-system-x86_64', ...buildQemuArgs(def, { dir, accel: 'tcg', vnc: 'unix' })]);
        pids.push(Number((await readFile(join(dir, FILES.pid), 'utf8')).trim()));
        const ssh = waitSsh(sshNs, ip, t0);
        for (;;) {
          const text = await readFile(join(dir, FILES.console), 'utf8').catch(() => '');
          if (READY.test(text)) return { ready: performance.now() - t0, ssh: (await ssh) - t0 };
          if (performance.now() - t0 > GUEST_TIMEOUT_MS) throw new Error(`QEMU alone: no READY line after ${GUEST_TIMEOUT_MS} ms:\n${text.slice(-2000)}`);
          await sleep(50);
        }
      }),
    );
    return times;
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const pid of pids) while (await run('kill', ['-0', String(pid)]).then(() => true, () => false)) await sleep(50);
    for (const id of ports) await stack.fx.admin.delete(`/v2.0/ports/${id}`);
    scratch.remove();
  }
}

// ---- (b) fake driver, many hosts ------------------------------------------

async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function fakePart(): Promise<void> {
  log(`starting Keystone, Glance, Neutron (API only), Placement and Nova; ${FAKE_HOSTS} nova-compute hosts on the fake driver…`);
  // Heartbeats of a thousand hosts every second would be the benchmark; upstream's default is 10 s.
  const fx = await startNova({ config: { report_interval: 10, quota_instances: -1, quota_cores: -1, quota_ram: -1 } });
  try {
    let t0 = performance.now();
    await pool(FAKE_HOSTS, 8, async (i) => void (await fx.addCompute(`fake-${String(i).padStart(4, '0')}`)));
    row(`register ${FAKE_HOSTS} fake compute hosts (service + resource provider + inventory, 8 at a time)`, `${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const rps = await fetch(`${fx.config.placementUrl}/resource_providers`, { headers: { 'x-auth-token': fx.ks.admin.token! } });
    const nRps = ((await rps.json()) as { resource_providers: unknown[] }).resource_providers.length;
    if (nRps < FAKE_HOSTS) throw new Error(`only ${nRps} resource providers in Placement`);

    const admin = fx.admin.at('2.37');
    const bootDelete = async (i: number) => {
      const r = await admin.post('/v2.1/servers', { server: { name: `churn-${i}`, imageRef: fx.imageId, flavorRef: '42', networks: 'none' } });
      expect(r, 202, 'server create');
      const id = r.body.server.id as string;
      await until(admin, id, (s) => s?.status === 'ACTIVE', 60_000);
      expect(await admin.delete(`/v2.1/servers/${id}`), 204, 'server delete');
      await until(admin, id, (s) => s === undefined, 60_000);
    };
    const profiling = await profileTo(process.env.NOVA_BENCH_PROFILE);
    for (const width of [1, CONCURRENT]) {
      const n = width === 1 ? Math.ceil(CHURN / 4) : CHURN;
      t0 = performance.now();
      const cpu0 = process.cpuUsage();
      await pool(n, width, bootDelete);
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000 / n;
      row(`boot + delete, ${width} at a time (${n} servers, until ACTIVE and until gone)`, `${(n / secs).toFixed(1)} /s; ${cpuMs.toFixed(0)} ms CPU each (${((cpu.user + cpu.system) / 1e6 / secs).toFixed(2)} cores busy)`);
    }

    await profiling('churn');
    const booted = Math.min(LISTED, SEEDED);
    log(`${LISTED} servers for the list: ${booted} booted through the API (16 at a time), the rest copies of their rows…`);
    t0 = performance.now();
    await pool(booted, 16, async (i) => {
      const r = await admin.post('/v2.1/servers', { server: { name: `list-${i}`, imageRef: fx.imageId, flavorRef: '42', networks: 'none', metadata: { n: String(i) } } });
      expect(r, 202, 'server create');
    });
    row(`create ${booted} servers (POST only, 16 at a time)`, `${(booted / ((performance.now() - t0) / 1000)).toFixed(1)} /s`);
    await waitAllActive(fx, booted);
    await copyServers(fx, LISTED - booted);
    await profiling('seed');
    // Every page of the walk in turn (a marker page costs its lookup too), each timed LIST_SAMPLES / pages times.
    const markers: (string | undefined)[] = [undefined];
    const times: number[] = [];
    let cpu0 = process.cpuUsage();
    for (let i = 0; i < Math.max(LIST_SAMPLES, markers.length); i++) {
      const marker = markers[i % markers.length];
      const { ms: took, servers } = await timedPage(fx, `/v2.1/servers/detail?limit=1000${marker ? `&marker=${marker}` : ''}`);
      times.push(took);
      if (i === markers.length - 1 && markers.length < Math.floor(LISTED / 1000)) markers.push(servers[999]!.id);
    }
    const detailCpu = cpuPerPage(cpu0, times.length);
    await profiling('list');
    row(`GET /servers/detail?limit=1000 with ${LISTED} servers (${fx.computes.size} hosts), to the last byte`, `${dist(times)}; ${detailCpu}`);
    const brief: number[] = [];
    cpu0 = process.cpuUsage();
    for (let i = 0; i < LIST_SAMPLES; i++) brief.push((await timedPage(fx, '/v2.1/servers?limit=1000')).ms);
    row(`GET /servers?limit=1000 with ${LISTED} servers, to the last byte`, `${dist(brief)}; ${cpuPerPage(cpu0, brief.length)}`);
  } finally {
    await fx.close();
  }
}

/** `n` more servers as copies of the database rows of those there, on hosts spread over the fake hosts. */
async function copyServers(fx: NovaFixture, n: number): Promise<void> {
  const db = fx.database.db;
  const templates = await db.selectFrom('instances').selectAll().where('deleted', '=', 0).execute();
  const metadata = await db.selectFrom('instance_metadata').selectAll().execute();
  const bdms = await db.selectFrom('block_device_mapping').selectAll().execute();
  const hosts = [...fx.computes.keys()];
  for (let done = 0; done < n; ) {
    const batch = Math.min(500, n - done);
    await db.transaction().execute(async (tx) => {
      for (let i = 0; i < batch; i++) {
        const t = templates[(done + i) % templates.length]!;
        const uuid = randomUUID();
        const host = hosts[(done + i) % hosts.length]!;
        await tx.insertInto('instances').values({ ...t, uuid, display_name: `copy-${done + i}`, hostname: `copy-${done + i}`, host, node: host, created_at: t.created_at + done + i + 1 }).execute();
        for (const m of metadata.filter((x) => x.instance_uuid === t.uuid)) await tx.insertInto('instance_metadata').values({ ...m, instance_uuid: uuid }).execute();
        for (const b of bdms.filter((x) => x.instance_uuid === t.uuid)) await tx.insertInto('block_device_mapping').values({ ...b, id: randomUUID(), instance_uuid: uuid }).execute();
      }
    });
    done += batch;
  }
}

/** The process's CPU time per page (the server's and the bench's own JSON parsing, and the hosts' heartbeats meanwhile). */
function cpuPerPage(cpu0: NodeJS.CpuUsage, pages: number): string {
  const cpu = process.cpuUsage(cpu0);
  return `${((cpu.user + cpu.system) / 1000 / pages).toFixed(1)} ms CPU a page`;
}

/** A page of 1,000, timed from the request to its last byte; the bench's own JSON parsing (same process) is left out. */
async function timedPage(fx: NovaFixture, path: string): Promise<{ ms: number; servers: { id: string }[] }> {
  const t0 = performance.now();
  const res = await fetch(`${fx.url}${path}`, { headers: { 'x-auth-token': fx.admin.token!, 'openstack-api-version': 'compute 2.37' } });
  const bytes = await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
  const { servers } = JSON.parse(Buffer.from(bytes).toString('utf8')) as { servers: { id: string }[] };
  if (servers.length !== 1000) throw new Error(`${path}: a page of ${servers.length}`);
  return { ms, servers };
}

async function waitAllActive(fx: NovaFixture, n: number): Promise<void> {
  const end = Date.now() + 600_000;
  for (;;) {
    const rows = await fx.database.db.selectFrom('instances').select(({ fn }) => fn.countAll<number>().as('n')).where('vm_state', '=', 'active').where('deleted', '=', 0).executeTakeFirstOrThrow();
    if (Number(rows.n) >= n) return;
    if (Date.now() > end) throw new Error(`only ${rows.n} of ${n} servers ACTIVE`);
    await sleep(500);
  }
}

/**
 * With NOVA_BENCH_PROFILE=DIR, a CPU profile of this process (every service of the run) per
 * phase: each call writes DIR/<name>.cpuprofile of the time since the previous one.
 */
async function profileTo(dir: string | undefined): Promise<(name: string) => Promise<void>> {
  if (!dir) return async () => undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (name) => {
    const { profile } = await session.post('Profiler.stop');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    await session.post('Profiler.start');
  };
}

async function main(): Promise<void> {
  const load0 = loadavg()[0];
  if (!opts['no-fake']) await fakePart();
  if (!opts['no-qemu']) await qemuPart();
  console.log(`\n| figure (load average ${load0.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end) | value |\n| --- | --- |`);
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
