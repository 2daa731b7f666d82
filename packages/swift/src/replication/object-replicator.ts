/**
 * The object replicator (upstream swift/obj/replicator.py, replicated
 * policies), one pass over this node's devices:
 *
 * - a partition this device is a primary for ("update"): compare its suffix
 *   hashes with each other primary's (REPLICATE); for suffixes that differ,
 *   recompute ours, then push the files the peer lacks and have it recompute.
 *   A peer answering 507 (drive unmounted) is replaced by the next handoff,
 *   so the partition keeps its replica count meanwhile ("push to handoffs").
 * - a partition it is not a primary for ("revert", data a proxy wrote to a
 *   handoff while a primary was down): push every suffix to every primary,
 *   check that each now holds every file (or something newer), then delete
 *   exactly those local files ("and back"). Anything that arrived meanwhile
 *   stays for the next pass.
 *
 * rsync's part is done by the REPLICATE-LIST / REPLICATE-PUSH verbs
 * (transfer.ts).
 */
import { readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Ring } from '../ring/ring.ts';
import type { RingDevice } from '../ring/ring-data.ts';
import { invalidateSuffix, objectsDirName } from '../storage/diskfile.ts';
import { getSuffixHashes, type SuffixHashes } from '../storage/suffix-hashes.ts';
import { IntervalLoop, localDevices, partitionsOnDisk, type NodeIdentity } from './local-devices.ts';
import { listSuffixes } from './object-receiver.ts';
import { filesToSend, pushFiles, RemoteError, remoteHashes, remoteListing, type SenderOptions } from './object-sender.ts';
import type { SuffixListing } from './transfer.ts';

export interface ObjectReplicatorOptions {
  devices: string;
  /** The object ring of `policy`. */
  ring: Ring;
  node: NodeIdentity;
  policy?: number;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  /** Seconds between passes (upstream run_pause / interval, 30). */
  intervalMs?: number;
  /** Partitions replicated at once (upstream concurrency). */
  concurrency?: number;
  logger?: Logger;
}

export interface ObjectReplicationStats {
  partitions: number;
  /** Suffixes found different and sent to a peer. */
  suffixesSynced: number;
  objectsPushed: number;
  bytesPushed: number;
  /** Handoff partitions emptied after all primaries held their files. */
  handoffsReverted: number;
  /** Handoff files removed once delivered. */
  filesRemoved: number;
  failures: number;
  startedAt: number;
  elapsedMs: number;
}

function emptyStats(): ObjectReplicationStats {
  return { partitions: 0, suffixesSynced: 0, objectsPushed: 0, bytesPushed: 0, handoffsReverted: 0, filesRemoved: 0, failures: 0, startedAt: Date.now(), elapsedMs: 0 };
}

interface Job {
  device: RingDevice;
  devicePath: string;
  partition: number;
  partitionDir: string;
  /** The primaries other than this device (update) or all of them (revert). */
  nodes: RingDevice[];
  revert: boolean;
}

export class ObjectReplicator {
  lastStats?: ObjectReplicationStats;
  private readonly policy: number;
  private readonly sender: SenderOptions;
  private readonly loop: IntervalLoop;
  private passing?: Promise<ObjectReplicationStats>;

  constructor(private readonly opts: ObjectReplicatorOptions) {
    this.policy = opts.policy ?? 0;
    this.sender = { connTimeoutMs: opts.connTimeoutMs ?? 500, nodeTimeoutMs: opts.nodeTimeoutMs ?? 10_000, policy: this.policy, logger: opts.logger };
    this.loop = new IntervalLoop(opts.intervalMs ?? 30_000, () => this.runOnce(), (e) => opts.logger?.error({ err: e }, 'object replication pass failed'));
  }

