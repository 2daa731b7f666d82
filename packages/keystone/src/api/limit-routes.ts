import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Limit, RegisteredLimit } from '../domain/limit-manager.ts';
import type { ApiDeps } from './context.ts';
import { allowed, authorize, collectionLinks, selfLink } from './context.ts';
import { domainView, projectView } from './views.ts';

/** Unified limits: /v3/registered_limits and /v3/limits, as keystone/api/{registered_limits,limits}.py. */
export function registerLimitRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  // ---- registered limits -------------------------------------------------

  app.get('/v3/registered_limits', { schema: { querystring: RESOURCE_QUERY } }, async (req) => {
    authorize(deps, req, 'identity:list_registered_limits');
    const limits = await ks.limits.listRegisteredLimits(resourceFilter(req));
    return { registered_limits: limits.map((r) => registeredView(deps, r)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/registered_limits', { schema: { body: REGISTERED_CREATE } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_registered_limits');
    const body = req.body as { registered_limits: RegisteredBody[] };
    const created = await ks.limits.createRegisteredLimits(
      body.registered_limits.map((r) => ({ ...fromRegisteredBody(r), serviceId: r.service_id!, resourceName: r.resource_name!, defaultLimit: r.default_limit! })),
    );
    reply.code(201);
    return { registered_limits: created.map((r) => registeredView(deps, r)) };
  });

  app.get('/v3/registered_limits/:id', async (req) => {
    authorize(deps, req, 'identity:get_registered_limit');
    return { registered_limit: registeredView(deps, await ks.limits.getRegisteredLimit(idOf(req.params))) };
  });

  app.patch('/v3/registered_limits/:id', { schema: { body: REGISTERED_UPDATE } }, async (req) => {
    authorize(deps, req, 'identity:update_registered_limit');
    const body = (req.body as { registered_limit: RegisteredBody }).registered_limit;
    return { registered_limit: registeredView(deps, await ks.limits.updateRegisteredLimit(idOf(req.params), fromRegisteredBody(body))) };
  });

  app.delete('/v3/registered_limits/:id', async (req, reply) => {
    authorize(deps, req, 'identity:delete_registered_limit');
    await ks.limits.deleteRegisteredLimit(idOf(req.params));
    reply.code(204).send();
  });

  // ---- limits ------------------------------------------------------------

  app.get('/v3/limits/model', async (req) => {
    authorize(deps, req, 'identity:get_limit_model');
    return { model: ks.limits.model };
  });

  /**
   * Open to every token, but each caller sees only the limits it may read
   * (identity:get_limit); service users see all, as upstream lets them.
   */
  app.get('/v3/limits', { schema: { querystring: LIMIT_QUERY } }, async (req) => {
    authorize(deps, req, 'identity:list_limits');
    const q = req.query as { project_id?: string; domain_id?: string };
    const limits = await ks.limits.listLimits({ ...resourceFilter(req), projectId: q.project_id, domainId: q.domain_id });
    const everything = allowed(deps, req, 'service_role', {});
    const owners = new Map<string, Promise<Record<string, unknown>>>();
    const visible: Limit[] = [];
    for (const l of limits) {
      if (everything || allowed(deps, req, 'identity:get_limit', await limitTarget(deps, l, owners))) visible.push(l);
    }
    return { limits: visible.map((l) => limitView(deps, l)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/limits', { schema: { body: LIMITS_CREATE } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_limits');
    const body = req.body as { limits: LimitBody[] };
    const created = await ks.limits.createLimits(
      body.limits.map((l) => ({
        projectId: l.project_id,
        domainId: l.domain_id,
        serviceId: l.service_id,
        regionId: l.region_id,
        resourceName: l.resource_name,
        resourceLimit: l.resource_limit,
        description: l.description,
      })),
    );
    reply.code(201);
    return { limits: created.map((l) => limitView(deps, l)) };
  });

  app.get('/v3/limits/:id', async (req) => {
    const id = idOf(req.params);
    // Policy first, on whatever the limit is; a missing one is then a 404 only for those who could read it.
    const existing = await ks.limits.findLimit(id);
    authorize(deps, req, 'identity:get_limit', existing ? await limitTarget(deps, existing, new Map()) : {});
    return { limit: limitView(deps, existing ?? (await ks.limits.getLimit(id))) };
  });

  app.patch('/v3/limits/:id', { schema: { body: LIMIT_UPDATE } }, async (req) => {
    authorize(deps, req, 'identity:update_limit');
    const body = (req.body as { limit: { resource_limit?: number; description?: string | null } }).limit;
    const patch = { ...defined('resourceLimit', body.resource_limit), ...defined('description', body.description) };
    return { limit: limitView(deps, await ks.limits.updateLimit(idOf(req.params), patch)) };
  });

  app.delete('/v3/limits/:id', async (req, reply) => {
    authorize(deps, req, 'identity:delete_limit');
    await ks.limits.deleteLimit(idOf(req.params));
    reply.code(204).send();
  });
}

// ---- wire renderings -----------------------------------------------------

function registeredView(deps: ApiDeps, r: RegisteredLimit): Record<string, unknown> {
  return {
    id: r.id,
    service_id: r.serviceId,
    region_id: r.regionId,
    resource_name: r.resourceName,
    default_limit: r.defaultLimit,
    description: r.description,
    links: selfLink(deps, `registered_limits/${r.id}`),
  };
}

function limitView(deps: ApiDeps, l: Limit): Record<string, unknown> {
  return {
    id: l.id,
    project_id: l.projectId,
    domain_id: l.domainId,
    service_id: l.serviceId,
    region_id: l.regionId,
    resource_name: l.resourceName,
    resource_limit: l.resourceLimit,
    description: l.description,
    links: selfLink(deps, `limits/${l.id}`),
  };
}

/**
 * `target.limit` with the project (or domain) it belongs to nested in, as
 * upstream's _build_limit_enforcement_target. `owners` memoizes the lookups
 * across one listing.
 */
async function limitTarget(deps: ApiDeps, l: Limit, owners: Map<string, Promise<Record<string, unknown>>>) {
  const ownerId = l.projectId ?? l.domainId!;
  let owner = owners.get(ownerId);
  if (!owner) {
    owner = deps.ks.resource.findProject(ownerId).then((p) => (p ? (p.isDomain ? domainView(deps, p) : projectView(deps, p)) : {}));
    owners.set(ownerId, owner);
  }
  const limit = { ...limitView(deps, l), [l.projectId ? 'project' : 'domain']: await owner };
  return { target: { limit } };
}

// ---- request handling ----------------------------------------------------

interface RegisteredBody {
  service_id?: string;
  region_id?: string | null;
  resource_name?: string;
  default_limit?: number;
  description?: string | null;
}

interface LimitBody {
  project_id?: string | null;
  domain_id?: string | null;
  service_id: string;
  region_id?: string | null;
  resource_name: string;
  resource_limit: number;
  description?: string | null;
}

function idOf(params: unknown): string {
  return (params as { id: string }).id;
}

/** `{key: value}` when the client sent the attribute, `{}` otherwise: a patch must not carry absent keys. */
function defined<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function fromRegisteredBody(r: RegisteredBody): Partial<Omit<RegisteredLimit, 'id'>> {
  return {
    ...defined('serviceId', r.service_id),
    ...defined('regionId', r.region_id),
    ...defined('resourceName', r.resource_name),
    ...defined('defaultLimit', r.default_limit),
    ...defined('description', r.description),
  };
}

function resourceFilter(req: FastifyRequest) {
  const q = req.query as { service_id?: string; region_id?: string; resource_name?: string };
  return { serviceId: q.service_id, regionId: q.region_id, resourceName: q.resource_name };
}

// ---- request schemas (keystone/limit/schema.py) ----------------------------

/** oslo's is_uuid_like: 32 hex digits, dashes anywhere, optional braces or urn prefix. */
const UUID_LIKE = { type: 'string', pattern: '^(?:urn:uuid:)?\\{?(?:-*[0-9a-fA-F]){32}-*\\}?$' };
const NAME = { type: 'string', minLength: 1, maxLength: 255, pattern: '[\\S]+' };
const REGION_ID = { type: ['string', 'null'], minLength: 1, maxLength: 255 };
const ID_STRING = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' };
const NULLABLE_ID = { ...ID_STRING, type: ['string', 'null'] };
const DESCRIPTION = { type: ['string', 'null'], maxLength: 255 };
const LIMIT_VALUE = { type: 'integer', minimum: -1, maximum: 0x7fffffff };

const REGISTERED_PROPERTIES = { service_id: UUID_LIKE, region_id: REGION_ID, resource_name: NAME, default_limit: LIMIT_VALUE, description: DESCRIPTION };
const LIMIT_PROPERTIES = { service_id: UUID_LIKE, region_id: REGION_ID, resource_name: NAME, resource_limit: LIMIT_VALUE, description: DESCRIPTION };

/** `{"<key>": [item, …]}` with at least one item and nothing else beside it. */
const listOf = (key: string, item: object) => ({
  type: 'object',
  properties: { [key]: { type: 'array', minItems: 1, items: item } },
  required: [key],
  additionalProperties: false,
});
const memberOf = (key: string, properties: object) => ({
  type: 'object',
  properties: { [key]: { type: 'object', properties, additionalProperties: false } },
  required: [key],
  additionalProperties: false,
});

const REGISTERED_CREATE = listOf('registered_limits', {
  type: 'object',
  properties: REGISTERED_PROPERTIES,
  required: ['service_id', 'resource_name', 'default_limit'],
  additionalProperties: false,
});
const REGISTERED_UPDATE = memberOf('registered_limit', REGISTERED_PROPERTIES);

const LIMIT_REQUIRED = ['service_id', 'resource_name', 'resource_limit'];
/** Exactly one of project_id and domain_id: naming both matches both branches of the oneOf. */
const LIMITS_CREATE = listOf('limits', {
  type: 'object',
  properties: { project_id: NULLABLE_ID, domain_id: NULLABLE_ID, ...LIMIT_PROPERTIES },
  required: LIMIT_REQUIRED,
  oneOf: [{ required: [...LIMIT_REQUIRED, 'domain_id'] }, { required: [...LIMIT_REQUIRED, 'project_id'] }],
  additionalProperties: false,
});
const LIMIT_UPDATE = memberOf('limit', { resource_limit: LIMIT_VALUE, description: DESCRIPTION });

const RESOURCE_QUERY_PROPERTIES = { service_id: UUID_LIKE, region_id: REGION_ID, resource_name: NAME };
const RESOURCE_QUERY = { type: 'object', properties: RESOURCE_QUERY_PROPERTIES };
const LIMIT_QUERY = { type: 'object', properties: { ...RESOURCE_QUERY_PROPERTIES, project_id: ID_STRING, domain_id: ID_STRING } };
