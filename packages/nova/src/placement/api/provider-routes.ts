import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CODES, badRequest, conflict, notFound } from '../domain/errors.ts';
import { isUuid, normalizeUuid } from '../domain/names.ts';
import { MAX_INT, type Inventory, type Provider } from '../domain/providers.ts';
import {
  all,
  allowOnly,
  atLeast,
  authorize,
  body,
  checkTraitsExist,
  parseMemberOf,
  parseResources,
  parseTraits,
  query,
  requireJson,
  since,
  single,
  uuidParam,
  type ApiDeps,
} from './context.ts';

type Req = FastifyRequest<{ Params: { uuid: string; resource_class: string } }>;

const UUID_SCHEMA = { type: 'string', pattern: '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' };
const NAME = { type: 'string', minLength: 1, maxLength: 200 };
const PARENT = { anyOf: [UUID_SCHEMA, { type: 'null' }] };
const POST_RP = { type: 'object', properties: { name: NAME, uuid: UUID_SCHEMA }, required: ['name'], additionalProperties: false };
const POST_RP_1_14 = { ...POST_RP, properties: { ...POST_RP.properties, parent_provider_uuid: PARENT } };
const PUT_RP = { type: 'object', properties: { name: NAME }, required: ['name'], additionalProperties: false };
const PUT_RP_1_14 = { ...PUT_RP, properties: { ...PUT_RP.properties, parent_provider_uuid: PARENT } };

const INT = (min: number) => ({ type: 'integer', minimum: min, maximum: MAX_INT });
const INVENTORY_FIELDS = {
  total: INT(1),
  reserved: INT(0),
  min_unit: INT(1),
  max_unit: INT(1),
  step_size: INT(1),
  allocation_ratio: { type: 'number', maximum: 3.40282e38 },
};
const BASE_INVENTORY = {
  type: 'object',
  properties: { resource_provider_generation: { type: 'integer' }, ...INVENTORY_FIELDS },
  required: ['total', 'resource_provider_generation'],
  additionalProperties: false,
};
const POST_INVENTORY = {
  type: 'object',
  properties: { ...BASE_INVENTORY.properties, resource_class: { type: 'string', pattern: '^[A-Z0-9_]+$' } },
  required: ['total', 'resource_class'],
  additionalProperties: false,
};
export const PUT_INVENTORIES = {
  type: 'object',
  properties: {
    resource_provider_generation: { type: 'integer' },
    inventories: {
      type: 'object',
      patternProperties: { '^[A-Z0-9_]+$': { type: 'object', properties: INVENTORY_FIELDS, required: ['total'], additionalProperties: false } },
      additionalProperties: false,
    },
  },
  required: ['resource_provider_generation', 'inventories'],
  additionalProperties: false,
};
const PUT_TRAITS = {
  type: 'object',
  properties: {
    traits: { type: 'array', items: { type: 'string', pattern: '^[A-Z0-9_]+$' } },
    resource_provider_generation: { type: 'integer' },
  },
  required: ['traits', 'resource_provider_generation'],
  additionalProperties: false,
};
const AGGREGATES_LIST = { type: 'array', items: UUID_SCHEMA, uniqueItems: true };
const PUT_AGGREGATES_1_19 = {
  type: 'object',
  properties: { aggregates: AGGREGATES_LIST, resource_provider_generation: { type: 'integer' } },
  required: ['aggregates', 'resource_provider_generation'],
  additionalProperties: false,
};

export function providerUrl(uuid: string): string {
  return `/resource_providers/${uuid}`;
}

export function serializeProvider(req: FastifyRequest, rp: Provider) {
  const url = providerUrl(rp.uuid);
  const rels = ['inventories', 'usages'];
  if (atLeast(req, '1.1')) rels.push('aggregates');
  if (atLeast(req, '1.6')) rels.push('traits');
  if (atLeast(req, '1.11')) rels.push('allocations');
  const out: Record<string, unknown> = {
    uuid: rp.uuid,
    name: rp.name,
    generation: rp.generation,
    links: [{ rel: 'self', href: url }, ...rels.map((rel) => ({ rel, href: `${url}/${rel}` }))],
  };
  if (atLeast(req, '1.14')) {
    out.parent_provider_uuid = rp.parent_provider_uuid;
    out.root_provider_uuid = rp.root_provider_uuid;
  }
  return out;
}

export function serializeInventory(inv: Inventory) {
  return {
    total: inv.total,
    reserved: inv.reserved,
    min_unit: inv.minUnit,
    max_unit: inv.maxUnit,
    step_size: inv.stepSize,
    allocation_ratio: inv.allocationRatio,
  };
}

