import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mintTokens, passwordToken } from './client.ts';
import { shares, snapshot, waitIdle, type CpuShares } from './cpu.ts';
import type { Target } from './targets.ts';
import { luaScript, wrk, wrkThreads, type Concurrency, type LoadResult } from './wrk.ts';

export const CONCURRENCIES: readonly Concurrency[] = [1, 8];

export const METRICS = ['password issue', 'token issue', 'validate cached', 'validate uncached'] as const;
export type Metric = (typeof METRICS)[number];

export interface Measurement extends LoadResult {
  cpu: CpuShares;
  /** Anything that makes the figure less than it claims to be. */
  notes: string[];
}

export type Results = Map<string, Measurement>;

export const key = (metric: string, conc: Concurrency) => `${metric}@${conc}`;

/**
 * onestack keeps this many validated tokens (CACHE_MAX in
 * packages/keystone/src/domain/token-provider.ts), evicting the oldest first.
 */
export const ONESTACK_TOKEN_CACHE = 50_000;
/** `onestack serve keystone --workers N`: one process per core, as upstream's anchor runs several uwsgi workers. */
export const ONESTACK_WORKERS = availableParallelism();
/**
 * Walking a fifth more tokens than all workers' caches hold together, in order,
 * makes every lookup a miss whichever worker the kernel hands a request to.
 */
export const ONESTACK_UNCACHED_TOKENS = Math.ceil(ONESTACK_TOKEN_CACHE * ONESTACK_WORKERS * 1.2);

export interface Pace {
  seconds: number;
  /** Longest wait for the machine to calm down before a measurement. */
  idleWaitMs: number;
  /** Other tenants' share of the machine above which a measurement is taken again. */
  maxOthersPct: number;
  /** How many times a figure is taken at most. */
  attempts: number;
}

type Log = (line: string) => void;

const fmt = (n: number, d = 1) => n.toFixed(d);

export function describe(m: Measurement): string {
  const errs = m.errors ? `, ${m.errors} errors` : '';
  return `${fmt(m.rps)} req/s p50 ${fmt(m.p50Ms, 2)}ms p99 ${fmt(m.p99Ms, 2)}ms (${m.requests} requests${errs}; cpu server ${fmt(m.cpu.serverPct, 0)}% client ${fmt(m.cpu.clientPct, 0)}% others ${fmt(m.cpu.othersPct, 0)}%)`;
}

/**
 * Runs `fn` once the machine is quiet; while other tenants still took more than
 * `maxOthersPct` of it, runs it again (up to `attempts` in all) and keeps the least
 * disturbed figure.
 */
export async function measure(label: string, pace: Pace, pgids: () => number[], fn: () => Promise<LoadResult>, log: Log): Promise<Measurement> {
  let best: Measurement | undefined;
  for (let attempt = 1; attempt <= pace.attempts; attempt++) {
    await waitIdle(85, pace.idleWaitMs);
    const a = snapshot(pgids());
    const r = await fn();
    const m: Measurement = { ...r, cpu: shares(a, snapshot(pgids())), notes: [] };
    log(`${label}: ${describe(m)}`);
    if (!best || m.cpu.othersPct < best.cpu.othersPct) best = m;
    if (m.cpu.othersPct <= pace.maxOthersPct) break;
    if (attempt < pace.attempts) log(`${label}: other processes took ${fmt(m.cpu.othersPct, 0)}% of the machine; measuring again`);
  }
  if (best!.cpu.othersPct > pace.maxOthersPct) best!.notes.push(`other processes took ${fmt(best!.cpu.othersPct, 0)}% of the machine`);
  if (best!.errors) best!.notes.push(`${best!.errors} non-2xx answers or socket errors`);
  return best!;
}

/** Every figure for one Keystone, in the order the table prints them. */
export async function runSuite(t: Target, pace: Pace, scratch: string, log: Log): Promise<Results> {
  const results: Results = new Map();
  const say = (line: string) => log(`[${t.name}] ${line}`);
  // Checks both passwords once before wrk sends thousands: a wrong one must fail here, not lock the user out.
  const adminToken = await passwordToken(t.url, t.admin);
  const demoToken = await passwordToken(t.url, t.demo);
  const load = (metric: Metric, conc: Concurrency, script: string, env: Record<string, string>) =>
    measure(`[${t.name}] ${metric} c${conc}`, pace, t.pgids, () => wrk({ url: t.url, script: luaScript(script), conc, seconds: pace.seconds, env }), log).then((m) =>
      results.set(key(metric, conc), m),
    );

  const demo = { KS_PROJECT: t.demo.project };
  for (const c of CONCURRENCIES) await load('password issue', c, 'issue.lua', { ...demo, KS_METHOD: 'password', KS_USER: t.demo.user, KS_PASSWORD: t.demo.password });
  for (const c of CONCURRENCIES) await load('token issue', c, 'issue.lua', { ...demo, KS_METHOD: 'token', KS_TOKEN: demoToken });
  for (const c of CONCURRENCIES) await load('validate cached', c, 'validate.lua', { KS_AUTH_TOKEN: adminToken, KS_SUBJECT_TOKEN: demoToken });

  const tokenFile = join(scratch, `${t.name}-tokens.txt`);
  const positionFile = join(scratch, `${t.name}-position.txt`);
  // A flushable cache is emptied before each run, so a run needs only as many tokens as it sends;
  // upper bound: the cached rate, which skips the work being measured.
  const count = t.flushTokenCache
    ? Math.ceil(Math.max(...CONCURRENCIES.map((c) => results.get(key('validate cached', c))!.rps)) * pace.seconds * 1.5) + 200
    : ONESTACK_UNCACHED_TOKENS;
  say(`minting ${count} tokens with the token method for the uncached validations`);
  const t0 = performance.now();
  await mintTokens({ url: t.url, token: demoToken, project: t.demo.project, count, file: tokenFile, concurrency: 8 });
  say(`minted in ${fmt((performance.now() - t0) / 1000)} s`);

  let offset = 0;
  for (const conc of CONCURRENCIES) {
    const m = await measure(
      `[${t.name}] validate uncached c${conc}`,
      pace,
      t.pgids,
      async () => {
        if (t.flushTokenCache) {
          await t.flushTokenCache();
          offset = 0;
        }
        const r = await wrk({
          url: t.url,
          script: luaScript('validate-rotate.lua'),
          conc,
          seconds: pace.seconds,
          env: { KS_AUTH_TOKEN: adminToken, KS_TOKEN_FILE: tokenFile, KS_TOKEN_OFFSET: String(offset), KS_THREADS: String(wrkThreads(conc)), KS_POSITION_FILE: positionFile },
        });
        offset = Number(readFileSync(positionFile, 'utf8'));
        return r;
      },
      log,
    );
    if (t.flushTokenCache && offset > count) m.notes.push(`ran out of distinct tokens (${offset} sent, ${count} minted): some were cached`);
    results.set(key('validate uncached', conc), m);
  }
  return results;
}