  start(): void {
    this.loop.start(1000);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One pass over every local partition; concurrent callers share the pass in progress. */
  runOnce(): Promise<ObjectReplicationStats> {
    this.passing ??= this.pass().finally(() => (this.passing = undefined));
    return this.passing;
  }

  private async collectJobs(): Promise<Job[]> {
    const jobs: Job[] = [];
    const ring = this.opts.ring;
    for (const device of localDevices(ring, this.opts.node)) {
      const devicePath = join(this.opts.devices, device.device);
      const datadir = objectsDirName(this.policy);
      for (const partition of await partitionsOnDisk(this.opts.devices, device.device, datadir)) {
        if (partition >= ring.partitionCount) continue;
        const primaries = ring.getPartNodes(partition);
        const isPrimary = primaries.some((n) => n.id === device.id);
        jobs.push({
          device,
          devicePath,
          partition,
          partitionDir: join(devicePath, datadir, String(partition)),
          nodes: isPrimary ? primaries.filter((n) => n.id !== device.id) : primaries,
          revert: !isPrimary,
        });
      }
    }
    // Handoffs first: they hold the only copies that may be missing from the primaries.
    return jobs.sort((a, b) => Number(b.revert) - Number(a.revert));
  }

  private async pass(): Promise<ObjectReplicationStats> {
    const stats = emptyStats();
    const jobs = await this.collectJobs();
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        stats.partitions++;
        try {
          if (job.revert) await this.revert(job, stats);
          else await this.update(job, stats);
        } catch (e) {
          stats.failures++;
          this.opts.logger?.error({ err: e, partition: job.partition, device: job.device.device }, 'object replication of a partition failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.opts.concurrency ?? 2) }, worker));
    stats.elapsedMs = Date.now() - stats.startedAt;
    this.lastStats = stats;
    this.opts.logger?.info({ stats }, 'object replication pass done');
    return stats;
  }

  /** Suffixes whose local hash differs from the remote's (ours present, theirs absent or different). */
  private static differing(local: SuffixHashes, remote: SuffixHashes): string[] {
    return Object.keys(local).filter((s) => local[s] !== null && local[s] !== remote[s]);
  }

  /** Pushes what `node` lacks of `suffixes`; answers the peer's listing afterwards. */
  private async syncSuffixes(job: Job, node: RingDevice, suffixes: string[], stats: ObjectReplicationStats): Promise<{ local: SuffixListing; remote: SuffixListing }> {
    const local = await listSuffixes(job.partitionDir, suffixes);
    const before = await remoteListing(node, job.partition, suffixes, this.sender);
    const files = filesToSend(local, before);
    const pushed = await pushFiles(node, job.partition, job.partitionDir, job.devicePath, files, this.sender);
    stats.suffixesSynced += suffixes.length;
    stats.objectsPushed += pushed.files;
    stats.bytesPushed += pushed.bytes;
    if (!files.length) return { local, remote: before };
    return { local, remote: await remoteListing(node, job.partition, suffixes, this.sender) };
  }

  private async update(job: Job, stats: ObjectReplicationStats): Promise<void> {
    let local = await getSuffixHashes(job.partitionDir);
    let attemptsLeft = job.nodes.length;
    const candidates = [...job.nodes];
    const handoffs = this.opts.ring.getMoreNodes(job.partition);
    for (let i = 0; i < candidates.length && attemptsLeft > 0; i++) {
      const node = candidates[i];
      attemptsLeft--;
      try {
        let remote = await remoteHashes(node, job.partition, [], this.sender);
        let suffixes = ObjectReplicator.differing(local, remote);
        if (!suffixes.length) continue;
        // Our cache may be stale: recompute the differing suffixes before sending anything.
        local = await getSuffixHashes(job.partitionDir, suffixes);
        suffixes = ObjectReplicator.differing(local, remote);
        if (!suffixes.length) continue;
        await this.syncSuffixes(job, node, suffixes, stats);
        remote = await remoteHashes(node, job.partition, suffixes, this.sender);
      } catch (e) {
        if (e instanceof RemoteError && e.status === 507) {
          // A peer without its drive: its replica goes to the next handoff meanwhile.
          attemptsLeft++;
          const h = handoffs.next();
          if (!h.done) candidates.push(h.value);
          this.opts.logger?.warn({ node: `${node.ip}:${node.port}/${node.device}` }, 'remote drive not mounted');
          continue;
        }
        stats.failures++;
        this.opts.logger?.warn({ err: e, node: `${node.ip}:${node.port}/${node.device}`, partition: job.partition }, 'object replication to a peer failed');
      }
    }
  }

  private async revert(job: Job, stats: ObjectReplicationStats): Promise<void> {
    const local = await getSuffixHashes(job.partitionDir);
    const suffixes = Object.keys(local).filter((s) => local[s] !== null);
    if (!suffixes.length) {
      await this.removePartitionIfEmpty(job);
      return;
    }
    // Files every primary holds (or has superseded); only those may go.
    let delivered: Set<string> | undefined;
    for (const node of job.nodes) {
      try {
        const { local: mine, remote } = await this.syncSuffixes(job, node, suffixes, stats);
        const held = new Set<string>();
        for (const [suffix, hashes] of Object.entries(mine)) {
          for (const [hash, names] of Object.entries(hashes)) {
            for (const name of names) {
              if (!filesToSend({ [suffix]: { [hash]: [name] } }, remote).length) held.add(`${suffix}/${hash}/${name}`);
            }
          }
        }
        delivered = delivered ? new Set([...delivered].filter((f) => held.has(f))) : held;
      } catch (e) {
        stats.failures++;
        this.opts.logger?.warn({ err: e, node: `${node.ip}:${node.port}/${node.device}`, partition: job.partition }, 'handoff revert to a primary failed');
        return;
      }
    }
    if (!delivered) return;
    for (const rel of delivered) {
      await unlink(join(job.partitionDir, rel)).then(
        () => stats.filesRemoved++,
        () => undefined,
      );
    }
    for (const suffix of suffixes) {
      const suffixDir = join(job.partitionDir, suffix);
      for (const hash of await readdir(suffixDir).catch(() => [] as string[])) await rmdir(join(suffixDir, hash)).catch(() => undefined);
      await rmdir(suffixDir).catch(() => undefined);
      await invalidateSuffix({ partitionDir: job.partitionDir, suffix } as Parameters<typeof invalidateSuffix>[0]);
    }
    if (await this.removePartitionIfEmpty(job)) stats.handoffsReverted++;
  }

  /** Removes a partition dir holding no suffix dirs (only hashes.json / hashes.invalid). */
  private async removePartitionIfEmpty(job: Job): Promise<boolean> {
    const names = await readdir(job.partitionDir).catch(() => undefined);
    if (!names || names.some((n) => /^[0-9a-f]{3}$/.test(n))) return false;
    for (const n of names) await unlink(join(job.partitionDir, n)).catch(() => undefined);
    return rmdir(job.partitionDir).then(
      () => true,
      () => false,
    );
  }
}