/** 1.15: cache headers on what placement serves. */
export function cacheHeaders(req: FastifyRequest, reply: FastifyReply, lastModified?: number): void {
  if (!atLeast(req, '1.15')) return;
  reply.header('cache-control', 'no-cache');
  reply.header('last-modified', new Date(lastModified ?? Date.now()).toUTCString());
}

function pathUuid(req: Req): string {
  return isUuid(req.params.uuid) ? normalizeUuid(req.params.uuid) : req.params.uuid;
}

/** Upstream's make_inventory_object plus _validate_inventory_capacity. */
export function inventoryFrom(req: FastifyRequest, uuid: string, resourceClass: string, data: Record<string, number>): Inventory {
  const inv: Inventory = {
    resourceClass,
    total: data.total,
    reserved: data.reserved ?? 0,
    minUnit: data.min_unit ?? 1,
    maxUnit: data.max_unit ?? MAX_INT,
    stepSize: data.step_size ?? 1,
    allocationRatio: data.allocation_ratio ?? 1.0,
  };
  const reservedTooBig = atLeast(req, '1.26') ? inv.reserved > inv.total : inv.reserved >= inv.total && inv.total !== 0;
  if (reservedTooBig) {
    const tail = atLeast(req, '1.26') ? 'The reserved value is greater than total.' : 'The reserved value is greater than or equal to total.';
    throw badRequest(`Unable to update inventory for resource provider ${uuid}: Invalid inventory for '${resourceClass}' on resource provider '${uuid}'. ${tail}`);
  }
  if (inv.minUnit > inv.maxUnit) {
    throw badRequest(`Unable to update inventory for resource provider ${uuid}: Invalid inventory for '${resourceClass}' on resource provider '${uuid}'. The min_unit value is greater than max_unit.`);
  }
  return inv;
}

