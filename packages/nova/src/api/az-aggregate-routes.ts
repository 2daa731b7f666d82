import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import { precacheOnHosts } from '../compute/image-precache.ts';
import type { Aggregate } from '../domain/aggregates.ts';
import { callerOf, enforce, mv, type ApiDeps } from './context.ts';
import { invalid, name, noExtra, obj, str, UUID } from './validate.ts';

/** Aggregate times as upstream serializes its naive datetimes. */
const naive = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString().replace('Z', '000'));

function aggregateView(req: FastifyRequest, a: Aggregate, withMembers = true) {
  return {
    availability_zone: a.availabilityZone,
    created_at: naive(a.createdAt),
    deleted: false,
    deleted_at: null,
    ...(withMembers ? { hosts: a.hosts, metadata: a.metadata } : {}),
    id: a.id,
    name: a.name,
    updated_at: naive(a.updatedAt),
    ...(mv(req, '2.41') ? { uuid: a.uuid } : {}),
  };
}

/** parameter_types.az_name: no colon (host:node is the forced-host syntax) and no outer blanks. */
function azName(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const s = str(v, 'availability_zone', { min: 1, max: 255 });
  if (s.includes(':') || s.trim() !== s) throw invalid('availability_zone', s, `'${s}' is not a 'az_name'`);
  return s;
}

/** schemas/aggregate_images.py: {"cache": [{"id": <image uuid>}, …]}, at least one. */
function cacheRequest(body: unknown): string[] {
  const b = obj(body, 'body');
  noExtra(b, ['cache']);
  if (b.cache === undefined) throw badRequest("'cache' is a required property");
  if (!Array.isArray(b.cache)) throw invalid('cache', b.cache, `${JSON.stringify(b.cache)} is not of type 'array'`);
  if (b.cache.length === 0) throw invalid('cache', b.cache, '[] is too short');
  return b.cache.map((item) => {
    const o = obj(item, 'cache');
    noExtra(o, ['id']);
    if (o.id === undefined) throw badRequest("'id' is a required property");
    const id = str(o.id, 'id');
    if (!UUID.test(id)) throw invalid('id', id, `'${id}' is not a 'uuid'`);
    return id;
  });
}

/** utils.validate_integer on the path id, as the aggregates API does before any lookup. */
function aggregateId(req: FastifyRequest): number {
  const id = (req.params as { id: string }).id;
  if (!/^-?\d+$/.test(id)) throw badRequest('Invalid input received: id must be an integer');
  return Number(id);
}

function hostArg(body: Record<string, unknown>, action: string): string {
  const a = obj(body[action], action);
  noExtra(a, ['host']);
  if (a.host === undefined) throw badRequest(`Invalid input for field/attribute ${action}. 'host' is a required property`);
  return str(a.host, 'host', { min: 1, max: 255, pattern: /^[a-zA-Z0-9\-._]*$/ });
}

function metadataWithNull(v: unknown): Record<string, string | null> {
  const o = obj(v, 'metadata');
  for (const [k, val] of Object.entries(o)) {
    if (!/^[a-zA-Z0-9\-_:. ]{1,255}$/.test(k)) throw invalid('metadata', o, `'${k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'`);
    if (val !== null && typeof val !== 'string') throw invalid('metadata', o, `${JSON.stringify(val)} is not of type 'string', 'null'`);
    if (typeof val === 'string' && val.length > 255) throw invalid('metadata', o, `'${val}' is too long`);
  }
  return o as Record<string, string | null>;
}

