import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { hashPathDigest, type HashPathConf } from '../common/hash-path.ts';
import { readRingFile, replicaCountOf, type RingData, type RingDevice } from './ring-data.ts';

/** A primary node: the device plus its position in the partition's primary list. */
export type PrimaryNode = RingDevice & { index: number };
/** A handoff node: the device plus its position in the handoff sequence. */
export type HandoffNode = RingDevice & { handoff_index: number };

/** How often a ring loaded from a file looks at the file's mtime (upstream's reload_time default). */
export const DEFAULT_RELOAD_SECONDS = 15;

export interface RingOptions {
  /** Seconds between mtime checks; 0 checks on every lookup. */
  reloadSeconds?: number;
  now?: () => number;
}

/**
 * The read side of upstream's Ring: path → partition → devices, and the
 * handoff sequence, in upstream's order so both implementations agree on
 * where every replica and handoff lives.
 */
export class Ring {
  private data!: RingData;
  private mtimeMs = 0;
  private nextCheck = 0;
  private numRegions = 0;
  private numZones = 0;
  private numIps = 0;
  private numAssignedDevs = 0;

  private constructor(
    private readonly hashConf: HashPathConf,
    private readonly path: string | undefined,
    private readonly reloadMs: number,
    private readonly now: () => number,
    data?: RingData,
  ) {
    if (data) this.setData(data);
    else this.reload(true);
  }

  /** A ring read from a ring.gz file and re-read when the file's mtime changes. */
  static load(path: string, hashConf: HashPathConf, opts: RingOptions = {}): Ring {
    return new Ring(hashConf, path, (opts.reloadSeconds ?? DEFAULT_RELOAD_SECONDS) * 1000, opts.now ?? Date.now);
  }

  /** `<swiftDir>/<name>.ring.gz`, as upstream names rings (account, container, object, object-1 …). */
  static loadNamed(swiftDir: string, name: string, hashConf: HashPathConf, opts: RingOptions = {}): Ring {
    return Ring.load(join(swiftDir, `${name}.ring.gz`), hashConf, opts);
  }

  static fromData(data: RingData, hashConf: HashPathConf): Ring {
    return new Ring(hashConf, undefined, Infinity, Date.now, data);
  }

  private reload(force = false): void {
    if (!this.path) return;
    const now = this.now();
    if (!force && now < this.nextCheck) return;
    this.nextCheck = now + this.reloadMs;
    const mtimeMs = statSync(this.path).mtimeMs;
    if (!force && mtimeMs === this.mtimeMs) return;
    try {
      this.setData(readRingFile(this.path));
      this.mtimeMs = mtimeMs;
    } catch (e) {
      // A running server keeps its old ring when the new file is unreadable, as upstream does.
      if (force) throw e;
    }
  }

  private setData(data: RingData): void {
    this.data = data;
    const assigned = new Set<number>();
    for (const row of data.replica2part2dev) for (const id of row) assigned.add(id);
    const regions = new Set<number>();
    const zones = new Set<string>();
    const ips = new Set<string>();
    let n = 0;
    // Only devices holding partitions count, so the handoff walk's early exits still fire when a region or zone is empty.
    for (const d of data.devs) {
      if (!d || !assigned.has(d.id)) continue;
      n++;
      regions.add(d.region);
      zones.add(`${d.region}/${d.zone}`);
      ips.add(`${d.region}/${d.zone}/${d.ip}`);
    }
    this.numRegions = regions.size;
    this.numZones = zones.size;
    this.numIps = ips.size;
    this.numAssignedDevs = n;
  }

  get devs(): (RingDevice | null)[] {
    this.reload();
    return this.data.devs;
  }

  get partShift(): number {
    return this.data.partShift;
  }

  get partPower(): number {
    return 32 - this.data.partShift;
  }

  get partitionCount(): number {
    return this.data.replica2part2dev[0]?.length ?? 0;
  }

  get replicaCount(): number {
    return replicaCountOf(this.data.replica2part2dev);
  }