export function registerProviderRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const p = deps.providers;

  app.get('/resource_providers', async (req, reply) => {
    authorize(deps, req, 'placement:resource_providers:list');
    const q = query(req);
    const allowed = new Set(['uuid', 'name']);
    if (atLeast(req, '1.3')) allowed.add('member_of');
    if (atLeast(req, '1.4')) allowed.add('resources');
    if (atLeast(req, '1.14')) allowed.add('in_tree');
    if (atLeast(req, '1.18')) allowed.add('required');
    allowOnly(q, (k) => allowed.has(k));
    const uuid = single(q, 'uuid');
    const inTree = single(q, 'in_tree');
    const resourcesText = single(q, 'resources');
    const resources = resourcesText !== undefined ? parseResources(resourcesText) : undefined;
    for (const rc of Object.keys(resources ?? {})) {
      if (!(await p.resourceClassExists(rc))) throw badRequest(`Invalid resource class in resources parameter: No such resource class ${rc}.`);
    }
    const requiredValues = atLeast(req, '1.39') ? all(q, 'required') : [single(q, 'required')].filter((v): v is string => v !== undefined);
    const traits = parseTraits(requiredValues, req);
    await checkTraitsExist(deps, [...traits.required.flat(), ...traits.forbidden]);
    const member = parseMemberOf(all(q, 'member_of'), req);
    const rps = await p.list({
      uuid: uuid !== undefined ? uuidParam(uuid, 'uuid') : undefined,
      name: single(q, 'name'),
      inTree: inTree !== undefined ? uuidParam(inTree, 'in_tree') : undefined,
      resources,
      memberOf: member.memberOf,
      forbiddenAggs: member.forbidden,
      requiredTraits: traits.required,
      forbiddenTraits: traits.forbidden,
    });
    cacheHeaders(req, reply, Math.max(0, ...rps.map((r) => r.updated_at)) || undefined);
    return { resource_providers: rps.map((rp) => serializeProvider(req, rp)) };
  });

  app.post('/resource_providers', async (req, reply) => {
    authorize(deps, req, 'placement:resource_providers:create');
    requireJson(req);
    const data = body<{ name: string; uuid?: string; parent_provider_uuid?: string | null }>(req, atLeast(req, '1.14') ? POST_RP_1_14 : POST_RP);
    const rp = await p.create({
      name: data.name,
      uuid: data.uuid ? normalizeUuid(data.uuid) : undefined,
      parentProviderUuid: data.parent_provider_uuid ? normalizeUuid(data.parent_provider_uuid) : null,
    });
    reply.header('location', providerUrl(rp.uuid));
    if (!atLeast(req, '1.20')) return reply.code(201).send();
    cacheHeaders(req, reply, rp.updated_at);
    return serializeProvider(req, rp);
  });

  app.get('/resource_providers/:uuid', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:show');
    const rp = await p.require(pathUuid(req));
    cacheHeaders(req, reply, rp.updated_at);
    return serializeProvider(req, rp);
  });

  app.put('/resource_providers/:uuid', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:update');
    const uuid = pathUuid(req);
    await p.require(uuid);
    requireJson(req);
    const data = body<{ name: string; parent_provider_uuid?: string | null }>(req, atLeast(req, '1.14') ? PUT_RP_1_14 : PUT_RP);
    const parent = data.parent_provider_uuid === undefined ? undefined : data.parent_provider_uuid === null ? null : normalizeUuid(data.parent_provider_uuid);
    const rp = await p.update(uuid, { name: data.name, parentProviderUuid: parent }, atLeast(req, '1.37'));
    cacheHeaders(req, reply, rp.updated_at);
    return serializeProvider(req, rp);
  });

  app.delete('/resource_providers/:uuid', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:delete');
    await p.delete(pathUuid(req));
    return reply.code(204).send();
  });

  // ---- inventories ----

  const sendInventories = async (req: FastifyRequest, reply: FastifyReply, generation: number, inventories: Inventory[]) => {
    cacheHeaders(req, reply);
    return { resource_provider_generation: generation, inventories: Object.fromEntries(inventories.map((i) => [i.resourceClass, serializeInventory(i)])) };
  };

  app.get('/resource_providers/:uuid/inventories', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:list');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    return sendInventories(req, reply, rp.generation, await p.inventories(uuid));
  });

  app.put('/resource_providers/:uuid/inventories', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:update');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    requireJson(req);
    const data = body<{ resource_provider_generation: number; inventories: Record<string, Record<string, number>> }>(req, PUT_INVENTORIES);
    if (data.resource_provider_generation !== rp.generation) throw conflict('resource provider generation conflict', CODES.CONCURRENT_UPDATE);
    const invs = Object.entries(data.inventories).map(([rc, d]) => inventoryFrom(req, uuid, rc, d));
    const res = await p.setInventories(uuid, data.resource_provider_generation, invs);
    return sendInventories(req, reply, res.generation, res.inventories);
  });

  app.post('/resource_providers/:uuid/inventories', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:create');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    requireJson(req);
    const data = body<Record<string, number> & { resource_class: string; resource_provider_generation?: number }>(req, POST_INVENTORY);
    const inv = inventoryFrom(req, uuid, data.resource_class, data);
    const res = await p.addInventory(uuid, data.resource_provider_generation ?? rp.generation, inv);
    reply.code(201).header('location', `${providerUrl(uuid)}/inventories/${inv.resourceClass}`);
    cacheHeaders(req, reply);
    return { resource_provider_generation: res.generation, ...serializeInventory(res.inventory) };
  });

  app.delete('/resource_providers/:uuid/inventories', async (req: Req, reply) => {
    since(req, '1.5');
    authorize(deps, req, 'placement:resource_providers:inventories:delete');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    await p.setInventories(uuid, rp.generation, []);
    return reply.code(204).send();
  });

  app.get('/resource_providers/:uuid/inventories/:resource_class', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:show');
    const uuid = pathUuid(req);
    const rc = req.params.resource_class;
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    const inv = (await p.inventories(uuid)).find((i) => i.resourceClass === rc);
    if (!inv) throw notFound(`No inventory of class ${rc} for ${uuid}`);
    cacheHeaders(req, reply);
    return { resource_provider_generation: rp.generation, ...serializeInventory(inv) };
  });

  app.put('/resource_providers/:uuid/inventories/:resource_class', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:update');
    const uuid = pathUuid(req);
    const rc = req.params.resource_class;
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    requireJson(req);
    const data = body<Record<string, number> & { resource_provider_generation: number }>(req, BASE_INVENTORY);
    if (data.resource_provider_generation !== rp.generation) throw conflict('resource provider generation conflict', CODES.CONCURRENT_UPDATE);
    const res = await p.updateInventory(uuid, data.resource_provider_generation, inventoryFrom(req, uuid, rc, data));
    cacheHeaders(req, reply);
    return { resource_provider_generation: res.generation, ...serializeInventory(res.inventory) };
  });

  app.delete('/resource_providers/:uuid/inventories/:resource_class', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:inventories:delete');
    const uuid = pathUuid(req);
    if (!(await p.get(uuid))) throw notFoundProvider(uuid);
    await p.deleteInventory(uuid, req.params.resource_class);
    return reply.code(204).send();
  });

  // ---- traits of a provider ----

  app.get('/resource_providers/:uuid/traits', async (req: Req, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:resource_providers:traits:list');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    cacheHeaders(req, reply);
    return { traits: await p.providerTraits(uuid), resource_provider_generation: rp.generation };
  });

  app.put('/resource_providers/:uuid/traits', async (req: Req, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:resource_providers:traits:update');
    const uuid = pathUuid(req);
    if (!(await p.get(uuid))) throw notFoundProvider(uuid);
    requireJson(req);
    const data = body<{ traits: string[]; resource_provider_generation: number }>(req, PUT_TRAITS);
    const generation = await p.setProviderTraits(uuid, data.resource_provider_generation, data.traits);
    cacheHeaders(req, reply);
    return { traits: [...new Set(data.traits)].sort(), resource_provider_generation: generation };
  });

  app.delete('/resource_providers/:uuid/traits', async (req: Req, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:resource_providers:traits:delete');
    const uuid = pathUuid(req);
    if (!(await p.get(uuid))) throw notFoundProvider(uuid);
    await p.setProviderTraits(uuid, undefined, []);
    return reply.code(204).send();
  });

  // ---- aggregates ----

  app.get('/resource_providers/:uuid/aggregates', async (req: Req, reply) => {
    since(req, '1.1');
    authorize(deps, req, 'placement:resource_providers:aggregates:list');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFoundProvider(uuid);
    cacheHeaders(req, reply);
    const out: Record<string, unknown> = { aggregates: await p.providerAggregates(uuid) };
    if (atLeast(req, '1.19')) out.resource_provider_generation = rp.generation;
    return out;
  });

  app.put('/resource_providers/:uuid/aggregates', async (req: Req, reply) => {
    since(req, '1.1');
    authorize(deps, req, 'placement:resource_providers:aggregates:update');
    const uuid = pathUuid(req);
    if (!(await p.get(uuid))) throw notFoundProvider(uuid);
    requireJson(req);
    let aggregates: string[];
    let generation: number | undefined;
    if (atLeast(req, '1.19')) {
      const data = body<{ aggregates: string[]; resource_provider_generation: number }>(req, PUT_AGGREGATES_1_19);
      aggregates = data.aggregates;
      generation = data.resource_provider_generation;
    } else {
      aggregates = body<string[]>(req, AGGREGATES_LIST);
    }
    const normalized = aggregates.map(normalizeUuid);
    const newGeneration = await p.setProviderAggregates(uuid, generation, normalized);
    cacheHeaders(req, reply);
    const out: Record<string, unknown> = { aggregates: [...new Set(normalized)].sort() };
    if (atLeast(req, '1.19')) out.resource_provider_generation = newGeneration;
    return out;
  });

  // ---- usages and allocations of a provider ----

  app.get('/resource_providers/:uuid/usages', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:usages');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFound(`No resource provider with uuid ${uuid} found`);
    const invs = await p.inventories(uuid);
    const used = (await p.usageOf([uuid])).get(uuid) ?? new Map<string, number>();
    const usages: Record<string, number> = {};
    for (const inv of invs) usages[inv.resourceClass] = used.get(inv.resourceClass) ?? 0;
    for (const [rc, n] of used) usages[rc] = n;
    cacheHeaders(req, reply);
    return { resource_provider_generation: rp.generation, usages };
  });

  app.get('/resource_providers/:uuid/allocations', async (req: Req, reply) => {
    authorize(deps, req, 'placement:resource_providers:allocations:list');
    const uuid = pathUuid(req);
    const rp = await p.get(uuid);
    if (!rp) throw notFound(`Resource provider '${uuid}' not found: No resource provider with uuid ${uuid} found`);
    const byConsumer = await deps.allocations.byProvider(uuid);
    const allocations: Record<string, unknown> = {};
    for (const [consumer, a] of byConsumer) {
      allocations[consumer] = atLeast(req, '1.28') ? { resources: a.resources, consumer_generation: a.generation } : { resources: a.resources };
    }
    cacheHeaders(req, reply);
    return { allocations, resource_provider_generation: rp.generation };
  });
}

function notFoundProvider(uuid: string) {
  return notFound(`No resource provider with uuid ${uuid} found`);
}
