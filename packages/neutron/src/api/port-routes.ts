import { inTransaction } from '../db/transaction.ts';
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { ApiError } from '@onestack/core/errors.ts';
import { jsonFromDb, jsonToDb } from '@onestack/core/db/index.ts';
import { credentialsFromAuth, type Target } from '@onestack/core/policy/index.ts';
import type { NetworkRow, NeutronDB, PortRow } from '../db/schema.ts';
import { networkScope, type NetworkService } from '../domain/networks.ts';
import { VNIC_TYPES, type PortRules } from '../domain/ports.ts';
import { tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, hideRefused, resourceNotFound, type ApiDeps, type Caller } from './context.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import type { DhcpPorts } from './subnet-routes.ts';
import type { PortChangeContext } from '../domain/affected-hosts.ts';
import { STANDARD_ATTRS, any, bool, createBodies, dict, listOf, memberBody, oneOf, owningProject, str, uuid, type Validator } from './validate.ts';

export const PORT_LIST: ListSpec = {
  table: 'ports',
  collection: 'ports',
  columns: {
    network_id: { column: 'network_id', type: 'string', sortable: true },
    mac_address: { column: 'mac_address', type: 'string', sortable: true },
    admin_state_up: { column: 'admin_state_up', type: 'bool', sortable: true },
    status: { column: 'status', type: 'string', sortable: true },
    device_id: { column: 'device_id', type: 'string', sortable: true },
    device_owner: { column: 'device_owner', type: 'string', sortable: true },
    port_security_enabled: { column: 'port_security_enabled', type: 'bool', sortable: false },
    'binding:host_id': { column: 'binding_host_id', type: 'string', sortable: false },
    'binding:vif_type': { column: 'binding_vif_type', type: 'string', sortable: false },
    'binding:vnic_type': { column: 'binding_vnic_type', type: 'string', sortable: false },
    dns_name: { column: 'dns_name', type: 'string', sortable: false },
  },
  custom: {
    fixed_ips: (eb, values) => {
      // fixed_ips=ip_address=10.0.0.5&fixed_ips=subnet_id=…, each an AND term; ip_address_substr matches inside.
      const terms = values.map((v) => {
        const [k, ...rest] = v.split('=');
        const val = rest.join('=');
        let sub = eb.selectFrom('ipallocations').select('port_id');
        if (k === 'ip_address') sub = sub.where('ip_address', '=', val);
        else if (k === 'subnet_id') sub = sub.where('subnet_id', '=', val);
        else if (k === 'ip_address_substr') sub = sub.where('ip_address', 'like', `%${val.replace(/[%_]/g, '')}%`);
        else throw new ApiError('bad_request', `Invalid input for fixed_ips. Reason: '${k}' is not a valid fixed_ips filter.`, { type: 'HTTPBadRequest' });
        return eb('ports.id', 'in', sub);
      });
      return eb.and(terms);
    },
    security_groups: (eb, values) => eb('ports.id', 'in', eb.selectFrom('port_security_group_bindings').select('port_id').where('security_group_id', 'in', values)),
  },
  ignored: ['allowed_address_pairs', 'binding:profile', 'binding:vif_details', 'extra_dhcp_opts', 'tags', 'dns_assignment'],
};

const FIXED_IP: Validator = (v, attr) => {
  const o = dict(v, attr) as Record<string, unknown>;
  const bad = Object.keys(o).filter((k) => k !== 'subnet_id' && k !== 'ip_address');
  if (bad.length > 0) throw new ApiError('bad_request', `Invalid input for ${attr}. Reason: Invalid data format for fixed IP: '${JSON.stringify(v)}'.`, { type: 'HTTPBadRequest' });
  if (o.subnet_id !== undefined) uuid(o.subnet_id, attr);
  if (o.ip_address !== undefined && typeof o.ip_address !== 'string') throw new ApiError('bad_request', `Invalid input for ${attr}. Reason: '${String(o.ip_address)}' is not a valid IP address.`, { type: 'HTTPBadRequest' });
  return o;
};

