import type { Logger } from 'pino';
import { ClaimConflict, type AllocationCandidates, type PlacementClient } from '../placement/client.ts';
import type { RequestSpec } from '../domain/instances.ts';
import type { InstanceRepo } from '../domain/instances.ts';
import type { Service, Services } from '../domain/services.ts';

/** A compute host as the filters and weighers see it. */
export interface HostState {
  host: string;
  node: string;
  providerUuid: string;
  service: Service;
  availabilityZone: string;
  instances: Set<string>;
  freeRamMb: number;
  freeVcpus: number;
  freeDiskGb: number;
  /** The allocation request placement offered for this host, absent when placement found it too small. */
  allocation?: Record<string, Record<string, number>>;
}

export interface FilterContext {
  spec: RequestSpec;
  /** Hosts already picked for earlier instances of this request (affinity among them). */
  chosen: string[];
  /** Hosts of the members of the request's server group. */
  groupHosts: Set<string>;
  /** Hosts of the instances named by same_host / different_host. */
  sameHosts: Set<string>;
  differentHosts: Set<string>;
}

export interface HostFilter {
  name: string;
  /** Why the host fails, or undefined when it passes. */
  reject(h: HostState, c: FilterContext): string | undefined;
}

const PLACEMENT_FILTER: HostFilter = {
  name: 'PlacementFilter',
  // What the host has free is placement's to say, and it is asked only once the boot fails (shortfalls()).
  reject: (h, c) => (h.allocation ? undefined : `not enough resources: needs ${requested(c.spec).join(', ')}`),
};

const FILTERS: HostFilter[] = [
  {
    name: 'ComputeFilter',
    reject: (h) => (h.service.disabled ? `disabled${h.service.disabledReason ? ` (${h.service.disabledReason})` : ''}` : !h.service.up ? 'compute service is down' : undefined),
  },
  PLACEMENT_FILTER,
  {
    name: 'AvailabilityZoneFilter',
    reject: (h, c) => (c.spec.availabilityZone && c.spec.availabilityZone !== h.availabilityZone ? `in availability zone ${h.availabilityZone}, not ${c.spec.availabilityZone}` : undefined),
  },
  {
    name: 'RequestedDestinationFilter',
    reject: (h, c) =>
      (c.spec.requestedHost && c.spec.requestedHost !== h.host) || (c.spec.requestedNode && c.spec.requestedNode !== h.node) ? `not the requested destination ${c.spec.requestedHost ?? ''}${c.spec.requestedNode ? `:${c.spec.requestedNode}` : ''}` : undefined,
  },
  { name: 'ForcedHostFilter', reject: (h, c) => (c.spec.forcedHost && c.spec.forcedHost !== h.host ? `not the requested host ${c.spec.forcedHost}` : undefined) },
  { name: 'SameHostFilter', reject: (h, c) => (c.spec.hints.sameHost?.length && !c.sameHosts.has(h.host) ? 'does not hold the same_host instances' : undefined) },
  { name: 'DifferentHostFilter', reject: (h, c) => (c.differentHosts.has(h.host) ? 'holds a different_host instance' : undefined) },
  {
    name: 'ServerGroupAntiAffinityFilter',
    reject: (h, c) => {
      if (c.spec.group?.policy !== 'anti-affinity') return undefined;
      const maxPerHost = Number((c.spec.group.rules as { max_server_per_host?: number }).max_server_per_host ?? 1);
      const n = [...c.chosen, ...c.groupHosts].filter((x) => x === h.host).length + (c.groupHosts.has(h.host) ? 0 : 0);
      return n >= maxPerHost ? `already runs ${n} member(s) of anti-affinity group ${c.spec.group.uuid}` : undefined;
    },
  },
  {
    name: 'ServerGroupAffinityFilter',
    reject: (h, c) => {
      if (c.spec.group?.policy !== 'affinity') return undefined;
      const hosts = new Set([...c.groupHosts, ...c.chosen]);
      return hosts.size > 0 && !hosts.has(h.host) ? `not the host of affinity group ${c.spec.group.uuid}` : undefined;
    },
  },
];

function requested(spec: RequestSpec): string[] {
  return [`VCPU ${spec.flavor.vcpus}`, `MEMORY_MB ${spec.flavor.ram}`, `DISK_GB ${diskGb(spec)}`];
}

/** Hosts whose free resources a NoValidHost fault spells out (each costs two placement requests). */
const SHORTFALLS_SHOWN = 10;

/** A volume-backed server's root disk is a Cinder volume: it claims no DISK_GB on the host (upstream's is_bfv). */
export function diskGb(spec: RequestSpec): number {
  return (spec.isBfv ? 0 : spec.flavor.disk) + spec.flavor.ephemeral + Math.ceil(spec.flavor.swap / 1024);
}

