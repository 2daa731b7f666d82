import { capacityOf, type Inventory } from './providers.ts';

/** One request group of GET /allocation_candidates; suffix '' is the unsuffixed group. */
export interface RequestGroup {
  suffix: string;
  resources: Record<string, number>;
  /** Each inner list is any-of (1.39 `in:`), the outer list all-of. */
  requiredTraits: string[][];
  forbiddenTraits: string[];
  memberOf: string[][];
  forbiddenAggs: string[];
  inTree?: string;
}

export interface CandidateQuery {
  groups: RequestGroup[];
  /** The unsuffixed group's filters when it asks for no resources: they pick trees, not providers. */
  treeFilter?: RequestGroup;
  groupPolicy?: 'none' | 'isolate';
  limit?: number;
  rootRequired: string[][];
  rootForbidden: string[];
  sameSubtree: string[][];
  /** 1.29+: providers below a root take part; before, only root providers do. */
  nested: boolean;
}

export interface ProviderNode {
  uuid: string;
  parent: string | null;
  root: string;
}

/** What candidates are computed from apart from usage: kept between requests while nothing changed (Providers.catalog). */
export interface Catalog {
  /** In creation order. */
  providers: ProviderNode[];
  byUuid: Map<string, ProviderNode>;
  inventories: Map<string, Inventory[]>;
  traits: Map<string, Set<string>>;
  aggregates: Map<string, Set<string>>;
}

/** Everything candidates are computed from: the catalog and the usage read for this request. */
export interface Snapshot extends Catalog {
  usage: Map<string, Map<string, number>>;
}

export interface AllocationRequest {
  /** provider → class → amount */
  allocations: Map<string, Record<string, number>>;
  /** group suffix → providers that satisfied it (1.34 mappings). */
  mappings: Record<string, string[]>;
}

export interface CandidateResult {
  requests: AllocationRequest[];
  /** Providers whose summaries the answer carries. */
  summaries: string[];
}

/** Upstream's max_allocation_candidates idea: a bound on the combinations explored per tree. */
const MAX_PER_TREE = 1000;

interface Option {
  resources: Map<string, Record<string, number>>;
  providers: string[];
}

/**
 * Finds every way the request groups fit into one provider tree: a suffixed
 * group takes all its resources from one provider that has its traits and
 * aggregates; the unsuffixed group may spread its classes over the tree's
 * providers, its required traits then held by any of them. The amounts of all
 * groups landing on a provider must fit together.
 */
export function findCandidates(s: Snapshot, q: CandidateQuery): CandidateResult {
  const byUuid = s.byUuid;
  const trees = new Map<string, ProviderNode[]>();
  for (const p of s.providers) (trees.get(p.root) ?? trees.set(p.root, []).get(p.root)!).push(p);
  const requests: AllocationRequest[] = [];
  const summaries = new Set<string>();
  const limit = q.limit ?? Infinity;
  for (const [root, members] of trees) {
    if (requests.length >= limit) break;
    const rootTraits = s.traits.get(root) ?? new Set<string>();
    if (!q.rootRequired.every((anyOf) => anyOf.some((t) => rootTraits.has(t)))) continue;
    if (q.rootForbidden.some((t) => rootTraits.has(t))) continue;
    if (q.treeFilter && !treeMatches(s, byUuid, members, q.treeFilter)) continue;
    const eligible = q.nested ? members : members.filter((m) => m.uuid === root);
    const perGroup = q.groups.map((g) => groupOptions(s, byUuid, eligible, g));
    if (perGroup.some((o) => o.length === 0)) continue;
    const found = combine(s, byUuid, q, perGroup);
    if (!found.length) continue;
    for (const r of found) {
      if (requests.length >= limit) break;
      requests.push(r);
      if (q.nested) for (const m of members) summaries.add(m.uuid);
      else for (const p of r.allocations.keys()) summaries.add(p);
    }
  }
  return { requests, summaries: [...summaries] };
}

function treeMatches(s: Snapshot, byUuid: Map<string, ProviderNode>, members: ProviderNode[], g: RequestGroup): boolean {
  const root = byUuid.get(members[0].root)!;
  if (!inTree(byUuid, root, g) || !inAggregates(s, root, g)) return false;
  const traits = new Set(members.flatMap((m) => [...(s.traits.get(m.uuid) ?? [])]));
  return g.requiredTraits.every((anyOf) => anyOf.some((t) => traits.has(t))) && !g.forbiddenTraits.some((t) => traits.has(t));
}

function fits(s: Snapshot, uuid: string, rc: string, amount: number): boolean {
  const inv = s.inventories.get(uuid)?.find((i) => i.resourceClass === rc);
  if (!inv) return false;
  const used = s.usage.get(uuid)?.get(rc) ?? 0;
  return amount >= inv.minUnit && amount <= inv.maxUnit && amount % inv.stepSize === 0 && used + amount <= capacityOf(inv);
}

function inAggregates(s: Snapshot, node: ProviderNode, g: RequestGroup): boolean {
  if (g.memberOf.length === 0 && g.forbiddenAggs.length === 0) return true;
  const mine = new Set([...(s.aggregates.get(node.uuid) ?? []), ...(s.aggregates.get(node.root) ?? [])]);
  return g.memberOf.every((anyOf) => anyOf.some((a) => mine.has(a))) && !g.forbiddenAggs.some((a) => mine.has(a));
}