const COMMON: Record<string, Validator> = {
  name: str(255),
  description: str(255),
  admin_state_up: bool,
  fixed_ips: listOf(FIXED_IP),
  device_id: str(255),
  device_owner: str(255),
  security_groups: listOf(uuid),
  allowed_address_pairs: listOf(any),
  port_security_enabled: bool,
  'binding:host_id': str(255),
  'binding:profile': dict,
  'binding:vnic_type': oneOf(...VNIC_TYPES),
  dns_name: str(255),
};
const CREATE_ATTRS: Record<string, Validator> = { ...STANDARD_ATTRS, ...COMMON, network_id: uuid, mac_address: str(32) };
const UPDATE_ATTRS: Record<string, Validator> = { ...COMMON, mac_address: str(32) };

export function portTarget(p: Pick<PortRow, 'id' | 'project_id' | 'network_id' | 'device_owner'>, net: Pick<NetworkRow, 'project_id' | 'shared'> | undefined): Target {
  return {
    id: p.id,
    project_id: p.project_id,
    tenant_id: p.project_id,
    network_id: p.network_id,
    device_owner: p.device_owner,
    'network:project_id': net?.project_id ?? null,
    'network:tenant_id': net?.project_id ?? null,
    shared: net?.shared === 1,
  };
}

function portScope(caller: Caller) {
  const netScope = networkScope(caller);
  if (!netScope) return undefined;
  const p = caller.projectId ?? '';
  // A project sees its own ports and every port of the networks it owns (upstream's network-owner reader).
  return (eb: any) => eb.or([eb('ports.project_id', '=', p), eb('ports.network_id', 'in', eb.selectFrom('networks').select('networks.id').where('networks.project_id', '=', p))]);
}

