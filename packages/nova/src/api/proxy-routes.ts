import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isIP } from 'node:net';
import { ApiError, badRequest, conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import { versionNotFound } from '../domain/errors.ts';
import type { HttpAnswer } from '../domain/service-clients.ts';
import { callerOf, enforce, isAdmin, mv, serverFor, type ApiDeps } from './context.ts';
import { UUID, obj, str } from './validate.ts';

/**
 * The proxy APIs nova-network left behind (nova/api/openstack/compute/security_groups.py,
 * floating_ips.py, networks.py): each call goes to Neutron with the caller's own token, so
 * Neutron's policy and project isolation apply; answers are translated to Nova's shapes.
 * Upstream serves them up to 2.35 (MAX_PROXY_API_SUPPORT_VERSION) and 404s them after;
 * the server's security groups and the add/removeSecurityGroup actions stay at every
 * version, add/removeFloatingIp end at 2.43.
 */
const MAX_PROXY = '2.36';

/** Neutron's resources as these APIs read them. */
interface NeutronRule {
  id: string;
  security_group_id: string;
  direction: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
}
interface NeutronGroup {
  id: string;
  name: string;
  description: string;
  tenant_id?: string;
  project_id?: string;
  security_group_rules?: NeutronRule[];
}
interface NeutronPort {
  id: string;
  device_id: string;
  security_groups?: string[];
  port_security_enabled?: boolean;
  fixed_ips?: { ip_address: string }[];
}
interface NeutronFip {
  id: string;
  floating_ip_address: string;
  fixed_ip_address: string | null;
  floating_network_id: string;
  port_id: string | null;
}

const neutronMessage = (r: HttpAnswer) => (r.body as { NeutronError?: { message?: string } })?.NeutronError?.message ?? `Neutron answered ${r.status}`;

/** An unexpected Neutron answer: logged by the edge as a 500, never passed on as if it were the user's fault. */
function unexpected(r: HttpAnswer, what: string): Error {
  return new Error(`neutron answered ${r.status} to ${what}: ${neutronMessage(r)}`);
}

async function neutron(deps: ApiDeps, req: FastifyRequest, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
  return deps.neutron.call(callerOf(deps, req).token, method, path, body);
}

/** 4 or 6 for an address/prefix (netutils.is_valid_cidr wants the prefix), else 0. */
function cidrVersion(s: string): number {
  const [addr, prefix, ...rest] = s.split('/');
  const v = isIP(addr);
  if (!v || rest.length || prefix === undefined || !/^\d{1,3}$/.test(prefix) || Number(prefix) > (v === 4 ? 32 : 128)) return 0;
  return v;
}

/** parse_cidr: absent is the whole IPv4 space; anything else must be a network. */
function parseCidr(cidr: unknown): string {
  if (cidr === undefined || cidr === null || cidr === '') return '0.0.0.0/0';
  const s = decodeURIComponent(String(cidr));
  if (!cidrVersion(s)) throw badRequest(`${s} is not a valid IP network.`);
  return s;
}

/** _convert_to_nova_security_group_rule_format plus _format_security_group_rule. */
function ruleView(r: NeutronRule, groups: Map<string, NeutronGroup | null>) {
  const portless = r.protocol && r.port_range_min === null && r.port_range_max === null;
  const tcpUdp = r.protocol && ['TCP', 'UDP'].includes(r.protocol.toUpperCase());
  const source = r.remote_group_id ? groups.get(r.remote_group_id) : undefined;
  return {
    id: r.id,
    parent_group_id: r.security_group_id,
    ip_protocol: r.protocol,
    from_port: portless ? (tcpUdp ? 1 : -1) : r.port_range_min,
    to_port: portless ? (tcpUdp ? 65535 : -1) : r.port_range_max,
    group: source ? { name: source.name, tenant_id: source.tenant_id ?? source.project_id } : {},
    ip_range: r.remote_group_id ? {} : { cidr: parseCidr(r.remote_ip_prefix) },
  };
}

function groupView(g: NeutronGroup, groups: Map<string, NeutronGroup | null>) {
  const rules = (g.security_group_rules ?? []).filter((r) => r.direction === 'ingress' && !(r.remote_group_id && groups.get(r.remote_group_id) === null));
  return { id: g.id, description: g.description, name: g.name, tenant_id: g.tenant_id ?? g.project_id, rules: rules.map((r) => ruleView(r, groups)) };
}

const byTenantAndName = (a: { tenant_id?: string; name: string }, b: { tenant_id?: string; name: string }) =>
  (a.tenant_id ?? '').localeCompare(b.tenant_id ?? '') || a.name.localeCompare(b.name);

/** The groups that rules name as their source, looked up once each (null: gone or not visible). */
async function sourceGroups(deps: ApiDeps, req: FastifyRequest, groups: NeutronGroup[]): Promise<Map<string, NeutronGroup | null>> {
  const known = new Map<string, NeutronGroup | null>(groups.map((g) => [g.id, g]));
  for (const g of groups) {
    for (const r of g.security_group_rules ?? []) {
      if (!r.remote_group_id || known.has(r.remote_group_id)) continue;
      const a = await neutron(deps, req, 'GET', `/security-groups/${encodeURIComponent(r.remote_group_id)}`);
      known.set(r.remote_group_id, a.status === 200 ? a.body.security_group : null);
    }
  }
  return known;
}

async function getGroup(deps: ApiDeps, req: FastifyRequest, id: string): Promise<NeutronGroup> {
  const r = await neutron(deps, req, 'GET', `/security-groups/${encodeURIComponent(id)}`);
  if (r.status === 404) throw notFound(neutronMessage(r));
  if (r.status !== 200) throw unexpected(r, 'GET security group');
  return r.body.security_group;
}

function groupId(id: string): string {
  if (!UUID.test(id)) throw badRequest('Security group id should be uuid');
  return id;
}

function nameAndDescription(body: unknown): { name: string; description: string } {
  const g = obj(obj(body, 'body').security_group, 'security_group');
  for (const k of ['name', 'description']) if (!(k in g)) throw badRequest(`Invalid input for field/attribute security_group. Value: ${JSON.stringify(g)}. '${k}' is a required property`);
  return { name: str(g.name, 'name', { max: 255 }), description: str(g.description, 'description', { max: 255 }) };
}

/** _new_ingress_rule: the ports and protocol of a nova-network rule, validated as upstream did; undefined when incomplete. */
function ingressRule(r: Record<string, unknown>, groupSource: boolean): { protocol?: string; from?: number; to?: number } | undefined {
  let from = r.from_port as unknown;
  let to = r.to_port as unknown;
  const proto = r.ip_protocol === undefined || r.ip_protocol === null ? '' : String(r.ip_protocol);
  const upper = proto.toUpperCase();
  if (groupSource && (from === undefined || from === null) && (to === undefined || to === null)) {
    if (upper === 'ICMP') [from, to] = [-1, -1];
    else if (upper === 'TCP' || upper === 'UDP') [from, to] = [1, 65535];
  }
  if (!proto || from === undefined || from === null || to === undefined || to === null) return groupSource ? {} : undefined;
  const f = Number(from);
  const t = Number(to);
  if (!Number.isInteger(f) || !Number.isInteger(t) || String(from).trim() === '' || String(to).trim() === '') {
    throw badRequest(upper === 'ICMP' ? 'Invalid input received: Type and Code must be integers for ICMP protocol type' : 'Invalid input received: To and From ports must be integers');
  }
  if (!['TCP', 'UDP', 'ICMP'].includes(upper)) throw badRequest(`Invalid IP protocol ${proto}.`);
  const range = (why: string) => badRequest(`Invalid port range ${f}:${t}. ${why}`);
  if (upper !== 'ICMP' && f > t) throw range('Former value cannot be greater than the later');
  if (upper !== 'ICMP' && (f < 1 || t > 65535)) throw range(`Valid ${upper} ports should be between 1-65535`);
  if (upper === 'ICMP' && (f < -1 || f > 255 || t < -1 || t > 255)) throw range('For ICMP, the type:code must be valid');
  return { protocol: proto, from: f, to: t };
}

export function registerSecurityGroupProxyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const rule = (what: string) => `os_compute_api:os-security-groups:${what}`;
  const own = (req: FastifyRequest) => ({ project_id: callerOf(deps, req).projectId });
  const gate = (req: FastifyRequest, what: string) => {
    if (mv(req, MAX_PROXY)) throw versionNotFound();
    enforce(deps, req, rule(what), own(req));
  };

  app.get('/v2.1/os-security-groups', async (req) => {
    gate(req, 'get');
    const q = req.query as { all_tenants?: string; limit?: string; offset?: string };
    const caller = callerOf(deps, req);
    const all = caller.isAdmin && q.all_tenants !== undefined;
    const r = await neutron(deps, req, 'GET', `/security-groups${all ? '' : `?tenant_id=${encodeURIComponent(caller.projectId)}`}`);
    if (r.status !== 200) throw unexpected(r, 'GET security groups');
    // common.limited: offset then limit (capped at max_limit) over Neutron's order.
    const offset = Math.max(0, Number.parseInt(q.offset ?? '0', 10) || 0);
    const limit = Math.min(Number.parseInt(q.limit ?? '', 10) || deps.config.maxLimit, deps.config.maxLimit);
    const groups: NeutronGroup[] = r.body.security_groups.slice(offset, offset + limit);
    const sources = await sourceGroups(deps, req, groups);
    return { security_groups: groups.map((g) => groupView(g, sources)).sort(byTenantAndName) };
  });
  app.get('/v2.1/os-security-groups/:id', async (req) => {
    gate(req, 'show');
    const g = await getGroup(deps, req, groupId((req.params as { id: string }).id));
    return { security_group: groupView(g, await sourceGroups(deps, req, [g])) };
  });
  app.post('/v2.1/os-security-groups', async (req) => {
    gate(req, 'create');
    const r = await neutron(deps, req, 'POST', '/security-groups', { security_group: nameAndDescription(req.body) });
    if (r.status === 400) throw badRequest(neutronMessage(r));
    if (r.status === 409) throw forbidden(neutronMessage(r));
    if (r.status !== 201) throw unexpected(r, 'POST security group');
    return { security_group: groupView(r.body.security_group, new Map()) };
  });
  app.put('/v2.1/os-security-groups/:id', async (req) => {
    gate(req, 'update');
    const id = groupId((req.params as { id: string }).id);
    await getGroup(deps, req, id);
    const r = await neutron(deps, req, 'PUT', `/security-groups/${id}`, { security_group: nameAndDescription(req.body) });
    if (r.status === 404) throw notFound(neutronMessage(r));
    if (r.status === 400 || r.status === 409) throw badRequest(neutronMessage(r));
    if (r.status !== 200) throw unexpected(r, 'PUT security group');
    return { security_group: groupView(r.body.security_group, await sourceGroups(deps, req, [r.body.security_group])) };
  });
  app.delete('/v2.1/os-security-groups/:id', async (req, reply) => {
    gate(req, 'delete');
    const id = groupId((req.params as { id: string }).id);
    await getGroup(deps, req, id);
    const r = await neutron(deps, req, 'DELETE', `/security-groups/${id}`);
    if (r.status === 404) throw notFound(neutronMessage(r));
    // Neutron's 409 (the project's default group, a group in use) is upstream's Invalid: 400.
    if (r.status === 409 || r.status === 400) throw badRequest(neutronMessage(r));
    if (r.status !== 204) throw unexpected(r, 'DELETE security group');
    reply.code(202);
    return '';
  });

  app.post('/v2.1/os-security-group-rules', async (req) => {
    gate(req, 'rule:create');
    const r = obj(obj(req.body, 'body').security_group_rule, 'security_group_rule');
    if (r.parent_group_id === undefined) throw badRequest("Invalid input for field/attribute security_group_rule. 'parent_group_id' is a required property");
    const parentId = str(r.parent_group_id, 'parent_group_id', { pattern: UUID });
    const sourceId = r.group_id === undefined || r.group_id === null ? undefined : str(r.group_id, 'group_id', { pattern: UUID });
    const parent = await getGroup(deps, req, parentId);
    const source = sourceId ? await getGroup(deps, req, sourceId) : undefined;
    const cidr = sourceId ? undefined : parseCidr(r.cidr);
    const ports = ingressRule(r, !!sourceId);
    if (!ports) throw badRequest('Not enough parameters to build a valid rule.');
    if (cidr) {
      const [net, prefix] = cidr.split('/');
      if (prefix === '0' && net !== '0.0.0.0' && net !== '::') throw badRequest(`Bad prefix for network in cidr ${cidr}`);
    }
    const same = (parent.security_group_rules ?? []).some(
      (x) => x.direction === 'ingress' && (x.remote_group_id ?? undefined) === sourceId && (sourceId ? true : parseCidr(x.remote_ip_prefix) === cidr) && (x.protocol ?? undefined) === ports.protocol && (x.port_range_min ?? undefined) === ports.from && (x.port_range_max ?? undefined) === ports.to,
    );
    if (same) throw badRequest(`This rule already exists in group ${parentId}`);
    const icmp = ports.protocol?.toUpperCase() === 'ICMP';
    const created = await neutron(deps, req, 'POST', '/security-group-rules', {
      security_group_rule: {
        security_group_id: parentId,
        direction: 'ingress',
        ethertype: cidr && cidrVersion(cidr) === 6 ? 'IPv6' : 'IPv4',
        protocol: ports.protocol ?? null,
        ...(ports.from !== undefined && !(icmp && ports.from === -1) ? { port_range_min: ports.from } : {}),
        ...(ports.to !== undefined && !(icmp && ports.to === -1) ? { port_range_max: ports.to } : {}),
        ...(sourceId ? { remote_group_id: sourceId } : { remote_ip_prefix: cidr }),
      },
    });
    if (created.status === 404) throw notFound(neutronMessage(created));
    if (created.status === 409) throw forbidden(neutronMessage(created));
    if (created.status === 400) throw badRequest(neutronMessage(created));
    if (created.status !== 201) throw unexpected(created, 'POST security group rule');
    const groups = new Map<string, NeutronGroup | null>(source ? [[source.id, source]] : []);
    return { security_group_rule: ruleView(created.body.security_group_rule, groups) };
  });
  app.delete('/v2.1/os-security-group-rules/:id', async (req, reply) => {
    gate(req, 'rule:delete');
    const id = groupId((req.params as { id: string }).id);
    const found = await neutron(deps, req, 'GET', `/security-group-rules/${id}`);
    if (found.status === 404) throw notFound(neutronMessage(found));
    if (found.status !== 200) throw unexpected(found, 'GET security group rule');
    const r = await neutron(deps, req, 'DELETE', `/security-group-rules/${id}`);
    if (r.status === 404) throw notFound(neutronMessage(r));
    if (r.status === 409) throw conflict(neutronMessage(r));
    if (r.status !== 204) throw unexpected(r, 'DELETE security group rule');
    reply.code(202);
    return '';
  });

  app.get('/v2.1/servers/:server_id/os-security-groups', async (req) => {
    const inst = await serverFor(deps, req, undefined);
    enforce(deps, req, rule('list'), { project_id: inst.projectId });
    const ports = await serverPorts(deps, req, inst.uuid);
    const ids = [...new Set(ports.flatMap((p) => p.security_groups ?? []))];
    const groups: NeutronGroup[] = [];
    for (const id of ids) {
      const r = await neutron(deps, req, 'GET', `/security-groups/${id}`);
      if (r.status === 200) groups.push(r.body.security_group);
    }
    const sources = await sourceGroups(deps, req, groups);
    return { security_groups: groups.map((g) => groupView(g, sources)).sort(byTenantAndName) };
  });
}

