import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

export type Concurrency = 1 | 8;

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Non-2xx answers plus socket errors: a figure with errors measured something else. */
  errors: number;
}

/** wrk's threads for a number of connections: one connection is one thread, eight share two. */
export function wrkThreads(conc: Concurrency): number {
  return conc === 1 ? 1 : 2;
}

export function luaScript(name: string): string {
  return join(HERE, name);
}

export async function wrk(o: { url: string; script: string; conc: Concurrency; seconds: number; env: Record<string, string> }): Promise<LoadResult> {
  const args = [`-t${wrkThreads(o.conc)}`, `-c${o.conc}`, `-d${o.seconds}s`, '--timeout', '10s', '--latency', '-s', o.script, o.url];
  const { stdout } = await run('wrk', args, { env: { ...process.env, ...o.env }, maxBuffer: 1 << 20 });
  return parseWrk(stdout);
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

function latencyMs(out: string, percentile: string): number {
  const m = new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(out);
  if (!m) throw new Error(`wrk printed no ${percentile}% latency:\n${out}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrk(out: string): LoadResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const requests = /^\s*(\d+) requests in /m.exec(out);
  if (!rps || !requests) throw new Error(`unexpected wrk output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  return {
    rps: Number(rps[1]),
    p50Ms: latencyMs(out, '50'),
    p99Ms: latencyMs(out, '99'),
    requests: Number(requests[1]),
    errors: (non2xx ? Number(non2xx[1]) : 0) + socketErrors,
  };
}
