/**
 * Swift's data path through the proxy with a real token: 4 KiB PUT and GET
 * (ops/s, p50/p99 at concurrency 1 and 16) and one large object (MiB/s), on
 * onestack's all-in-one layout (one storage node, 3 device dirs, 3 replicas,
 * every replica fsynced before the 201) and on upstream Swift started by the
 * anchor scripts in the same run; the large PUT beside `dd conv=fsync` / 3.
 * See bench/swift/README.md.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findAnchors, upstream } from '../keystone/targets.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const QUICK = flag('--quick');
const SECONDS = value('--seconds', QUICK ? 3 : 10);
const BIG_MIB = value('--big-mib', 256);
const ROUNDS = QUICK ? 1 : 3;
const SMALL = Buffer.alloc(4096, 'x');

export interface Target {
  name: string;
  /** onestack only: where the storage node and proxy answer (their /healthcheck gives the pid). */
  storageUrl?: string;
  proxyUrl?: string;
  /** …/v1/AUTH_<project> */
  account: string;
  token: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function projectToken(keystone: string, user: string, password: string, project: string): Promise<{ token: string; projectId: string }> {
  const res = await fetch(`${keystone}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } }, scope: { project: { name: project, domain: { id: 'default' } } } },
    }),
  });
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`token from ${keystone}: ${res.status} ${await res.text()}`);
  return { token, projectId: ((await res.json()) as { token: { project: { id: string } } }).token.project.id };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  if (await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)])) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** `onestack bootstrap`, then keystone, swift_storage and swift each as `onestack serve` in a scratch state dir on free ports. */
export async function startOnestack(dir: string): Promise<Target> {
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'onestack.conf');
  writeFileSync(configFile, '');
  const stateDir = join(dir, 'state');
  const ports = { keystone: await freePort(), swift: await freePort(), storage: await freePort() };
  const env: Record<string, string> = {
    ...(Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('ONESTACK_') && v !== undefined)) as Record<string, string>),
    ONESTACK_CONFIG: configFile,
    ONESTACK_DEFAULT__STATE_DIR: stateDir,
    ONESTACK_KEYSTONE__PORT: String(ports.keystone),
    ONESTACK_SWIFT__PORT: String(ports.swift),
    ONESTACK_SWIFT_STORAGE__PORT: String(ports.storage),
    ONESTACK_KEYSTONE__PASSWORD_HASH_ROUNDS: '4',
    ONESTACK_CLOUDS_YAML: join(dir, 'clouds.yaml'),
  };
  const onestack = join(ROOT, 'onestack');
  await run(onestack, ['bootstrap'], { env, cwd: ROOT, timeout: 120_000 });
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children.reverse()) await stopChild(c);
  };
  const serve = async (service: string, probe: string, extra: Record<string, string> = {}, nodeArgs = '') => {
    const log = join(dir, `serve-${service}.log`);
    const fd = openSync(log, 'a');
    // With node flags (--cpu-prof is refused in NODE_OPTIONS) the CLI runs under node directly, as ./onestack would.
    const [cmd, argv] = nodeArgs
      ? [process.execPath, [...nodeArgs.split(/\s+/), '--import', `file://${ROOT}/node_modules/tsx/dist/loader.mjs`, join(ROOT, 'packages/onestack/src/cli.ts'), 'serve', service]]
      : [onestack, ['serve', service]];
    const child = spawn(cmd, argv, { env: { ...env, ...extra }, cwd: ROOT, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    children.push(child);
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
      if (child.exitCode !== null) throw new Error(`onestack serve ${service} exited: ${readFileSync(log, 'utf8').slice(-2000)}`);
      if (await fetch(probe).then((r) => r.ok, () => false)) return;
    }
    throw new Error(`onestack serve ${service} did not answer ${probe}`);
  };
  try {
    await serve('keystone', `http://127.0.0.1:${ports.keystone}/v3`);
    // Many fsyncs in flight at once: the storage node wants more than libuv's 4 threads.
    // BENCH_SWIFT_{STORAGE,PROXY}_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profile one server alone.
    await serve('swift_storage', `http://127.0.0.1:${ports.storage}/healthcheck`, { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '64' }, process.env.BENCH_SWIFT_STORAGE_NODE_ARGS);
    await serve('swift', `http://127.0.0.1:${ports.swift}/healthcheck`, {}, process.env.BENCH_SWIFT_PROXY_NODE_ARGS);
    const { demo_password: password } = JSON.parse(readFileSync(join(stateDir, 'secrets.json'), 'utf8')) as { demo_password: string };
    const { token, projectId } = await projectToken(`http://127.0.0.1:${ports.keystone}`, 'demo', password, 'demo');
    return { name: 'onestack', account: `http://127.0.0.1:${ports.swift}/v1/AUTH_${projectId}`, token, stop, storageUrl: `http://127.0.0.1:${ports.storage}`, proxyUrl: `http://127.0.0.1:${ports.swift}` };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function startUpstream(dir: string): Promise<Target> {
  const anchors = findAnchors(ROOT);
  // Silently skipped, a run from a worktree (no ../shared beside it) printed onestack's figures without ratios.
  if (!anchors) throw new Error('no anchor scripts beside the checkout: set ONESTACK_ANCHORS to the anchors directory');
  const u = upstream(anchors, dir);
  try {
    const ks = await u.start();
    const { token, projectId } = await projectToken(ks.url, ks.demo.user, ks.demo.password, ks.demo.project);
    return { name: 'upstream', account: `http://127.0.0.1:${process.env.ANCHOR_SWIFT_PORT || 8081}/v1/AUTH_${projectId}`, token, stop: u.stop };
  } catch (e) {
    await u.stop();
    throw e;
  }
}

function request(agent: http.Agent, method: string, url: string, token: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { 'x-auth-token': token, ...(body ? { 'content-length': body.length, 'content-type': 'application/octet-stream' } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface Load {
  ops: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `conc` keep-alive connections issuing requests back to back for SECONDS. */
async function load(t: Target, conc: number, op: (agent: http.Agent, n: number) => Promise<number>): Promise<Load> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  await op(agent, n++); // warm the connection and the token cache
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const status = await op(agent, n++);
        lat.push(performance.now() - t0);
        if (status >= 300) errors++;
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { ops: lat.length / secs, p50: lat[Math.floor(lat.length * 0.5)] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0, errors };
}

async function small(t: Target): Promise<Record<string, Load>> {
  const c = `${t.account}/bench-small`;
  const agent = new http.Agent({ keepAlive: true });
  await request(agent, 'PUT', c, t.token);
  const GETS = 200;
  for (let i = 0; i < GETS; i++) await request(agent, 'PUT', `${c}/get-${i}`, t.token, SMALL);
  agent.destroy();
  const run = `${Date.now()}`;
  const out: Record<string, Load> = {};
  for (const conc of [1, 16]) {
    out[`PUT 4 KiB|${conc}`] = await load(t, conc, (a, n) => request(a, 'PUT', `${c}/put-${run}-${conc}-${n}`, t.token, SMALL));
    out[`GET 4 KiB|${conc}`] = await load(t, conc, (a, n) => request(a, 'GET', `${c}/get-${n % GETS}`, t.token));
  }
  return out;
}

async function timedCurl(argv: string[]): Promise<number> {
  const { stdout } = await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{time_total}', ...argv], { maxBuffer: 1 << 20 });
  return Number(stdout);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * One large object up and down with curl (as anchor-perf does), median of ROUNDS. Each round
 * writes a new object and deletes it untimed, as ddRate writes a new file: an overwrite would
 * also time freeing the previous version's extents (hundreds of ms per replica on ext4).
 */
async function large(t: Target, src: string): Promise<{ put: number; get: number }> {
  const c = `${t.account}/bench-large`;
  await timedCurl(['-X', 'PUT', '-H', `X-Auth-Token: ${t.token}`, c]);
  const puts: number[] = [];
  const gets: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    puts.push(BIG_MIB / (await timedCurl(['-T', src, '-H', `X-Auth-Token: ${t.token}`, `${c}/big-${i}`])));
    gets.push(BIG_MIB / (await timedCurl(['-H', `X-Auth-Token: ${t.token}`, `${c}/big-${i}`])));
    await timedCurl(['-X', 'DELETE', '-H', `X-Auth-Token: ${t.token}`, `${c}/big-${i}`]);
  }
  return { put: median(puts), get: median(gets) };
}

async function ddRate(src: string, dst: string): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await run('dd', [`if=${src}`, `of=${dst}`, 'bs=1M', 'conv=fsync'], { maxBuffer: 1 << 20 });
    rates.push(BIG_MIB / ((performance.now() - t0) / 1000));
    rmSync(dst, { force: true });
  }
  return median(rates);
}

/**
 * What these cores and this disk allow a replicated PUT at best, measured beside it: one
 * process takes the object from curl over loopback HTTP and writes three copies, 1 MiB writes
 * through the threadpool and an fdatasync each, as a storage node must — but no MD5, no proxy
 * hop, no metadata. When the disk outruns the CPU (dd/3 above this), the goal is out of reach
 * for any server that keeps Swift's ETag and proxy.
 */
async function floorRate(src: string, dir: string): Promise<number> {
  let n = 0;
  const server = http.createServer(async (req, res) => {
    const files = await Promise.all([0, 1, 2].map((r) => open(join(dir, `floor-${n}-${r}`), 'wx')));
    n++;
    let batch: Buffer[] = [];
    let bytes = 0;
    let writing: Promise<unknown> = Promise.resolve();
    const flush = async () => {
      const b = batch;
      batch = [];
      bytes = 0;
      await writing;
      writing = Promise.all(files.map((f) => f.writev(b)));
    };
    for await (const c of req as AsyncIterable<Buffer>) {
      batch.push(c);
      bytes += c.length;
      if (bytes >= 1 << 20) await flush();
    }
    await flush();
    await writing;
    await Promise.all(files.map((f) => f.datasync()));
    await Promise.all(files.map((f) => f.close()));
    res.writeHead(201).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/floor`;
  const rates: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      rates.push(BIG_MIB / (await timedCurl(['-T', src, url])));
      for (let r = 0; r < 3; r++) rmSync(join(dir, `floor-${i}-${r}`), { force: true });
    }
  } finally {
    server.close();
  }
  return median(rates);
}

const ms = (x: number) => (x < 10 ? `${x.toFixed(2)}ms` : `${x.toFixed(1)}ms`);
const num = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

async function main(): Promise<void> {
  const scratch = join(process.env.TMPDIR || tmpdir(), `onestack-bench-swift-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const targets: Target[] = [];
  const cleanup = async () => {
    for (const t of targets) await t.stop().catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  };
  // The servers and the anchor run detached: stop them on Ctrl-C and on a timeout's SIGTERM too.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));
  try {
    const src = join(scratch, 'big.src');
    await run('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${BIG_MIB}`, 'conv=fsync']);
    console.log(`# ${new Date().toISOString()} load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${SECONDS} s per small figure, ${ROUNDS} round(s) of ${BIG_MIB} MiB`);
    const dd = await ddRate(src, join(scratch, 'dd.out'));
    const floor = await floorRate(src, scratch);
    targets.push(await startOnestack(join(scratch, 'onestack')));
    if (!flag('--no-upstream')) {
      const up = await startUpstream(join(scratch, 'upstream')).catch((e: Error) => (console.log(`# upstream not measured: ${e.message.split('\n')[0]}`), undefined));
      if (up) targets.push(up);
    }
    const results: Record<string, { small: Record<string, Load>; large: { put: number; get: number } }> = {};
    for (const t of targets) {
      results[t.name] = { small: await small(t), large: await large(t, src) };
      console.log(`# ${t.name} done; load average ${loadavg()[0].toFixed(2)}`);
    }
    const os = results.onestack;
    const up = results.upstream;
    console.log('\nmetric     | conc | onestack ops/s |     p50 |     p99 | upstream ops/s |     p50 |     p99 | onestack/upstream | goal');
    console.log('-----------|------|----------------|---------|---------|----------------|---------|---------|-------------------|-----------');
    for (const key of Object.keys(os.small)) {
      const [metric, conc] = key.split('|');
      const a = os.small[key];
      const b = up?.small[key];
      const ratio = b ? a.ops / b.ops : undefined;
      const errs = a.errors ? ` (${a.errors} errors)` : '';
      console.log(
        `${metric.padEnd(11)}| ${conc.padStart(4)} | ${num(a.ops).padStart(14)} | ${ms(a.p50).padStart(7)} | ${ms(a.p99).padStart(7)} | ${(b ? num(b.ops) : '-').padStart(14)} | ${(b ? ms(b.p50) : '-').padStart(7)} | ${(b ? ms(b.p99) : '-').padStart(7)} | ${(ratio ? `${ratio.toFixed(2)}×` : '-').padStart(17)} | ${ratio ? `≥ 2×: ${ratio >= 2 ? 'PASS' : 'MISS'}` : ''}${errs}`,
      );
    }
    console.log(`\n${BIG_MIB} MiB object     | onestack MiB/s | upstream MiB/s | dd conv=fsync / 3 | goal`);
    const target = dd / 3;
    console.log(`PUT (3 replicas)   | ${num(os.large.put).padStart(14)} | ${(up ? num(up.large.put) : '-').padStart(14)} | ${num(target).padStart(17)} | ≥ 80%: ${(os.large.put / target * 100).toFixed(0)}% ${os.large.put >= 0.8 * target ? 'PASS' : 'MISS'}`);
    console.log(`GET                | ${num(os.large.get).padStart(14)} | ${(up ? num(up.large.get) : '-').padStart(14)} |                   |`);
    console.log(`\ndd if=src of=file bs=1M conv=fsync: ${num(dd)} MiB/s (same file system as the device dirs: ${scratch})`);
    console.log(`floor: curl -T to one process writing 3 fdatasync'd copies, no MD5, no proxy: ${num(floor)} MiB/s (onestack's PUT ${(os.large.put / floor * 100).toFixed(0)}% of it)`);
    if (floor < 0.8 * target) console.log(`# the goal (80% of dd/3 = ${num(0.8 * target)} MiB/s) is above the floor: this disk outruns these cores`);
    console.log(`# end: load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await cleanup();
  }
}

// Importable (tools that profile one target reuse startOnestack); runs only as the entry point.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (!existsSync(join(ROOT, 'onestack'))) throw new Error('run from the onestack checkout');
  await main();
}
