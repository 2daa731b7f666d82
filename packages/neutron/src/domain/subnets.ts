import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonFromDb, jsonToDb } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronConfig } from '../conf.ts';
import type { NetworkRow, NeutronDB, SubnetPoolRow, SubnetRow } from '../db/schema.ts';
import { bigToIp, contains, defaultPools, freeBlock, ipToBig, overlaps, parseCidr, type Cidr, type Pool } from './addresses.ts';
import { isAutoAddressSubnet } from './ipam.ts';
import type { QuotaRegistry } from './quotas.ts';

const invalid = (msg: string) => badRequest(`Invalid input for operation: ${msg}`, { type: 'InvalidInput' });
const IPV6_MODES = ['slaac', 'dhcpv6-stateful', 'dhcpv6-stateless'];

export interface SubnetInput {
  projectId: string;
  name?: string;
  description?: string;
  ipVersion: number;
  cidr?: string;
  prefixlen?: number;
  subnetpoolId?: string | null;
  useDefaultSubnetpool?: boolean;
  gatewayIp?: string | null;
  allocationPools?: { start: string; end: string }[];
  dnsNameservers?: string[];
  hostRoutes?: { destination: string; nexthop: string }[];
  enableDhcp?: boolean;
  ipv6RaMode?: string | null;
  ipv6AddressMode?: string | null;
  serviceTypes?: string[];
}

/** Subnet rules of upstream's db_base_plugin and ipam_backend_mixin: CIDR, gateway, pools, DNS, routes, IPv6 modes, pool allocation. */
export class SubnetRules {
  constructor(private readonly deps: { config: NeutronConfig; clock: Clock; ids: IdSource; quotas: QuotaRegistry }) {}

  async create(trx: Kysely<NeutronDB>, net: NetworkRow, input: SubnetInput): Promise<SubnetRow> {
    await this.deps.quotas.check(trx, input.projectId, 'subnet');
    if (input.ipVersion !== 4 && input.ipVersion !== 6) throw badRequest(`Invalid input for ip_version. Reason: ${input.ipVersion} is not in [4, 6].`, { type: 'HTTPBadRequest' });
    const pool = await this.poolFor(trx, input);
    let cidr: Cidr;
    if (input.cidr !== undefined) {
      const c = parseCidr(input.cidr);
      if (!c) {
        const loose = parseCidr(input.cidr, false);
        throw badRequest(`Invalid input for cidr. Reason: '${input.cidr}' isn't a recognized IP subnet cidr${loose ? `, '${loose.text}' is recommended` : ''}.`, { type: 'HTTPBadRequest' });
      }
      if (c.version !== input.ipVersion) throw invalid(`Cidr ${input.cidr} does not match ip_version ${input.ipVersion}.`);
      if (pool) this.checkInPool(pool, c);
      cidr = c;
    } else if (pool) {
      cidr = await this.allocateFromPool(trx, pool, input.prefixlen);
    } else {
      throw badRequest('Bad subnets request: a subnetpool must be specified in the absence of a cidr.', { type: 'BadRequest' });
    }
    if (cidr.version === 4 && cidr.prefix > 32) throw invalid('Invalid prefix length.');
    await this.checkOverlap(trx, net, cidr, input.projectId);
    const enableDhcp = input.enableDhcp ?? true;
    this.checkIpv6Modes(cidr, input.ipv6RaMode ?? null, input.ipv6AddressMode ?? null, enableDhcp);
    const gateway = this.gateway(cidr, input.gatewayIp);
    const pools = this.pools(cidr, gateway, input.allocationPools);
    const dns = this.dns(input.dnsNameservers ?? []);
    const routes = this.routes(cidr, input.hostRoutes ?? []);
    const now = this.deps.clock.now();
    const row: SubnetRow = {
      id: this.deps.ids.uuid(),
      project_id: input.projectId,
      name: input.name ?? '',
      description: input.description ?? '',
      revision_number: 0,
      created_at: now,
      updated_at: now,
      network_id: net.id,
      ip_version: cidr.version,
      cidr: cidr.text,
      gateway_ip: gateway === null ? null : bigToIp(cidr.version, gateway),
      enable_dhcp: enableDhcp ? 1 : 0,
      ipv6_ra_mode: input.ipv6RaMode ?? null,
      ipv6_address_mode: input.ipv6AddressMode ?? null,
      subnetpool_id: pool?.id ?? null,
      segment_id: null,
      allocation_pools: jsonToDb(pools.map((p) => ({ start: bigToIp(cidr.version, p.start), end: bigToIp(cidr.version, p.end) }))),
      dns_nameservers: jsonToDb(dns),
      host_routes: jsonToDb(routes),
      service_types: jsonToDb(input.serviceTypes ?? []),
    };
    await trx.insertInto('subnets').values(row).execute();
    return row;
  }

