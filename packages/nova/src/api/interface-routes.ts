import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { badRequest, conflict, notFound } from '@onestack/core/errors.ts';
import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import { instanceLocked, invalidState } from '../domain/errors.ts';
import type { Instance } from '../domain/instances.ts';
import { callerOf, enforce, mv, serverFor, type ApiDeps } from './context.ts';
import { obj, str, tag as tagOf, UUID } from './validate.ts';

const P = 'os_compute_api:os-attach-interfaces';
const READER = 'rule:context_is_admin or (role:reader and project_id:%(project_id)s)';
const MEMBER = 'rule:context_is_admin or (role:member and project_id:%(project_id)s)';

/** upstream's nova/policies/attach_interfaces.py. */
export const interfacePolicies: RuleDefault[] = [
  { name: `${P}:list`, checkStr: READER, description: 'List port interfaces attached to a server', scopeTypes: ['project'] },
  { name: `${P}:show`, checkStr: READER, description: 'Show details of a port interface attached to a server', scopeTypes: ['project'] },
  { name: `${P}:create`, checkStr: MEMBER, description: 'Attach an interface to a server', scopeTypes: ['project'] },
  { name: `${P}:delete`, checkStr: MEMBER, description: 'Detach an interface from a server', scopeTypes: ['project'] },
];

interface Port {
  id: string;
  network_id: string;
  mac_address: string;
  status: string;
  device_id: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}

function view(req: FastifyRequest, inst: Instance, p: Port) {
  return {
    net_id: p.network_id,
    port_id: p.id,
    mac_addr: p.mac_address,
    port_state: p.status,
    fixed_ips: p.fixed_ips,
    ...(mv(req, '2.70') ? { tag: inst.networkInfo.find((v) => v.portId === p.id)?.tag ?? null } : {}),
  };
}

const portNotFound = (id: string) => notFound(`Port ${id} could not be found.`);

async function server(deps: ApiDeps, req: FastifyRequest, action: string): Promise<Instance> {
  const inst = await serverFor(deps, req, undefined);
  enforce(deps, req, `${P}:${action}`, { project_id: inst.projectId, user_id: inst.userId });
  return inst;
}

/** upstream's check_instance_lock and check_instance_state(vm_state=[ACTIVE, PAUSED, STOPPED], task_state=[None]). */
function checkState(deps: ApiDeps, req: FastifyRequest, inst: Instance, method: string): void {
  if (inst.lockedBy && !callerOf(deps, req).isAdmin) throw instanceLocked(inst.uuid);
  if (!['active', 'paused', 'stopped'].includes(inst.vmState)) throw invalidState(inst.uuid, 'vm_state', inst.vmState, method);
  if (inst.taskState) throw invalidState(inst.uuid, 'task_state', inst.taskState, method);
  if (!inst.host) throw conflict(`Instance ${inst.uuid} is not ready`);
}

/** The one network a request without net_id or port_id gets: the project's own, else a shared one, never an external one. */
async function onlyNetwork(deps: ApiDeps, token: string, projectId: string): Promise<string> {
  const own = (await deps.neutron.call(token, 'GET', `/networks?project_id=${encodeURIComponent(projectId)}&router:external=false`)).body?.networks ?? [];
  const nets = own.length ? own : ((await deps.neutron.call(token, 'GET', '/networks?shared=true&router:external=false')).body?.networks ?? []);
  if (nets.length === 0) throw badRequest(`No specific network was requested and none are available for project '${projectId}'.`);
  if (nets.length > 1) throw badRequest('More than one possible network found. Specify network ID(s) to select which one(s) to connect to.');
  return nets[0].id;
}