/** os-aggregates (admin): CRUD, hosts and metadata; the availability_zone key is the hosts' zone. */
export function registerAggregateRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const rule = (what: string) => `os_compute_api:os-aggregates:${what}`;
  app.get('/v2.1/os-aggregates', async (req) => {
    enforce(deps, req, rule('index'));
    return { aggregates: (await deps.aggregates.list()).map((a) => aggregateView(req, a)) };
  });
  app.post('/v2.1/os-aggregates/:id/images', async (req, reply) => {
    if (!mv(req, '2.81')) throw notFound('The resource could not be found.');
    const imageIds = cacheRequest(req.body);
    enforce(deps, req, 'compute:aggregates:images');
    const id = aggregateId(req);
    if (new Set(imageIds).size !== imageIds.length) throw badRequest('Duplicate images in request');
    const aggregate = await deps.aggregates.get(id);
    // Every image must be one the caller sees before the hosts are asked (upstream's conductor API does the same).
    const caller = callerOf(deps, req);
    for (const image of imageIds) await deps.compute.image(caller, image);
    // The hosts fetch in the background, as upstream's conductor does after its cast; the answer does not wait.
    void precacheOnHosts(deps.bus, COMPUTE_TOPIC, aggregate.hosts, imageIds, req.log).catch((err) => req.log.error({ err }, 'image pre-cache failed'));
    reply.code(202);
    return '';
  });
  app.post('/v2.1/os-aggregates', async (req) => {
    enforce(deps, req, rule('create'));
    const a = obj(obj(req.body, 'body').aggregate, 'aggregate');
    noExtra(a, ['name', 'availability_zone']);
    if (a.name === undefined) throw badRequest("Invalid input for field/attribute aggregate. 'name' is a required property");
    const created = await deps.aggregates.create(name(a.name), azName(a.availability_zone));
    return { aggregate: aggregateView(req, created, false) };
  });
  app.get('/v2.1/os-aggregates/:id', async (req) => {
    enforce(deps, req, rule('show'));
    return { aggregate: aggregateView(req, await deps.aggregates.get(aggregateId(req))) };
  });
  app.put('/v2.1/os-aggregates/:id', async (req) => {
    enforce(deps, req, rule('update'));
    const a = obj(obj(req.body, 'body').aggregate, 'aggregate');
    noExtra(a, ['name', 'availability_zone']);
    if (!('name' in a) && !('availability_zone' in a)) throw badRequest("Invalid input for field/attribute aggregate. Value: {}. {} is not valid under any of the given schemas");
    const set: { name?: string; availabilityZone?: string | null } = {};
    if ('name' in a) set.name = str(a.name, 'name', { min: 1, max: 255 }).trim();
    if ('availability_zone' in a) set.availabilityZone = azName(a.availability_zone);
    return { aggregate: aggregateView(req, await deps.aggregates.update(aggregateId(req), set)) };
  });
  app.delete('/v2.1/os-aggregates/:id', async (req) => {
    enforce(deps, req, rule('delete'));
    await deps.aggregates.delete(aggregateId(req));
    return '';
  });
  app.post('/v2.1/os-aggregates/:id/action', async (req) => {
    const body = obj(req.body, 'body');
    const [action] = Object.keys(body);
    if (Object.keys(body).length !== 1 || !['add_host', 'remove_host', 'set_metadata'].includes(action)) throw badRequest(`There is no such action: ${action ?? ''}`);
    enforce(deps, req, rule(action));
    const id = aggregateId(req);
    if (action === 'add_host') return { aggregate: aggregateView(req, await deps.aggregates.addHost(id, hostArg(body, action))) };
    if (action === 'remove_host') return { aggregate: aggregateView(req, await deps.aggregates.removeHost(id, hostArg(body, action))) };
    const sm = obj(body.set_metadata, 'set_metadata');
    noExtra(sm, ['metadata']);
    if (sm.metadata === undefined) throw badRequest("Invalid input for field/attribute set_metadata. 'metadata' is a required property");
    return { aggregate: aggregateView(req, await deps.aggregates.setMetadata(id, metadataWithNull(sm.metadata))) };
  });
}

/** os-availability-zone: zones of the enabled compute hosts; detail (admin) with every service per host and the internal zone. */
export function registerAvailabilityZoneRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const INTERNAL = 'internal';
  app.get('/v2.1/os-availability-zone', async (req) => {
    enforce(deps, req, 'os_compute_api:os-availability-zone:list');
    const { available, unavailable } = await deps.aggregates.computeZones();
    return {
      availabilityZoneInfo: [
        ...available.map((z) => ({ zoneName: z, zoneState: { available: true }, hosts: null })),
        ...unavailable.map((z) => ({ zoneName: z, zoneState: { available: false }, hosts: null })),
      ],
    };
  });
  app.get('/v2.1/os-availability-zone/detail', async (req) => {
    enforce(deps, req, 'os_compute_api:os-availability-zone:detail');
    const zones = await deps.aggregates.hostZones();
    const { unavailable } = await deps.aggregates.computeZones();
    const byZone = new Map<string, Record<string, Record<string, unknown>>>();
    for (const s of await deps.services.list()) {
      if (s.disabled) continue;
      const zone = s.binary === 'nova-compute' ? (zones.get(s.host) ?? deps.config.defaultAz) : INTERNAL;
      const hosts = byZone.get(zone) ?? {};
      byZone.set(zone, hosts);
      hosts[s.host] = { ...hosts[s.host], [s.binary]: { available: s.up, active: true, updated_at: naive(s.updatedAt) } };
    }
    return {
      availabilityZoneInfo: [
        ...[...byZone.entries()].map(([zone, hosts]) => ({ zoneName: zone, zoneState: { available: true }, hosts })),
        ...unavailable.map((z) => ({ zoneName: z, zoneState: { available: false }, hosts: {} })),
      ],
    };
  });
}
