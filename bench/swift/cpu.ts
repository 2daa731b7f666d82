/**
 * CPU cost of Swift's data path per request / per MiB, for each server process
 * (utime+stime from /proc/PID/stat around a batch of requests). On a shared,
 * oversubscribed machine this holds still while wall-clock throughput does not.
 *
 *   node --import tsx bench/swift/cpu.ts [--small 300] [--big-mib 64] [--big-rounds 4]
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startOnestack, type Target } from './run.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const value = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const SMALL_N = value('--small', 300);
const BIG_MIB = value('--big-mib', 64);
const BIG_ROUNDS = value('--big-rounds', 4);
const CLK_TCK = 100;

/** The pid listening on a loopback URL's port (ss -ltnp). */
async function listenerPid(url: string): Promise<number> {
  const port = new URL(url).port;
  const { stdout } = await run('ss', ['-Hltnp', `sport = :${port}`]);
  const m = /pid=(\d+)/.exec(stdout);
  if (!m) throw new Error(`no listener on ${port}: ${stdout}`);
  return Number(m[1]);
}

/** [utime, stime] of a process in ms. */
function cpuMs(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [(Number(f[11]) * 1000) / CLK_TCK, (Number(f[12]) * 1000) / CLK_TCK];
}

/** "total (user+sys)" per unit between two readings. */
function cost(a: [number, number], b: [number, number], units: number): string {
  const u = (b[0] - a[0]) / units;
  const s = (b[1] - a[1]) / units;
  return `${(u + s).toFixed(2)} (${u.toFixed(2)}+${s.toFixed(2)})`;
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

async function measure(pids: { storage: number; proxy: number }, units: number, work: () => Promise<void>): Promise<string> {
  const s0 = cpuMs(pids.storage);
  const p0 = cpuMs(pids.proxy);
  const t0 = performance.now();
  await work();
  const wall = performance.now() - t0;
  return `storage ${cost(s0, cpuMs(pids.storage), units)} / proxy ${cost(p0, cpuMs(pids.proxy), units)} ms (wall ${(wall / units).toFixed(1)} ms)`;
}

async function small(t: Target, pids: { storage: number; proxy: number }): Promise<void> {
  const c = `${t.account}/cpu-small`;
  const body = Buffer.alloc(4096, 'x');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  await request(agent, 'PUT', c, t.token);
  for (let i = 0; i < 20; i++) await request(agent, 'PUT', `${c}/warm-${i}`, t.token, body);
  for (const conc of [1, 16]) {
    let n = 0;
    const batch = (op: (i: number) => Promise<number>) => async () => {
      await Promise.all(Array.from({ length: conc }, async () => {
        while (n < SMALL_N) {
          const s = await op(n++);
          if (s >= 300) throw new Error(`status ${s}`);
        }
      }));
      n = 0;
    };
    console.log(`PUT 4 KiB c=${conc}: ${await measure(pids, SMALL_N, batch((i) => request(agent, 'PUT', `${c}/o-${conc}-${i}`, t.token, body)))} per request`);
    console.log(`GET 4 KiB c=${conc}: ${await measure(pids, SMALL_N, batch((i) => request(agent, 'GET', `${c}/o-${conc}-${i}`, t.token)))} per request`);
  }
  agent.destroy();
}

async function large(t: Target, pids: { storage: number; proxy: number }, src: string): Promise<void> {
  const c = `${t.account}/cpu-large`;
  await run('curl', ['-sf', '-X', 'PUT', '-H', `X-Auth-Token: ${t.token}`, c]);
  // A new object each round, the last one kept for the GET: an overwrite also frees the old version's extents.
  for (let i = 0; i < BIG_ROUNDS; i++) {
    if (i > 0) await run('curl', ['-sf', '-X', 'DELETE', '-H', `X-Auth-Token: ${t.token}`, `${c}/big-${i - 1}`]);
    console.log(`PUT ${BIG_MIB} MiB: ${await measure(pids, BIG_MIB, async () => void (await run('curl', ['-sf', '-T', src, '-H', `X-Auth-Token: ${t.token}`, `${c}/big-${i}`])))} per MiB`);
  }
  console.log(`GET ${BIG_MIB} MiB: ${await measure(pids, BIG_MIB, async () => void (await run('curl', ['-sf', '-o', '/dev/null', '-H', `X-Auth-Token: ${t.token}`, `${c}/big-${BIG_ROUNDS - 1}`])))} per MiB`);
}

const scratch = join(process.env.TMPDIR || tmpdir(), `onestack-bench-swift-cpu-${process.pid}`);
mkdirSync(scratch, { recursive: true });
let target: Target | undefined;
try {
  const src = join(scratch, 'big.src');
  await run('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${BIG_MIB}`]);
  target = await startOnestack(join(scratch, 'onestack'));
  const pids = { storage: await listenerPid(target.storageUrl!), proxy: await listenerPid(target.proxyUrl!) };
  console.log(`# ${new Date().toISOString()} load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; CPU ms (utime+stime) of each server`);
  if (SMALL_N) await small(target, pids);
  if (BIG_ROUNDS) await large(target, pids, src);
  console.log(`# end: load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  await target?.stop();
  rmSync(scratch, { recursive: true, force: true });
}