function attachBody(req: FastifyRequest): { networkId?: string; portId?: string; fixedIp?: string; tag?: string } {
  if (req.body === undefined || req.body === null) return {};
  const body = obj(req.body, 'body');
  for (const k of Object.keys(body)) if (k !== 'interfaceAttachment') throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
  if (body.interfaceAttachment === undefined) return {};
  const a = obj(body.interfaceAttachment, 'interfaceAttachment');
  const allowed = ['net_id', 'port_id', 'fixed_ips', ...(mv(req, '2.49') ? ['tag'] : [])];
  for (const k of Object.keys(a)) if (!allowed.includes(k)) throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
  const id = (v: unknown, f: string) => (v === undefined ? undefined : str(v, f, { pattern: UUID }));
  let fixedIp: string | undefined;
  if (a.fixed_ips !== undefined) {
    if (!Array.isArray(a.fixed_ips) || a.fixed_ips.length !== 1) throw badRequest('Invalid input for field/attribute fixed_ips. Value: ' + JSON.stringify(a.fixed_ips) + '. Exactly one fixed IP may be requested');
    fixedIp = str(obj(a.fixed_ips[0], 'fixed_ips').ip_address, 'ip_address');
  }
  return { networkId: id(a.net_id, 'net_id'), portId: id(a.port_id, 'port_id'), fixedIp, tag: a.tag === undefined ? undefined : tagOf(a.tag) };
}

/** os-interface (upstream's attach_interfaces.py): the server's ports as Neutron has them; attach and detach hot-plug. */
export function registerInterfaceRoutes(app: FastifyInstance, deps: ApiDeps, bus: Bus): void {
  const base = '/v2.1/servers/:server_id/os-interface';

  app.get(base, async (req) => {
    const inst = await server(deps, req, 'list');
    const r = await deps.neutron.call(callerOf(deps, req).token, 'GET', `/ports?device_id=${inst.uuid}`);
    return { interfaceAttachments: ((r.body?.ports ?? []) as Port[]).map((p) => view(req, inst, p)) };
  });

  const show = async (req: FastifyRequest, inst: Instance, portId: string) => {
    const r = await deps.neutron.call(callerOf(deps, req).token, 'GET', `/ports/${encodeURIComponent(portId)}`);
    if (r.status === 404) throw portNotFound(portId);
    const port = r.body?.port as Port | undefined;
    if (!port || port.device_id !== inst.uuid) throw notFound(`Instance ${inst.uuid} does not have a port with id ${portId}`);
    return { interfaceAttachment: view(req, inst, port) };
  };

  app.get(`${base}/:port_id`, async (req) => show(req, await server(deps, req, 'show'), (req.params as { port_id: string }).port_id));

  app.post(base, async (req) => {
    const inst = await server(deps, req, 'create');
    const a = attachBody(req);
    if (a.networkId && a.portId) throw badRequest('Must not input both network_id and port_id');
    if (a.fixedIp && !a.networkId) throw badRequest('Must input network_id when request IP address');
    checkState(deps, req, inst, 'attach_interface');
    const caller = callerOf(deps, req);
    if (a.portId) {
      const r = await deps.neutron.call(caller.token, 'GET', `/ports/${a.portId}`);
      if (r.status === 404) throw portNotFound(a.portId);
      if ((r.body?.port as Port).device_id) throw conflict(`Port ${a.portId} is still in use.`);
    } else if (a.networkId) {
      if ((await deps.neutron.call(caller.token, 'GET', `/networks/${a.networkId}`)).status === 404) throw notFound(`Network ${a.networkId} could not be found.`);
    } else {
      a.networkId = await onlyNetwork(deps, caller.token, inst.projectId);
    }
    await deps.actions.start({ uuid: inst.uuid, action: 'attach_interface', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    const { portId } = await bus.call<{ portId: string }>(COMPUTE_TOPIC, 'attach_interface', { uuid: inst.uuid, ...a }, { host: inst.host!, timeoutMs: 300_000 });
    return show(req, (await deps.instances.find(inst.uuid))!, portId);
  });

  app.delete(`${base}/:port_id`, async (req, reply) => {
    const inst = await server(deps, req, 'delete');
    const portId = (req.params as { port_id: string }).port_id;
    checkState(deps, req, inst, 'detach_interface');
    if (!inst.networkInfo.some((v) => v.portId === portId)) throw notFound(`Port ${portId} is not attached`);
    const caller = callerOf(deps, req);
    await deps.actions.start({ uuid: inst.uuid, action: 'detach_interface', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await bus.call(COMPUTE_TOPIC, 'detach_interface', { uuid: inst.uuid, portId }, { host: inst.host!, timeoutMs: 300_000 });
    reply.code(202);
    return '';
  });
}