/** upstream's DHCP port device_id: dhcp<uuid5 of the host>-<network id>. */
export function dhcpDeviceId(host: string, networkId: string): string {
  const h = createHash('sha1').update(`6ba7b810-9dad-11d1-80b4-00c04fd430c8${host}`).digest('hex');
  const u = `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return `dhcp${u}-${networkId}`;
}

export function registerPortRoutes(app: FastifyInstance, deps: ApiDeps, nets: NetworkService, rules: PortRules): DhcpPorts {
  const db = () => deps.database.db;
  const netOf = (id: string) => db().selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirst();
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    let q = db().selectFrom('ports').selectAll('ports').where('ports.id', '=', id);
    const scope = portScope(caller);
    if (scope) q = q.where(scope);
    const port = await q.executeTakeFirst();
    if (!port) throw resourceNotFound('port', id);
    return { port, net: await netOf(port.network_id) };
  };
  const views = async (caller: Caller, rows: PortRow[]) => {
    const ids = rows.map((r) => r.id);
    const tags = await tagsOf(db(), ids);
    const ips = new Map<string, { subnet_id: string; ip_address: string }[]>(ids.map((i) => [i, []]));
    const groups = new Map<string, string[]>(ids.map((i) => [i, []]));
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      for (const a of await db().selectFrom('ipallocations').selectAll().where('port_id', 'in', chunk).execute()) ips.get(a.port_id)?.push({ subnet_id: a.subnet_id, ip_address: a.ip_address });
      for (const g of await db().selectFrom('port_security_group_bindings').selectAll().where('port_id', 'in', chunk).orderBy('security_group_id').execute()) groups.get(g.port_id)?.push(g.security_group_id);
    }
    const netIds = [...new Set(rows.map((r) => r.network_id))];
    const netRows = netIds.length ? await db().selectFrom('networks').select(['id', 'project_id', 'shared']).where('id', 'in', netIds).execute() : [];
    const netMap = new Map(netRows.map((n) => [n.id, n]));
    return rows.map((p) => {
      const view: Record<string, unknown> = {
        id: p.id,
        name: p.name,
        network_id: p.network_id,
        tenant_id: p.project_id,
        mac_address: p.mac_address,
        admin_state_up: p.admin_state_up === 1,
        status: p.status,
        device_id: p.device_id,
        device_owner: p.device_owner,
        fixed_ips: (ips.get(p.id) ?? []).sort((a, b) => (a.ip_address < b.ip_address ? -1 : 1)),
        allowed_address_pairs: rules.pairsOf(p),
        extra_dhcp_opts: [],
        security_groups: groups.get(p.id) ?? [],
        description: p.description,
        'binding:vnic_type': p.binding_vnic_type,
        'binding:profile': jsonFromDb(p.binding_profile),
        'binding:host_id': p.binding_host_id,
        'binding:vif_type': p.binding_vif_type,
        'binding:vif_details': jsonFromDb(p.binding_vif_details),
        port_security_enabled: p.port_security_enabled === 1,
        dns_name: p.dns_name,
        dns_assignment: [],
        tags: tags.get(p.id) ?? [],
        created_at: isoTime(p.created_at),
        updated_at: isoTime(p.updated_at),
        revision_number: p.revision_number,
        project_id: p.project_id,
      };
      return hideRefused(deps, caller, 'port', view, portTarget(p, netMap.get(p.network_id)));
    });
  };
  const canSee = (caller: Caller, p: PortRow, net: NetworkRow | undefined) => deps.enforcer.enforce('get_port', portTarget(p, net), credentialsFromAuth(caller.auth));
  const fixedIpRequests = (v: unknown) => (v as { subnet_id?: string; ip_address?: string }[] | undefined)?.map((f) => ({ subnetId: f.subnet_id, ipAddress: f.ip_address }));
  const fixedIpAttrs = (a: Record<string, unknown>) => {
    const f = a.fixed_ips as { subnet_id?: string; ip_address?: string }[] | undefined;
    if (!f) return {};
    return { fixed_ips: f, 'fixed_ips:ip_address': f.some((x) => x.ip_address !== undefined) ? true : undefined, 'fixed_ips:subnet_id': f.some((x) => x.subnet_id !== undefined) ? true : undefined };
  };
  const groupIds = async (portIds: string[]) =>
    portIds.length ? (await deps.database.db.selectFrom('port_security_group_bindings').select('security_group_id').where('port_id', 'in', portIds).execute()).map((r) => r.security_group_id) : [];
  const changed = (event: 'create' | 'update' | 'delete', p: PortRow, ctx: PortChangeContext = {}) => {
    for (const h of deps.hooks.portChanged) {
      try {
        h(event, p, ctx);
      } catch (err) {
        deps.logger.warn({ err, port_id: p.id }, 'port change hook failed');
      }
    }
  };

  const dhcp: DhcpPorts = {
    async sync(trx: Kysely<NeutronDB>, net: NetworkRow) {
      if (!deps.config.dhcpPorts) return;
      const subnets = await trx.selectFrom('subnets').selectAll().where('network_id', '=', net.id).where('enable_dhcp', '=', 1).orderBy('created_at').orderBy('id').execute();
      const wanted = subnets.filter((s) => !(s.ip_version === 6 && s.ipv6_address_mode === 'slaac'));
      const existing = await trx.selectFrom('ports').selectAll().where('network_id', '=', net.id).where('device_owner', '=', 'network:dhcp').executeTakeFirst();
      if (wanted.length === 0) {
        if (existing) await rules.remove(trx, existing.id);
        return;
      }
      const requests = wanted.map((s) => ({ subnetId: s.id }));
      if (!existing) {
        await rules.create(
          trx,
          net,
          { projectId: net.project_id ?? '', deviceOwner: 'network:dhcp', deviceId: dhcpDeviceId(deps.config.networkHost, net.id), fixedIps: requests, hostId: deps.config.networkHost },
          { quota: false },
        );
        return;
      }
      const have = await trx.selectFrom('ipallocations').selectAll().where('port_id', '=', existing.id).execute();
      const keep = have.filter((h) => wanted.some((s) => s.id === h.subnet_id)).map((h) => ({ subnetId: h.subnet_id, ipAddress: h.ip_address }));
      const add = wanted.filter((s) => !have.some((h) => h.subnet_id === s.id)).map((s) => ({ subnetId: s.id }));
      if (keep.length === have.length && add.length === 0) return;
      await rules.replaceFixedIps(trx, existing, [...keep, ...add]);
    },
  };

  app.get('/v2.0/ports', async (req) => {
    const caller = callerOf(deps, req);
    const { rows, fields, links } = await listRows<PortRow>(db(), req, PORT_LIST, portScope(caller), { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    return { ports: (await views(caller, rows)).map((v) => selectFields(v, fields)), ...(links ? { ports_links: links } : {}) };
  });

  app.get('/v2.0/ports/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { port, net } = await load(req, caller);
    authorizeAction(deps, caller, 'get_port', portTarget(port, net), { member: 'port', id: port.id, visible: false });
    const fields = ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
    return { port: selectFields((await views(caller, [port]))[0], fields) };
  });

  app.post('/v2.0/ports', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'port', 'ports');
    const inputs = items.map((b) => memberBody(b, 'port', CREATE_ATTRS));
    deps.notifier.start('port', 'create', req.body, req.ctx);
    // Looked up before the transaction: on SQLite it holds the only connection.
    const found = new Map<string, NetworkRow>();
    for (const a of inputs) {
      const id = a.network_id as string | undefined;
      const net = id === undefined ? undefined : await nets.find(id, caller);
      if (net) found.set(net.id, net);
    }
    const rows = await inTransaction(deps.database, async (trx) => {
      const out: PortRow[] = [];
      for (const a of inputs) {
        if (a.network_id === undefined) throw new ApiError('bad_request', "Failed to parse request. Required attribute 'network_id' not specified", { type: 'HTTPBadRequest' });
        const net = found.get(a.network_id as string);
        if (!net) throw resourceNotFound('network', a.network_id as string);
        const projectId = owningProject(a, caller);
        const owner = (a.device_owner as string | undefined) ?? '';
        const target = portTarget({ id: '', project_id: projectId, network_id: net.id, device_owner: owner }, net);
        authorizeAction(deps, caller, 'create_port', target, { attrs: { ...a, ...fixedIpAttrs(a), device_owner: a.device_owner === undefined ? undefined : owner } });
        out.push(
          await rules.create(trx, net, {
            projectId,
            name: a.name as string | undefined,
            description: a.description as string | undefined,
            adminStateUp: a.admin_state_up as boolean | undefined,
            macAddress: a.mac_address as string | undefined,
            fixedIps: fixedIpRequests(a.fixed_ips),
            deviceId: a.device_id as string | undefined,
            deviceOwner: a.device_owner as string | undefined,
            securityGroups: a.security_groups as string[] | undefined,
            allowedAddressPairs: a.allowed_address_pairs as { ip_address: string }[] | undefined,
            portSecurityEnabled: a.port_security_enabled as boolean | undefined,
            hostId: a['binding:host_id'] as string | undefined,
            profile: a['binding:profile'] as Record<string, unknown> | undefined,
            vnicType: a['binding:vnic_type'] as string | undefined,
            dnsName: a.dns_name as string | undefined,
          }),
        );
      }
      return out;
    });
    const vs = await views(caller, rows);
    for (const v of vs) deps.notifier.end('port', 'create', v, req.ctx);
    // One query for the whole bulk; a port without a group binds none.
    const bindings = rows.length ? await deps.database.db.selectFrom('port_security_group_bindings').selectAll().where('port_id', 'in', rows.map((r) => r.id)).execute() : [];
    for (const r of rows) changed('create', r, { securityGroups: bindings.filter((b) => b.port_id === r.id).map((b) => b.security_group_id) });
    reply.code(201);
    return bulk ? { ports: vs } : { port: vs[0] };
  });

  app.put('/v2.0/ports/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { port, net } = await load(req, caller);
    const a = memberBody(req.body, 'port', UPDATE_ATTRS);
    const target = portTarget(port, net);
    const attrs = { ...a, ...fixedIpAttrs(a) };
    authorizeAction(deps, caller, 'update_port', target, { attrs, member: 'port', id: port.id, visible: canSee(caller, port, net) });
    if (a.device_owner !== undefined) authorizeAction(deps, caller, 'update_port:device_owner', portTarget({ ...port, device_owner: a.device_owner as string }, net));
    checkIfMatch(req, port.revision_number);
    deps.notifier.start('port', 'update', req.body, req.ctx);
    const groupsBefore = await groupIds([port.id]);
    const updated = await inTransaction(deps.database, async (trx) => {
      const changes: Partial<PortRow> = {};
      for (const [k, col] of [['name', 'name'], ['description', 'description'], ['device_id', 'device_id'], ['device_owner', 'device_owner'], ['dns_name', 'dns_name']] as const) {
        if (a[k] !== undefined) changes[col] = a[k] as string;
      }
      if (a.admin_state_up !== undefined) changes.admin_state_up = a.admin_state_up ? 1 : 0;
      if (a.mac_address !== undefined && a.mac_address !== port.mac_address) {
        if (port.binding_vif_type !== 'unbound' && port.binding_host_id) throw new ApiError('conflict', `Port ${port.id} is bound; its MAC address cannot change.`, { type: 'PortBound' });
        const mac = String(a.mac_address).toLowerCase();
        if (await trx.selectFrom('ports').select('id').where('network_id', '=', port.network_id).where('mac_address', '=', mac).executeTakeFirst()) {
          throw new ApiError('conflict', `Unable to complete operation for network ${port.network_id}. The mac address ${mac} is in use.`, { type: 'MacAddressInUse' });
        }
        changes.mac_address = mac;
      }
      const portSecurity = a.port_security_enabled !== undefined ? Boolean(a.port_security_enabled) : port.port_security_enabled === 1;
      if (a.port_security_enabled !== undefined) changes.port_security_enabled = portSecurity ? 1 : 0;
      if (a.allowed_address_pairs !== undefined) changes.allowed_address_pairs = jsonToDb(rules.checkPairs(a.allowed_address_pairs as { ip_address: string }[]));
      const pairs = changes.allowed_address_pairs ?? port.allowed_address_pairs;
      if (a.security_groups !== undefined) await rules.setSecurityGroups(trx, port, a.security_groups as string[]);
      if (!portSecurity) {
        const groups = await trx.selectFrom('port_security_group_bindings').select('security_group_id').where('port_id', '=', port.id).execute();
        if (groups.length > 0) throw new ApiError('conflict', 'Port has security group associated. Cannot disable port security or IP address until security group is removed', { type: 'PortSecurityPortHasSecurityGroup' });
        if (jsonFromDb<unknown[]>(pairs).length > 0) throw new ApiError('conflict', 'Port Security must be enabled in order to have allowed address pairs on a port.', { type: 'AddressPairAndPortSecurityRequired' });
      }
      if (a.fixed_ips !== undefined) await rules.replaceFixedIps(trx, port, fixedIpRequests(a.fixed_ips)!);
      const host = a['binding:host_id'] !== undefined ? (a['binding:host_id'] as string) : port.binding_host_id;
      const vnic = (a['binding:vnic_type'] as string | undefined) ?? port.binding_vnic_type;
      const profile = (a['binding:profile'] as Record<string, unknown> | undefined) ?? jsonFromDb<Record<string, unknown>>(port.binding_profile);
      if (a['binding:host_id'] !== undefined || a['binding:vnic_type'] !== undefined || a['binding:profile'] !== undefined) {
        const segments = await trx.selectFrom('network_segments').selectAll().where('network_id', '=', port.network_id).orderBy('segment_index').execute();
        const b = rules.binding(net!, segments, port.id, host, vnic, profile);
        Object.assign(changes, { binding_host_id: host, binding_vnic_type: vnic, binding_profile: jsonToDb(profile), binding_vif_type: b.vifType, binding_vif_details: jsonToDb(b.vifDetails) });
      }
      const next = { ...changes, revision_number: port.revision_number + 1, updated_at: Math.max(deps.clock.now(), port.updated_at) };
      const r = await trx.updateTable('ports').set(next).where('id', '=', port.id).where('revision_number', '=', port.revision_number).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Port ${port.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
      return { ...port, ...next };
    });
    const view = (await views(caller, [updated]))[0];
    deps.notifier.end('port', 'update', view, req.ctx);
    changed('update', updated, { previousHost: port.binding_host_id, securityGroups: [...new Set([...groupsBefore, ...(await groupIds([port.id]))])] });
    return { port: view };
  });

  app.delete('/v2.0/ports/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { port, net } = await load(req, caller);
    authorizeAction(deps, caller, 'delete_port', portTarget(port, net), { member: 'port', id: port.id, visible: canSee(caller, port, net) });
    checkIfMatch(req, port.revision_number);
    const view = (await views(caller, [port]))[0];
    deps.notifier.start('port', 'delete', { port_id: port.id }, req.ctx);
    const groups = await groupIds([port.id]);
    await inTransaction(deps.database, async (trx) => {
      for (const h of deps.hooks.portDeleting) await h(trx, port, true);
      await rules.remove(trx, port.id);
    });
    deps.notifier.deleted('port', port.id, view, req.ctx);
    changed('delete', port, { securityGroups: groups });
    reply.code(204);
  });

  return dhcp;
}

/** Deletes a network through NetworkService, removing its DHCP ports with their hooks. */
export function networkDeleter(deps: ApiDeps, nets: NetworkService, rules: PortRules) {
  return async (net: NetworkRow) => {
    const removed = await nets.delete(net, (trx, portId) => rules.remove(trx, portId));
    for (const id of removed) {
      for (const h of deps.hooks.portChanged) h('delete', { id, network_id: net.id, device_owner: 'network:dhcp', device_id: '', binding_host_id: '' });
    }
  };
}
