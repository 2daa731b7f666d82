/**
 * The object updater (upstream swift-object-updater): retries the container
 * row updates saved as async pendings (see async-pending.ts). For each object
 * only the newest pending matters (rows merge by timestamp), older ones are
 * dropped. A pending is removed once every target took it; otherwise it is
 * rewritten with the targets still owed.
 */
import { readdir, readFile, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { sendUpdate, writeJsonDurably, type AsyncPending, type UpdateTarget } from './async-pending.ts';

export interface ObjectUpdaterOptions {
  devices: string;
  logger?: Logger;
  intervalMs?: number;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  /** Container replicas from the container ring, used when a pending names none. */
  containerNodes?: (account: string, container: string) => UpdateTarget[];
}

export interface UpdaterStats {
  successes: number;
  failures: number;
  unlinked: number;
}

export class ObjectUpdater {
  private timer?: NodeJS.Timeout;
  constructor(private readonly o: ObjectUpdaterOptions) {}

  async runOnce(): Promise<UpdaterStats> {
    const stats: UpdaterStats = { successes: 0, failures: 0, unlinked: 0 };
    const ls = (p: string) => readdir(p).catch(() => [] as string[]);
    for (const dev of await ls(this.o.devices)) {
      const devPath = join(this.o.devices, dev);
      for (const asyncDir of (await ls(devPath)).filter((d) => d === 'async_pending' || d.startsWith('async_pending-'))) {
        for (const suffix of await ls(join(devPath, asyncDir))) {
          const dir = join(devPath, asyncDir, suffix);
          // Newest first per object hash: "<hash>-<timestamp>" sorts by timestamp within a hash.
          const names = (await ls(dir)).filter((n) => /^[0-9a-f]{32}-/.test(n)).sort().reverse();
          let lastHash = '';
          for (const name of names) {
            const hash = name.slice(0, 32);
            const file = join(dir, name);
            if (hash === lastHash) {
              await unlink(file).catch(() => undefined);
              stats.unlinked++;
              continue;
            }
            lastHash = hash;
            await this.processOne(devPath, file, stats);
          }
          await rmdir(dir).catch(() => undefined);
        }
      }
    }
    return stats;
  }

  private async processOne(devPath: string, file: string, stats: UpdaterStats): Promise<void> {
    let p: AsyncPending;
    try {
      p = JSON.parse(await readFile(file, 'utf8')) as AsyncPending;
    } catch (e) {
      this.o.logger?.error({ file, err: (e as Error).message }, 'ERROR Pickle problem, quarantining');
      await unlink(file).catch(() => undefined);
      return;
    }
    const targets = p.targets?.length ? p.targets : (this.o.containerNodes?.(p.account, p.container) ?? []);
    const opts = { connTimeoutMs: this.o.connTimeoutMs ?? 500, nodeTimeoutMs: this.o.nodeTimeoutMs ?? 3000, logger: this.o.logger };
    const results = await Promise.all(targets.map((t) => sendUpdate(p, t, opts)));
    const remaining = targets.filter((_, i) => !results[i]);
    if (targets.length && !remaining.length) {
      await unlink(file).catch(() => undefined);
      stats.successes++;
      stats.unlinked++;
      return;
    }
    stats.failures++;
    if (remaining.length !== targets.length && remaining.length) await writeJsonDurably(devPath, file, { ...p, targets: remaining });
  }

  start(): void {
    const loop = () => {
      this.timer = setTimeout(() => void this.runOnce().catch((e: unknown) => this.o.logger?.error({ err: e }, 'object updater pass failed')).finally(() => this.timer && loop()), this.o.intervalMs ?? 300_000);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