  private async poolFor(trx: Kysely<NeutronDB>, input: SubnetInput): Promise<SubnetPoolRow | undefined> {
    if (input.subnetpoolId) {
      const pool = await trx.selectFrom('subnetpools').selectAll().where('id', '=', input.subnetpoolId).executeTakeFirst();
      if (!pool || (pool.shared !== 1 && pool.project_id !== input.projectId)) {
        throw new ApiError('not_found', `Subnet pool ${input.subnetpoolId} could not be found.`, { type: 'SubnetPoolNotFound' });
      }
      if (pool.ip_version !== input.ipVersion) throw invalid(`Cannot allocate IPv${input.ipVersion} subnet from IPv${pool.ip_version} subnet pool ${pool.id}.`);
      return pool;
    }
    if (input.useDefaultSubnetpool) {
      const pool = await trx.selectFrom('subnetpools').selectAll().where('is_default', '=', 1).where('ip_version', '=', input.ipVersion).executeTakeFirst();
      if (!pool) throw badRequest(`Bad subnets request: No default subnetpool found for IPv${input.ipVersion}.`, { type: 'BadRequest' });
      return pool;
    }
    return undefined;
  }

  private checkInPool(pool: SubnetPoolRow, c: Cidr): void {
    const prefixes = jsonFromDb<string[]>(pool.prefixes).map((p) => parseCidr(p)!);
    if (!prefixes.some((p) => c.first >= p.first && c.last <= p.last)) {
      throw badRequest(`Unable to allocate subnet with prefix length ${c.prefix}, the subnet pool does not contain ${c.text}.`, { type: 'SubnetAllocationError' });
    }
    if (c.prefix < pool.min_prefixlen || c.prefix > pool.max_prefixlen) {
      throw badRequest(`Unable to allocate subnet with prefix length ${c.prefix}, minimum allowed prefix is ${pool.min_prefixlen}.`, { type: 'SubnetAllocationError' });
    }
  }

  private async allocateFromPool(trx: Kysely<NeutronDB>, pool: SubnetPoolRow, prefixlen?: number): Promise<Cidr> {
    const len = prefixlen ?? pool.default_prefixlen;
    if (len < pool.min_prefixlen || len > pool.max_prefixlen) {
      throw badRequest(`Unable to allocate subnet with prefix length ${len}, minimum allowed prefix is ${pool.min_prefixlen}.`, { type: 'SubnetAllocationError' });
    }
    const used = (await trx.selectFrom('subnets').select('cidr').where('subnetpool_id', '=', pool.id).execute()).map((r) => parseCidr(r.cidr)!);
    for (const p of jsonFromDb<string[]>(pool.prefixes)) {
      const block = freeBlock(parseCidr(p)!, len, used);
      if (block) return block;
    }
    throw new ApiError('conflict', `Insufficient prefix space to allocate subnet size /${len}.`, { type: 'SubnetAllocationError' });
  }

  private async checkOverlap(trx: Kysely<NeutronDB>, net: NetworkRow, c: Cidr, projectId: string): Promise<void> {
    let q = trx.selectFrom('subnets').select(['cidr', 'id']);
    q = this.deps.config.allowOverlappingIps ? q.where('network_id', '=', net.id) : q.where('project_id', '=', projectId);
    for (const s of await q.execute()) {
      if (overlaps(parseCidr(s.cidr)!, c)) {
        throw invalid(`Requested subnet with cidr: ${c.text} for network: ${net.id} overlaps with another subnet.`);
      }
    }
  }

  checkIpv6Modes(c: Cidr, ra: string | null, addr: string | null, enableDhcp: boolean): void {
    if (ra === null && addr === null) return;
    if (c.version === 4) throw invalid('ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4.');
    for (const m of [ra, addr]) if (m !== null && !IPV6_MODES.includes(m)) throw badRequest(`Invalid input for ipv6_ra_mode. Reason: '${m}' is not in ${JSON.stringify(IPV6_MODES)}.`, { type: 'HTTPBadRequest' });
    if (!enableDhcp) throw invalid('ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False.');
    if (ra !== null && addr !== null && ra !== addr) {
      throw invalid(`ipv6_ra_mode set to '${ra}' with ipv6_address_mode set to '${addr}' is not valid. If both attributes are set, they must be the same value`);
    }
    if ((addr === 'slaac' || addr === 'dhcpv6-stateless' || ra === 'slaac' || ra === 'dhcpv6-stateless') && c.prefix !== 64) {
      throw invalid(`Invalid CIDR ${c.text} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64`);
    }
  }

