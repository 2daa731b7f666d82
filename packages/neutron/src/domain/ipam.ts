import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonFromDb } from '@onestack/core/db/index.ts';
import { MysqlAdapter } from 'kysely';
import type { NeutronDB, SubnetRow } from '../db/schema.ts';
import { bigToIp, contains, eui64, freeAddresses, ipToBig, parseCidr, type Pool } from './addresses.ts';

/** A fixed IP a port asks for: a subnet, an address, or both. */
export interface FixedIpRequest {
  subnetId?: string;
  ipAddress?: string;
}

export interface Allocation {
  subnetId: string;
  ipAddress: string;
}

const ROUTER_OWNERS = ['network:router_interface', 'network:router_gateway', 'network:ha_router_replicated_interface', 'network:router_interface_distributed', 'network:router_centralized_snat'];
const CANDIDATES = 16;
const ATTEMPTS = 10;

export function isAutoAddressSubnet(s: Pick<SubnetRow, 'ip_version' | 'ipv6_address_mode'>): boolean {
  return s.ip_version === 6 && (s.ipv6_address_mode === 'slaac' || s.ipv6_address_mode === 'dhcpv6-stateless');
}

export function poolsOf(s: SubnetRow): Pool[] {
  return jsonFromDb<{ start: string; end: string }[]>(s.allocation_pools).map((p) => ({ start: ipToBig(p.start)!.value, end: ipToBig(p.end)!.value }));
}

/**
 * Inserts one allocation unless the address is taken, without aborting the
 * surrounding transaction (PostgreSQL aborts it on a unique violation):
 * ON CONFLICT DO NOTHING / INSERT IGNORE and a look at the row count.
 */
async function tryInsert(trx: Kysely<NeutronDB>, row: NeutronDB['ipallocations']): Promise<boolean> {
  const q = trx.insertInto('ipallocations').values(row);
  const r = await (trx.getExecutor().adapter instanceof MysqlAdapter ? q.ignore() : q.onConflict((oc) => oc.doNothing())).executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
}

/**
 * Upstream's pluggable IPAM with the internal driver: addresses come from a
 * subnet's allocation pools, never twice (the primary key (subnet, address)
 * decides between concurrent requests; the loser retries with another
 * address), the gateway is never handed out unless a router asks for it, and
 * SLAAC/DHCPv6-stateless subnets give every port its EUI-64 address.
 */
export class Ipam {
  /** Allocates the port's addresses on `networkId` for the requested fixed IPs (none: upstream's defaults). */
  async allocate(
    trx: Kysely<NeutronDB>,
    port: { id: string; networkId: string; mac: string; deviceOwner: string },
    requests: FixedIpRequest[] | undefined,
    opts: { addAutoAddress?: boolean } = {},
  ): Promise<Allocation[]> {
    const subnets = await trx.selectFrom('subnets').selectAll().where('network_id', '=', port.networkId).orderBy('created_at').orderBy('id').execute();
    const isRouter = ROUTER_OWNERS.includes(port.deviceOwner);
    const out: Allocation[] = [];
    const plan: { subnet: SubnetRow; ip?: bigint }[] = [];
    if (requests === undefined) {
      const v4 = subnets.filter((s) => s.ip_version === 4);
      const v6Stateful = subnets.filter((s) => s.ip_version === 6 && !isAutoAddressSubnet(s));
      // One address from the first v4 subnet with room, one from the first stateful v6 subnet.
      for (const family of [v4, v6Stateful]) {
        let lastErr: unknown;
        for (const s of family) {
          try {
            out.push(await this.allocateFrom(trx, s, port, undefined, isRouter));
            lastErr = undefined;
            break;
          } catch (e) {
            lastErr = e;
          }
        }
        if (lastErr) throw lastErr;
      }
      if (!isRouter) for (const s of subnets.filter(isAutoAddressSubnet)) out.push(await this.allocateFrom(trx, s, port, undefined, isRouter));
      return out;
    }
    for (const r of requests) {
      let subnet: SubnetRow | undefined;
      let ip: bigint | undefined;
      if (r.ipAddress !== undefined) {
        const parsed = ipToBig(r.ipAddress);
        if (!parsed) throw badRequest(`Invalid input for operation: '${r.ipAddress}' is not a valid IP address.`, { type: 'InvalidInput' });
        ip = parsed.value;
        if (r.subnetId !== undefined) {
          subnet = subnets.find((s) => s.id === r.subnetId);
          if (!subnet) throw badRequest(`Invalid input for operation: Failed to create port on network ${port.networkId}, because fixed_ips included invalid subnet ${r.subnetId}.`, { type: 'InvalidInput' });
          const c = parseCidr(subnet.cidr)!;
          if (c.version !== parsed.version || !contains(c, ip)) {
            throw badRequest(`IP address ${r.ipAddress} is not a valid IP for the specified subnet.`, { type: 'InvalidIpForSubnet' });
          }
        } else {
          subnet = subnets.find((s) => {
            const c = parseCidr(s.cidr)!;
            return c.version === parsed.version && contains(c, ip!);
          });
          if (!subnet) throw badRequest(`IP address ${r.ipAddress} is not a valid IP for any of the subnets on the specified network.`, { type: 'InvalidIpForNetwork' });
        }
      } else if (r.subnetId !== undefined) {
        subnet = subnets.find((s) => s.id === r.subnetId);
        if (!subnet) throw badRequest(`Invalid input for operation: Failed to create port on network ${port.networkId}, because fixed_ips included invalid subnet ${r.subnetId}.`, { type: 'InvalidInput' });
      } else {
        throw badRequest('Invalid input for operation: IP allocation requires subnet_id or ip_address.', { type: 'InvalidInput' });
      }
      if (ip === undefined && isAutoAddressSubnet(subnet) && !isRouter) ip = eui64(parseCidr(subnet.cidr)!, port.mac);
      if (plan.some((p) => p.subnet.id === subnet!.id && p.ip === ip && ip !== undefined)) {
        throw badRequest('Invalid input for operation: Duplicate IP address.', { type: 'InvalidInput' });
      }
      plan.push({ subnet, ip });
    }
    // As upstream, every port but a router's also gets its address on each SLAAC/DHCPv6-stateless subnet it did not name.
    if (opts.addAutoAddress && !isRouter) {
      for (const s of subnets.filter(isAutoAddressSubnet)) if (!plan.some((p) => p.subnet.id === s.id)) plan.push({ subnet: s });
    }
    for (const p of plan) out.push(await this.allocateFrom(trx, p.subnet, port, p.ip, isRouter));
    return out;
  }

