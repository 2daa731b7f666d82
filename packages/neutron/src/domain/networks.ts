import { inTransaction } from '../db/transaction.ts';
import type { ExpressionBuilder, Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonToDb, type Database } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronConfig } from '../conf.ts';
import type { NetworkRow, NeutronDB, SegmentRow } from '../db/schema.ts';
import type { Hooks } from './hooks.ts';
import type { Segment, TypeDriver } from './ml2/type-driver.ts';
import type { QuotaRegistry } from './quotas.ts';
import { deleteTags } from './tags.ts';

export interface Viewer {
  projectId?: string;
  isAdmin: boolean;
}

export interface NetworkCreate {
  projectId: string;
  name?: string;
  description?: string;
  adminStateUp?: boolean;
  shared?: boolean;
  external?: boolean;
  mtu?: number;
  portSecurityEnabled?: boolean;
  availabilityZoneHints?: string[];
  dnsDomain?: string;
  provider?: Partial<Segment>;
}

/**
 * Networks a viewer may see: its own, shared ones (RBAC access_as_shared to
 * it or to everyone), external ones. Admins see all.
 */
export function networkScope(viewer: Viewer, table = 'networks') {
  if (viewer.isAdmin) return undefined;
  const p = viewer.projectId ?? '';
  return (eb: ExpressionBuilder<any, any>) =>
    eb.or([
      eb(`${table}.project_id`, '=', p),
      eb(`${table}.shared`, '=', 1),
      eb(`${table}.router_external`, '=', 1),
      eb(
        `${table}.id`,
        'in',
        eb
          .selectFrom('rbac_policies')
          .select('object_id')
          .where('object_type', '=', 'network')
          .where('action', 'in', ['access_as_shared', 'access_as_external'])
          .where('target_project', 'in', [p, '*']),
      ),
    ]);
}

export class NetworkService {
  constructor(
    private readonly deps: {
      database: Database<NeutronDB>;
      config: NeutronConfig;
      clock: Clock;
      ids: IdSource;
      typeDrivers: Map<string, TypeDriver>;
      quotas: QuotaRegistry;
      hooks: Hooks;
    },
  ) {}

  get db(): Kysely<NeutronDB> {
    return this.deps.database.db;
  }

  async syncAllocations(): Promise<void> {
    for (const d of this.deps.typeDrivers.values()) await d.syncAllocations(this.db);
  }

  async find(id: string, viewer: Viewer): Promise<NetworkRow | undefined> {
    let q = this.db.selectFrom('networks').selectAll('networks').where('networks.id', '=', id);
    const scope = networkScope(viewer);
    if (scope) q = q.where(scope);
    const row = await q.executeTakeFirst();
    return row && (await this.forViewer([row], viewer))[0];
  }

  /**
   * Rows as the viewer's policy checks must see them: `shared` is true for a
   * project a network is shared with by an RBAC entry naming it, as
   * upstream's per-context `shared` is.
   */
  async forViewer<T extends NetworkRow>(rows: T[], viewer: Viewer): Promise<T[]> {
    if (viewer.isAdmin) return rows;
    const candidates = rows.filter((r) => r.shared !== 1 && r.project_id !== viewer.projectId).map((r) => r.id);
    const toViewer = await this.sharedWith(candidates, viewer.projectId);
    return rows.map((r) => (toViewer.has(r.id) ? { ...r, shared: 1 } : r));
  }

  async segmentsOf(ids: string[]): Promise<Map<string, SegmentRow[]>> {
    const out = new Map<string, SegmentRow[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return out;
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db.selectFrom('network_segments').selectAll().where('network_id', 'in', ids.slice(i, i + 500)).orderBy('segment_index').execute();
      for (const r of rows) out.get(r.network_id)?.push(r);
    }
    return out;
  }

