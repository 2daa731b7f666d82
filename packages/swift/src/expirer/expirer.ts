/**
 * The object expirer: deletes objects whose X-Delete-At has passed, so their
 * space is reclaimed and they leave the container listings (an expired object
 * already answers 404, the object server sees to that).
 *
 * Upstream's proxy sends X-Delete-At-Container/-Host/-Device/-Partition with a
 * PUT or POST carrying X-Delete-At, the object server then queues
 * "<delete_at>-<account>/<container>/<object>" in the hidden .expiring_objects
 * account, and one swift-object-expirer lists that queue and DELETEs each
 * object with X-If-Delete-At. Our proxy does not send those headers, so
 * instead each node's expirer finds the work on its own disks: it walks the
 * partitions its devices are primaries for, reads each object's merged
 * metadata, and for an X-Delete-At in the past sends upstream's expirer
 * DELETE (X-Timestamp = the delete-at time, X-If-Delete-At, container update
 * targets from the container ring) to every primary of the object. The
 * tombstones all carry the same timestamp, so replicas agree whichever node
 * expired the object first; the others then find a tombstone and skip it.
 */
import { readdir } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { IntervalLoop, localDevices, partitionsOnDisk, type NodeIdentity } from '../replication/local-devices.ts';
import type { Ring } from '../ring/ring.ts';
import { objectsDirName, readState } from '../storage/diskfile.ts';
import { backendRequest } from '../storage/http-util.ts';
import { readObjectFile, type ObjectMetadata } from '../storage/object-file.ts';
import { mergeMeta } from '../storage/object-server.ts';
import { normalizeTimestamp } from '../storage/timestamp.ts';

export interface ExpirerOptions {
  devices: string;
  objectRing: Ring;
  containerRing: Ring;
  node: NodeIdentity;
  policy?: number;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  intervalMs?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  logger?: Logger;
}

export interface ExpirerStats {
  scanned: number;
  expired: number;
  failures: number;
  elapsedMs: number;
}

async function readMeta(path: string): Promise<ObjectMetadata> {
  const fh = await open(path, 'r');
  try {
    return (await readObjectFile(fh)).meta;
  } finally {
    await fh.close();
  }
}

export class ObjectExpirer {
  lastStats?: ExpirerStats;
  private readonly loop: IntervalLoop;

  constructor(private readonly opts: ExpirerOptions) {
    this.loop = new IntervalLoop(opts.intervalMs ?? 300_000, () => this.runOnce(), (e) => opts.logger?.error({ err: e }, 'expirer pass failed'));
  }

  start(): void {
    this.loop.start(10_000);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async runOnce(): Promise<ExpirerStats> {
    const started = Date.now();
    const stats: ExpirerStats = { scanned: 0, expired: 0, failures: 0, elapsedMs: 0 };
    const policy = this.opts.policy ?? 0;
    const nowS = (this.opts.now ?? Date.now)() / 1000;
    const ls = (p: string) => readdir(p).catch(() => [] as string[]);
    for (const device of localDevices(this.opts.objectRing, this.opts.node)) {
      const objects = join(this.opts.devices, device.device, objectsDirName(policy));
      for (const partition of await partitionsOnDisk(this.opts.devices, device.device, objectsDirName(policy))) {
        if (partition >= this.opts.objectRing.partitionCount) continue;
        // Handoff copies go back to the primaries first; the primaries expire them.
        if (!this.opts.objectRing.getPartNodes(partition).some((n) => n.id === device.id)) continue;
        for (const suffix of (await ls(join(objects, String(partition)))).filter((s) => /^[0-9a-f]{3}$/.test(s))) {
          for (const hash of (await ls(join(objects, String(partition), suffix))).filter((h) => /^[0-9a-f]{32}$/.test(h))) {
            const hashDir = join(objects, String(partition), suffix, hash);
            try {
              const state = await readState(hashDir);
              if (!state.data) continue;
              stats.scanned++;
              const meta = mergeMeta(await readMeta(join(hashDir, state.data.name)), state.meta ? await readMeta(join(hashDir, state.meta.name)) : undefined);
              const deleteAt = meta['X-Delete-At'];
              if (!deleteAt || Number(deleteAt) > nowS || !meta.name) continue;
              await this.expire(meta.name, deleteAt, partition, policy);
              stats.expired++;
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
              stats.failures++;
              this.opts.logger?.warn({ err: e, hashDir }, 'could not expire an object');
            }
          }
        }
      }
    }
    stats.elapsedMs = Date.now() - started;
    this.lastStats = stats;
    return stats;
  }

  /** upstream's expirer DELETE, sent to each primary as the proxy would (one container replica per object node). */
  private async expire(name: string, deleteAt: string, partition: number, policy: number): Promise<void> {
    const [, account, container, ...rest] = name.split('/');
    const obj = rest.join('/');
    const nodes = this.opts.objectRing.getPartNodes(partition);
    const c = this.opts.containerRing.getNodes(account, container);
    const ts = normalizeTimestamp(deleteAt);
    const results = await Promise.allSettled(
      nodes.map((n, i) => {
        const cn = c.nodes[i % c.nodes.length];
        return backendRequest({
          host: `${n.ip}:${n.port}`,
          device: n.device,
          partition: String(partition),
          method: 'DELETE',
          path: `/${account}/${container}/${obj}`,
          headers: {
            'X-Timestamp': ts,
            'X-If-Delete-At': deleteAt,
            'X-Backend-Storage-Policy-Index': String(policy),
            'X-Backend-Server-Type': 'object',
            'X-Container-Host': `${cn.ip}:${cn.port}`,
            'X-Container-Device': cn.device,
            'X-Container-Partition': String(c.partition),
            'User-Agent': `object-expirer ${process.pid}`,
          },
          connTimeoutMs: this.opts.connTimeoutMs ?? 500,
          nodeTimeoutMs: this.opts.nodeTimeoutMs ?? 10_000,
        });
      }),
    );
    // 204 deleted, 404/409 already gone or tombstoned by another expirer, 412 its X-Delete-At changed meanwhile.
    const ok = results.filter((r) => r.status === 'fulfilled' && [204, 404, 409, 412].includes(r.value.status)).length;
    if (ok * 2 <= nodes.length) throw new Error(`expiring ${name}: only ${ok} of ${nodes.length} object servers answered`);
  }
}
