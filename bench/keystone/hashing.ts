import bcrypt from 'bcrypt';
import type { LoadResult } from './wrk.ts';

const COST = 12;

/**
 * `bcrypt.compare` at cost 12 with the package onestack verifies passwords with,
 * `conc` at a time for `seconds`: the floor under a password token issue.
 */
export async function bcryptCompare(conc: number, seconds: number): Promise<LoadResult> {
  const password = 'correct horse battery staple';
  const hash = await bcrypt.hash(password, COST);
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      if (!(await bcrypt.compare(password, hash))) throw new Error('bcrypt.compare rejected its own hash');
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)] ?? NaN;
  return { rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), requests: latencies.length, errors: 0 };
}
