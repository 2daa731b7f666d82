import type { FastifyInstance } from 'fastify';
import { validationError } from '@onestack/core/errors.ts';
import type { Endpoint, Region, Service } from '../domain/catalog-manager.ts';
import type { ApiDeps } from './context.ts';
import { authorize, collectionLinks, selfLink } from './context.ts';
import { extraOf, normalized, requireMatchingId, wrapped } from './request-helpers.ts';

/** Upstream's service and region schemas accept attributes beside the member. */
const OPEN = { closedEnvelope: false };

/** /v3/services, /v3/endpoints and /v3/regions: the catalog's entities, as keystone/api/{services,endpoints,regions}.py. */
export function registerCatalogRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  // ---- services ----------------------------------------------------------

  app.get('/v3/services', async (req) => {
    authorize(deps, req, 'identity:list_services');
    const q = req.query as { type?: string; name?: string };
    const services = await ks.catalog.listServices({ type: q.type, name: q.name });
    return { services: services.map((s) => serviceView(deps, s)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/services', { schema: { body: wrapped('service', SERVICE, { required: ['type'] }, OPEN) } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_service');
    const body = normalized((req.body as { service: Record<string, unknown> }).service) as ServiceBody;
    const service = await ks.catalog.createService({ type: body.type!, name: body.name, enabled: body.enabled, extra: extraOf(body, SERVICE_COLUMNS) ?? {} });
    reply.code(201);
    return { service: serviceView(deps, service) };
  });

  app.get('/v3/services/:id', async (req) => {
    authorize(deps, req, 'identity:get_service');
    return { service: serviceView(deps, await ks.catalog.getService(idOf(req.params))) };
  });

  app.patch('/v3/services/:id', { schema: { body: wrapped('service', SERVICE, { minProperties: 1 }, OPEN) } }, async (req) => {
    authorize(deps, req, 'identity:update_service');
    const id = idOf(req.params);
    const body = (req.body as { service: ServiceBody }).service;
    requireMatchingId(body, id);
    const service = await ks.catalog.updateService(id, { type: body.type, name: body.name, enabled: body.enabled, extra: extraOf(body, SERVICE_COLUMNS) ?? {} });
    return { service: serviceView(deps, service) };
  });

  app.delete('/v3/services/:id', async (req, reply) => {
    authorize(deps, req, 'identity:delete_service');
    await ks.catalog.deleteService(idOf(req.params));
    reply.code(204).send();
  });

  // ---- endpoints ---------------------------------------------------------

  app.get('/v3/endpoints', { schema: { querystring: ENDPOINT_QUERY } }, async (req) => {
    authorize(deps, req, 'identity:list_endpoints');
    const q = req.query as { interface?: string; service_id?: string; region_id?: string };
    const endpoints = await ks.catalog.listEndpoints({ interface: q.interface, serviceId: q.service_id, regionId: q.region_id });
    return { endpoints: endpoints.map((e) => endpointView(deps, e)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/endpoints', { schema: { body: wrapped('endpoint', ENDPOINT, { required: ['interface', 'service_id', 'url'] }) } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_endpoint');
    const body = normalized((req.body as { endpoint: Record<string, unknown> }).endpoint) as EndpointBody;
    const endpoint = await ks.catalog.createEndpoint({
      interface: body.interface!,
      serviceId: body.service_id!,
      url: body.url!,
      regionId: await endpointRegion(deps, body),
      enabled: body.enabled,
      extra: extraOf(body, ENDPOINT_COLUMNS) ?? {},
    });
    reply.code(201);
    return { endpoint: endpointView(deps, endpoint) };
  });

  app.get('/v3/endpoints/:id', async (req) => {
    authorize(deps, req, 'identity:get_endpoint');
    return { endpoint: endpointView(deps, await ks.catalog.getEndpoint(idOf(req.params))) };
  });

  app.patch('/v3/endpoints/:id', { schema: { body: wrapped('endpoint', ENDPOINT, { minProperties: 1 }) } }, async (req) => {
    authorize(deps, req, 'identity:update_endpoint');
    const id = idOf(req.params);
    const body = (req.body as { endpoint: EndpointBody }).endpoint;
    requireMatchingId(body, id);
    const extra = extraOf(body, ENDPOINT_COLUMNS) ?? {};
    const endpoint = await ks.catalog.updateEndpoint(id, {
      interface: body.interface,
      serviceId: body.service_id,
      url: body.url,
      regionId: await endpointRegion(deps, body),
      enabled: body.enabled,
      extra: Object.keys(extra).length ? extra : undefined,
    });
    return { endpoint: endpointView(deps, endpoint) };
  });

  app.delete('/v3/endpoints/:id', async (req, reply) => {
    authorize(deps, req, 'identity:delete_endpoint');
    await ks.catalog.deleteEndpoint(idOf(req.params));
    reply.code(204).send();
  });

  // ---- regions -----------------------------------------------------------

  app.get('/v3/regions', async (req) => {
    authorize(deps, req, 'identity:list_regions');
    const q = req.query as { parent_region_id?: string };
    const regions = await ks.catalog.listRegions({ parentRegionId: q.parent_region_id });
    return { regions: regions.map((r) => regionView(deps, r)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/regions', { schema: { body: wrapped('region', REGION, {}, OPEN) } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_region');
    const body = normalized((req.body as { region: Record<string, unknown> }).region) as RegionBody;
    // An id in the body is historical but honoured; an empty one means "make one up".
    const region = await createRegion(deps, body, body.id || undefined);
    reply.code(201);
    return { region: regionView(deps, region) };
  });

  app.put('/v3/regions/:id', { schema: { body: wrapped('region', REGION, {}, OPEN) } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_region');
    const id = idOf(req.params);
    const body = normalized((req.body as { region: Record<string, unknown> }).region) as RegionBody;
    if (body.id !== undefined && body.id !== id) throw validationError(`Conflicting region IDs specified: "${id}" != "${body.id}"`);
    const region = await createRegion(deps, body, id);
    reply.code(201);
    return { region: regionView(deps, region) };
  });

  app.get('/v3/regions/:id', async (req) => {
    authorize(deps, req, 'identity:get_region');
    return { region: regionView(deps, await ks.catalog.getRegion(idOf(req.params))) };
  });

  app.patch('/v3/regions/:id', { schema: { body: wrapped('region', REGION, { minProperties: 1 }, OPEN) } }, async (req) => {
    authorize(deps, req, 'identity:update_region');
    const id = idOf(req.params);
    const body = (req.body as { region: RegionBody }).region;
    requireMatchingId(body, id);
    const extra = extraOf(body, REGION_COLUMNS) ?? {};
    const region = await ks.catalog.updateRegion(id, {
      description: body.description,
      parentRegionId: body.parent_region_id,
      extra: Object.keys(extra).length ? extra : undefined,
    });
    return { region: regionView(deps, region) };
  });

  app.delete('/v3/regions/:id', async (req, reply) => {
    authorize(deps, req, 'identity:delete_region');
    await ks.catalog.deleteRegion(idOf(req.params));
    reply.code(204).send();
  });
}

// ---- wire renderings -----------------------------------------------------

/** Free-form attributes first, so they can never shadow a real one (upstream's to_dict with extras). */
function serviceView(deps: ApiDeps, s: Service): Record<string, unknown> {
  return {
    ...s.extra,
    ...(s.description !== undefined ? { description: s.description } : {}),
    id: s.id,
    type: s.type,
    name: s.name,
    enabled: s.enabled,
    links: selfLink(deps, `services/${s.id}`),
  };
}

/** `region` repeats region_id for v3.0 clients, as upstream still renders it. */
function endpointView(deps: ApiDeps, e: Endpoint): Record<string, unknown> {
  return {
    ...e.extra,
    id: e.id,
    interface: e.interface,
    region_id: e.regionId,
    region: e.regionId,
    service_id: e.serviceId,
    url: e.url,
    enabled: e.enabled,
    links: selfLink(deps, `endpoints/${e.id}`),
  };
}

function regionView(deps: ApiDeps, r: Region): Record<string, unknown> {
  return { ...r.extra, id: r.id, description: r.description, parent_region_id: r.parentRegionId, links: selfLink(deps, `regions/${r.id}`) };
}

// ---- request handling ----------------------------------------------------

interface ServiceBody {
  id?: string;
  type?: string;
  name?: string;
  enabled?: boolean;
}

interface EndpointBody {
  id?: string;
  interface?: Endpoint['interface'];
  service_id?: string;
  url?: string;
  region_id?: string | null;
  region?: string | null;
  enabled?: boolean;
}

interface RegionBody {
  id?: string;
  description?: string | null;
  parent_region_id?: string | null;
}

/** Attributes the API defines (name is one, though stored with the extras); anything else a client sends is kept in `extra`, as upstream does. */
const SERVICE_COLUMNS = ['id', 'type', 'name', 'enabled', 'links'];
const ENDPOINT_COLUMNS = ['id', 'interface', 'service_id', 'url', 'region_id', 'region', 'enabled', 'legacy_endpoint_id', 'links'];
const REGION_COLUMNS = ['id', 'description', 'parent_region_id', 'links'];

function idOf(params: unknown): string {
  return (params as { id: string }).id;
}

/**
 * v3.0 clients name the region in `region`; upstream then creates that region
 * when it does not exist yet. `region_id` wins when both are given.
 */
async function endpointRegion(deps: ApiDeps, body: EndpointBody): Promise<string | null | undefined> {
  if (body.region_id != null || body.region == null) return body.region_id;
  if (!(await deps.ks.catalog.findRegion(body.region))) await deps.ks.catalog.createRegion({ id: body.region });
  return body.region;
}

function createRegion(deps: ApiDeps, body: RegionBody, id: string | undefined): Promise<Region> {
  return deps.ks.catalog.createRegion({ id, description: body.description, parentRegionId: body.parent_region_id, extra: extraOf(body, REGION_COLUMNS) ?? {} });
}

// ---- request schemas (keystone/catalog/schema.py) --------------------------

const NAME = { type: 'string', minLength: 1, maxLength: 255 };

const SERVICE = {
  enabled: { type: 'boolean' },
  type: NAME,
  name: NAME,
};

const ENDPOINT = {
  id: { type: 'string' },
  enabled: { type: 'boolean' },
  interface: { type: 'string', enum: ['admin', 'internal', 'public'] },
  region_id: { type: ['string', 'null'] },
  region: { type: ['string', 'null'] },
  service_id: { type: 'string' },
  url: { type: 'string', minLength: 0, maxLength: 225, pattern: '^[a-zA-Z0-9+.-]+:.+' },
  name: { type: 'string' },
  description: { type: ['string', 'null'] },
};

const REGION = {
  description: { type: ['string', 'null'], maxLength: 255 },
  id: { type: 'string' },
  parent_region_id: { type: ['string', 'null'] },
};

const ENDPOINT_QUERY = {
  type: 'object',
  properties: {
    interface: { type: 'string', enum: ['admin', 'internal', 'public'] },
    region_id: { type: 'string' },
    service_id: { type: 'string' },
  },
};
