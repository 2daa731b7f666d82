import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonFromDb, jsonToDb } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronConfig } from '../conf.ts';
import type { NetworkRow, NeutronDB, PortRow } from '../db/schema.ts';
import type { Hooks } from './hooks.ts';
import { Ipam, type Allocation, type FixedIpRequest } from './ipam.ts';
import { bindPort, type MechanismDriver } from './ml2/mechanism-driver.ts';
import type { QuotaRegistry } from './quotas.ts';
import { deleteTags } from './tags.ts';
import { ipToBig, parseCidr } from './addresses.ts';

export interface PortInput {
  projectId: string;
  name?: string;
  description?: string;
  adminStateUp?: boolean;
  macAddress?: string;
  fixedIps?: FixedIpRequest[];
  deviceId?: string;
  deviceOwner?: string;
  securityGroups?: string[];
  allowedAddressPairs?: { ip_address: string; mac_address?: string }[];
  portSecurityEnabled?: boolean;
  hostId?: string;
  profile?: Record<string, unknown>;
  vnicType?: string;
  dnsName?: string;
}

export const VNIC_TYPES = ['normal', 'direct', 'macvtap', 'baremetal', 'direct-physical', 'virtio-forwarder', 'smart-nic', 'remote-managed', 'vdpa'];

/** Ports: MACs, addresses (through IPAM), security groups and bindings, in the creating transaction. */
export class PortRules {
  readonly ipam = new Ipam();

  constructor(
    private readonly deps: { config: NeutronConfig; clock: Clock; ids: IdSource; quotas: QuotaRegistry; hooks: Hooks; mechanisms: MechanismDriver[] },
  ) {}

  private randomMac(): string {
    const prefix = this.deps.config.baseMac.split(':').slice(0, 3);
    const tail = [...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'));
    return [...prefix, ...tail].join(':');
  }

  private async macTaken(trx: Kysely<NeutronDB>, networkId: string, mac: string): Promise<boolean> {
    return (await trx.selectFrom('ports').select('id').where('network_id', '=', networkId).where('mac_address', '=', mac).executeTakeFirst()) !== undefined;
  }

  private async chooseMac(trx: Kysely<NeutronDB>, net: NetworkRow, requested?: string): Promise<string> {
    if (requested !== undefined) {
      const mac = requested.toLowerCase();
      if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === '00:00:00:00:00:00' || (parseInt(mac.slice(0, 2), 16) & 1) === 1) {
        throw badRequest(`Invalid input for mac_address. Reason: '${requested}' is not a valid MAC address.`, { type: 'HTTPBadRequest' });
      }
      if (await this.macTaken(trx, net.id, mac)) {
        throw new ApiError('conflict', `Unable to complete operation for network ${net.id}. The mac address ${mac} is in use.`, { type: 'MacAddressInUse' });
      }
      return mac;
    }
    for (let i = 0; i < this.deps.config.macGenerationRetries; i++) {
      const mac = this.randomMac();
      if (!(await this.macTaken(trx, net.id, mac))) return mac;
    }
    throw new ApiError('service_unavailable', `Unable to generate unique mac on network ${net.id}.`, { type: 'MacAddressGenerationFailure' });
  }

  checkPairs(pairs: { ip_address: string; mac_address?: string }[]): { ip_address: string; mac_address?: string }[] {
    if (pairs.length > this.deps.config.maxAllowedAddressPair) {
      throw badRequest(`Exceeded maximum amount of allowed address pairs ${this.deps.config.maxAllowedAddressPair}.`, { type: 'AllowedAddressPairExhausted' });
    }
    const seen = new Set<string>();
    return pairs.map((p) => {
      if (typeof p !== 'object' || p === null || typeof p.ip_address !== 'string') throw badRequest('AllowedAddressPair must contain ip_address', { type: 'AllowedAddressPairsMissingIP' });
      if (!ipToBig(p.ip_address) && !parseCidr(p.ip_address, false)) throw badRequest(`Invalid input for allowed_address_pairs. Reason: '${p.ip_address}' is not a valid IP address.`, { type: 'HTTPBadRequest' });
      const key = `${p.ip_address}|${p.mac_address ?? ''}`;
      if (seen.has(key)) throw badRequest(`Request contains duplicate address pair: mac_address ${p.mac_address ?? ''} ip_address ${p.ip_address}.`, { type: 'DuplicateAddressPairInRequest' });
      seen.add(key);
      return p.mac_address ? { ip_address: p.ip_address, mac_address: p.mac_address.toLowerCase() } : { ip_address: p.ip_address };
    });
  }

  binding(net: NetworkRow, segments: { network_type: string; physical_network: string | null; segmentation_id: number | null }[], portId: string, host: string, vnicType: string, profile: Record<string, unknown>) {
    if (!host) return { vifType: 'unbound', vifDetails: {} };
    const b = bindPort(this.deps.mechanisms, {
      portId,
      host,
      vnicType,
      profile,
      segments: segments.map((s) => ({ networkType: s.network_type, physicalNetwork: s.physical_network, segmentationId: s.segmentation_id })),
    });
    return b ? { vifType: b.vifType, vifDetails: b.vifDetails } : { vifType: 'binding_failed', vifDetails: {} };
  }