async function serverPorts(deps: ApiDeps, req: FastifyRequest, uuid: string): Promise<NeutronPort[]> {
  const r = await neutron(deps, req, 'GET', `/ports?device_id=${encodeURIComponent(uuid)}`);
  if (r.status !== 200) throw unexpected(r, 'GET ports');
  return r.body.ports;
}

type Handler = (deps: ApiDeps, req: FastifyRequest, arg: unknown) => Promise<{ status: number; body?: unknown }>;

/** SecurityGroupActionController._parse. */
function groupNameOf(arg: unknown): string {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw badRequest('Missing parameter dict');
  const name = (arg as { name?: unknown }).name;
  if (name === undefined) throw badRequest('Security group not specified');
  if (typeof name !== 'string' || name.trim() === '') throw badRequest('Security group name cannot be empty');
  return name;
}

/** find_resourceid_by_name_or_id in the caller's project. */
async function groupIdByNameOrId(deps: ApiDeps, req: FastifyRequest, name: string): Promise<string> {
  const projectId = callerOf(deps, req).projectId;
  const byName = await neutron(deps, req, 'GET', `/security-groups?name=${encodeURIComponent(name)}&tenant_id=${encodeURIComponent(projectId)}`);
  const matches: NeutronGroup[] = byName.status === 200 ? byName.body.security_groups : [];
  if (matches.length > 1) throw conflict(`Multiple security_group matches found for name '${name}', use an ID to be more specific.`);
  if (matches.length === 1) return matches[0].id;
  const byId = UUID.test(name) ? await neutron(deps, req, 'GET', `/security-groups/${name}`) : undefined;
  if (byId?.status === 200) return byId.body.security_group.id;
  throw notFound(`Security group ${name} is not found for project ${projectId}`);
}

