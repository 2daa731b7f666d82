/**
 * The object auditor (upstream swift/obj/auditor.py): re-reads every object
 * on this node's devices and quarantines those that no longer check out:
 * a .data, .meta or .ts without a valid metadata trailer, a body whose
 * length disagrees with Content-Length, or a .data body whose md5 is not its
 * ETag. Quarantine moves the whole hash dir to
 * <device>/quarantined/objects[-N]/ and invalidates the suffix, so the next
 * replication pass finds the suffix different and a peer pushes a good copy
 * back. Reads are rate limited (files_per_second, bytes_per_second) so an
 * audit pass does not starve client traffic.
 */
import { createHash } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { hashLocation, objectsDirName, quarantineHashDir, readState } from '../storage/diskfile.ts';
import { CorruptObjectFile, readObjectFile } from '../storage/object-file.ts';
import { IntervalLoop, sleep } from './local-devices.ts';

export interface ObjectAuditorOptions {
  devices: string;
  /** Devices to audit; default every directory under `devices` (upstream audits all local devices). */
  deviceNames?: string[];
  policy?: number;
  /** Upstream files_per_second (20) and bytes_per_second (10 MB); 0 = unlimited. */
  filesPerSecond?: number;
  bytesPerSecond?: number;
  /** Between passes (upstream interval, 30 s). */
  intervalMs?: number;
  logger?: Logger;
}

export interface AuditStats {
  files: number;
  bytes: number;
  quarantined: number;
  errors: number;
  elapsedMs: number;
}

/** Spreads work so `units` per second are not exceeded (upstream's ratelimit_sleep). */
class RateLimiter {
  private nextAt = Date.now();
  constructor(private readonly perSecond: number) {}
  async take(units: number): Promise<void> {
    if (!this.perSecond) return;
    const now = Date.now();
    this.nextAt = Math.max(this.nextAt, now) + (units * 1000) / this.perSecond;
    const wait = this.nextAt - now - 1000 * Math.min(1, units / this.perSecond);
    if (wait > 0) await sleep(wait);
  }
}

export class ObjectAuditor {
  lastStats?: AuditStats;
  private readonly loop: IntervalLoop;

  constructor(private readonly opts: ObjectAuditorOptions) {
    this.loop = new IntervalLoop(opts.intervalMs ?? 30_000, () => this.runOnce(), (e) => opts.logger?.error({ err: e }, 'audit pass failed'));
  }

  start(): void {
    this.loop.start(5000);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async runOnce(): Promise<AuditStats> {
    const started = Date.now();
    const stats: AuditStats = { files: 0, bytes: 0, quarantined: 0, errors: 0, elapsedMs: 0 };
    const files = new RateLimiter(this.opts.filesPerSecond ?? 0);
    const bytes = new RateLimiter(this.opts.bytesPerSecond ?? 0);
    const policy = this.opts.policy ?? 0;
    const ls = (p: string) => readdir(p).catch(() => [] as string[]);
    const deviceNames = this.opts.deviceNames ?? (await ls(this.opts.devices));
    for (const device of deviceNames) {
      const devicePath = join(this.opts.devices, device);
      const objects = join(devicePath, objectsDirName(policy));
      for (const partition of (await ls(objects)).filter((p) => /^\d+$/.test(p))) {
        for (const suffix of (await ls(join(objects, partition))).filter((s) => /^[0-9a-f]{3}$/.test(s))) {
          for (const hash of (await ls(join(objects, partition, suffix))).filter((h) => /^[0-9a-f]{32}$/.test(h))) {
            const loc = hashLocation(devicePath, policy, partition, hash);
            try {
              const problem = await this.auditHashDir(loc.hashDir, stats, files, bytes);
              if (!problem) continue;
              const to = await quarantineHashDir(loc);
              stats.quarantined++;
              this.opts.logger?.warn({ hashDir: loc.hashDir, quarantinedTo: to, reason: problem }, 'auditor quarantined an object');
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // replaced or reclaimed under us
              stats.errors++;
              this.opts.logger?.error({ err: e, hashDir: loc.hashDir }, 'audit of an object failed');
            }
          }
        }
      }
    }
    stats.elapsedMs = Date.now() - started;
    this.lastStats = stats;
    this.opts.logger?.info({ stats }, 'object audit pass done');
    return stats;
  }

  /** The reason the hash dir must be quarantined, or undefined when its files check out. */
  private async auditHashDir(hashDir: string, stats: AuditStats, files: RateLimiter, bytes: RateLimiter): Promise<string | undefined> {
    const state = await readState(hashDir);
    for (const f of [state.data, state.meta, state.ts]) {
      if (!f) continue;
      await files.take(1);
      const fh = await open(join(hashDir, f.name), 'r');
      try {
        let opened;
        try {
          opened = await readObjectFile(fh);
        } catch (e) {
          if (e instanceof CorruptObjectFile) return `${f.name}: ${e.message}`;
          throw e;
        }
        stats.files++;
        if (f.ext !== '.data') continue;
        const md5 = createHash('md5');
        if (opened.body) md5.update(opened.body);
        else {
          for await (const chunk of fh.createReadStream({ start: 0, end: opened.bodyLength - 1, autoClose: false, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
            md5.update(chunk);
            await bytes.take(chunk.length);
          }
        }
        if (opened.body) await bytes.take(opened.bodyLength);
        stats.bytes += opened.bodyLength;
        const etag = md5.digest('hex');
        if (etag !== opened.meta.ETag) return `${f.name}: md5 ${etag} is not the ETag ${opened.meta.ETag}`;
      } finally {
        await fh.close();
      }
    }
    return undefined;
  }
}
