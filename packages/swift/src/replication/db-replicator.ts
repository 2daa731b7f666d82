/**
 * The container and account replicators (upstream swift/common/db_replicator.py):
 * one pass over every DB on this node's devices,
 *   <device>/<containers|accounts>/<part>/<suffix>/<hash>/<hash>.db
 * For each other primary of the DB's partition (a 507 swaps in the next
 * handoff): REPLICATE ["sync", our id] → the peer's info and how far it has
 * merged our rows. A peer without the DB gets ["create", our identity]
 * (upstream rsyncs the file); newer put/delete timestamps and metadata are
 * merged into it; unless the chexor hashes already agree, the rows after its
 * sync point go over as ["merge_items", rows, our id, max ROWID] in batches
 * (upstream's usync). A DB on a device that is not one of its primaries (a
 * handoff the proxy used while a primary was down) is pushed to every primary
 * and removed once all have taken it. Wire ops: storage/db-replicate.ts.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Ring } from '../ring/ring.ts';
import type { RingDevice } from '../ring/ring-data.ts';
import { AccountBroker } from '../storage/account-broker.ts';
import { ContainerBroker } from '../storage/container-broker.ts';
import { closeAllDbs } from '../storage/db-file.ts';
import { backendRequest } from '../storage/http-util.ts';
import { IntervalLoop, localDevices, partitionsOnDisk, type NodeIdentity } from './local-devices.ts';

export interface DbReplicatorOptions {
  kind: 'container' | 'account';
  devices: string;
  /** The container or account ring. */
  ring: Ring;
  node: NodeIdentity;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  intervalMs?: number;
  /** Rows per merge_items (upstream per_diff) and batches per DB and pass (max_diffs). */
  perDiff?: number;
  maxDiffs?: number;
  logger?: Logger;
}

export interface DbReplicationStats {
  dbs: number;
  /** Peers already in sync (equal hashes). */
  noChange: number;
  /** Peers that got rows. */
  diffs: number;
  rowsSent: number;
  /** DBs created on peers that had none. */
  created: number;
  handoffsRemoved: number;
  failures: number;
  elapsedMs: number;
}

type Broker = ContainerBroker | AccountBroker;

interface SyncAnswer {
  max_row: number;
  hash: string;
  id: string;
  put_timestamp: string;
  delete_timestamp: string;
  metadata: string;
  point: number;
}

class Unmounted extends Error {}

export class DbReplicator {
  lastStats?: DbReplicationStats;
  private readonly datadir: string;
  private readonly loop: IntervalLoop;
  private passing?: Promise<DbReplicationStats>;

  constructor(private readonly opts: DbReplicatorOptions) {
    this.datadir = opts.kind === 'container' ? 'containers' : 'accounts';
    this.loop = new IntervalLoop(opts.intervalMs ?? 30_000, () => this.runOnce(), (e) => opts.logger?.error({ err: e }, `${opts.kind} replication pass failed`));
  }