  get version(): number | undefined {
    return this.data.version;
  }

  get deviceCount(): number {
    return this.data.devs.filter(Boolean).length;
  }

  /** The partition: the top 32 bits of the path's md5 (big-endian), shifted right by part_shift. */
  getPart(account: string | Buffer, container?: string | Buffer, object?: string | Buffer): number {
    const digest = hashPathDigest(this.hashConf, account, container, object);
    this.reload();
    return digest.readUInt32BE(0) >>> this.data.partShift;
  }

  private partNodes(part: number): PrimaryNode[] {
    const seen = new Set<number>();
    const nodes: PrimaryNode[] = [];
    for (const row of this.data.replica2part2dev) {
      if (part >= row.length) continue;
      const id = row[part];
      if (seen.has(id)) continue;
      seen.add(id);
      nodes.push({ ...(this.data.devs[id] as RingDevice), index: nodes.length });
    }
    return nodes;
  }

  /** The partition's primary nodes, each device once even if it holds several replicas. */
  getPartNodes(part: number): PrimaryNode[] {
    this.reload();
    return this.partNodes(part);
  }

  getNodes(account: string | Buffer, container?: string | Buffer, object?: string | Buffer): { partition: number; nodes: PrimaryNode[] } {
    const partition = this.getPart(account, container, object);
    return { partition, nodes: this.partNodes(partition) };
  }

  /**
   * Handoff nodes for a partition, lazily, in upstream's order: walk the
   * partitions starting from one derived from md5(str(part)) and take devices
   * first from unused regions, then unused zones, then unused IPs, then any
   * unused device. The walk is over the replica table (not the device list),
   * so the sequence follows weights and mostly survives ring changes.
   */
  *getMoreNodes(part: number): Generator<HandoffNode> {
    this.reload();
    const { replica2part2dev: r2p2d, devs, partShift } = this.data;
    const primaries = this.partNodes(part);
    const used = new Set(primaries.map((d) => d.id));
    const regions = new Set(primaries.map((d) => d.region));
    const zones = new Set(primaries.map((d) => `${d.region}/${d.zone}`));
    const ips = new Set(primaries.map((d) => `${d.region}/${d.zone}/${d.ip}`));
    let handoffIndex = 0;

    const parts = r2p2d[0]?.length ?? 0;
    const start = createHash('md5').update(String(part), 'ascii').digest().readUInt32BE(0) >>> partShift;
    const inc = Math.floor(parts / 65536) || 1;
    const walk = function* (): Generator<number> {
      for (let p = start; p < parts; p += inc) yield p;
      for (let p = inc - ((parts - start) % inc); p < start; p += inc) yield p;
    };
    const take = (dev: RingDevice): HandoffNode => {
      used.add(dev.id);
      regions.add(dev.region);
      zones.add(`${dev.region}/${dev.zone}`);
      ips.add(`${dev.region}/${dev.zone}/${dev.ip}`);
      return { ...dev, handoff_index: handoffIndex++ };
    };

    // Each pass looks for devices outside the tiers used so far at one level and stops once that level is exhausted.
    const passes: { done: () => boolean; fresh: (d: RingDevice) => boolean }[] = [
      { done: () => regions.size === this.numRegions, fresh: (d) => !regions.has(d.region) },
      { done: () => zones.size === this.numZones, fresh: (d) => !zones.has(`${d.region}/${d.zone}`) },
      { done: () => ips.size === this.numIps, fresh: (d) => !ips.has(`${d.region}/${d.zone}/${d.ip}`) },
      { done: () => used.size === this.numAssignedDevs, fresh: () => true },
    ];
    for (const pass of passes) {
      if (pass.done()) continue;
      outer: for (const handoffPart of walk()) {
        for (const row of r2p2d) {
          if (handoffPart >= row.length) continue;
          const id = row[handoffPart];
          if (used.has(id)) continue;
          const dev = devs[id] as RingDevice;
          if (!pass.fresh(dev)) continue;
          yield take(dev);
          if (pass.done()) break outer;
        }
      }
    }
  }
}
