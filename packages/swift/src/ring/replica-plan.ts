import { buildTierTree, ROOT, tiersForDev, type TierDevice } from './tiers.ts';

/**
 * How many replicas of each partition every tier should hold, in
 * "replicanths" (fractions of a replica averaged over all partitions), the
 * way upstream's RingBuilder plans: a weighted share, a maximally dispersed
 * share, and a blend of the two limited by the overload the operator allows.
 */
export interface TierPlan {
  min: number;
  target: number;
  max: number;
}

export type ReplicaPlan = Map<string, TierPlan>;

const EPS = 1e-10;

export function planFor(plan: ReplicaPlan, tier: string): TierPlan {
  return plan.get(tier) ?? { min: 0, target: 0, max: 0 };
}

function weighted(devs: TierDevice[]): TierDevice[] {
  return devs.filter((d) => d.weight > 0);
}

/** Each device's replicanths by weight alone, capped at one replica per device, the excess spread over the others. */
export function weightedReplicasByTier(devs: TierDevice[], replicas: number): Map<string, number> {
  const ws = weighted(devs);
  const total = ws.reduce((s, d) => s + d.weight, 0);
  if (total <= 0) throw new Error('There are no devices in this ring, or all devices have been deleted');
  const perDev = new Map<number, number>();
  let withRoom: number[] = [];
  for (const d of ws) {
    const r = (d.weight * replicas) / total;
    if (r < 1) withRoom.push(d.id);
    perDev.set(d.id, Math.min(1, r));
  }
  for (;;) {
    const remaining = replicas - [...perDev.values()].reduce((s, v) => s + v, 0);
    if (remaining < EPS) break;
    withRoom = withRoom.filter((id) => (perDev.get(id) as number) < 1);
    if (!withRoom.length) throw new Error(`More replicas (${replicas}) than devices (${ws.length})`);
    const rel = remaining / withRoom.reduce((s, id) => s + (perDev.get(id) as number), 0);
    for (const id of withRoom) perDev.set(id, Math.min(1, (perDev.get(id) as number) * (rel + 1)));
  }
  const byTier = new Map<string, number>();
  for (const d of ws) {
    const r = perDev.get(d.id) as number;
    for (const t of [ROOT, ...tiersForDev(d)]) byTier.set(t, (byTier.get(t) ?? 0) + r);
  }
  return byTier;
}

/**
 * The most replicas a tier may hold if replicas are spread as evenly as the
 * topology allows (at most one per device). `bound` is ceil for the
 * dispersion report and identity for planning.
 */
export function maxReplicasByTier(devs: TierDevice[], replicas: number, bound: (x: number) => number = Math.ceil): Map<string, number> {
  const tree = buildTierTree(weighted(devs));
  const out = new Map<string, number>();
  const walk = (tier: string, count: number, depth: number): void => {
    if (depth === 4) count = Math.min(1, count);
    out.set(tier, count);
    const children = tree.get(tier) ?? [];
    for (const c of children) walk(c, bound(count / children.length), depth + 1);
  };
  walk(ROOT, replicas, 0);
  return out;
}

/** The replicanths each tier wants for full dispersion, leaning on weights within each tier's min/max. */
export function wantedReplicasByTier(devs: TierDevice[], replicas: number): Map<string, number> {
  const ws = weighted(devs);
  const weightedBy = weightedReplicasByTier(ws, replicas);
  const dispersed = maxReplicasByTier(ws, replicas, (x) => x);
  const lim = (t: string) => ({ min: Math.floor(dispersed.get(t) ?? 0), max: Math.ceil(dispersed.get(t) ?? 0) });
  const numDevices = new Map<string, number>([[ROOT, ws.length]]);
  for (const d of ws) for (const t of tiersForDev(d)) numDevices.set(t, (numDevices.get(t) ?? 0) + 1);
  const tree = buildTierTree(ws);
  const wanted = new Map<string, number>();

  const place = (tier: string, replicanths: number): void => {
    if (replicanths > (numDevices.get(tier) ?? 0) + EPS) throw new Error(`More replicanths (${replicanths}) than devices (${numDevices.get(tier)}) in tier ${tier}`);
    wanted.set(tier, replicanths);
    const subs = tree.get(tier) ?? [];
    if (!subs.length) return;
    const toPlace = new Map<string, number>(subs.map((t) => [t, 0]));
    let remaining = replicanths;
    let spread = subs;
    let deviceLimited = false;
    for (let guard = 0; guard < 1000; guard++) {
      const rel = remaining / spread.reduce((s, t) => s + (weightedBy.get(t) ?? 0), 0);
      for (const t of spread) {
        let r = (toPlace.get(t) as number) + (weightedBy.get(t) ?? 0) * rel;
        const { min, max } = lim(t);
        if (r < min) r = min;
        else if (r > max && !deviceLimited) r = max;
        r = Math.min(r, numDevices.get(t) ?? 0);
        toPlace.set(t, r);
      }
      remaining = replicanths - [...toPlace.values()].reduce((s, v) => s + v, 0);
      if (remaining < -EPS) spread = subs.filter((t) => (toPlace.get(t) as number) > lim(t).min);
      else if (remaining > EPS) {
        spread = subs.filter((t) => (numDevices.get(t) ?? 0) > (toPlace.get(t) as number) && (toPlace.get(t) as number) < lim(t).max);
        if (!spread.length) {
          deviceLimited = true;
          spread = subs.filter((t) => (toPlace.get(t) as number) < (numDevices.get(t) ?? 0));
        }
      } else break;
      if (!spread.length) break;
    }
    for (const t of subs) place(t, toPlace.get(t) as number);
  };
  place(ROOT, replicas);
  return wanted;
}

/** The largest relative increase over its weighted share any device needs to reach full dispersion. */
export function requiredOverload(devs: TierDevice[], weightedBy: Map<string, number>, wanted: Map<string, number>): number {
  let max = 0;
  for (const d of weighted(devs)) {
    const t = tiersForDev(d)[3];
    const w = weightedBy.get(t) as number;
    const need = ((wanted.get(t) ?? 0) - w) / w;
    if (need > max) max = need;
  }
  return max;
}

/** Upstream's replica plan: wanted (dispersion) where overload allows it, otherwise moved toward weighted by the overload share. */
export function buildReplicaPlan(devs: TierDevice[], replicas: number, overload: number): ReplicaPlan {
  const weightedBy = weightedReplicasByTier(devs, replicas);
  const wanted = wantedReplicasByTier(devs, replicas);
  const maxOverload = requiredOverload(devs, weightedBy, wanted);
  let target = wanted;
  if (maxOverload > 0) {
    const o = Math.min(overload, maxOverload);
    target = new Map();
    for (const [t, w] of weightedBy) target.set(t, (((wanted.get(t) ?? 0) - w) / maxOverload) * o + w);
  }
  const plan: ReplicaPlan = new Map();
  for (const [t, r] of target) plan.set(t, { min: Math.floor(r + EPS), target: r, max: Math.ceil(r - EPS) });
  return plan;
}