  start(): void {
    this.loop.start(1000);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  runOnce(): Promise<DbReplicationStats> {
    this.passing ??= this.pass().finally(() => (this.passing = undefined));
    return this.passing;
  }

  private async pass(): Promise<DbReplicationStats> {
    const started = Date.now();
    const stats: DbReplicationStats = { dbs: 0, noChange: 0, diffs: 0, rowsSent: 0, created: 0, handoffsRemoved: 0, failures: 0, elapsedMs: 0 };
    const ls = (p: string) => readdir(p).catch(() => [] as string[]);
    for (const device of localDevices(this.opts.ring, this.opts.node)) {
      for (const partition of await partitionsOnDisk(this.opts.devices, device.device, this.datadir)) {
        if (partition >= this.opts.ring.partitionCount) continue;
        const partDir = join(this.opts.devices, device.device, this.datadir, String(partition));
        for (const suffix of (await ls(partDir)).filter((s) => /^[0-9a-f]{3}$/.test(s))) {
          for (const hash of (await ls(join(partDir, suffix))).filter((h) => /^[0-9a-f]{32}$/.test(h))) {
            stats.dbs++;
            try {
              await this.replicateDb(device, partition, hash, join(partDir, suffix, hash), stats);
            } catch (e) {
              stats.failures++;
              this.opts.logger?.error({ err: e, hash, partition }, `${this.opts.kind} DB replication failed`);
            }
          }
        }
      }
    }
    stats.elapsedMs = Date.now() - started;
    this.lastStats = stats;
    this.opts.logger?.info({ stats }, `${this.opts.kind} replication pass done`);
    return stats;
  }

  private open(path: string): Broker | undefined {
    return this.opts.kind === 'container' ? ContainerBroker.open(path) : AccountBroker.open(path);
  }

  private async replicateDb(device: RingDevice, partition: number, hash: string, hashDir: string, stats: DbReplicationStats): Promise<void> {
    const path = join(hashDir, `${hash}.db`);
    const broker = this.open(path);
    if (!broker) return;
    const primaries = this.opts.ring.getPartNodes(partition);
    const isPrimary = primaries.some((n) => n.id === device.id);
    const candidates: RingDevice[] = isPrimary ? primaries.filter((n) => n.id !== device.id) : [...primaries];
    const handoffs = this.opts.ring.getMoreNodes(partition);
    let allOk = true;
    for (let i = 0; i < candidates.length; i++) {
      const node = candidates[i];
      try {
        await this.replicateToNode(broker, node, partition, hash, stats);
      } catch (e) {
        if (e instanceof Unmounted && isPrimary) {
          // The peer's drive is gone: keep the replica count on the next handoff meanwhile.
          for (let h = handoffs.next(); !h.done; h = handoffs.next()) {
            if (h.value.id === device.id) continue;
            candidates.push(h.value);
            break;
          }
        }
        allOk = false;
        stats.failures++;
        this.opts.logger?.warn({ err: e, node: `${node.ip}:${node.port}/${node.device}`, hash }, `${this.opts.kind} replication to a peer failed`);
      }
    }
    if (!isPrimary && allOk) {
      // Every primary has all our rows: the handoff copy has done its job.
      closeAllDbs(hashDir);
      await rm(hashDir, { recursive: true, force: true });
      const suffixDir = hashDir.slice(0, hashDir.lastIndexOf('/'));
      await rmdir(suffixDir).catch(() => undefined);
      await rmdir(suffixDir.slice(0, suffixDir.lastIndexOf('/'))).catch(() => undefined);
      stats.handoffsRemoved++;
    }
  }

  private async call(node: RingDevice, partition: number, hash: string, args: unknown[]): Promise<{ status: number; body: unknown }> {
    const r = await backendRequest({
      host: `${node.replication_ip ?? node.ip}:${node.replication_port ?? node.port}`,
      device: node.device,
      partition: String(partition),
      method: 'POST',
      path: `/${hash}`,
      headers: { 'X-Backend-Verb': 'REPLICATE', 'X-Backend-Server-Type': this.opts.kind, 'Content-Type': 'application/json', 'User-Agent': `${this.opts.kind}-replicator ${process.pid}` },
      body: Buffer.from(JSON.stringify(args)),
      connTimeoutMs: this.opts.connTimeoutMs ?? 500,
      nodeTimeoutMs: this.opts.nodeTimeoutMs ?? 10_000,
    });
    if (r.status === 507) throw new Unmounted(`${node.device} unmounted`);
    if (r.status >= 300 && r.status !== 404) throw new Error(`REPLICATE ${args[0]} ${node.ip}:${node.port}/${node.device}: ${r.status} ${r.body.toString().slice(0, 200)}`);
    return { status: r.status, body: r.body.length ? (JSON.parse(r.body.toString('utf8')) as unknown) : null };
  }

  private async replicateToNode(broker: Broker, node: RingDevice, partition: number, hash: string, stats: DbReplicationStats): Promise<void> {
    const info = broker.info() as unknown as Record<string, string | number>;
    const mine = broker.syncInfo() as unknown as SyncAnswer;
    let r = await this.call(node, partition, hash, ['sync', mine.id]);
    if (r.status === 404) {
      await this.call(node, partition, hash, ['create', { ...info, id: undefined }]);
      stats.created++;
      r = await this.call(node, partition, hash, ['sync', mine.id]);
      if (r.status === 404) throw new Error('peer lost the DB it just created');
    }
    const theirs = r.body as SyncAnswer;
    if (theirs.put_timestamp < mine.put_timestamp || theirs.delete_timestamp < mine.delete_timestamp) {
      await this.call(node, partition, hash, ['merge_timestamps', mine.put_timestamp, mine.delete_timestamp, info.status]);
    }
    if (theirs.metadata !== mine.metadata && mine.metadata && mine.metadata !== '{}') {
      await this.call(node, partition, hash, ['merge_metadata', JSON.parse(mine.metadata)]);
    }
    if (theirs.hash === mine.hash) {
      stats.noChange++;
      return;
    }
    let point = theirs.point;
    const perDiff = this.opts.perDiff ?? 1000;
    for (let batch = 0; batch < (this.opts.maxDiffs ?? 100); batch++) {
      const rows = broker.itemsSince(point, perDiff);
      if (!rows.length) break;
      const maxRow = rows[rows.length - 1].ROWID;
      await this.call(node, partition, hash, ['merge_items', rows, mine.id, maxRow]);
      stats.rowsSent += rows.length;
      point = maxRow;
      if (rows.length < perDiff) break;
    }
    stats.diffs++;
  }
}