  gateway(c: Cidr, requested: string | null | undefined): bigint | null {
    if (requested === null) return null;
    if (requested === undefined) return c.version === 4 && c.prefix >= 31 ? null : c.first + 1n;
    const g = ipToBig(requested);
    if (!g || g.version !== c.version) throw badRequest(`Invalid input for gateway_ip. Reason: '${requested}' is not a valid IP address.`, { type: 'HTTPBadRequest' });
    if (!contains(c, g.value) || (c.version === 4 && c.prefix < 31 && (g.value === c.first || g.value === c.last)) || (c.version === 6 && g.value === c.first)) {
      throw invalid(`Gateway is not valid on subnet.`);
    }
    return g.value;
  }

  pools(c: Cidr, gateway: bigint | null, requested: { start: string; end: string }[] | undefined): Pool[] {
    if (requested === undefined) return defaultPools(c, gateway);
    const pools = requested.map((p) => {
      const s = ipToBig(p.start);
      const e = ipToBig(p.end);
      if (!s || !e || s.version !== c.version || e.version !== c.version || s.value > e.value) {
        throw badRequest(`The allocation pool ${p.start}-${p.end} is not valid.`, { type: 'InvalidAllocationPool' });
      }
      if (!contains(c, s.value) || !contains(c, e.value)) {
        throw badRequest(`The allocation pool ${p.start}-${p.end} spans beyond the subnet cidr ${c.text}.`, { type: 'OutOfBoundsAllocationPool' });
      }
      return { start: s.value, end: e.value, text: `${p.start}-${p.end}` };
    });
    const sorted = [...pools].sort((a, b) => (a.start < b.start ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].start <= sorted[i - 1].end) {
        throw badRequest(`Found overlapping allocation pools: ${sorted[i - 1].text} and ${sorted[i].text} for subnet ${c.text}.`, { type: 'OverlappingAllocationPools' });
      }
    }
    if (gateway !== null) {
      const hit = pools.find((p) => gateway >= p.start && gateway <= p.end);
      if (hit) throw new ApiError('conflict', `Gateway ip ${bigToIp(c.version, gateway)} conflicts with allocation pool ${hit.text}`, { type: 'GatewayConflictWithAllocationPools' });
    }
    return sorted.map(({ start, end }) => ({ start, end }));
  }

  dns(list: string[]): string[] {
    if (list.length > this.deps.config.maxDnsNameservers) {
      throw badRequest(`Unable to complete operation for subnet. The number of DNS nameservers exceeds the limit ${this.deps.config.maxDnsNameservers}.`, { type: 'DNSNameServersExhausted' });
    }
    const seen = new Set<string>();
    for (const d of list) {
      if (!ipToBig(d)) throw badRequest(`Invalid input for dns_nameservers. Reason: '${d}' is not a valid nameserver.`, { type: 'HTTPBadRequest' });
      if (seen.has(d)) throw badRequest(`Invalid input for dns_nameservers. Reason: Duplicate nameserver '${d}'.`, { type: 'HTTPBadRequest' });
      seen.add(d);
    }
    return list;
  }

  routes(c: Cidr, list: { destination: string; nexthop: string }[]): { destination: string; nexthop: string }[] {
    if (list.length > this.deps.config.maxSubnetHostRoutes) {
      throw badRequest(`Unable to complete operation for subnet. The number of host routes exceeds the limit ${this.deps.config.maxSubnetHostRoutes}.`, { type: 'HostRoutesExhausted' });
    }
    return list.map((r) => {
      if (typeof r !== 'object' || r === null) throw badRequest(`Invalid input for host_routes. Reason: '${JSON.stringify(r)}' is not a dictionary.`, { type: 'HTTPBadRequest' });
      const d = parseCidr(String(r.destination));
      const n = ipToBig(String(r.nexthop));
      if (!d || !n) throw badRequest(`Invalid input for host_routes. Reason: '${JSON.stringify(r)}' is not a valid host route.`, { type: 'HTTPBadRequest' });
      if (d.version !== c.version || n.version !== c.version) throw invalid(`Invalid route ${JSON.stringify(r)} for subnet ${c.text}.`);
      return { destination: d.text, nexthop: bigToIp(n.version, n.value) };
    });
  }
}

export { isAutoAddressSubnet };
