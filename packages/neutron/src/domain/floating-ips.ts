import type { Kysely } from 'kysely';
import { ApiError } from '@onestack/core/errors.ts';
import { isUniqueViolation, withTransaction, type Database } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronDB, PortRow } from '../db/schema.ts';
import type { FloatingIpRow } from '../db/router-schema.ts';
import { ipToBig } from './addresses.ts';
import type { Hooks } from './hooks.ts';
import { externalGatewayNotFound, externalIpExhausted, fipBadRequest, fipPortAlreadyAssociated, networkNotFound, portNotFound } from './l3-errors.ts';
import type { PortRules } from './ports.ts';
import type { QuotaRegistry } from './quotas.ts';
import { OWNER_FLOATINGIP, OWNER_GATEWAY, OWNER_INTERFACE, type RouterService } from './routers.ts';
import { deleteTags } from './tags.ts';

export interface FloatingIpCreate {
  projectId: string;
  floatingNetworkId: string;
  floatingIpAddress?: string;
  subnetId?: string;
  portId?: string | null;
  fixedIpAddress?: string;
  description?: string;
}

export interface FloatingIpChanges {
  /** null disassociates; undefined keeps (and re-checks) the current association. */
  portId?: string | null;
  fixedIpAddress?: string;
  description?: string;
}

interface Association {
  portId: string | null;
  fixedIp: string | null;
  routerId: string | null;
}

/**
 * Floating IPs as upstream's l3_db keeps them: an address on an external
 * network held by a port of its own (network:floatingip), optionally
 * associated with one IPv4 fixed IP of a port whose subnet a router connects
 * to that external network (the router is found, never given).
 */
export class FloatingIpService {
  constructor(
    private readonly deps: { database: Database<NeutronDB>; clock: Clock; ids: IdSource; quotas: QuotaRegistry; hooks: Hooks; ports: PortRules; routers: RouterService },
  ) {}

  get db(): Kysely<NeutronDB> {
    return this.deps.database.db;
  }

