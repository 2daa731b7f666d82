import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { badRequest } from '@onestack/core/errors.ts';
import { authOf, enforce, mv, type ApiDeps } from './context.ts';
import { invalid, noExtra, obj, str, UUID } from './validate.ts';

/** Event names os-server-external-events accepts, with the microversion that brought each. */
const EVENT_NAMES: [string, string][] = [
  ['network-changed', '2.0'],
  ['network-vif-plugged', '2.0'],
  ['network-vif-unplugged', '2.0'],
  ['network-vif-deleted', '2.0'],
  ['volume-extended', '2.51'],
  ['power-update', '2.76'],
  ['accelerator-request-bound', '2.82'],
];
const STATUSES = ['failed', 'completed', 'in-progress'];
/** Events that mean nothing without a tag (a volume, a power state, an accelerator request). */
const TAG_REQUIRED = ['volume-extended', 'power-update', 'accelerator-request-bound'];
/** power-update's tags and the instance action each records. */
const POWER_ACTIONS: Record<string, string> = { POWER_ON: 'start', POWER_OFF: 'stop' };

/** One event of the request and its outcome (upstream answers the events back with `code` and `status`). */
export interface ExternalEvent {
  name: string;
  server_uuid: string;
  status: string;
  tag?: string;
  code?: number;
}

const py = (xs: string[]) => `[${xs.map((x) => `'${x}'`).join(', ')}]`;

function parseEvents(req: FastifyRequest): ExternalEvent[] {
  const body = obj(req.body, 'body');
  noExtra(body, ['events']);
  if (body.events === undefined) throw badRequest("'events' is a required property");
  if (!Array.isArray(body.events)) throw invalid('events', body.events, `${JSON.stringify(body.events)} is not of type 'array'`);
  if (body.events.length === 0) throw invalid('events', body.events, '[] is too short');
  const names = EVENT_NAMES.filter(([, v]) => mv(req, v)).map(([n]) => n);
  return body.events.map((raw) => {
    const e = obj(raw, 'events');
    noExtra(e, ['name', 'server_uuid', 'status', 'tag']);
    for (const k of ['name', 'server_uuid']) if (e[k] === undefined) throw badRequest(`'${k}' is a required property`);
    const name = str(e.name, 'name');
    if (!names.includes(name)) throw invalid('name', name, `'${name}' is not one of ${py(names)}`);
    const uuid = str(e.server_uuid, 'server_uuid');
    if (!UUID.test(uuid)) throw invalid('server_uuid', uuid, `'${uuid}' is not a 'uuid'`);
    const status = e.status === undefined ? 'completed' : str(e.status, 'status');
    if (!STATUSES.includes(status)) throw invalid('status', status, `'${status}' is not one of ${py(STATUSES)}`);
    const event: ExternalEvent = { name, server_uuid: uuid, status };
    if (e.tag !== undefined) event.tag = str(e.tag, 'tag', { max: 255 });
    return event;
  });
}

/**
 * POST /os-server-external-events (services such as Neutron, Cinder, Ironic, Cyborg): each event
 * goes to the instance's compute host the way Neutron's own do, as a notification of that name
 * whose payload is the event (compute/manager.ts subscribes to them). Per event: 404 for an
 * unknown server, 400 for a missing tag, 422 for a server on no host, else 200; any failure
 * makes the answer 207.
 */
export function registerExternalEventRoutes(app: FastifyInstance, deps: ApiDeps, bus: Bus): void {
  app.post('/v2.1/os-server-external-events', async (req, reply) => {
    const events = parseEvents(req);
    enforce(deps, req, 'os_compute_api:os-server-external-events:create');
    const auth = authOf(req);
    let code = 200;
    for (const e of events) {
      const inst = await deps.instances.find(e.server_uuid);
      const outcome = !inst ? 404 : TAG_REQUIRED.includes(e.name) && e.tag === undefined ? 400 : !inst.host ? 422 : 200;
      e.code = outcome;
      if (outcome !== 200) {
        e.status = 'failed';
        code = 207;
        continue;
      }
      const payload = { name: e.name, server_uuid: e.server_uuid, status: e.status, ...(e.tag === undefined ? {} : { tag: e.tag }) };
      e.status = 'completed';
      // The user can follow a power change through the server's instance actions (upstream's compute API records it).
      const action = e.name === 'power-update' ? POWER_ACTIONS[e.tag!] : e.name === 'volume-extended' ? 'extend_volume' : undefined;
      if (action) await deps.actions.start({ uuid: inst!.uuid, action, requestId: req.id, projectId: auth.projectId, userId: auth.userId });
      await bus.notify({ eventType: e.name, publisherId: `nova-api.${deps.config.host}`, priority: 'INFO', payload, ctx: { requestId: req.id } });
    }
    reply.code(code);
    return { events };
  });
}
