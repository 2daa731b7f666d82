import type { FastifyInstance } from 'fastify';
import { notFound } from '@onestack/core/errors.ts';
import { formatVersion } from '@onestack/core/http/microversion.ts';
import type { ServiceRow } from '../db/schema.ts';
import { invalidInput } from '../domain/errors.ts';
import type { CleanupRequest, WorkerCleanup } from '../domain/workers.ts';
import { boolParam, enforce, mv, projectOf, type ApiDeps } from './context.ts';

const hostname = { type: ['string', 'null'], minLength: 1, maxLength: 255, pattern: '^[a-zA-Z0-9-._#@:/+]*$' };
const boolean = { type: ['boolean', 'string'], enum: [true, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', false, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f'] };

/** upstream's schemas/workers.py; service ids here are UUIDs, not upstream's integers. */
const CLEANUP_BODY = {
  type: ['object', 'null'],
  properties: {
    cluster_name: hostname,
    disabled: boolean,
    host: hostname,
    is_up: boolean,
    binary: { enum: ['cinder-volume', 'cinder-scheduler'] },
    resource_id: { oneOf: [{ type: 'null' }, { type: 'string', format: 'uuid' }] },
    resource_type: { type: ['string', 'null'], minLength: 0, maxLength: 40 },
    service_id: { type: ['string', 'null'], maxLength: 36 },
  },
  additionalProperties: false,
};

const serviceList = (services: ServiceRow[]) => services.map((s) => ({ id: s.id, host: s.host, binary: s.binary, cluster_name: null }));

/** POST /workers/cleanup (3.24, admin): upstream's request and its `cleaning`/`unavailable` lists. */
export function registerWorkerRoutes(app: FastifyInstance, deps: ApiDeps, cleanup: WorkerCleanup): void {
  app.post('/v3/:project_id/workers/cleanup', { schema: { body: CLEANUP_BODY } }, async (req, reply) => {
    projectOf(deps, req);
    if (!mv(req, '3.24')) throw notFound(`API version ${req.ctx.microversion ? formatVersion(req.ctx.microversion) : '3.0'} is not supported on this method.`);
    enforce(deps, req, 'workers:cleanup');
    const b = (req.body ?? {}) as Record<string, unknown>;
    const opt = (k: string) => (b[k] === null || b[k] === undefined ? undefined : String(b[k]));
    let resourceType: CleanupRequest['resourceType'];
    if (opt('resource_type')) {
      const t = opt('resource_type')!;
      const titled = t.charAt(0).toUpperCase() + t.slice(1).toLowerCase();
      if (titled !== 'Volume' && titled !== 'Snapshot') throw invalidInput(`Resource type ${titled} not valid, must be Volume or Snapshot`);
      resourceType = titled;
    }
    const request: CleanupRequest = {
      serviceId: opt('service_id'),
      clusterName: opt('cluster_name'),
      host: opt('host'),
      binary: opt('binary'),
      isUp: b.is_up === undefined || b.is_up === null ? false : boolParam(b.is_up, 'is_up'),
      disabled: b.disabled === undefined || b.disabled === null ? undefined : boolParam(b.disabled, 'disabled'),
      resourceType,
      resourceId: opt('resource_id'),
    };
    const { cleaning, unavailable } = await cleanup.cleanup(request);
    reply.code(202);
    return { cleaning: serviceList(cleaning), unavailable: serviceList(unavailable) };
  });
}