  async create(trx: Kysely<NeutronDB>, net: NetworkRow, input: PortInput, opts: { quota?: boolean } = {}): Promise<PortRow> {
    if (opts.quota !== false) await this.deps.quotas.check(trx, input.projectId, 'port');
    const id = this.deps.ids.uuid();
    const mac = await this.chooseMac(trx, net, input.macAddress);
    const deviceOwner = input.deviceOwner ?? '';
    if (input.fixedIps && input.fixedIps.length > this.deps.config.maxFixedIpsPerPort) {
      throw badRequest(`Exceeded maximum amount of fixed ips per port.`, { type: 'InvalidInput' });
    }
    const portSecurity = input.portSecurityEnabled ?? net.port_security_enabled === 1;
    const pairs = this.checkPairs(input.allowedAddressPairs ?? []);
    let groups: string[] = [];
    if (!deviceOwner.startsWith('network:')) {
      if (input.securityGroups !== undefined) {
        groups = [...new Set(input.securityGroups)];
        if (groups.length > 0) await this.deps.hooks.validateSecurityGroups(trx, input.projectId, groups);
      } else if (portSecurity) {
        groups = await this.deps.hooks.defaultSecurityGroups(trx, input.projectId);
      }
    }
    if (!portSecurity && (groups.length > 0 || pairs.length > 0)) {
      throw new ApiError('conflict', 'Port has security group associated. Cannot disable port security or IP address until security group is removed.', {
        type: pairs.length > 0 ? 'AddressPairAndPortSecurityRequired' : 'PortSecurityAndIPRequiredForSecurityGroups',
      });
    }
    const segments = await trx.selectFrom('network_segments').selectAll().where('network_id', '=', net.id).orderBy('segment_index').execute();
    const vnicType = input.vnicType ?? 'normal';
    const binding = this.binding(net, segments, id, input.hostId ?? '', vnicType, input.profile ?? {});
    const now = this.deps.clock.now();
    const row: PortRow = {
      id,
      project_id: input.projectId,
      name: input.name ?? '',
      description: input.description ?? '',
      revision_number: 1,
      created_at: now,
      updated_at: now,
      network_id: net.id,
      mac_address: mac,
      admin_state_up: input.adminStateUp === false ? 0 : 1,
      status: 'DOWN',
      device_id: input.deviceId ?? '',
      device_owner: deviceOwner,
      port_security_enabled: portSecurity ? 1 : 0,
      allowed_address_pairs: jsonToDb(pairs),
      binding_host_id: input.hostId ?? '',
      binding_vif_type: binding.vifType,
      binding_vif_details: jsonToDb(binding.vifDetails),
      binding_profile: jsonToDb(input.profile ?? {}),
      binding_vnic_type: vnicType,
      dns_name: input.dnsName ?? '',
    };
    await trx.insertInto('ports').values(row).execute();
    await this.ipam.allocate(trx, { id, networkId: net.id, mac, deviceOwner }, input.fixedIps, { addAutoAddress: true });
    if (groups.length > 0) await trx.insertInto('port_security_group_bindings').values(groups.map((g) => ({ port_id: id, security_group_id: g }))).execute();
    return row;
  }

  /** Replaces the port's fixed IPs: kept addresses stay, dropped ones are released, new ones allocated. */
  async replaceFixedIps(trx: Kysely<NeutronDB>, port: PortRow, requests: FixedIpRequest[]): Promise<void> {
    const current = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', port.id).execute();
    const keep: Allocation[] = [];
    const fresh: FixedIpRequest[] = [];
    for (const r of requests) {
      const hit = current.find((c) => (r.ipAddress === undefined || c.ip_address === r.ipAddress) && (r.subnetId === undefined || c.subnet_id === r.subnetId) && r.ipAddress !== undefined);
      if (hit && !keep.some((k) => k.ipAddress === hit.ip_address && k.subnetId === hit.subnet_id)) keep.push({ subnetId: hit.subnet_id, ipAddress: hit.ip_address });
      else fresh.push(r);
    }
    await this.ipam.release(trx, port.id, keep);
    if (fresh.length > 0) await this.ipam.allocate(trx, { id: port.id, networkId: port.network_id, mac: port.mac_address, deviceOwner: port.device_owner }, fresh);
  }

  async setSecurityGroups(trx: Kysely<NeutronDB>, port: PortRow, groups: string[]): Promise<void> {
    const unique = [...new Set(groups)];
    if (unique.length > 0) await this.deps.hooks.validateSecurityGroups(trx, port.project_id ?? '', unique);
    await trx.deleteFrom('port_security_group_bindings').where('port_id', '=', port.id).execute();
    if (unique.length > 0) await trx.insertInto('port_security_group_bindings').values(unique.map((g) => ({ port_id: port.id, security_group_id: g }))).execute();
  }

  /** Removes a port and everything hanging off it, inside `trx`. */
  async remove(trx: Kysely<NeutronDB>, portId: string): Promise<void> {
    await trx.deleteFrom('ipallocations').where('port_id', '=', portId).execute();
    await trx.deleteFrom('port_security_group_bindings').where('port_id', '=', portId).execute();
    await deleteTags(trx, portId);
    await trx.deleteFrom('ports').where('id', '=', portId).execute();
  }

  pairsOf(p: PortRow) {
    return jsonFromDb<{ ip_address: string; mac_address?: string }[]>(p.allowed_address_pairs).map((x) => ({ ip_address: x.ip_address, mac_address: x.mac_address ?? p.mac_address }));
  }
}