async function setPortGroups(deps: ApiDeps, req: FastifyRequest, port: NeutronPort, groups: string[]): Promise<void> {
  const r = await neutron(deps, req, 'PUT', `/ports/${port.id}`, { port: { security_groups: groups } });
  if (r.status === 400) throw badRequest(neutronMessage(r));
  if (r.status === 409) throw conflict(neutronMessage(r));
  if (r.status !== 200) throw unexpected(r, 'PUT port');
}

const noPorts = (uuid: string) => notFound(`instance_id ${uuid} could not be found as device id on any ports`);

/** Fixed IPv4 addresses of an instance's ports, as its network info cache lists them. */
function fixedAddresses(inst: Awaited<ReturnType<typeof serverFor>>): { address: string; portId: string; version: number }[] {
  return inst.networkInfo.flatMap((v) => v.ips.filter((ip) => ip.type === 'fixed').map((ip) => ({ address: ip.address, portId: v.portId, version: ip.version })));
}

async function fipByAddress(deps: ApiDeps, req: FastifyRequest, address: string): Promise<NeutronFip | undefined> {
  const r = await neutron(deps, req, 'GET', `/floatingips?floating_ip_address=${encodeURIComponent(address)}`);
  if (r.status !== 200) throw unexpected(r, 'GET floating IPs');
  return r.body.floatingips[0];
}