  async find(id: string): Promise<FloatingIpRow | undefined> {
    return this.db.selectFrom('floatingips').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async create(input: FloatingIpCreate, isAdmin: boolean): Promise<FloatingIpRow> {
    let created: PortRow | undefined;
    const row = await uniqueAsConflict(() =>
      withTransaction(this.deps.database, async (trx) => {
        const net = await trx.selectFrom('networks').selectAll().where('id', '=', input.floatingNetworkId).executeTakeFirst();
        if (!net) throw networkNotFound(input.floatingNetworkId);
        if (net.router_external !== 1) throw fipBadRequest(`Network ${net.id} is not a valid external network`);
        const v4 = await trx.selectFrom('subnets').select('id').where('network_id', '=', net.id).where('ip_version', '=', 4).executeTakeFirst();
        if (!v4) throw fipBadRequest(`Network ${net.id} does not contain any IPv4 subnet`);
        await this.deps.quotas.check(trx, input.projectId, 'floatingip');
        const id = this.deps.ids.uuid();
        const fixed = input.subnetId !== undefined || input.floatingIpAddress !== undefined ? [{ subnetId: input.subnetId, ipAddress: input.floatingIpAddress }] : undefined;
        // The FIP's port belongs to no project: only the system and admins handle it, as upstream.
        const port = await this.deps.ports.create(trx, net, { projectId: '', name: '', deviceId: id, deviceOwner: OWNER_FLOATINGIP, adminStateUp: true, fixedIps: fixed }, { quota: false });
        await trx.updateTable('ports').set({ status: 'N/A' }).where('id', '=', port.id).execute();
        created = { ...port, status: 'N/A' };
        const allocs = await trx.selectFrom('ipallocations').select('ip_address').where('port_id', '=', port.id).execute();
        const address = allocs.map((a) => a.ip_address).find((a) => ipToBig(a)?.version === 4);
        if (!address) throw externalIpExhausted(net.id);
        const now = this.deps.clock.now();
        const fip: FloatingIpRow = {
          id,
          project_id: input.projectId,
          name: '',
          description: input.description ?? '',
          revision_number: 1,
          created_at: now,
          updated_at: now,
          floating_ip_address: address,
          floating_network_id: net.id,
          floating_port_id: port.id,
          fixed_port_id: null,
          fixed_ip_address: null,
          router_id: null,
          last_known_router_id: null,
          status: 'DOWN',
        };
        if (input.portId) {
          const a = await this.associate(trx, fip, input.portId, input.fixedIpAddress, isAdmin);
          Object.assign(fip, { fixed_port_id: a.portId, fixed_ip_address: a.fixedIp, router_id: a.routerId, status: 'ACTIVE' });
        } else if (input.fixedIpAddress !== undefined) {
          throw fipBadRequest('fixed_ip_address cannot be specified without a port_id');
        }
        await trx.insertInto('floatingips').values(fip).execute();
        return fip;
      }),
    );
    if (created) this.portChanged('create', created);
    if (row.router_id) this.deps.routers.notifyChanged([row.router_id]);
    return row;
  }

  async update(fip: FloatingIpRow, changes: FloatingIpChanges, isAdmin: boolean): Promise<FloatingIpRow> {
    const updated = await uniqueAsConflict(() =>
      withTransaction(this.deps.database, async (trx) => {
        let a: Association;
        if (changes.portId === null) {
          if (changes.fixedIpAddress !== undefined) throw fipBadRequest('fixed_ip_address cannot be specified without a port_id');
          a = { portId: null, fixedIp: null, routerId: null };
        } else if (changes.portId !== undefined) {
          a = await this.associate(trx, fip, changes.portId, changes.fixedIpAddress, isAdmin);
        } else if (changes.fixedIpAddress !== undefined && !fip.fixed_port_id) {
          throw fipBadRequest('fixed_ip_address cannot be specified without a port_id');
        } else if (fip.fixed_port_id) {
          a = await this.associate(trx, fip, fip.fixed_port_id, changes.fixedIpAddress ?? fip.fixed_ip_address ?? undefined, isAdmin);
        } else {
          a = { portId: null, fixedIp: null, routerId: null };
        }
        const next: Partial<FloatingIpRow> = {
          fixed_port_id: a.portId,
          fixed_ip_address: a.fixedIp,
          router_id: a.routerId,
          last_known_router_id: fip.router_id,
          status: a.portId ? 'ACTIVE' : 'DOWN',
          revision_number: fip.revision_number + 1,
          updated_at: Math.max(this.deps.clock.now(), fip.updated_at),
        };
        if (changes.description !== undefined) next.description = changes.description;
        const r = await trx.updateTable('floatingips').set(next).where('id', '=', fip.id).where('revision_number', '=', fip.revision_number).executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Floating IP ${fip.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
        return { ...fip, ...next };
      }),
    );
    this.deps.routers.notifyChanged([fip.router_id, updated.router_id].filter((r): r is string => r !== null));
    return updated;
  }

  async delete(fip: FloatingIpRow): Promise<void> {
    const port = await withTransaction(this.deps.database, async (trx) => {
      const p = await trx.selectFrom('ports').selectAll().where('id', '=', fip.floating_port_id).executeTakeFirst();
      if (p) {
        for (const h of this.deps.hooks.portDeleting) await h(trx, p, false);
        await this.deps.ports.remove(trx, p.id);
      }
      await deleteTags(trx, fip.id);
      await trx.deleteFrom('floatingips').where('id', '=', fip.id).execute();
      return p;
    });
    if (port) this.portChanged('delete', port);
    if (fip.router_id) this.deps.routers.notifyChanged([fip.router_id]);
  }

  private portChanged(event: 'create' | 'delete', port: PortRow): void {
    for (const h of this.deps.hooks.portChanged) {
      try {
        h(event, port);
      } catch {
        // A listener's failure never fails the API call; the port hooks log their own.
      }
    }
  }

  /**
   * upstream's _check_and_get_fip_assoc: the port's owner, a fixed IPv4
   * address of it, a router connecting its subnet to the FIP's external
   * network, and no other floating IP of that network on the same fixed IP.
   */
  private async associate(trx: Kysely<NeutronDB>, fip: FloatingIpRow, portId: string, fixedIp: string | undefined, isAdmin: boolean): Promise<Association> {
    const port = await trx.selectFrom('ports').selectAll().where('id', '=', portId).executeTakeFirst();
    if (!port || (!isAdmin && port.project_id !== fip.project_id && !(await this.ownsNetwork(trx, port.network_id, fip.project_id)))) {
      if (!port) throw portNotFound(portId);
      throw fipBadRequest(`Cannot process floating IP association with Port ${portId}, since that port is owned by a different project`);
    }
    if (port.device_owner.startsWith('network:')) throw fipBadRequest(`Port ${port.id} is unable to be assigned a floating IP`);
    const allocs = await trx.selectFrom('ipallocations').select(['subnet_id', 'ip_address']).where('port_id', '=', port.id).orderBy('ip_address').execute();
    let chosen: { subnet_id: string; ip_address: string } | undefined;
    if (fixedIp !== undefined) {
      if (ipToBig(fixedIp)?.version !== 4) throw fipBadRequest(`Cannot process floating IP association with ${fixedIp}, since that is not an IPv4 address`);
      chosen = allocs.find((a) => a.ip_address === fixedIp);
      if (!chosen) throw fipBadRequest(`Port ${port.id} does not have fixed ip ${fixedIp}`);
    } else {
      const v4 = allocs.filter((a) => ipToBig(a.ip_address)?.version === 4);
      if (v4.length === 0) throw fipBadRequest(`Cannot add floating IP to port ${port.id} that has no fixed IPv4 addresses`);
      if (v4.length > 1) throw fipBadRequest(`Port ${port.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP`);
      chosen = v4[0];
    }
    const routerId = await this.routerFor(trx, port, chosen.subnet_id, fip.floating_network_id);
    if (port.id !== fip.fixed_port_id || chosen.ip_address !== fip.fixed_ip_address) {
      const other = await trx
        .selectFrom('floatingips')
        .select('id')
        .where('fixed_port_id', '=', port.id)
        .where('floating_network_id', '=', fip.floating_network_id)
        .where('fixed_ip_address', '=', chosen.ip_address)
        .where('id', '!=', fip.id)
        .executeTakeFirst();
      if (other) throw fipPortAlreadyAssociated({ fipAddress: fip.floating_ip_address, fipId: fip.id, portId: port.id, fixedIp: chosen.ip_address, netId: fip.floating_network_id });
    }
    return { portId: port.id, fixedIp: chosen.ip_address, routerId };
  }

  private async ownsNetwork(trx: Kysely<NeutronDB>, networkId: string, projectId: string | null): Promise<boolean> {
    const n = await trx.selectFrom('networks').select('project_id').where('id', '=', networkId).executeTakeFirst();
    return n !== undefined && n.project_id === projectId;
  }

  /** upstream's get_router_for_floatingip: routers with an interface on the subnet and a gateway on the external network; the one holding the subnet's gateway IP wins. */
  private async routerFor(trx: Kysely<NeutronDB>, port: PortRow, subnetId: string, extNetId: string): Promise<string> {
    const candidates = await trx
      .selectFrom('router_ports')
      .innerJoin('ports', 'ports.id', 'router_ports.port_id')
      .innerJoin('ipallocations', 'ipallocations.port_id', 'ports.id')
      .select(['router_ports.router_id', 'ipallocations.ip_address'])
      .where('router_ports.port_type', '=', OWNER_INTERFACE)
      .where('ports.network_id', '=', port.network_id)
      .where('ipallocations.subnet_id', '=', subnetId)
      .where((eb) =>
        eb(
          'router_ports.router_id',
          'in',
          eb.selectFrom('router_ports as gw').innerJoin('ports as gp', 'gp.id', 'gw.port_id').select('gw.router_id').where('gw.port_type', '=', OWNER_GATEWAY).where('gp.network_id', '=', extNetId),
        ),
      )
      .orderBy('router_ports.router_id')
      .execute();
    if (candidates.length === 0) throw externalGatewayNotFound(extNetId, subnetId, port.id);
    const subnet = await trx.selectFrom('subnets').select('gateway_ip').where('id', '=', subnetId).executeTakeFirst();
    return (candidates.find((c) => c.ip_address === subnet?.gateway_ip) ?? candidates[0]).router_id;
  }

  /** port_details (fip-port-details) of the associated ports. */
  async portDetails(fips: FloatingIpRow[]): Promise<Map<string, Record<string, unknown>>> {
    const ids = [...new Set(fips.map((f) => f.fixed_port_id).filter((p): p is string => p !== null))];
    const out = new Map<string, Record<string, unknown>>();
    if (ids.length === 0) return out;
    const ports = await this.db.selectFrom('ports').selectAll().where('id', 'in', ids).execute();
    for (const p of ports) {
      out.set(p.id, {
        name: p.name,
        network_id: p.network_id,
        mac_address: p.mac_address,
        admin_state_up: p.admin_state_up === 1,
        status: p.status,
        device_id: p.device_id,
        device_owner: p.device_owner,
      });
    }
    return out;
  }
}

/** Two associations racing for one fixed IP: the unique key refuses the loser, reported as upstream's 409. */
async function uniqueAsConflict<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isUniqueViolation(e)) throw new ApiError('conflict', 'The fixed IP already has a floating IP on this external network.', { type: 'FloatingIPPortAlreadyAssociated' });
    throw e;
  }
}