  private async allocateFrom(trx: Kysely<NeutronDB>, s: SubnetRow, port: { id: string; networkId: string; mac: string }, ip: bigint | undefined, isRouter: boolean): Promise<Allocation> {
    const c = parseCidr(s.cidr)!;
    if (ip === undefined && isAutoAddressSubnet(s) && !isRouter) ip = eui64(c, port.mac);
    if (ip !== undefined) {
      const text = bigToIp(c.version, ip);
      const gw = s.gateway_ip ? ipToBig(s.gateway_ip)!.value : null;
      if (gw === ip && !isRouter) {
        throw new ApiError('conflict', `IP address ${text} already allocated in subnet ${s.id}`, { type: 'IpAddressAlreadyAllocated' });
      }
      if (c.version === 4 && c.prefix < 31 && (ip === c.first || ip === c.last)) {
        throw badRequest(`IP address ${text} is not a valid IP for the specified subnet.`, { type: 'InvalidIpForSubnet' });
      }
      if (!(await tryInsert(trx, { subnet_id: s.id, ip_address: text, port_id: port.id, network_id: port.networkId }))) {
        throw new ApiError('conflict', `IP address ${text} already allocated in subnet ${s.id}`, { type: 'IpAddressAlreadyAllocated' });
      }
      return { subnetId: s.id, ipAddress: text };
    }
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const taken = new Set(
        (await trx.selectFrom('ipallocations').select('ip_address').where('subnet_id', '=', s.id).execute()).map((r) => ipToBig(r.ip_address)!.value),
      );
      const free = freeAddresses(poolsOf(s), taken, CANDIDATES);
      if (free.length === 0) break;
      // The lowest free address first, as upstream's internal driver tends to hand out; a lost race moves on to a random other one.
      const pick = attempt === 0 ? free[0] : free[Math.floor(Math.random() * free.length)];
      const text = bigToIp(c.version, pick);
      if (await tryInsert(trx, { subnet_id: s.id, ip_address: text, port_id: port.id, network_id: port.networkId })) return { subnetId: s.id, ipAddress: text };
    }
    throw new ApiError('conflict', `No more IP addresses available on network ${port.networkId}.`, { type: 'IpAddressGenerationFailure' });
  }

  async release(trx: Kysely<NeutronDB>, portId: string, keep: Allocation[] = []): Promise<void> {
    const rows = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', portId).execute();
    for (const r of rows) {
      if (keep.some((k) => k.subnetId === r.subnet_id && k.ipAddress === r.ip_address)) continue;
      await trx.deleteFrom('ipallocations').where('subnet_id', '=', r.subnet_id).where('ip_address', '=', r.ip_address).execute();
    }
  }
}
