/**
 * Keystone's performance beside upstream Keystone's, measured in the same run:
 *   node --import tsx bench/keystone/run.ts [--quick] [--no-upstream]
 * Progress goes to stderr, the table to stdout. See README.md.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { coreCount } from './cpu.ts';
import { bcryptCompare } from './hashing.ts';
import { HASH, table } from './report.ts';
import { CONCURRENCIES, key, measure, ONESTACK_TOKEN_CACHE, ONESTACK_UNCACHED_TOKENS, ONESTACK_WORKERS, runSuite, type Pace, type Results } from './suite.ts';
import { findAnchors, startOnestack, upstream } from './targets.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-upstream': { type: 'boolean', default: false },
  },
});

const pace: Pace = opts.quick
  ? { seconds: 3, idleWaitMs: 10_000, maxOthersPct: 15, attempts: 2 }
  : { seconds: 10, idleWaitMs: 30_000, maxOthersPct: 15, attempts: 3 };

const log = (line: string) => process.stderr.write(`${line}\n`);

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      await c().catch((e: unknown) => log(`cleanup: ${e instanceof Error ? e.message : String(e)}`));
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping what this run started`);
    void cleanUp().then(() => process.exit(130));
  });
}

async function quiet(file: string, args: string[]): Promise<string> {
  return run(file, args, { cwd: ROOT }).then(
    (r) => r.stdout.trim(),
    () => '',
  );
}

async function banner(): Promise<string> {
  const commit = await quiet('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = await quiet('git', ['status', '--porcelain', '--', 'packages/core', 'packages/keystone', 'packages/onestack']);
  const upstreamVersion = await quiet('dpkg-query', ['-W', '-f', '${Version}', 'keystone']);
  return [
    `# keystone benchmark ${new Date().toISOString()}`,
    `# machine: ${coreCount()} cores (${cpus()[0]?.model ?? 'unknown cpu'}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`,
    `# onestack ${commit || 'unknown commit'}${dirty ? ' with uncommitted changes' : ''}, node ${process.version}; upstream keystone ${upstreamVersion || 'not installed'}`,
    `# ${pace.seconds} s per figure; conc 1 = wrk -t1 -c1, conc 8 = wrk -t2 -c8; p50/p99 latency from wrk --latency`,
  ].join('\n');
}

async function main(): Promise<void> {
  const started = performance.now();
  await run('wrk', ['-v']).catch((e: NodeJS.ErrnoException & { stdout?: string }) => {
    // wrk -v prints its version and exits 1; only a missing binary matters.
    if (e.code === 'ENOENT') throw new Error('wrk is not installed (apt-get install wrk)');
  });
  const scratch = mkdtempSync(join(tmpdir(), 'onestack-bench-keystone-'));
  cleanups.push(async () => rmSync(scratch, { recursive: true, force: true }));
  const head = await banner();
  log(head);

  const ours: Results = new Map();
  for (const conc of CONCURRENCIES) {
    ours.set(key(HASH, conc), await measure(`${HASH} c${conc}`, pace, () => [], () => bcryptCompare(conc, pace.seconds), log));
  }

  log('[onestack] bootstrap and serve keystone');
  const onestack = await startOnestack(ROOT, scratch);
  cleanups.push(() => onestack.stop());
  for (const [k, m] of await runSuite(onestack, pace, scratch, log)) ours.set(k, m);
  await onestack.stop();

  let theirs: Results | undefined;
  let without: string | undefined;
  const anchors = findAnchors(ROOT);
  if (opts['no-upstream']) without = '--no-upstream given';
  else if (!anchors) {
    without = process.env.ONESTACK_ANCHORS
      ? 'no anchor-up.sh in $ONESTACK_ANCHORS'
      : 'ONESTACK_ANCHORS is not set and there is no ../shared/anchors beside the checkout';
  } else {
    const anchor = upstream(anchors, scratch);
    cleanups.push(() => anchor.stop());
    try {
      log('[upstream] anchor-up.sh (a few minutes the first time: apt-get, db_sync)');
      const t0 = performance.now();
      const target = await anchor.start();
      log(`[upstream] up in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      theirs = await runSuite(target, pace, scratch, log);
    } catch (e) {
      without = `upstream failed: ${e instanceof Error ? e.message : String(e)}`;
      log(without);
    } finally {
      await anchor.stop();
    }
  }

  const out = [head, ''];
  if (without) out.push(`upstream not measured (${without}): onestack figures only`, '');
  out.push(table(ours, theirs));
  out.push(
    '',
    `uncached: a different subject token every request; onestack (${ONESTACK_WORKERS} workers) walks ${ONESTACK_UNCACHED_TOKENS} tokens in order through their ${ONESTACK_TOKEN_CACHE}-entry caches,`,
    'upstream (which caches tokens in memcached when it issues them) has memcached flushed before each run.',
    `"${HASH}": the bcrypt npm package in this process; issue/hash = hash rate / password issue rate at the same concurrency.`,
    `# took ${((performance.now() - started) / 60_000).toFixed(1)} min`,
  );
  process.stdout.write(out.join('\n') + '\n');
}

try {
  await main();
} catch (e) {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
} finally {
  await cleanUp();
}
