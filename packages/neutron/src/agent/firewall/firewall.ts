/**
 * Security groups and anti-spoofing for the ports of one host namespace, with nftables
 * (rules: ./nft-ruleset.ts). reconcile() renders both tables from the state and replaces each
 * in one `nft -f -` transaction — unless the live table already carries the same content hash,
 * so that a restart with an unchanged state leaves the ruleset (handles included) as it was.
 *
 * When the rules change, the conntrack entries of flows a port's lost rules had allowed are
 * deleted (./conntrack.ts), so an established flow the new rules forbid is cut.
 *
 * Port marks come from a small allocator persisted in the state directory, so a port keeps its
 * mark across restarts and an unchanged state renders byte-identical rules.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { CommandError } from '@onestack/core/exec/privileged-exec.ts';
import type { IpLib } from '../linux/ip-lib.ts';
import type { HostState } from '../model.ts';
import { conntrackDeletions, departedMembers, removedRules, type FirewallView } from './conntrack.ts';
import { BRIDGE_TABLE, INET_TABLE, renderBridgeTable, renderInetTable, replaceTableScript, type FirewallPort } from './nft-ruleset.ts';

const MAX_INDEX = 0xffff;

/** Port id → 1..65535, persisted as JSON; freed indexes are reused lowest first. */
export class MarkAllocator {
  private marks: Record<string, number>;

  constructor(private readonly file: string) {
    this.marks = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>) : {};
  }

  /** Indexes for exactly these ports: existing ones kept, new ones allocated, others released. */
  assign(portIds: string[]): Map<string, number> {
    const wanted = new Set(portIds);
    const next: Record<string, number> = {};
    for (const [id, idx] of Object.entries(this.marks)) if (wanted.has(id)) next[id] = idx;
    const used = new Set(Object.values(next));
    let candidate = 1;
    for (const id of [...wanted].sort()) {
      if (next[id] !== undefined) continue;
      while (used.has(candidate)) candidate++;
      if (candidate > MAX_INDEX) throw new Error('more than 65535 firewalled ports on one host');
      next[id] = candidate;
      used.add(candidate);
    }
    if (JSON.stringify(next) !== JSON.stringify(this.marks)) {
      mkdirSync(dirname(this.file), { recursive: true });
      writeFileSync(`${this.file}.tmp`, JSON.stringify(next));
      renameSync(`${this.file}.tmp`, this.file);
      this.marks = next;
    }
    return new Map(Object.entries(next));
  }
}

export interface FirewallOptions {
  ip: IpLib;
  logger: ExecLogger;
  hostNamespace: string;
  stateDir: string;
}

export interface FirewallReport {
  /** Tables written in this reconcile (empty when the live rules already matched). */
  applied: string[];
  errors: { what: string; message: string }[];
}

export class Firewall {
  private readonly marks: MarkAllocator;
  /** What the last reconcile applied: the rules a port loses are found against it. */
  private last?: FirewallView;

  constructor(private readonly opts: FirewallOptions) {
    this.marks = new MarkAllocator(join(opts.stateDir, 'firewall', 'port-marks.json'));
  }

  async reconcile(state: HostState): Promise<FirewallReport> {
    const report: FirewallReport = { applied: [], errors: [] };
    const secured = state.ports.filter((p) => p.portSecurityEnabled);
    const indexes = this.marks.assign(secured.map((p) => p.id));
    const ports: FirewallPort[] = state.ports.map((port) => ({ port, index: indexes.get(port.id) ?? 0 }));
    const tables: ['bridge' | 'inet', string, string | null][] = [
      ['bridge', BRIDGE_TABLE, renderBridgeTable(ports)],
      ['inet', INET_TABLE, renderInetTable(ports, state.securityGroups)],
    ];
    if (secured.length) {
      // br_netfilter must hand bridged IP traffic to the inet hooks (the default in a new namespace; made sure).
      for (const key of ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables']) {
        try {
          if ((await this.opts.ip.sysctlGet(this.opts.hostNamespace, key)) !== '1') await this.opts.ip.sysctlSet(this.opts.hostNamespace, key, 1);
        } catch (err) {
          report.errors.push({ what: key, message: (err as Error).message });
        }
      }
    }
    for (const [family, name, body] of tables) {
      try {
        const hash = body === null ? null : `onestack:${createHash('sha256').update(body).digest('hex').slice(0, 32)}`;
        const listingFile = join(this.opts.stateDir, 'firewall', `${family}-${name}.nft`);
        const live = await this.liveListing(family, name);
        const expected = existsSync(listingFile) ? readFileSync(listingFile, 'utf8') : undefined;
        // Unchanged only if the hash matches *and* the table is as we left it (nobody flushed or edited it).
        if (hash === null ? live === null : live !== null && commentOf(live) === hash && live === expected) continue;
        await this.nft(['-f', '-'], replaceTableScript(family, name, body, hash ?? ''));
        const after = await this.liveListing(family, name);
        mkdirSync(dirname(listingFile), { recursive: true });
        if (after === null) rmSync(listingFile, { force: true });
        else writeFileSync(listingFile, after);
        report.applied.push(`${family} ${name}`);
        if (family === 'inet') await this.cutRemovedFlows(state, report);
      } catch (err) {
        report.errors.push({ what: `nft ${family} ${name}`, message: (err as Error).message });
        this.opts.logger.warn({ table: name, err: (err as Error).message }, 'firewall apply failed');
      }
    }
    this.last = { ports: state.ports, securityGroups: state.securityGroups };
    return report;
  }

  private async cutRemovedFlows(state: HostState, report: FirewallReport): Promise<void> {
    if (!this.last) return;
    const cuts = [
      ...removedRules(this.last, state).map(({ port, rule }) => conntrackDeletions(port, rule)),
      ...departedMembers(this.last, state).map(({ port, rule, remotes }) => conntrackDeletions(port, rule, remotes)),
    ].flat();
    for (const args of cuts) {
      try {
        await this.opts.ip.exec(this.opts.hostNamespace, 'conntrack', args);
      } catch (err) {
        // Exit status 1 with "0 flow entries": nothing to cut.
        if (err instanceof CommandError && /0 flow entries/.test(err.stderrTail)) continue;
        report.errors.push({ what: `conntrack ${args.join(' ')}`, message: (err as Error).message });
      }
    }
  }

  /** `nft list table` (no handles: stable across listings); null when the table does not exist. */
  private async liveListing(family: string, name: string): Promise<string | null> {
    try {
      return await this.nft(['list', 'table', family, name]);
    } catch (err) {
      if (err instanceof CommandError && /No such file or directory/.test(err.stderrTail)) return null;
      throw err;
    }
  }

  private async nft(args: string[], input?: string): Promise<string> {
    return (await this.opts.ip.exec(this.opts.hostNamespace, 'nft', args, { input })).stdout;
  }
}

function commentOf(listing: string): string {
  return /^\s*comment "([^"]*)"/m.exec(listing)?.[1] ?? '';
}