/** Server actions of these APIs, spread into the action dispatch of action-routes.ts. */
export const PROXY_ACTIONS: Record<string, Handler> = {
  addSecurityGroup: async (deps, req, arg) => {
    const inst = await serverFor(deps, req, undefined);
    enforce(deps, req, 'os_compute_api:os-security-groups:add', { project_id: inst.projectId });
    const groupId = await groupIdByNameOrId(deps, req, groupNameOf(arg));
    const ports = await serverPorts(deps, req, inst.uuid);
    if (!ports.length) throw noPorts(inst.uuid);
    for (const p of ports) {
      if (p.port_security_enabled === false || !p.fixed_ips?.length) throw badRequest('Network requires port_security_enabled and subnet associated in order to apply security groups.');
    }
    for (const p of ports) await setPortGroups(deps, req, p, [...(p.security_groups ?? []), groupId]);
    return { status: 202 };
  },
  removeSecurityGroup: async (deps, req, arg) => {
    const inst = await serverFor(deps, req, undefined);
    enforce(deps, req, 'os_compute_api:os-security-groups:remove', { project_id: inst.projectId });
    const name = groupNameOf(arg);
    const groupId = await groupIdByNameOrId(deps, req, name);
    const ports = await serverPorts(deps, req, inst.uuid);
    if (!ports.length) throw noPorts(inst.uuid);
    let found = false;
    for (const p of ports) {
      if (!(p.security_groups ?? []).includes(groupId)) continue;
      await setPortGroups(deps, req, p, (p.security_groups ?? []).filter((g) => g !== groupId));
      found = true;
    }
    if (!found) throw notFound(`Security group ${name} not associated with the instance ${inst.uuid}`);
    return { status: 202 };
  },
  addFloatingIp: async (deps, req, arg) => {
    if (mv(req, '2.44')) throw versionNotFound();
    const inst = await serverFor(deps, req, undefined);
    enforce(deps, req, 'os_compute_api:os-floating-ips:add', { project_id: inst.projectId });
    const a = obj(arg, 'addFloatingIp');
    if (a.address === undefined) throw badRequest("Invalid input for field/attribute addFloatingIp. 'address' is a required property");
    const address = str(a.address, 'address');
    if (!isIP(address)) throw badRequest(`Invalid input for field/attribute address. Value: ${address}. '${address}' is not a 'ipv4'`);
    if (!inst.networkInfo.length) throw badRequest('Instance network is not ready yet');
    const fixed = fixedAddresses(inst);
    if (!fixed.length) throw badRequest('No fixed IPs associated to instance');
    let target = fixed.find((f) => f.version === 4);
    if (a.fixed_address !== undefined) {
      target = fixed.find((f) => f.address === a.fixed_address);
      if (!target) throw badRequest('Specified fixed address not assigned to instance');
    }
    if (!target) throw badRequest(`Unable to associate floating IP ${address} to any fixed IPs for instance ${inst.uuid}. Instance has no fixed IPv4 addresses to associate.`);
    const fip = await fipByAddress(deps, req, address);
    if (!fip) throw notFound('floating IP not found');
    const r = await neutron(deps, req, 'PUT', `/floatingips/${fip.id}`, { floatingip: { port_id: target.portId, fixed_ip_address: target.address } });
    if (r.status === 403) throw forbidden(neutronMessage(r));
    if (r.status !== 200) {
      throw badRequest(`Unable to associate floating IP ${address} to fixed IP ${target.address} for instance ${inst.uuid}. Error: ${neutronMessage(r)}`);
    }
    return { status: 202 };
  },
  removeFloatingIp: async (deps, req, arg) => {
    if (mv(req, '2.44')) throw versionNotFound();
    const serverId = (req.params as { server_id: string }).server_id;
    const a = obj(arg, 'removeFloatingIp');
    if (a.address === undefined) throw badRequest("Invalid input for field/attribute removeFloatingIp. 'address' is a required property");
    const address = str(a.address, 'address');
    const fip = await fipByAddress(deps, req, address);
    if (!fip) throw notFound('floating IP not found');
    const port = fip.port_id ? await neutron(deps, req, 'GET', `/ports/${fip.port_id}`) : undefined;
    const deviceId: string | undefined = port?.status === 200 ? port.body.port.device_id : undefined;
    const inst = deviceId ? await serverFor(deps, req, undefined, deviceId) : undefined;
    enforce(deps, req, 'os_compute_api:os-floating-ips:remove', inst ? { project_id: inst.projectId } : {});
    if (!inst || inst.uuid !== serverId) throw conflict(`Floating IP ${address} is not associated with instance ${serverId}.`);
    const r = await neutron(deps, req, 'PUT', `/floatingips/${fip.id}`, { floatingip: { port_id: null } });
    if (r.status === 403) throw forbidden(neutronMessage(r));
    if (r.status !== 200) throw unexpected(r, 'PUT floating IP');
    return { status: 202 };
  },
};

