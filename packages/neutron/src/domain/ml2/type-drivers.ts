import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { insertIgnoringDuplicates, isUniqueViolation } from '@onestack/core/db/index.ts';
import type { NeutronConfig, VlanRange } from '../../conf.ts';
import type { NeutronDB } from '../../db/schema.ts';
import type { Segment, TypeDriver } from './type-driver.ts';

/** VXLAN over IPv4 costs 50 bytes of the physical MTU (upstream's VXLAN_ENCAP_OVERHEAD + IPv4 header). */
const VXLAN_OVERHEAD = 50;
const CLAIM_ATTEMPTS = 20;

const invalid = (msg: string) => badRequest(`Invalid input for operation: ${msg}.`, { type: 'InvalidInput' });

function noSegmentation(type: string, seg: Partial<Segment>): void {
  if (seg.segmentationId !== undefined && seg.segmentationId !== null) throw invalid(`segmentation_id not allowed for ${type} provider network`);
}

export class LocalTypeDriver implements TypeDriver {
  readonly type = 'local';
  readonly capabilities = { tenantAllocatable: true, needsPhysnet: false };
  constructor(private readonly config: Pick<NeutronConfig, 'globalPhysnetMtu'>) {}
  validateProvider(seg: Partial<Segment>): Segment {
    if (seg.physicalNetwork) throw invalid('physical_network not allowed for local provider network');
    noSegmentation('local', seg);
    return { networkType: 'local', physicalNetwork: null, segmentationId: null };
  }
  async reserveProvider(_trx: Kysely<NeutronDB>, seg: Segment) {
    return seg;
  }
  async allocateTenant() {
    return { networkType: 'local', physicalNetwork: null, segmentationId: null };
  }
  async release() {}
  async syncAllocations() {}
  mtu() {
    return this.config.globalPhysnetMtu;
  }
}

function physnetMtu(config: Pick<NeutronConfig, 'globalPhysnetMtu' | 'physnetMtus'>, physnet: string | null): number {
  return (physnet && config.physnetMtus.get(physnet)) || config.globalPhysnetMtu;
}

export class FlatTypeDriver implements TypeDriver {
  readonly type = 'flat';
  readonly capabilities = { tenantAllocatable: false, needsPhysnet: true };
  constructor(private readonly config: Pick<NeutronConfig, 'flatNetworks' | 'globalPhysnetMtu' | 'physnetMtus'>) {}
  validateProvider(seg: Partial<Segment>): Segment {
    if (!seg.physicalNetwork) throw invalid('physical_network required for flat provider network');
    noSegmentation('flat', seg);
    if (!this.config.flatNetworks.includes('*') && !this.config.flatNetworks.includes(seg.physicalNetwork)) {
      throw invalid(`physical_network '${seg.physicalNetwork}' unknown for flat provider network`);
    }
    return { networkType: 'flat', physicalNetwork: seg.physicalNetwork, segmentationId: null };
  }
  async reserveProvider(trx: Kysely<NeutronDB>, seg: Segment) {
    try {
      await trx.insertInto('ml2_flat_allocations').values({ physical_network: seg.physicalNetwork! }).execute();
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      throw new ApiError('conflict', `Unable to create the flat network. Physical network ${seg.physicalNetwork} is in use.`, { type: 'FlatNetworkInUse' });
    }
    return seg;
  }
  async allocateTenant() {
    return undefined;
  }
  async release(trx: Kysely<NeutronDB>, seg: Segment) {
    await trx.deleteFrom('ml2_flat_allocations').where('physical_network', '=', seg.physicalNetwork!).execute();
  }
  async syncAllocations() {}
  mtu(seg: Segment) {
    return physnetMtu(this.config, seg.physicalNetwork);
  }
}

/** Claims one free id of a pre-populated allocation table by compare-and-swap, retrying on a lost race. */
async function claimFree(candidates: () => Promise<number[]>, claim: (id: number) => Promise<boolean>): Promise<number | undefined> {
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    const free = await candidates();
    if (free.length === 0) return undefined;
    // A random pick among the first free ids keeps concurrent allocators from all racing for the same row.
    const id = free[Math.floor(Math.random() * free.length)];
    if (await claim(id)) return id;
  }
  throw new ApiError('conflict', 'Unable to allocate a segment after several attempts; retry the request.', { type: 'RetryRequest' });
}

