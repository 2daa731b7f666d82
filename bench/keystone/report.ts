import { CONCURRENCIES, key, METRICS, type Measurement, type Metric, type Results } from './suite.ts';
import type { Concurrency } from './wrk.ts';

export const HASH = 'bcrypt.compare cost 12';

/** The project's goals, as ratios to upstream measured in the same run. */
const GOALS = {
  validateRatio: 50,
  /** What 50× upstream's validation comes to on the reference machine; judged when upstream was not measured. */
  validateAbsolute: 12_000,
  tokenIssueRatio: 20,
  issueOverHash: 1.3,
};

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}

function goal(metric: Metric, conc: Concurrency, ours: Results, upstream: Results | undefined): string {
  const mine = ours.get(key(metric, conc));
  const theirs = upstream?.get(key(metric, conc));
  if (!mine) return '';
  switch (metric) {
    case 'password issue': {
      const hash = ours.get(key(HASH, conc));
      if (!hash) return '';
      const r = hash.rps / mine.rps;
      return `issue/hash ${r.toFixed(2)} ≤ ${GOALS.issueOverHash}: ${verdict(r <= GOALS.issueOverHash)}`;
    }
    case 'token issue':
      return theirs ? `≥ ${GOALS.tokenIssueRatio}×: ${verdict(mine.rps / theirs.rps >= GOALS.tokenIssueRatio)}` : `≥ ${GOALS.tokenIssueRatio}× upstream: not judged`;
    case 'validate cached':
    case 'validate uncached':
      return theirs
        ? `≥ ${GOALS.validateRatio}×: ${verdict(mine.rps / theirs.rps >= GOALS.validateRatio)}`
        : `≥ ${GOALS.validateAbsolute}/s: ${verdict(mine.rps >= GOALS.validateAbsolute)}`;
  }
}

function rate(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function ms(n: number): string {
  if (n >= 1000) return `${(n / 1000).toFixed(2)}s`;
  if (n >= 100) return `${n.toFixed(0)}ms`;
  if (n >= 10) return `${n.toFixed(1)}ms`;
  return `${n.toFixed(2)}ms`;
}

function cells(m: Measurement | undefined, mark: string): string[] {
  return m ? [rate(m.rps) + mark, ms(m.p50Ms), ms(m.p99Ms)] : ['', '', ''];
}

/** The table, its footnotes, and a one-line verdict per goal row. */
export function table(ours: Results, upstream: Results | undefined): string {
  const notes: string[] = [];
  const mark = (m: Measurement | undefined, who: string, label: string) => {
    if (!m?.notes.length) return '';
    notes.push(`[${notes.length + 1}] ${who} ${label}: ${m.notes.join('; ')}`);
    return `[${notes.length}]`;
  };
  const header = ['metric', 'conc', 'onestack req/s', 'p50', 'p99', ...(upstream ? ['upstream req/s', 'p50', 'p99', 'onestack/upstream'] : []), 'goal'];
  const rows: string[][] = [];
  const order: string[] = [METRICS[0], HASH, ...METRICS.slice(1)];
  for (const metric of order) {
    for (const conc of CONCURRENCIES) {
      const k = key(metric, conc);
      const mine = ours.get(k);
      const theirs = upstream?.get(k);
      const label = `${metric} c${conc}`;
      const ratio = mine && theirs ? `${(mine.rps / theirs.rps).toFixed(1)}×` : '';
      const g = metric === HASH ? '' : goal(metric as Metric, conc, ours, upstream);
      const ourCells = cells(mine, mark(mine, 'onestack', label));
      const upstreamCells = upstream ? [...cells(theirs, mark(theirs, 'upstream', label)), ratio] : [];
      rows.push([metric, String(conc), ...ourCells, ...upstreamCells, g]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const goalColumn = header.length - 1;
  const line = (r: string[]) => r.map((c, i) => (i > 0 && i < goalColumn ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)];
  if (notes.length) out.push('', ...notes);
  return out.join('\n');
}