/** How many fresh candidate lists one instance may try when its claims keep losing races. */
const CLAIM_ROUNDS = 5;
/** A group member's pick stops counting after this long even if its row never got the host (a build that failed before). */
const PENDING_PICK_MS = 300_000;

export class NoValidHost extends Error {
  constructor(readonly reason: string) {
    super(`No valid host was found. ${reason}`);
    this.name = 'NoValidHost';
  }
}

export interface Selection {
  uuid: string;
  host: string;
  availabilityZone: string;
  node: string;
  providerUuid: string;
}

/**
 * The scheduler (nova/scheduler/manager.py select_destinations): allocation
 * candidates from placement, then the filters (each rejection recorded with
 * its reason, so that a failed boot says which filter removed which host), then
 * the weighers, then an atomic claim in placement; a claim that lost a race
 * moves on to the next host.
 */
export class Scheduler {
  constructor(
    private readonly deps: { placement: PlacementClient; services: Services; instances: InstanceRepo; defaultAz: string; hostZones: () => Promise<Map<string, string>>; logger: Pick<Logger, 'info' | 'warn'>; groupHosts: (groupUuid: string) => Promise<Set<string>> },
  ) {}

  /**
   * Hosts picked for server group members whose instance row does not name them yet (the conductor
   * writes the host after select_destinations returns), per group and instance. With them, and with
   * one selection at a time per group, two boots of one anti-affinity group scheduled at once cannot
   * both see an empty group and land together (upstream re-checks late on the compute host and
   * reschedules instead; one scheduler process makes the early check enough).
   */
  private readonly pendingPicks = new Map<string, Map<string, { host: string; at: number }>>();
  private readonly groupTurns = new Map<string, Promise<unknown>>();

  async selectDestinations(spec: RequestSpec, uuids: string[], owner: { projectId: string; userId: string }): Promise<Selection[]> {
    const group = spec.group?.uuid;
    if (!group) return this.select(spec, uuids, owner);
    return this.inTurn(group, async () => {
      const out = await this.select(spec, uuids, owner);
      const picks = this.pendingPicks.get(group) ?? new Map();
      for (const s of out) picks.set(s.uuid, { host: s.host, at: Date.now() });
      this.pendingPicks.set(group, picks);
      return out;
    });
  }

