import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/*
 * The machine is shared (two cores, other engineers' test suites): a figure is
 * only worth printing beside the CPU that other tenants took while it was measured.
 */

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const CORES = cpus().length;

export interface CpuSnapshot {
  atNs: bigint;
  busy: number;
  server: number;
  client: number;
}

/** Shares of the whole machine (100 % = every core busy) during a measurement. */
export interface CpuShares {
  serverPct: number;
  clientPct: number;
  othersPct: number;
}

function machineTicks(): { busy: number; idle: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return { busy: user + nice + system + irq + softirq + steal, idle: idle + iowait };
}

/** Fields of /proc/PID/stat after the command name, which may itself hold spaces and parentheses. */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU ticks of every process in these process groups (a server and the workers it forked). */
function groupTicks(pgids: ReadonlySet<number>): number {
  if (pgids.size === 0) return 0;
  let ticks = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = statFields(text);
    if (pgids.has(Number(f[2]))) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks;
}

/** This process plus its reaped children: the load generator (wrk) counts once it has exited. */
function clientTicks(): number {
  const f = statFields(readFileSync('/proc/self/stat', 'utf8'));
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

export function snapshot(serverPgids: readonly number[]): CpuSnapshot {
  return { atNs: process.hrtime.bigint(), busy: machineTicks().busy, server: groupTicks(new Set(serverPgids)), client: clientTicks() };
}

export function shares(a: CpuSnapshot, b: CpuSnapshot): CpuShares {
  const capacity = (Number(b.atNs - a.atNs) / 1e9) * TICKS_PER_SECOND * CORES;
  const pct = (ticks: number) => Math.max(0, (100 * ticks) / capacity);
  const server = b.server - a.server;
  const client = b.client - a.client;
  return { serverPct: pct(server), clientPct: pct(client), othersPct: pct(b.busy - a.busy - server - client) };
}

/**
 * Waits, at most `maxWaitMs`, for a second in which the machine was at least
 * `minIdlePct` idle; returns the last idle share seen.
 */
export async function waitIdle(minIdlePct: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const a = machineTicks();
    await sleep(1000);
    const b = machineTicks();
    const total = b.busy - a.busy + (b.idle - a.idle);
    const idlePct = total > 0 ? (100 * (b.idle - a.idle)) / total : 100;
    if (idlePct >= minIdlePct || Date.now() >= deadline) return idlePct;
  }
}

export function coreCount(): number {
  return CORES;
}