function inTree(byUuid: Map<string, ProviderNode>, node: ProviderNode, g: RequestGroup): boolean {
  if (!g.inTree) return true;
  const anchor = byUuid.get(g.inTree);
  return !!anchor && anchor.root === node.root;
}

function groupOptions(s: Snapshot, byUuid: Map<string, ProviderNode>, eligible: ProviderNode[], g: RequestGroup): Option[] {
  const usable = eligible.filter((n) => inAggregates(s, n, g) && inTree(byUuid, n, g));
  const classes = Object.entries(g.resources);
  if (g.suffix !== '' || classes.length === 0) {
    // One provider holds the whole group (and, resourceless, its traits alone).
    return usable
      .filter((n) => {
        const t = s.traits.get(n.uuid) ?? new Set<string>();
        return (
          g.requiredTraits.every((anyOf) => anyOf.some((x) => t.has(x))) &&
          !g.forbiddenTraits.some((x) => t.has(x)) &&
          classes.every(([rc, amount]) => fits(s, n.uuid, rc, amount))
        );
      })
      .map((n) => ({ resources: classes.length ? new Map([[n.uuid, { ...g.resources }]]) : new Map(), providers: [n.uuid] }));
  }
  const allowed = usable.filter((n) => !g.forbiddenTraits.some((x) => s.traits.get(n.uuid)?.has(x)));
  const choices = classes.map(([rc, amount]) => allowed.filter((n) => fits(s, n.uuid, rc, amount)).map((n) => n.uuid));
  if (choices.some((c) => c.length === 0)) return [];
  const out: Option[] = [];
  const pick = (i: number, chosen: string[]) => {
    if (out.length >= MAX_PER_TREE) return;
    if (i === classes.length) {
      const providers = [...new Set(chosen)];
      // Most requests (every boot's) name no trait: the providers' trait set is built only when one is.
      if (g.requiredTraits.length > 0) {
        const traits = new Set(providers.flatMap((p) => [...(s.traits.get(p) ?? [])]));
        if (!g.requiredTraits.every((anyOf) => anyOf.some((x) => traits.has(x)))) return;
      }
      const resources = new Map<string, Record<string, number>>();
      classes.forEach(([rc, amount], k) => {
        const r = resources.get(chosen[k]) ?? resources.set(chosen[k], {}).get(chosen[k])!;
        r[rc] = amount;
      });
      out.push({ resources, providers });
      return;
    }
    for (const p of choices[i]) pick(i + 1, [...chosen, p]);
  };
  pick(0, []);
  return out;
}

function combine(s: Snapshot, byUuid: Map<string, ProviderNode>, q: CandidateQuery, perGroup: Option[][]): AllocationRequest[] {
  const out: AllocationRequest[] = [];
  if (perGroup.length === 1 && q.sameSubtree.length === 0) {
    // One group: its options are distinct already and fit on their own.
    for (const o of perGroup[0]) out.push({ allocations: o.resources, mappings: { [q.groups[0].suffix]: o.providers } });
    return out;
  }
  const seen = new Set<string>();
  const walk = (i: number, picked: Option[]) => {
    if (out.length >= MAX_PER_TREE) return;
    if (i === perGroup.length) {
      const r = merge(s, byUuid, q, picked);
      if (!r) return;
      const key = JSON.stringify([[...r.allocations].sort(([a], [b]) => a.localeCompare(b)), r.mappings]);
      if (seen.has(key)) return;
      seen.add(key);
      out.push(r);
      return;
    }
    for (const o of perGroup[i]) walk(i + 1, [...picked, o]);
  };
  walk(0, []);
  return out;
}

function merge(s: Snapshot, byUuid: Map<string, ProviderNode>, q: CandidateQuery, picked: Option[]): AllocationRequest | undefined {
  if (q.groupPolicy === 'isolate') {
    const used = new Set<string>();
    for (let k = 0; k < picked.length; k++) {
      if (q.groups[k].suffix === '' || Object.keys(q.groups[k].resources).length === 0) continue;
      for (const p of picked[k].providers) {
        if (used.has(p)) return undefined;
        used.add(p);
      }
    }
  }
  const allocations = new Map<string, Record<string, number>>();
  for (const o of picked) {
    for (const [p, res] of o.resources) {
      const a = allocations.get(p) ?? allocations.set(p, {}).get(p)!;
      for (const [rc, n] of Object.entries(res)) a[rc] = (a[rc] ?? 0) + n;
    }
  }
  for (const [p, res] of allocations) for (const [rc, n] of Object.entries(res)) if (!fits(s, p, rc, n)) return undefined;
  const mappings: Record<string, string[]> = {};
  picked.forEach((o, k) => (mappings[q.groups[k].suffix] = o.providers));
  for (const suffixes of q.sameSubtree) {
    const nodes = suffixes.flatMap((x) => mappings[x] ?? []);
    if (!nodes.some((top) => nodes.every((n) => isAncestorOrSelf(byUuid, top, n)))) return undefined;
  }
  return { allocations, mappings };
}

function isAncestorOrSelf(byUuid: Map<string, ProviderNode>, top: string, node: string): boolean {
  for (let cur: string | null | undefined = node; cur; cur = byUuid.get(cur)?.parent) if (cur === top) return true;
  return false;
}