  private async inTurn<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.groupTurns.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    this.groupTurns.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.groupTurns.get(key) === tail) this.groupTurns.delete(key);
    }
  }

  /** The group members' hosts: their rows', and the picks not yet written there (dropped once the row names a host or is gone). */
  private async groupHosts(group: string): Promise<Set<string>> {
    const hosts = await this.deps.groupHosts(group);
    const picks = this.pendingPicks.get(group);
    for (const [uuid, pick] of picks ?? []) {
      const inst = await this.deps.instances.find(uuid);
      if (!inst || Date.now() - pick.at > PENDING_PICK_MS) {
        picks!.delete(uuid);
        continue;
      }
      // The row may have been given its host after the query above read it: count the member either way.
      hosts.add(inst.host ?? pick.host);
      if (inst.host) picks!.delete(uuid);
    }
    if (picks?.size === 0) this.pendingPicks.delete(group);
    return hosts;
  }

  private async select(spec: RequestSpec, uuids: string[], owner: { projectId: string; userId: string }): Promise<Selection[]> {
    const chosen: string[] = [];
    const out: Selection[] = [];
    try {
      for (const uuid of uuids) {
        const s = await this.selectOne(spec, uuid, chosen, owner);
        chosen.push(s.host);
        out.push(s);
      }
      return out;
    } catch (e) {
      // All or nothing, as upstream: claims made for the earlier instances go back.
      for (const s of out) await this.deps.placement.deleteAllocations(s.uuid).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Candidates are a snapshot: when every claim on it lost a race, the hosts may still have
   * room that the winners did not take, so ask placement again (a bounded number of times)
   * before answering NoValidHost.
   */
  private async selectOne(spec: RequestSpec, uuid: string, chosen: string[], owner: { projectId: string; userId: string }): Promise<Selection> {
    for (let round = 1; ; round++) {
      const { selection, reasons, raced, short } = await this.tryClaim(spec, uuid, chosen, owner);
      if (selection) return selection;
      if (!raced || round >= CLAIM_ROUNDS) throw new NoValidHost(`There are not enough hosts available. ${[...reasons, ...(await this.shortfalls(short))].join('; ')}.`);
    }
  }

  /**
   * What placement says the hosts too small have free, per class ("host1 has free VCPU 0 of 4, …"), read
   * when the boot has failed: the candidates answer carries figures of fitting hosts only, and a
   * hypervisor's own report lags behind the claims (it read "free 768" on a full host).
   */
  private async shortfalls(short: HostState[]): Promise<string[]> {
    const out: string[] = [];
    for (const h of short.slice(0, SHORTFALLS_SHOWN)) {
      const capacity = await this.deps.placement.capacity(h.providerUuid).catch(() => undefined);
      if (!capacity) continue;
      const free = ['VCPU', 'MEMORY_MB', 'DISK_GB'].filter((rc) => capacity[rc]).map((rc) => `${rc} ${capacity[rc].capacity - capacity[rc].used} of ${capacity[rc].capacity}`);
      out.push(`${h.host} has free ${free.join(', ')}`);
    }
    return out;
  }

  private async tryClaim(
    spec: RequestSpec,
    uuid: string,
    chosen: string[],
    owner: { projectId: string; userId: string },
  ): Promise<{ selection?: Selection; reasons: string[]; raced: boolean; short: HostState[] }> {
    const hosts = await this.hostStates(spec);
    if (hosts.length === 0) throw new NoValidHost('There are no compute hosts.');
    const ctx: FilterContext = {
      spec,
      chosen,
      groupHosts: spec.group ? await this.groupHosts(spec.group.uuid) : new Set(),
      sameHosts: await this.hostsOf(spec.hints.sameHost),
      differentHosts: await this.hostsOf(spec.hints.differentHost),
    };
    const reasons: string[] = [];
    const short: HostState[] = [];
    let alive = hosts;
    for (const f of FILTERS) {
      const next: HostState[] = [];
      for (const h of alive) {
        const why = f.reject(h, ctx);
        if (!why) next.push(h);
        else {
          reasons.push(`${f.name} removed ${h.host}: ${why}`);
          if (f === PLACEMENT_FILTER) short.push(h);
        }
      }
      alive = next;
    }
    let raced = false;
    for (const h of this.weigh(alive, spec)) {
      try {
        await this.deps.placement.claim(uuid, h.allocation!, { projectId: owner.projectId, userId: owner.userId, consumerGeneration: null });
        return { selection: { uuid, host: h.host, availabilityZone: h.availabilityZone, node: h.node, providerUuid: h.providerUuid }, reasons, raced, short };
      } catch (e) {
        if (!(e instanceof ClaimConflict)) throw e;
        raced = true;
        reasons.push(`claim on ${h.host} lost a race: ${e.detail}`);
      }
    }
    return { reasons, raced, short };
  }

  /** RAM then CPU weighers, spreading (upstream's defaults: positive multipliers). */
  private weigh(hosts: HostState[], spec: RequestSpec): HostState[] {
    const norm = (vals: number[]) => {
      const min = Math.min(...vals);
      const max = Math.max(...vals);
      return vals.map((v) => (max === min ? 0 : (v - min) / (max - min)));
    };
    const ram = norm(hosts.map((h) => h.freeRamMb - spec.flavor.ram));
    const cpu = norm(hosts.map((h) => h.freeVcpus - spec.flavor.vcpus));
    return hosts.map((h, i) => ({ h, w: ram[i] + cpu[i] })).sort((a, b) => b.w - a.w || a.h.host.localeCompare(b.h.host)).map((x) => x.h);
  }

  private async hostsOf(uuids: string[] | undefined): Promise<Set<string>> {
    const out = new Set<string>();
    for (const u of uuids ?? []) {
      const i = await this.deps.instances.find(u);
      if (i?.host) out.add(i.host);
    }
    return out;
  }

  private async hostStates(spec: RequestSpec): Promise<HostState[]> {
    const computes = (await this.deps.services.computes()).filter((s) => s.hypervisor);
    const f = spec.flavor;
    const candidates: AllocationCandidates = await this.deps.placement.allocationCandidates({ resources: { VCPU: f.vcpus, MEMORY_MB: f.ram, ...(diskGb(spec) > 0 ? { DISK_GB: diskGb(spec) } : {}) } });
    const offers = new Map<string, Record<string, Record<string, number>>>();
    for (const ar of candidates.allocation_requests) {
      const rps = Object.keys(ar.allocations);
      if (rps.length !== 1) continue;
      offers.set(rps[0], { [rps[0]]: ar.allocations[rps[0]].resources });
    }
    const zones = await this.deps.hostZones();
    return computes.map((s) => {
      const hv = s.hypervisor!;
      const summary = candidates.provider_summaries[hv.providerUuid]?.resources;
      // Only weighed hosts need it, and those are candidates, which placement summarised.
      const free = (rc: string) => (summary?.[rc] ? summary[rc].capacity - summary[rc].used : 0);
      return {
        host: s.host,
        node: hv.hypervisorHostname,
        providerUuid: hv.providerUuid,
        service: s,
        availabilityZone: zones.get(s.host) ?? this.deps.defaultAz,
        instances: new Set<string>(),
        freeRamMb: free('MEMORY_MB'),
        freeVcpus: free('VCPU'),
        freeDiskGb: free('DISK_GB'),
        allocation: offers.get(hv.providerUuid),
      };
    });
  }
}