  async subnetIdsOf(ids: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>(ids.map((id) => [id, []]));
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db.selectFrom('subnets').select(['id', 'network_id']).where('network_id', 'in', ids.slice(i, i + 500)).orderBy('created_at').orderBy('id').execute();
      for (const r of rows) out.get(r.network_id)?.push(r.id);
    }
    return out;
  }

  /** Projects a network is shared with by RBAC (for `shared` as a project sees it). */
  async sharedWith(ids: string[], projectId: string | undefined): Promise<Set<string>> {
    if (ids.length === 0 || !projectId) return new Set();
    const rows = await this.db
      .selectFrom('rbac_policies')
      .select('object_id')
      .where('object_type', '=', 'network')
      .where('action', '=', 'access_as_shared')
      .where('target_project', '=', projectId)
      .where('object_id', 'in', ids)
      .execute();
    return new Set(rows.map((r) => r.object_id));
  }

  async create(trx: Kysely<NeutronDB>, input: NetworkCreate): Promise<NetworkRow> {
    const { config, clock, ids, quotas } = this.deps;
    await quotas.check(trx, input.projectId, 'network');
    const segment = await this.allocateSegment(trx, input.provider);
    const driver = this.deps.typeDrivers.get(segment.networkType)!;
    const maxMtu = driver.mtu(segment);
    const mtu = input.mtu ?? maxMtu;
    if (mtu > maxMtu) {
      throw badRequest(`Invalid input for operation: Requested MTU is too big, maximum is ${maxMtu}.`, { type: 'InvalidInput' });
    }
    const now = clock.now();
    const row: NetworkRow = {
      id: ids.uuid(),
      project_id: input.projectId,
      name: input.name ?? '',
      description: input.description ?? '',
      revision_number: 1,
      created_at: now,
      updated_at: now,
      status: 'ACTIVE',
      admin_state_up: input.adminStateUp === false ? 0 : 1,
      shared: input.shared ? 1 : 0,
      router_external: input.external ? 1 : 0,
      is_default: 0,
      mtu,
      port_security_enabled: input.portSecurityEnabled === false ? 0 : 1,
      availability_zone_hints: jsonToDb(input.availabilityZoneHints ?? []),
      dns_domain: input.dnsDomain ?? null,
    };
    await trx.insertInto('networks').values(row).execute();
    await trx
      .insertInto('network_segments')
      .values({ id: ids.uuid(), network_id: row.id, network_type: segment.networkType, physical_network: segment.physicalNetwork, segmentation_id: segment.segmentationId, segment_index: 0 })
      .execute();
    if (input.shared) await this.addRbac(trx, row.id, input.projectId, 'access_as_shared', '*');
    if (input.external) await this.addRbac(trx, row.id, input.projectId, 'access_as_external', '*');
    return row;
  }

  private async addRbac(trx: Kysely<NeutronDB>, networkId: string, projectId: string, action: string, target: string) {
    await trx.insertInto('rbac_policies').values({ id: this.deps.ids.uuid(), project_id: projectId, object_type: 'network', object_id: networkId, action, target_project: target }).execute();
  }

  private async allocateSegment(trx: Kysely<NeutronDB>, provider: Partial<Segment> | undefined): Promise<Segment> {
    const { typeDrivers, config } = this.deps;
    if (provider && provider.networkType !== undefined) {
      const driver = typeDrivers.get(provider.networkType);
      if (!driver) throw badRequest(`Invalid input for operation: network_type value '${provider.networkType}' not supported.`, { type: 'InvalidInput' });
      return driver.reserveProvider(trx, driver.validateProvider(provider));
    }
    if (provider && (provider.physicalNetwork != null || provider.segmentationId != null)) {
      throw badRequest('Invalid input for operation: provider:network_type required.', { type: 'InvalidInput' });
    }
    for (const type of config.tenantNetworkTypes) {
      const driver = typeDrivers.get(type);
      if (!driver || !driver.capabilities.tenantAllocatable) continue;
      const seg = await driver.allocateTenant(trx);
      if (seg) return seg;
    }
    throw new ApiError('service_unavailable', 'Unable to create the network. No tenant network is available for allocation.', { type: 'NoNetworkAvailable' });
  }

  async update(trx: Kysely<NeutronDB>, net: NetworkRow, changes: Partial<NetworkRow>): Promise<NetworkRow> {
    if (changes.mtu !== undefined) {
      const seg = (await trx.selectFrom('network_segments').selectAll().where('network_id', '=', net.id).orderBy('segment_index').executeTakeFirst())!;
      const max = this.deps.typeDrivers.get(seg.network_type)?.mtu({ networkType: seg.network_type, physicalNetwork: seg.physical_network, segmentationId: seg.segmentation_id }) ?? this.deps.config.globalPhysnetMtu;
      if (changes.mtu > max) throw badRequest(`Invalid input for operation: Requested MTU is too big, maximum is ${max}.`, { type: 'InvalidInput' });
    }
    if (changes.shared !== undefined && changes.shared !== net.shared) {
      if (changes.shared) await this.addRbac(trx, net.id, net.project_id ?? '', 'access_as_shared', '*');
      else {
        await this.assertNotUsedByOthers(trx, net, '*');
        await trx.deleteFrom('rbac_policies').where('object_type', '=', 'network').where('object_id', '=', net.id).where('action', '=', 'access_as_shared').where('target_project', '=', '*').execute();
      }
    }
    if (changes.router_external !== undefined && changes.router_external !== net.router_external) {
      if (changes.router_external) await this.addRbac(trx, net.id, net.project_id ?? '', 'access_as_external', '*');
      else await trx.deleteFrom('rbac_policies').where('object_type', '=', 'network').where('object_id', '=', net.id).where('action', '=', 'access_as_external').execute();
    }
    const next = { ...changes, revision_number: net.revision_number + 1, updated_at: Math.max(this.deps.clock.now(), net.updated_at) };
    const r = await trx.updateTable('networks').set(next).where('id', '=', net.id).where('revision_number', '=', net.revision_number).executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Network ${net.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
    return { ...net, ...next };
  }

  /**
   * Upstream's InvalidSharedSetting / RbacPolicyInUse: a network cannot stop
   * being shared while other projects have ports on it, unless another policy
   * still grants them access.
   */
  async assertNotUsedByOthers(trx: Kysely<NeutronDB>, net: NetworkRow, target: string): Promise<void> {
    let q = trx.selectFrom('ports').select('project_id').where('network_id', '=', net.id).where('project_id', '!=', net.project_id ?? '').where('device_owner', 'not like', 'network:%');
    if (target !== '*') q = q.where('project_id', '=', target);
    const others = await q.execute();
    if (others.length === 0) return;
    const remaining = await trx
      .selectFrom('rbac_policies')
      .select('target_project')
      .where('object_type', '=', 'network')
      .where('object_id', '=', net.id)
      .where('action', '=', 'access_as_shared')
      .where('target_project', '!=', target)
      .execute();
    const still = new Set(remaining.map((r) => r.target_project));
    if (still.has('*')) return;
    if (others.some((o) => !still.has(o.project_id ?? ''))) {
      throw new ApiError('conflict', `Unable to reconfigure sharing settings for network ${net.id}. Multiple tenants are using it.`, { type: 'InvalidSharedSetting' });
    }
  }

  /**
   * Deletes a network: ports that only exist for it (DHCP) go with it, any
   * other port makes it NetworkInUse (409); subnets, segments (released to
   * their type driver), RBAC entries and tags go.
   */
  async delete(net: NetworkRow, onPortDeleted: (trx: Kysely<NeutronDB>, portId: string) => Promise<void>): Promise<string[]> {
    return inTransaction(this.deps.database, async (trx) => {
      const ports = await trx.selectFrom('ports').selectAll().where('network_id', '=', net.id).execute();
      const inUse = ports.filter((p) => !AUTO_DELETED_OWNERS.includes(p.device_owner));
      if (inUse.length > 0) {
        throw new ApiError('conflict', `Unable to complete operation on network ${net.id}. There are one or more ports still in use on the network.`, { type: 'NetworkInUse' });
      }
      for (const h of this.deps.hooks.networkDeleting) await h(trx, net.id);
      for (const p of ports) {
        for (const h of this.deps.hooks.portDeleting) await h(trx, p, false);
        await onPortDeleted(trx, p.id);
      }
      const subnets = await trx.selectFrom('subnets').select('id').where('network_id', '=', net.id).execute();
      for (const s of subnets) {
        for (const h of this.deps.hooks.subnetDeleting) await h(trx, s.id);
        await deleteTags(trx, s.id);
      }
      await trx.deleteFrom('subnets').where('network_id', '=', net.id).execute();
      const segments = await trx.selectFrom('network_segments').selectAll().where('network_id', '=', net.id).execute();
      for (const s of segments) {
        const seg = { networkType: s.network_type, physicalNetwork: s.physical_network, segmentationId: s.segmentation_id };
        await this.deps.typeDrivers.get(s.network_type)?.release(trx, seg);
      }
      await trx.deleteFrom('network_segments').where('network_id', '=', net.id).execute();
      await trx.deleteFrom('rbac_policies').where('object_type', '=', 'network').where('object_id', '=', net.id).execute();
      await deleteTags(trx, net.id);
      await trx.deleteFrom('networks').where('id', '=', net.id).execute();
      return ports.map((p) => p.id);
    });
  }
}

/** Ports that exist only for their network and go with it (upstream's AUTO_DELETE_PORT_OWNERS). */
export const AUTO_DELETED_OWNERS = ['network:dhcp'];
