import { randomUUID } from 'node:crypto';
import { normalizeDevice, NONE_DEV, type RingData, type RingDevice } from './ring-data.ts';
import { buildReplicaPlan, maxReplicasByTier, planFor, type ReplicaPlan } from './replica-plan.ts';
import { buildTierTree, compareTierKeys, ROOT, tiersForDev } from './tiers.ts';

/** A device in the builder: the ring's fields plus how many partition-replicas it holds. */
export interface BuilderDevice extends RingDevice {
  parts: number;
}

export interface NewDevice {
  id?: number;
  region: number;
  zone: number;
  ip: string;
  port: number;
  device: string;
  weight: number;
  meta?: string;
  replication_ip?: string;
  replication_port?: number;
}

export interface RebalanceResult {
  /** Partition-replicas whose device changed. */
  changedParts: number;
  balance: number;
  removedDevices: number;
  dispersion: number;
}

export class RingValidationError extends Error {}

/** Shown for a device with no weight that still holds partitions, as upstream does. */
export const MAX_BALANCE = 999.99;
const MAX_BALANCE_GATHER_COUNT = 3;
const HOUR = 3600;

/** A small seedable PRNG (mulberry32) so a rebalance can be repeated exactly in tests. */
function prng(seed: number | undefined): () => number {
  if (seed === undefined) return Math.random;
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Work {
  tiers: string[];
  wanted: number;
}

/**
 * What the builder persists. Upstream pickles its RingBuilder; ours is plain
 * data (see builder-file.ts for the JSON form).
 */
export interface BuilderState {
  id: string;
  partPower: number;
  replicas: number;
  minPartHours: number;
  overload: number;
  version: number;
  devs: (BuilderDevice | null)[];
  replica2part2dev: Uint16Array[] | null;
  /** Hours since each partition last moved, saturating at 255 (upstream's _last_part_moves). */
  lastPartMoves: Uint8Array;
  /** Unix seconds the hours above are counted from. */
  lastPartMovesEpoch: number;
  lastPartGatherStart: number;
  removeDevs: number[];
  devsChanged: boolean;
  dispersion: number;
}

/**
 * Upstream's RingBuilder behaviour: devices with weights in regions, zones
 * and servers; rebalance gathers partition-replicas from removed,
 * undispersed and overweight devices and places each on the roomiest tier
 * that still has room under the replica plan, never moving one partition
 * twice within min_part_hours (removing a device overrides that).
 */
export class RingBuilder {
  state: BuilderState;
  private work = new Map<number, Work>();
  private moved = new Uint8Array(0);
  private random: () => number = Math.random;

  constructor(partPower: number, replicas: number, minPartHours: number);
  constructor(state: BuilderState);
  constructor(a: number | BuilderState, replicas?: number, minPartHours?: number) {
    if (typeof a !== 'number') {
      this.state = a;
      return;
    }
    if (!Number.isInteger(a) || a < 0 || a > 32) throw new RangeError(`part_power must be an integer at most 32 (was ${a})`);
    if (a > 24) throw new RangeError(`part_power ${a} is beyond what this builder handles in memory (max 24)`);
    if (!Number.isInteger(replicas) || (replicas as number) < 1) throw new RangeError(`replicas must be a whole number of at least 1 (was ${replicas})`);
    if (!Number.isInteger(minPartHours) || (minPartHours as number) < 0 || (minPartHours as number) > 255)
      throw new RangeError(`min_part_hours must be between 0 and 255 (was ${minPartHours})`);
    this.state = {
      id: randomUUID().replace(/-/g, ''),
      partPower: a,
      replicas: replicas as number,
      minPartHours: minPartHours as number,
      overload: 0,
      version: 0,
      devs: [],
      replica2part2dev: null,
      lastPartMoves: new Uint8Array(2 ** a),
      lastPartMovesEpoch: 0,
      lastPartGatherStart: 0,
      removeDevs: [],
      devsChanged: false,
      dispersion: 0,
    };
  }

  get parts(): number {
    return 2 ** this.state.partPower;
  }

  get partShift(): number {
    return 32 - this.state.partPower;
  }

  get everRebalanced(): boolean {
    return this.state.replica2part2dev !== null;
  }

  /** Live devices (holes and devices awaiting removal included until the next rebalance drops them). */
  devices(): BuilderDevice[] {
    return this.state.devs.filter((d): d is BuilderDevice => d !== null);
  }

  addDevice(spec: NewDevice): number {
    const devs = this.state.devs;
    for (const k of ['region', 'zone', 'ip', 'port', 'device', 'weight'] as const)
      if (spec[k] === undefined || spec[k] === null || (typeof spec[k] === 'number' && !Number.isFinite(spec[k]))) throw new Error(`device is missing required key ${k}`);
    if (!Number.isInteger(spec.port) || spec.port <= 0 || spec.port > 65535) throw new Error(`invalid port ${spec.port}`);
    if (spec.weight < 0) throw new Error('weight must be non-negative');
    let id = spec.id;
    if (id === undefined) {
      const hole = devs.indexOf(null);
      id = hole >= 0 ? hole : devs.length;
    }
    if (id >= NONE_DEV) throw new Error('too many devices for a 2-byte ring');
    if (devs[id]) throw new Error(`Duplicate device id: ${id}`);
    while (devs.length <= id) devs.push(null);
    devs[id] = { ...normalizeDevice({ ...spec, id, meta: spec.meta ?? '' }), weight: Number(spec.weight), parts: 0 };
    this.changed();
    return id;
  }

  private dev(id: number): BuilderDevice {
    const d = this.state.devs[id];
    if (!d) throw new Error(`no device with id ${id}`);
    return d;
  }

  private changed(): void {
    this.state.devsChanged = true;
    this.state.version++;
  }

  setDeviceWeight(id: number, weight: number): void {
    if (this.state.removeDevs.includes(id)) throw new Error(`Can not set weight of dev_id ${id} because it is marked for removal`);
    if (!(weight >= 0)) throw new Error('weight must be non-negative');
    this.dev(id).weight = weight;
    this.changed();
  }

  /** Marks the device for removal; its partitions move at the next rebalance regardless of min_part_hours. */
  removeDevice(id: number): void {
    const d = this.dev(id);
    d.weight = 0;
    if (!this.state.removeDevs.includes(id)) this.state.removeDevs.push(id);
    this.changed();
  }

  setOverload(overload: number): void {
    if (!(overload >= 0)) throw new Error('overload must be non-negative');
    this.state.overload = overload;
    this.changed();
  }

  setMinPartHours(hours: number): void {
    if (!Number.isInteger(hours) || hours < 0 || hours > 255) throw new Error('min_part_hours must be between 0 and 255');
    this.state.minPartHours = hours;
  }

  /** Lets the next rebalance move any partition, as if min_part_hours had passed for all of them. */
  pretendMinPartHoursPassed(): void {
    this.state.lastPartMovesEpoch = 0;
    this.state.lastPartMoves.fill(0xff);
  }

  minPartSecondsLeft(nowSeconds = Date.now() / 1000): number {
    const elapsed = Math.floor(nowSeconds - this.state.lastPartMovesEpoch);
    return Math.max(this.state.minPartHours * HOUR - elapsed, 0);
  }

  weightOfOnePart(): number {
    const total = this.devices().reduce((s, d) => s + d.weight, 0);
    if (total <= 0) throw new RingValidationError('There are no devices in this ring, or all devices have been deleted');
    return (this.parts * this.state.replicas) / total;
  }

  /** Per device: percent above (+) or below (−) the partitions its weight asks for. */
  balancePerDevice(): Map<number, number> {
    const wop = this.weightOfOnePart();
    const out = new Map<number, number>();
    for (const d of this.devices()) {
      if (!d.weight) out.set(d.id, d.parts ? MAX_BALANCE : 0);
      else out.set(d.id, (100 * d.parts) / (d.weight * wop) - 100);
    }
    return out;
  }

  getBalance(): number {
    return Math.max(0, ...[...this.balancePerDevice().values()].map(Math.abs));
  }

  /** The ring the servers read: devices without builder fields, and the assignment table. */
  getRing(): RingData {
    const devs = this.state.devs.map((d) => {
      if (!d) return null;
      const { parts: _parts, ...ring } = d;
      return ring as RingDevice;
    });
    return {
      devs,
      replica2part2dev: (this.state.replica2part2dev ?? []).map((r) => Uint16Array.from(r)),
      partShift: this.partShift,
      version: this.state.version,
    };
  }

  /** The distinct devices holding a partition. */
  getPartDevices(part: number): BuilderDevice[] {
    const out: BuilderDevice[] = [];
    for (const row of this.state.replica2part2dev ?? []) {
      const id = row[part];
      if (id === NONE_DEV) continue;
      const d = this.state.devs[id];
      if (d && !out.includes(d)) out.push(d);
    }
    return out;
  }

  private canMove(part: number): boolean {
    return this.state.lastPartMoves[part] >= this.state.minPartHours && !this.moved[part];
  }

  private setMoved(part: number): void {
    this.state.lastPartMoves[part] = 0;
    this.moved[part] = 1;
  }

  private updateLastPartMoves(nowSeconds: number): void {
    this.moved = new Uint8Array(this.parts);
    const hours = Math.floor((nowSeconds - this.state.lastPartMovesEpoch) / HOUR);
    if (hours <= 0) return;
    const m = this.state.lastPartMoves;
    for (let p = 0; p < m.length; p++) m[p] = Math.min(m[p] + hours, 0xff);
    this.state.lastPartMovesEpoch = Math.floor(nowSeconds);
  }

  rebalance(opts: { seed?: number; now?: number } = {}): RebalanceResult {
    const now = opts.now ?? Date.now() / 1000;
    this.random = prng(opts.seed);
    const weightedCount = this.devices().filter((d) => d.weight > 0).length;
    if (weightedCount < this.state.replicas)
      throw new RingValidationError(`Replica count of ${this.state.replicas} requires more than ${weightedCount} devices`);
    const old = this.state.replica2part2dev?.map((r) => Uint16Array.from(r)) ?? [];
    this.recountParts();
    this.work = new Map(this.devices().map((d) => [d.id, { tiers: tiersForDev(d), wanted: 0 }]));
    this.updateLastPartMoves(now);

    const plan = buildReplicaPlan(this.devices(), this.state.replicas, this.state.overload);
    this.setPartsWanted(plan);
    const assign = new Map<number, number[]>();
    this.adjustTableSize(assign);
    const removedDevices = this.gatherFromRemovedDevices(assign);
    this.gatherForDispersion(assign, plan);
    for (let round = 0; round < MAX_BALANCE_GATHER_COUNT; round++) {
      this.gatherForBalance(assign, plan, round === 0);
      if (!assign.size) break; // most likely min_part_hours
      const list = this.shuffle([...assign.entries()]);
      assign.clear();
      this.reassign(list, plan);
      if (!this.devices().some((d) => this.w(d).wanted < 0)) break;
    }
    this.state.devsChanged = false;
    const changedParts = this.countChanged(old);
    this.state.dispersion = this.dispersionReport().dispersion;
    this.state.version++;
    return { changedParts, balance: this.getBalance(), removedDevices, dispersion: this.state.dispersion };
  }

  private w(d: BuilderDevice): Work {
    return this.work.get(d.id) as Work;
  }

  private shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  private recountParts(): void {
    for (const d of this.devices()) d.parts = 0;
    for (const row of this.state.replica2part2dev ?? [])
      for (const id of row) {
        const d = id === NONE_DEV ? null : this.state.devs[id];
        if (d) d.parts++;
      }
  }

  /** Splits the replicas × parts a tier should hold among its children by target, leftovers to the smallest targets first. */
  private setPartsWanted(plan: ReplicaPlan): void {
    const tree = buildTierTree(this.devices().filter((d) => d.weight > 0));
    const partsByTier = new Map<string, number>();
    const place = (tier: string, parts: number): void => {
      partsByTier.set(tier, parts);
      const subs = tree.get(tier) ?? [];
      if (!subs.length) return;
      const toPlace = new Map<string, number>();
      for (const t of subs) {
        const n = Math.min(parts, Math.floor(planFor(plan, t).target * this.parts));
        toPlace.set(t, n);
        parts -= n;
      }
      const cycle = [...subs].sort((a, b) => planFor(plan, a).target - planFor(plan, b).target);
      for (let i = 0; parts > 0; i++, parts--) {
        const t = cycle[i % cycle.length];
        toPlace.set(t, (toPlace.get(t) as number) + 1);
      }
      for (const [t, n] of toPlace) place(t, n);
    };
    place(ROOT, this.state.replicas * this.parts);
    for (const d of this.devices()) {
      const w = this.w(d);
      w.wanted = d.weight ? (partsByTier.get(w.tiers[3]) ?? 0) - d.parts : -this.parts * this.state.replicas;
    }
  }

  private adjustTableSize(assign: Map<number, number[]>): void {
    const s = this.state;
    const table = s.replica2part2dev ?? [];
    while (table.length > s.replicas) {
      for (const id of table.pop() as Uint16Array) if (id !== NONE_DEV && s.devs[id]) (s.devs[id] as BuilderDevice).parts--;
    }
    while (table.length < s.replicas) table.push(new Uint16Array(this.parts).fill(NONE_DEV));
    s.replica2part2dev = table;
    table.forEach((row, replica) => {
      row.forEach((id, part) => {
        if (id === NONE_DEV) this.addAssign(assign, part, replica);
      });
    });
  }

  private addAssign(assign: Map<number, number[]>, part: number, replica: number): void {
    const list = assign.get(part);
    if (list) list.push(replica);
    else assign.set(part, [replica]);
  }

  private gatherFromRemovedDevices(assign: Map<number, number[]>): number {
    const s = this.state;
    const ids = new Set(s.removeDevs);
    if (ids.size)
      (s.replica2part2dev as Uint16Array[]).forEach((row, replica) => {
        row.forEach((id, part) => {
          if (!ids.has(id)) return;
          row[part] = NONE_DEV;
          this.setMoved(part);
          this.addAssign(assign, part, replica);
        });
      });
    for (const id of ids) {
      s.devs[id] = null;
      this.work.delete(id);
    }
    s.removeDevs = [];
    return ids.size;
  }

  private devsForPart(part: number): { dev: BuilderDevice; replica: number }[] {
    const out: { dev: BuilderDevice; replica: number }[] = [];
    (this.state.replica2part2dev as Uint16Array[]).forEach((row, replica) => {
      const id = row[part];
      if (id !== NONE_DEV && this.state.devs[id]) out.push({ dev: this.state.devs[id] as BuilderDevice, replica });
    });
    return out;
  }

  private replicasAtTier(part: number): Map<string, number> {
    const at = new Map<string, number>();
    for (const { dev } of this.devsForPart(part)) for (const t of this.w(dev).tiers) at.set(t, (at.get(t) ?? 0) + 1);
    return at;
  }

  private unassign(assign: Map<number, number[]>, part: number, replica: number, dev: BuilderDevice, at?: Map<string, number>): void {
    this.w(dev).wanted++;
    dev.parts--;
    this.addAssign(assign, part, replica);
    (this.state.replica2part2dev as Uint16Array[])[replica][part] = NONE_DEV;
    if (at) for (const t of this.w(dev).tiers) at.set(t, (at.get(t) as number) - 1);
    this.setMoved(part);
  }

  /** Replicas sitting in a tier that already holds more of the partition than the plan allows. */
  private gatherForDispersion(assign: Map<number, number[]>, plan: ReplicaPlan): void {
    for (let part = 0; part < this.parts; part++) {
      if (!this.canMove(part)) continue;
      const at = this.replicasAtTier(part);
      const undispersed = this.devsForPart(part).filter(({ dev }) => this.w(dev).tiers.some((t) => (at.get(t) as number) > planFor(plan, t).max));
      undispersed.sort((a, b) => this.w(a.dev).wanted - this.w(b.dev).wanted);
      for (const { dev, replica } of undispersed) {
        // After one replica of a partition moved, only a device holding two of them may give up another.
        if (!this.canMove(part) && !((at.get(this.w(dev).tiers[3]) as number) > 1)) continue;
        this.unassign(assign, part, replica, dev, at);
      }
    }
  }

  private gatherForBalance(assign: Map<number, number[]>, plan: ReplicaPlan, disperseFirst: boolean): void {
    const quarter = Math.floor(this.parts / 4);
    const half = Math.floor(this.random() * (Math.floor(this.parts / 2) + 1));
    const start = (this.state.lastPartGatherStart + quarter + half) % this.parts;
    this.state.lastPartGatherStart = start;
    if (disperseFirst) this.gatherForBalanceCanDisperse(assign, start, plan);
    this.gatherForBalanceForced(assign, start);
  }

  private overweight(part: number): { dev: BuilderDevice; replica: number }[] {
    return this.devsForPart(part)
      .filter(({ dev }) => this.w(dev).wanted < 0)
      .sort((a, b) => this.w(a.dev).wanted - this.w(b.dev).wanted);
  }

  /** From overweight devices, take replicas that can go to another failure domain without breaking the plan, where weight wants them. */
  private gatherForBalanceCanDisperse(assign: Map<number, number[]>, start: number, plan: ReplicaPlan): void {
    const tree = buildTierTree(this.devices().filter((d) => d.weight > 0));
    const wantedInTier = new Map<string, number>();
    for (const d of this.devices()) for (const t of this.w(d).tiers) wantedInTier.set(t, (wantedInTier.get(t) ?? 0) + Math.max(this.w(d).wanted, 0));
    for (let off = 0; off < this.parts; off++) {
      const part = (start + off) % this.parts;
      if (!this.canMove(part)) continue;
      const heavy = this.overweight(part);
      if (!heavy.length) continue;
      const at = this.replicasAtTier(part);
      for (const { dev, replica } of heavy) {
        const tiers = this.w(dev).tiers;
        if (tiers.some((t) => planFor(plan, t).min <= (at.get(t) as number) && (at.get(t) as number) < planFor(plan, t).max)) continue;
        let stuck = tiers[0];
        for (const t of [...tiers].reverse()) {
          stuck = t;
          if ((at.get(t) as number) - 1 < planFor(plan, t).min) break;
        }
        const room = (tree.get(stuck) ?? []).filter((c) => !tiers.includes(c)).reduce((s, c) => s + (wantedInTier.get(c) ?? 0), 0);
        if (room <= 0) continue;
        for (const t of tiers) wantedInTier.set(t, (wantedInTier.get(t) as number) - 1);
        this.unassign(assign, part, replica, dev, at);
        break;
      }
    }
  }

  /** Last resort: take a replica from the most overweight holder even if it may land somewhere no better. */
  private gatherForBalanceForced(assign: Map<number, number[]>, start: number): void {
    for (let off = 0; off < this.parts; off++) {
      const part = (start + off) % this.parts;
      if (!this.canMove(part)) continue;
      const heavy = this.overweight(part);
      if (!heavy.length) continue;
      this.unassign(assign, part, heavy[0].replica, heavy[0].dev);
    }
  }

  /**
   * Places each gathered replica by walking down from the cluster, at each
   * level choosing, among child tiers still under the plan's max for this
   * partition, the one with the most partitions wanted.
   */
  private reassign(list: [number, number[]][], plan: ReplicaPlan): void {
    const available = new Map<string, number>();
    const sortKey = new Map<number, [number, number, number]>();
    const devs = this.devices().filter((d) => d.weight > 0);
    for (const d of this.devices()) {
      sortKey.set(d.id, [this.w(d).wanted, Math.floor(this.random() * 0x10000), d.id]);
      for (const t of this.w(d).tiers) available.set(t, (available.get(t) ?? 0) + Math.max(this.w(d).wanted, 0));
    }
    const cmpKey = (a: [number, number, number], b: [number, number, number]) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
    devs.sort((a, b) => cmpKey(sortKey.get(a.id) as [number, number, number], sortKey.get(b.id) as [number, number, number]));
    // A tier sorts as its most wanting device does (the last of its devices in ascending device order).
    const tierKey = new Map<string, [number, number, number]>();
    const tierDev = new Map<string, BuilderDevice>();
    for (const d of devs)
      for (const t of this.w(d).tiers) {
        tierKey.set(t, sortKey.get(d.id) as [number, number, number]);
        tierDev.set(t, d);
      }
    const tree = buildTierTree(devs);
    for (const children of tree.values()) children.sort((a, b) => cmpKey(tierKey.get(a) as [number, number, number], tierKey.get(b) as [number, number, number]) || compareTierKeys(a, b));

    const table = this.state.replica2part2dev as Uint16Array[];
    for (const [part, replicas] of list) {
      this.state.lastPartMoves[part] = 0;
      const at = this.replicasAtTier(part);
      for (const replica of replicas) {
        let tier = ROOT;
        for (let depth = 1; depth <= 4; depth++) {
          const candidates = (tree.get(tier) ?? []).filter((t) => (at.get(t) ?? 0) < planFor(plan, t).max);
          if (!candidates.length) throw new Error(`no home for partition ${part} replica ${replica}`);
          let best = candidates[0];
          for (const c of candidates) if ((available.get(c) ?? 0) > (available.get(best) ?? 0)) best = c;
          tier = best;
        }
        const dev = tierDev.get(tier) as BuilderDevice;
        this.w(dev).wanted--;
        dev.parts++;
        for (const t of this.w(dev).tiers) {
          available.set(t, (available.get(t) ?? 0) - 1);
          at.set(t, (at.get(t) ?? 0) + 1);
        }
        table[replica][part] = dev.id;
      }
    }
  }

  private countChanged(old: Uint16Array[]): number {
    let n = 0;
    (this.state.replica2part2dev as Uint16Array[]).forEach((row, r) => {
      row.forEach((id, p) => {
        if (!old[r] || p >= old[r].length || old[r][p] !== id) n++;
      });
    });
    return n;
  }

  /**
   * Upstream's dispersion: the percentage of partition-replicas in a tier
   * beyond the most that tier could hold if replicas were spread as widely
   * as the topology allows, counted once per partition at its worst tier;
   * plus, per tier, how many partitions hold 0, 1, … replicas there.
   */
  dispersionReport(): { dispersion: number; partsAtRisk: number; graph: Map<string, number[]> } {
    const table = this.state.replica2part2dev;
    const graph = new Map<string, number[]>();
    if (!table) return { dispersion: 0, partsAtRisk: 0, graph };
    const max = maxReplicasByTier(this.devices(), this.state.replicas);
    const tiersOf = new Map(this.devices().map((d) => [d.id, tiersForDev(d)]));
    let atRisk = 0;
    for (let part = 0; part < this.parts; part++) {
      const at = new Map<string, number>();
      for (const row of table) {
        const t = tiersOf.get(row[part]);
        if (t) for (const k of t) at.set(k, (at.get(k) ?? 0) + 1);
      }
      const depthRisk = [0, 0, 0, 0, 0];
      for (const [t, n] of at) {
        let g = graph.get(t);
        if (!g) graph.set(t, (g = [this.parts, ...new Array<number>(this.state.replicas).fill(0)]));
        g[0]--;
        g[n]++;
        const limit = max.get(t) ?? 0;
        if (n > limit) depthRisk[JSON.parse(t).length] += n - limit;
      }
      atRisk += Math.max(...depthRisk);
    }
    return { dispersion: (100 * atRisk) / (this.parts * this.state.replicas), partsAtRisk: atRisk, graph };
  }

  /**
   * Upstream's validate: every partition-replica on a live device, no device
   * twice in one partition, part counts consistent. With stats, also each
   * device's partition count and the worst skew from its weighted share.
   */
  validate(stats = false): { usage: Map<number, number>; worst: number } | undefined {
    const table = this.state.replica2part2dev;
    if (!table) throw new RingValidationError('_replica2part2dev empty; did you forget to rebalance?');
    const usage = new Map<number, number>();
    for (const row of table) {
      if (row.length !== this.parts) throw new RingValidationError('replica row of the wrong length');
      for (const id of row) usage.set(id, (usage.get(id) ?? 0) + 1);
    }
    const onDevs = this.devices().reduce((s, d) => s + d.parts, 0);
    if (onDevs !== table.length * this.parts) throw new RingValidationError(`All partitions are not double accounted for: ${onDevs} != ${table.length * this.parts}`);
    for (let part = 0; part < this.parts; part++) {
      const seen = new Set<number>();
      table.forEach((row, replica) => {
        const id = row[part];
        if (id === NONE_DEV || !this.state.devs[id]) throw new RingValidationError(`Partition ${part}, replica ${replica} was not allocated to a device.`);
        if (seen.has(id)) throw new RingValidationError(`The partition ${part} has been assigned to duplicate devices`);
        seen.add(id);
      });
    }
    if (!stats) return undefined;
    const wop = this.weightOfOnePart();
    let worst = 0;
    for (const d of this.devices()) {
      const n = usage.get(d.id) ?? 0;
      if (!d.weight) {
        if (n) return { usage, worst: MAX_BALANCE };
        continue;
      }
      worst = Math.max(worst, Math.abs((100 * n) / (d.weight * wop) - 100));
    }
    return { usage, worst };
  }
}