export class VlanTypeDriver implements TypeDriver {
  readonly type = 'vlan';
  readonly capabilities = { tenantAllocatable: true, needsPhysnet: true, segmentationIdRange: [1, 4094] as [number, number] };
  private readonly ranges: VlanRange[];
  constructor(private readonly config: Pick<NeutronConfig, 'vlanRanges' | 'globalPhysnetMtu' | 'physnetMtus'>) {
    this.ranges = config.vlanRanges;
  }
  private inRange(physnet: string, id: number): boolean {
    return this.ranges.some((r) => r.physnet === physnet && r.min !== undefined && id >= r.min && id <= r.max!);
  }
  validateProvider(seg: Partial<Segment>): Segment {
    if (!seg.physicalNetwork) throw invalid('physical_network required for VLAN provider network');
    if (!this.ranges.some((r) => r.physnet === seg.physicalNetwork)) throw invalid(`physical_network '${seg.physicalNetwork}' unknown for VLAN provider network`);
    const id = seg.segmentationId;
    if (id !== undefined && id !== null && (!Number.isInteger(id) || id < 1 || id > 4094)) {
      throw invalid(`segmentation_id out of range (1 through 4094)`);
    }
    return { networkType: 'vlan', physicalNetwork: seg.physicalNetwork, segmentationId: id ?? null };
  }
  async reserveProvider(trx: Kysely<NeutronDB>, seg: Segment): Promise<Segment> {
    const physnet = seg.physicalNetwork!;
    if (seg.segmentationId === null) {
      const id = await claimFree(
        () => this.freeIds(trx, physnet),
        (vid) => this.claim(trx, physnet, vid),
      );
      if (id === undefined) throw noneAvailable();
      return { ...seg, segmentationId: id };
    }
    const vid = seg.segmentationId;
    const inUse = () =>
      new ApiError('conflict', `Unable to create the network. The VLAN ${vid} on physical network ${physnet} is in use.`, { type: 'VlanIdInUse' });
    if (this.inRange(physnet, vid)) {
      if (!(await this.claim(trx, physnet, vid))) throw inUse();
      return seg;
    }
    try {
      await trx.insertInto('ml2_vlan_allocations').values({ physical_network: physnet, vlan_id: vid, allocated: 1 }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw inUse();
      throw e;
    }
    return seg;
  }
  private async freeIds(trx: Kysely<NeutronDB>, physnet?: string): Promise<number[]> {
    let q = trx.selectFrom('ml2_vlan_allocations').select(['vlan_id']).where('allocated', '=', 0).orderBy('physical_network').orderBy('vlan_id').limit(16);
    if (physnet) q = q.where('physical_network', '=', physnet);
    return (await q.execute()).map((r) => Number(r.vlan_id));
  }
  private async claim(trx: Kysely<NeutronDB>, physnet: string, vid: number): Promise<boolean> {
    const r = await trx.updateTable('ml2_vlan_allocations').set({ allocated: 1 }).where('physical_network', '=', physnet).where('vlan_id', '=', vid).where('allocated', '=', 0).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async allocateTenant(trx: Kysely<NeutronDB>): Promise<Segment | undefined> {
    for (const physnet of [...new Set(this.ranges.filter((r) => r.min !== undefined).map((r) => r.physnet))]) {
      const id = await claimFree(
        () => this.freeIds(trx, physnet),
        (vid) => this.claim(trx, physnet, vid),
      );
      if (id !== undefined) return { networkType: 'vlan', physicalNetwork: physnet, segmentationId: id };
    }
    return undefined;
  }
  async release(trx: Kysely<NeutronDB>, seg: Segment): Promise<void> {
    const where = (q: any) => q.where('physical_network', '=', seg.physicalNetwork!).where('vlan_id', '=', seg.segmentationId!);
    if (this.inRange(seg.physicalNetwork!, seg.segmentationId!)) await where(trx.updateTable('ml2_vlan_allocations').set({ allocated: 0 })).execute();
    else await where(trx.deleteFrom('ml2_vlan_allocations')).execute();
  }
  async syncAllocations(db: Kysely<NeutronDB>): Promise<void> {
    for (const r of this.ranges) {
      if (r.min === undefined) continue;
      const rows = [];
      for (let v = r.min; v <= r.max!; v++) rows.push({ physical_network: r.physnet, vlan_id: v, allocated: 0 });
      for (let i = 0; i < rows.length; i += 500) await insertIgnoringDuplicates(db, 'ml2_vlan_allocations', rows.slice(i, i + 500)).execute();
    }
    // Free ids no range covers any more go; allocated ones stay until their network does.
    const all = await db.selectFrom('ml2_vlan_allocations').select(['physical_network', 'vlan_id']).where('allocated', '=', 0).execute();
    for (const row of all) {
      if (!this.inRange(row.physical_network, Number(row.vlan_id))) {
        await db.deleteFrom('ml2_vlan_allocations').where('physical_network', '=', row.physical_network).where('vlan_id', '=', row.vlan_id).where('allocated', '=', 0).execute();
      }
    }
  }
  mtu(seg: Segment) {
    return physnetMtu(this.config, seg.physicalNetwork);
  }
}

function noneAvailable(): ApiError {
  return new ApiError('service_unavailable', 'Unable to create the network. No tenant network is available for allocation.', { type: 'NoNetworkAvailable' });
}

export class VxlanTypeDriver implements TypeDriver {
  readonly type = 'vxlan';
  readonly capabilities = { tenantAllocatable: true, needsPhysnet: false, segmentationIdRange: [1, 16777215] as [number, number] };
  constructor(private readonly config: Pick<NeutronConfig, 'vniRanges' | 'globalPhysnetMtu'>) {}
  private inRange(vni: number): boolean {
    return this.config.vniRanges.some((r) => vni >= r.min && vni <= r.max);
  }
  validateProvider(seg: Partial<Segment>): Segment {
    if (seg.physicalNetwork) throw invalid('physical_network not allowed for vxlan provider network');
    const id = seg.segmentationId;
    if (id !== undefined && id !== null && (!Number.isInteger(id) || id < 1 || id > 16777215)) throw invalid('segmentation_id out of range (1 through 16777215)');
    return { networkType: 'vxlan', physicalNetwork: null, segmentationId: id ?? null };
  }
  private async claim(trx: Kysely<NeutronDB>, vni: number): Promise<boolean> {
    const r = await trx.updateTable('ml2_vxlan_allocations').set({ allocated: 1 }).where('vxlan_vni', '=', vni).where('allocated', '=', 0).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  private async freeIds(trx: Kysely<NeutronDB>): Promise<number[]> {
    const rows = await trx.selectFrom('ml2_vxlan_allocations').select('vxlan_vni').where('allocated', '=', 0).orderBy('vxlan_vni').limit(16).execute();
    return rows.map((r) => Number(r.vxlan_vni));
  }
  async reserveProvider(trx: Kysely<NeutronDB>, seg: Segment): Promise<Segment> {
    if (seg.segmentationId === null) {
      const got = await this.allocateTenant(trx);
      if (!got) throw noneAvailable();
      return got;
    }
    const vni = seg.segmentationId;
    const inUse = () => new ApiError('conflict', `Unable to create the network. The tunnel ID ${vni} is in use.`, { type: 'TunnelIdInUse' });
    if (this.inRange(vni)) {
      if (!(await this.claim(trx, vni))) throw inUse();
      return seg;
    }
    try {
      await trx.insertInto('ml2_vxlan_allocations').values({ vxlan_vni: vni, allocated: 1 }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw inUse();
      throw e;
    }
    return seg;
  }
  async allocateTenant(trx: Kysely<NeutronDB>): Promise<Segment | undefined> {
    const vni = await claimFree(
      () => this.freeIds(trx),
      (v) => this.claim(trx, v),
    );
    return vni === undefined ? undefined : { networkType: 'vxlan', physicalNetwork: null, segmentationId: vni };
  }
  async release(trx: Kysely<NeutronDB>, seg: Segment): Promise<void> {
    if (this.inRange(seg.segmentationId!)) await trx.updateTable('ml2_vxlan_allocations').set({ allocated: 0 }).where('vxlan_vni', '=', seg.segmentationId!).execute();
    else await trx.deleteFrom('ml2_vxlan_allocations').where('vxlan_vni', '=', seg.segmentationId!).execute();
  }
  async syncAllocations(db: Kysely<NeutronDB>): Promise<void> {
    for (const r of this.config.vniRanges) {
      for (let start = r.min; start <= r.max; start += 500) {
        const rows = [];
        for (let v = start; v <= Math.min(r.max, start + 499); v++) rows.push({ vxlan_vni: v, allocated: 0 });
        await insertIgnoringDuplicates(db, 'ml2_vxlan_allocations', rows).execute();
      }
    }
    const free = await db.selectFrom('ml2_vxlan_allocations').select('vxlan_vni').where('allocated', '=', 0).execute();
    const stale = free.map((r) => Number(r.vxlan_vni)).filter((v) => !this.inRange(v));
    for (let i = 0; i < stale.length; i += 500) {
      await db.deleteFrom('ml2_vxlan_allocations').where('vxlan_vni', 'in', stale.slice(i, i + 500)).where('allocated', '=', 0).execute();
    }
  }
  mtu() {
    return this.config.globalPhysnetMtu - VXLAN_OVERHEAD;
  }
}

/** The type drivers [ml2] type_drivers enables. */
export function createTypeDrivers(config: NeutronConfig): Map<string, TypeDriver> {
  const all: Record<string, () => TypeDriver> = {
    local: () => new LocalTypeDriver(config),
    flat: () => new FlatTypeDriver(config),
    vlan: () => new VlanTypeDriver(config),
    vxlan: () => new VxlanTypeDriver(config),
  };
  return new Map(config.typeDrivers.map((t) => [t, all[t]()]));
}