export function registerFloatingIpProxyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const gate = (req: FastifyRequest, what: string) => {
    if (mv(req, MAX_PROXY)) throw versionNotFound();
    enforce(deps, req, `os_compute_api:os-floating-ips:${what}`, { project_id: callerOf(deps, req).projectId });
  };
  /** _translate_floating_ip_view: the pool is the external network's name; the instance is the port's device. */
  const views = async (req: FastifyRequest, fips: NeutronFip[]) => {
    const nets = new Map<string, string>();
    const devices = new Map<string, string | null>();
    const out = [];
    for (const f of fips) {
      if (!nets.has(f.floating_network_id)) {
        const n = await neutron(deps, req, 'GET', `/networks/${f.floating_network_id}`);
        nets.set(f.floating_network_id, n.status === 200 ? n.body.network.name || f.floating_network_id : f.floating_network_id);
      }
      if (f.port_id && !devices.has(f.port_id)) {
        const p = await neutron(deps, req, 'GET', `/ports/${f.port_id}`);
        devices.set(f.port_id, p.status === 200 ? p.body.port.device_id || null : null);
      }
      out.push({ fixed_ip: f.fixed_ip_address, id: f.id, instance_id: f.port_id ? (devices.get(f.port_id) ?? null) : null, ip: f.floating_ip_address, pool: nets.get(f.floating_network_id) });
    }
    return out;
  };
  const fipNotFound = (id: string) => notFound(`Floating IP not found for ID ${id}`);
  const getFip = async (req: FastifyRequest, id: string): Promise<NeutronFip> => {
    const r = await neutron(deps, req, 'GET', `/floatingips/${encodeURIComponent(id)}`);
    if (r.status === 404 || r.status === 400) throw fipNotFound(id);
    if (r.status !== 200) throw unexpected(r, 'GET floating IP');
    return r.body.floatingip;
  };

  app.get('/v2.1/os-floating-ip-pools', async (req) => {
    if (mv(req, MAX_PROXY)) throw versionNotFound();
    enforce(deps, req, 'os_compute_api:os-floating-ip-pools');
    const r = await neutron(deps, req, 'GET', '/networks?router:external=true');
    if (r.status !== 200) throw unexpected(r, 'GET external networks');
    return { floating_ip_pools: r.body.networks.map((n: { id: string; name: string }) => ({ name: n.name || n.id })) };
  });
  app.get('/v2.1/os-floating-ips', async (req) => {
    gate(req, 'list');
    const r = await neutron(deps, req, 'GET', `/floatingips?tenant_id=${encodeURIComponent(callerOf(deps, req).projectId)}`);
    if (r.status !== 200) throw unexpected(r, 'GET floating IPs');
    return { floating_ips: await views(req, r.body.floatingips) };
  });
  app.get('/v2.1/os-floating-ips/:id', async (req) => {
    gate(req, 'show');
    const [view] = await views(req, [await getFip(req, (req.params as { id: string }).id)]);
    return { floating_ip: view };
  });
  app.post('/v2.1/os-floating-ips', async (req) => {
    gate(req, 'create');
    const body = req.body === undefined || req.body === null || req.body === '' ? {} : obj(req.body, 'body');
    const pool = body.pool === undefined || body.pool === null ? deps.config.defaultFloatingPool : str(body.pool, 'pool', { min: 1, max: 255 });
    const nets = await neutron(deps, req, 'GET', `/networks?router:external=true&${UUID.test(pool) ? 'id' : 'name'}=${encodeURIComponent(pool)}`);
    const found: { id: string }[] = nets.status === 200 ? nets.body.networks : [];
    if (found.length === 0) throw notFound('Floating IP pool not found.');
    if (found.length > 1) throw new ApiError('internal', `Multiple floating IP pools matches found for name '${pool}'`);
    const r = await neutron(deps, req, 'POST', '/floatingips', { floatingip: { floating_network_id: found[0].id } });
    const type = (r.body as { NeutronError?: { type?: string } })?.NeutronError?.type ?? '';
    if (r.status === 409 && type === 'OverQuota') throw forbidden(body.pool ? `IP allocation over quota in pool ${pool}.` : 'IP allocation over quota.');
    if (r.status === 409 || /IpAddressGenerationFailure|ExternalIpAddressExhausted/.test(type)) throw notFound(body.pool ? `No more floating IPs in pool ${pool}.` : 'No more floating IPs available.');
    if (r.status === 400) throw badRequest(neutronMessage(r));
    if (r.status !== 201) throw unexpected(r, 'POST floating IP');
    const [view] = await views(req, [r.body.floatingip]);
    return { floating_ip: view };
  });
  app.delete('/v2.1/os-floating-ips/:id', async (req, reply) => {
    gate(req, 'delete');
    const id = (req.params as { id: string }).id;
    await getFip(req, id);
    const r = await neutron(deps, req, 'DELETE', `/floatingips/${encodeURIComponent(id)}`);
    if (r.status === 404) throw fipNotFound(id);
    if (r.status === 403) throw forbidden(neutronMessage(r));
    if (r.status !== 204) throw unexpected(r, 'DELETE floating IP');
    reply.code(202);
    return '';
  });
}

