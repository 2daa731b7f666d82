/**
 * Which ring devices live on this node, and the partitions a device holds on
 * disk: where every background daemon starts its pass.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Ring } from '../ring/ring.ts';
import type { RingDevice } from '../ring/ring-data.ts';

/** A node is one storage server: upstream matches ring devices by replication ip and port against the node's own. */
export interface NodeIdentity {
  /** The storage server's port (upstream bind_port). */
  port: number;
  /** This node's addresses; default any (several nodes on one host differ by port). */
  ips?: string[];
}

export function isLocalDevice(node: NodeIdentity, dev: RingDevice): boolean {
  const port = dev.replication_port ?? dev.port;
  const ip = dev.replication_ip ?? dev.ip;
  return port === node.port && (!node.ips || node.ips.includes(ip));
}

export function localDevices(ring: Ring, node: NodeIdentity): RingDevice[] {
  return ring.devs.filter((d): d is RingDevice => !!d && isLocalDevice(node, d));
}

/** Numeric partition dirs under <device>/<datadir>. */
export async function partitionsOnDisk(devicesDir: string, device: string, datadir: string): Promise<number[]> {
  const names = await readdir(join(devicesDir, device, datadir)).catch(() => [] as string[]);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `once` every intervalMs (after the previous pass ends) until stopped; errors are logged, never fatal. */
export class IntervalLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = true;

  constructor(
    private readonly intervalMs: number,
    private readonly once: () => Promise<unknown>,
    private readonly onError: (e: unknown) => void,
  ) {}

  start(initialDelayMs = 0): void {
    this.stopped = false;
    this.schedule(initialDelayMs);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.once()
        .catch(this.onError)
        .finally(() => {
          this.running = undefined;
          this.schedule(this.intervalMs);
        });
    }, ms);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
