/**
 * Failure domains as upstream's ring utils see them: region, zone, server
 * (ip) and device, each a tuple extending its parent; () is the cluster.
 * Tuples are keyed by their JSON text so they can live in Maps and Sets.
 */
export type Tier = readonly (number | string)[];

export const ROOT = '[]';

export interface TierDevice {
  id: number;
  region: number;
  zone: number;
  ip: string;
  weight: number;
}

export function tierKey(t: Tier): string {
  return JSON.stringify(t);
}

/** The device's four tiers, widest first: region, zone, server, device. */
export function tiersForDev(d: TierDevice): string[] {
  return [tierKey([d.region]), tierKey([d.region, d.zone]), tierKey([d.region, d.zone, d.ip]), tierKey([d.region, d.zone, d.ip, d.id])];
}

export function parseTier(key: string): Tier {
  return JSON.parse(key) as Tier;
}

/** Python's ordering of tier tuples (numbers numerically, strings by code point), which upstream sorts by. */
export function compareTierKeys(a: string, b: string): number {
  const x = parseTier(a);
  const y = parseTier(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === y[i]) continue;
    if (typeof x[i] === 'number' && typeof y[i] === 'number') return (x[i] as number) - (y[i] as number);
    return String(x[i]) < String(y[i]) ? -1 : 1;
  }
  return x.length - y.length;
}

/** Parent tier → its child tiers (sorted), built from the given devices only. */
export function buildTierTree(devs: Iterable<TierDevice>): Map<string, string[]> {
  const sets = new Map<string, Set<string>>();
  for (const d of devs) {
    let parent = ROOT;
    for (const t of tiersForDev(d)) {
      let s = sets.get(parent);
      if (!s) sets.set(parent, (s = new Set()));
      s.add(t);
      parent = t;
    }
  }
  return new Map([...sets].map(([k, s]) => [k, [...s].sort(compareTierKeys)]));
}

export function tierDepth(key: string): number {
  return parseTier(key).length;
}