/** os-networks and os-tenant-networks: read-only views of Neutron's networks; the nova-network writes are gone (410). */
export function registerNetworkProxyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const FIELDS = ['id', 'cidr', 'netmask', 'gateway', 'broadcast', 'dns1', 'dns2', 'cidr_v6', 'gateway_v6', 'label', 'netmask_v6'];
  const ADMIN_FIELDS = ['created_at', 'updated_at', 'deleted_at', 'deleted', 'injected', 'bridge', 'vlan', 'vpn_public_address', 'vpn_public_port', 'vpn_private_address', 'dhcp_start', 'project_id', 'host', 'bridge_interface', 'multi_host', 'priority', 'rxtx_base', 'mtu', 'dhcp_server', 'enable_dhcp', 'share_address'];
  const view = (req: FastifyRequest, n: { id: string; name: string }) =>
    Object.fromEntries([...FIELDS, ...(isAdmin(deps, req) ? ADMIN_FIELDS : [])].map((f) => [f, f === 'id' ? n.id : f === 'label' ? n.name : null]));
  const gate = (req: FastifyRequest, what: string, api = 'os-networks') => {
    if (mv(req, MAX_PROXY)) throw versionNotFound();
    enforce(deps, req, `os_compute_api:${api}:${what}`, { project_id: callerOf(deps, req).projectId });
  };
  app.get('/v2.1/os-networks', async (req) => {
    gate(req, 'list');
    const r = await neutron(deps, req, 'GET', '/networks');
    if (r.status !== 200) throw unexpected(r, 'GET networks');
    return { networks: r.body.networks.map((n: { id: string; name: string }) => view(req, n)) };
  });
  app.get('/v2.1/os-networks/:id', async (req) => {
    gate(req, 'show');
    const r = await neutron(deps, req, 'GET', `/networks/${encodeURIComponent((req.params as { id: string }).id)}`);
    if (r.status === 404 || r.status === 400) throw notFound('Network not found');
    if (r.status !== 200) throw unexpected(r, 'GET network');
    return { network: view(req, r.body.network) };
  });
  // os-tenant-networks: the same networks as upstream's network_dict shows them (its cidr is the text 'None').
  const tenantView = (n: { id: string; name: string }) => ({ id: n.id, cidr: 'None', label: n.name });
  app.get('/v2.1/os-tenant-networks', async (req) => {
    gate(req, 'list', 'os-tenant-networks');
    const r = await neutron(deps, req, 'GET', '/networks');
    if (r.status !== 200) throw unexpected(r, 'GET networks');
    return { networks: r.body.networks.map(tenantView) };
  });
  app.get('/v2.1/os-tenant-networks/:id', async (req) => {
    gate(req, 'show', 'os-tenant-networks');
    const r = await neutron(deps, req, 'GET', `/networks/${encodeURIComponent((req.params as { id: string }).id)}`);
    if (r.status === 404 || r.status === 400) throw notFound('Network not found');
    if (r.status !== 200) throw unexpected(r, 'GET network');
    return { network: tenantView(r.body.network) };
  });
  const gone = async () => {
    throw new ApiError('gone', 'Gone');
  };
  app.post('/v2.1/os-tenant-networks', gone);
  app.delete('/v2.1/os-tenant-networks/:id', gone);
  app.post('/v2.1/os-networks', gone);
  app.post('/v2.1/os-networks/add', gone);
  app.delete('/v2.1/os-networks/:id', gone);
  app.post('/v2.1/os-networks/:id/action', gone);
}
