import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { badRequest, conflict, notFound } from '@onestack/core/errors.ts';
import type { RuleDefault } from '@onestack/core/policy/index.ts';
import type { ConsoleConfig } from '../console/conf.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import type { ConsoleTokens, ConsoleType } from '../domain/console-tokens.ts';
import { TaskState, VmState } from '../domain/states.ts';
import type { ConsoleEndpoint } from '../virt/driver.ts';
import { enforce, mv, serverFor, type ApiDeps } from './context.ts';
import { obj } from './validate.ts';

export interface ConsoleDeps {
  tokens: ConsoleTokens;
  config: ConsoleConfig;
  bus: Bus;
}

const RC = 'os_compute_api:os-remote-consoles';
const CAT = 'os_compute_api:os-console-auth-tokens';

/** upstream's nova/policies/remote_consoles.py and console_auth_tokens.py. */
export const consolePolicies: RuleDefault[] = [
  { name: RC, checkStr: 'rule:context_is_admin or (role:member and project_id:%(project_id)s)', description: 'Generate a URL to access remove server console.', scopeTypes: ['project'] },
  { name: CAT, checkStr: 'rule:context_is_admin', description: 'Show console connection information for a given console authentication token', scopeTypes: ['project'] },
];

const PROTOCOLS = ['vnc', 'spice', 'serial', 'rdp'];
const TYPES = ['novnc', 'xvpvnc', 'spice-html5', 'serial', 'rdp-html5'];

/** The URL a client opens: noVNC's page takes the websocket path in `path`, the serial proxy the token itself. */
function accessUrl(base: string, type: ConsoleType, token: string): string {
  const sep = base.includes('?') ? '&' : '?';
  return type === 'novnc' ? `${base}${sep}path=%3Ftoken%3D${token}` : `${base}${sep}token=${token}`;
}

/**
 * One console URL for a server (upstream's compute API get_vnc_console/get_serial_console
 * and the compute manager's checks): the protocol must be one this deployment serves and
 * the type must be the one it serves it as.
 */
async function consoleUrl(deps: ApiDeps, c: ConsoleDeps, req: FastifyRequest, protocol: string, type: string): Promise<string> {
  const inst = await serverFor(deps, req, undefined);
  enforce(deps, req, RC, { project_id: inst.projectId, user_id: inst.userId });
  if (protocol === 'rdp') throw badRequest(`Unavailable console type ${protocol}.`);
  // The API's checks (check_instance_host, reject_instance_state), then the compute manager's.
  if (!inst.host || inst.vmState === VmState.BUILDING) throw conflict(`Instance ${inst.uuid} is not ready`);
  if (inst.taskState === TaskState.DELETING || inst.taskState === 'migrating') throw conflict(`Cannot 'get_${protocol}_console' instance ${inst.uuid} while it is in task_state ${inst.taskState}`);
  const proxied: Record<string, { type: ConsoleType; port: number }> = { vnc: { type: 'novnc', port: c.config.novncPort }, serial: { type: 'serial', port: c.config.serialPort } };
  const p = proxied[protocol];
  if (!p || p.port === 0) throw badRequest(`Unavailable console type ${type}.`);
  if (type !== p.type) throw badRequest(`Invalid console type ${type}`);
  const endpoint = await c.bus.call<ConsoleEndpoint>(COMPUTE_TOPIC, 'get_console_endpoint', { uuid: inst.uuid, protocol }, { host: inst.host, timeoutMs: 30_000 });
  const base = p.type === 'novnc' ? c.config.novncBaseUrl : c.config.serialBaseUrl;
  const { token } = await c.tokens.issue({ instanceUuid: inst.uuid, consoleType: p.type, endpoint, accessUrlBase: base });
  return accessUrl(base, p.type, token);
}

function enumField(v: unknown, field: string, allowed: string[]): string {
  if (typeof v !== 'string' || !allowed.includes(v)) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${typeof v === 'string' ? v : JSON.stringify(v)}. ${JSON.stringify(v)} is not one of ${JSON.stringify(allowed)}`);
  return v;
}

function consoleBody(arg: unknown, key: string, types: string[]): string {
  const a = obj(arg, key);
  if (a.type === undefined) throw badRequest("Invalid input for field/attribute " + key + ". Value: {}. 'type' is a required property");
  for (const k of Object.keys(a)) if (k !== 'type') throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
  return enumField(a.type, 'type', types);
}

type ActionResult = { status: number; body?: unknown };
type LegacyHandler = (deps: ApiDeps, req: FastifyRequest, arg: unknown) => Promise<ActionResult>;

const legacy = (key: string, protocol: string, types: string[]): LegacyHandler => async (deps, req, arg) => {
    if (mv(req, '2.6')) throw notFound('The resource could not be found.');
    const type = consoleBody(arg, key, types);
    const url = await consoleUrl(deps, deps.consoles, req, protocol, type);
    return { status: 200, body: { console: { type, url } } };
  };

/** The ≤2.5 actions os-getVNCConsole and os-getSerialConsole; action-routes.ts spreads them into its map. */
export const CONSOLE_ACTIONS: Record<string, LegacyHandler> = {
  'os-getVNCConsole': legacy('os-getVNCConsole', 'vnc', ['novnc', 'xvpvnc']),
  'os-getSerialConsole': legacy('os-getSerialConsole', 'serial', ['serial']),
};

export function registerConsoleRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const c = deps.consoles;
  app.post('/v2.1/servers/:server_id/remote-consoles', async (req) => {
    if (!mv(req, '2.6')) throw notFound('The resource could not be found.');
    const body = obj(req.body, 'body');
    for (const k of Object.keys(body)) if (k !== 'remote_console') throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
    if (body.remote_console === undefined) throw badRequest("'remote_console' is a required property");
    const rc = obj(body.remote_console, 'remote_console');
    for (const k of Object.keys(rc)) if (k !== 'protocol' && k !== 'type') throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
    for (const k of ['protocol', 'type']) if (rc[k] === undefined) throw badRequest(`'${k}' is a required property`);
    const v28 = mv(req, '2.8');
    const protocol = enumField(rc.protocol, 'remote_console/protocol', v28 ? [...PROTOCOLS, 'mks'] : PROTOCOLS);
    const type = enumField(rc.type, 'remote_console/type', v28 ? [...TYPES, 'webmks'] : TYPES);
    const url = await consoleUrl(deps, c, req, protocol, type);
    return { remote_console: { protocol, type, url } };
  });

  app.get('/v2.1/os-console-auth-tokens/:token', async (req) => {
    // Below 2.31 only RDP tokens could be shown, and RDP is gone: upstream answers 400 there.
    if (!mv(req, '2.31')) throw badRequest('The server could not comply with the request since it is either malformed or otherwise incorrect.');
    enforce(deps, req, CAT);
    const auth = await c.tokens.validate((req.params as { token: string }).token);
    if (!auth) throw notFound('Token not found');
    const e = auth.endpoint;
    return {
      console: {
        instance_uuid: auth.instanceUuid,
        host: e.kind === 'tcp' ? e.host : null,
        port: e.kind === 'tcp' ? e.port : null,
        internal_access_path: e.kind === 'unix' ? e.path : null,
      },
    };
  });
}
