import type { FastifyInstance, FastifyRequest } from 'fastify';
import { INCOMPLETE_CONSUMER_ID, type ConsumerClaim } from '../domain/allocations.ts';
import { findCandidates, type CandidateQuery, type RequestGroup } from '../domain/candidates.ts';
import { CODES, badRequest } from '../domain/errors.ts';
import { isUuid, normalizeUuid } from '../domain/names.ts';
import { capacityOf } from '../domain/providers.ts';
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
import { PUT_INVENTORIES, cacheHeaders, inventoryFrom } from './provider-routes.ts';

type ConsumerReq = FastifyRequest<{ Params: { consumer_uuid: string } }>;

const UUID = { type: 'string', pattern: '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' };
const RESOURCES = {
  type: 'object',
  minProperties: 1,
  patternProperties: { '^[0-9A-Z_]+$': { type: 'integer', minimum: 1, maximum: 2147483647 } },
  additionalProperties: false,
};
const ID = { type: 'string', minLength: 1, maxLength: 255 };
const CONSUMER_TYPE = { type: 'string', pattern: '^[A-Z0-9_]+$', minLength: 1, maxLength: 255 };

function putSchema(req: FastifyRequest): object {
  if (!atLeast(req, '1.12')) {
    return {
      type: 'object',
      properties: {
        allocations: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            properties: { resource_provider: { type: 'object', properties: { uuid: UUID }, required: ['uuid'], additionalProperties: false }, resources: RESOURCES },
            required: ['resource_provider', 'resources'],
            additionalProperties: false,
          },
        },
        project_id: ID,
        user_id: ID,
      },
      required: atLeast(req, '1.8') ? ['allocations', 'project_id', 'user_id'] : ['allocations'],
      additionalProperties: false,
    };
  }
  // Emptying a consumer with PUT needs its generation (1.28); POST could always.
  return consumerSchema(req, atLeast(req, '1.28'));
}

/** One consumer's body in PUT /allocations/{c} (1.12+) and in POST /allocations. */
function consumerSchema(req: FastifyRequest, deletable = true): object {
  const properties: Record<string, unknown> = {
    allocations: {
      type: 'object',
      minProperties: deletable ? 0 : 1,
      patternProperties: {
        '^[0-9a-fA-F-]{32,36}$': {
          type: 'object',
          properties: { generation: { type: 'integer' }, resources: RESOURCES },
          required: ['resources'],
          additionalProperties: false,
        },
      },
      additionalProperties: false,
    },
    project_id: ID,
    user_id: ID,
  };
  const required = ['allocations', 'project_id', 'user_id'];
  if (atLeast(req, '1.28')) {
    properties.consumer_generation = { type: ['integer', 'null'] };
    required.push('consumer_generation');
  }
  if (atLeast(req, '1.34')) {
    // Accepted and not kept, as upstream: the request groups' providers, for the caller's bookkeeping.
    properties.mappings = { type: 'object', minProperties: 1, additionalProperties: { type: 'array', minItems: 1, items: UUID } };
  }
  if (atLeast(req, '1.38')) {
    properties.consumer_type = CONSUMER_TYPE;
    required.push('consumer_type');
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

interface ConsumerBody {
  allocations: Record<string, { resources: Record<string, number> }>;
  project_id: string;
  user_id: string;
  consumer_generation?: number | null;
  consumer_type?: string;
}

function claimOf(req: FastifyRequest, consumerUuid: string, b: ConsumerBody): ConsumerClaim {
  const allocations: Record<string, Record<string, number>> = {};
  for (const [rp, a] of Object.entries(b.allocations)) {
    if (!isUuid(rp)) throw badRequest(`JSON does not validate: '${rp}' is not a valid UUID`);
    allocations[normalizeUuid(rp)] = a.resources;
  }
  return {
    consumerUuid,
    projectId: b.project_id ?? INCOMPLETE_CONSUMER_ID,
    userId: b.user_id ?? INCOMPLETE_CONSUMER_ID,
    consumerGeneration: atLeast(req, '1.28') ? (b.consumer_generation ?? null) : undefined,
    consumerType: atLeast(req, '1.38') ? b.consumer_type : undefined,
    allocations,
  };
}

function consumerPath(req: ConsumerReq): string {
  const raw = req.params.consumer_uuid;
  return isUuid(raw) ? normalizeUuid(raw) : raw;
}

export function registerAllocationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/allocations/:consumer_uuid', async (req: ConsumerReq, reply) => {
    authorize(deps, req, 'placement:allocations:list');
    const { consumer, allocations } = await deps.allocations.byConsumer(consumerPath(req));
    const out: Record<string, unknown> = {
      allocations: Object.fromEntries([...allocations].map(([rp, a]) => [rp, { generation: a.generation, resources: a.resources }])),
    };
    if (consumer && atLeast(req, '1.12')) {
      out.project_id = consumer.project_id;
      out.user_id = consumer.user_id;
      if (atLeast(req, '1.28')) out.consumer_generation = consumer.generation;
      if (atLeast(req, '1.38')) out.consumer_type = consumer.consumer_type ?? 'unknown';
    }
    cacheHeaders(req, reply, consumer?.updated_at);
    return out;
  });

  app.put('/allocations/:consumer_uuid', async (req: ConsumerReq, reply) => {
    authorize(deps, req, 'placement:allocations:update');
    if (!isUuid(req.params.consumer_uuid)) throw badRequest(`Malformed consumer_uuid: ${req.params.consumer_uuid}`);
    const consumerUuid = normalizeUuid(req.params.consumer_uuid);
    requireJson(req);
    const raw = body<Record<string, unknown>>(req, putSchema(req));
    let b: ConsumerBody;
    if (!atLeast(req, '1.12')) {
      const list = raw.allocations as { resource_provider: { uuid: string }; resources: Record<string, number> }[];
      const allocations: ConsumerBody['allocations'] = {};
      for (const a of list) allocations[a.resource_provider.uuid] = { resources: a.resources };
      b = { allocations, project_id: raw.project_id as string, user_id: raw.user_id as string };
    } else b = raw as unknown as ConsumerBody;
    await deps.allocations.write([claimOf(req, consumerUuid, b)]);
    return reply.code(204).send();
  });

  app.post('/allocations', async (req, reply) => {
    since(req, '1.13');
    authorize(deps, req, 'placement:allocations:manage');
    requireJson(req);
    const schema = { type: 'object', minProperties: 1, patternProperties: { '^[0-9a-fA-F-]{32,36}$': consumerSchema(req) }, additionalProperties: false };
    const data = body<Record<string, ConsumerBody>>(req, schema);
    const claims = Object.entries(data).map(([consumer, b]) => {
      if (!isUuid(consumer)) throw badRequest(`JSON does not validate: '${consumer}' is not a valid UUID`);
      return claimOf(req, normalizeUuid(consumer), b);
    });
    await deps.allocations.write(claims);
    return reply.code(204).send();
  });

  app.post('/reshaper', async (req, reply) => {
    since(req, '1.30');
    authorize(deps, req, 'placement:reshaper:reshape');
    requireJson(req);
    const schema = {
      type: 'object',
      properties: {
        inventories: { type: 'object', minProperties: 1, patternProperties: { '^[0-9a-fA-F-]{32,36}$': PUT_INVENTORIES }, additionalProperties: false },
        allocations: { type: 'object', patternProperties: { '^[0-9a-fA-F-]{32,36}$': consumerSchema(req) }, additionalProperties: false },
      },
      required: ['inventories', 'allocations'],
      additionalProperties: false,
    };
    const data = body<{ inventories: Record<string, { resource_provider_generation: number; inventories: Record<string, Record<string, number>> }>; allocations: Record<string, ConsumerBody> }>(req, schema);
    const inventories = Object.entries(data.inventories).map(([raw, i]) => {
      if (!isUuid(raw)) throw badRequest(`JSON does not validate: '${raw}' is not a valid UUID`);
      const uuid = normalizeUuid(raw);
      return { uuid, generation: i.resource_provider_generation, inventories: Object.entries(i.inventories).map(([rc, d]) => inventoryFrom(req, uuid, rc, d)) };
    });
    const claims = Object.entries(data.allocations).map(([consumer, b]) => {
      if (!isUuid(consumer)) throw badRequest(`JSON does not validate: '${consumer}' is not a valid UUID`);
      return claimOf(req, normalizeUuid(consumer), b);
    });
    await deps.allocations.reshape(inventories, claims);
    return reply.code(204).send();
  });

  app.delete('/allocations/:consumer_uuid', async (req: ConsumerReq, reply) => {
    authorize(deps, req, 'placement:allocations:delete');
    await deps.allocations.deleteConsumer(consumerPath(req));
    return reply.code(204).send();
  });

  app.get('/usages', async (req, reply) => {
    since(req, '1.9');
    const q = query(req);
    allowOnly(q, (k) => k === 'project_id' || k === 'user_id' || (k === 'consumer_type' && atLeast(req, '1.38')));
    const projectId = single(q, 'project_id');
    if (projectId === undefined) throw badRequest("Invalid query string parameters: 'project_id' is a required property");
    authorize(deps, req, 'placement:usages', { project_id: projectId });
    const userId = single(q, 'user_id');
    const consumerType = single(q, 'consumer_type');
    const rows = await deps.allocations.totals({ projectId, userId, consumerType });
    cacheHeaders(req, reply);
    if (!atLeast(req, '1.38')) {
      const usages: Record<string, number> = {};
      for (const r of rows) usages[r.rc] = (usages[r.rc] ?? 0) + r.used;
      return { usages };
    }
    // 1.38: grouped by consumer type, each with its consumer count; "all" when asked for all types.
    const groups = new Map<string, { consumers: Set<string>; usages: Record<string, number> }>();
    const add = (key: string, r: (typeof rows)[number]) => {
      const g = groups.get(key) ?? groups.set(key, { consumers: new Set(), usages: {} }).get(key)!;
      g.consumers.add(r.consumer);
      g.usages[r.rc] = (g.usages[r.rc] ?? 0) + r.used;
    };
    for (const r of rows) add(consumerType === 'all' ? 'all' : r.consumerType, r);
    return { usages: Object.fromEntries([...groups].map(([k, g]) => [k, { consumer_count: g.consumers.size, ...g.usages }])) };
  });

  app.get('/allocation_candidates', async (req, reply) => {
    since(req, '1.10');
    authorize(deps, req, 'placement:allocation_candidates:list');
    const cq = await candidateQuery(deps, req);
    const [catalog, usage] = await Promise.all([deps.providers.catalog(), deps.providers.allUsage()]);
    const snapshot = { ...catalog, usage };
    const result = findCandidates(snapshot, cq);
    const requested = new Set(cq.groups.flatMap((g) => Object.keys(g.resources)));
    // One answer has an entry per provider (1,000 hosts): the microversion is tested once.
    const [v112, v117, v127, v129, v134] = ['1.12', '1.17', '1.27', '1.29', '1.34'].map((v) => atLeast(req, v));
    const allocationRequests = result.requests.map((r) => {
      if (!v112) {
        return { allocations: [...r.allocations].map(([uuid, resources]) => ({ resource_provider: { uuid }, resources })) };
      }
      const out: Record<string, unknown> = { allocations: Object.fromEntries([...r.allocations].map(([uuid, resources]) => [uuid, { resources }])) };
      if (v134) out.mappings = r.mappings;
      return out;
    });
    const byUuid = snapshot.byUuid;
    const summaries: Record<string, unknown> = {};
    for (const uuid of result.summaries) {
      const invs = snapshot.inventories.get(uuid) ?? [];
      const used = snapshot.usage.get(uuid);
      const resources: Record<string, { capacity: number; used: number }> = {};
      for (const i of invs) if (v127 || requested.has(i.resourceClass)) resources[i.resourceClass] = { capacity: capacityOf(i), used: used?.get(i.resourceClass) ?? 0 };
      const s: Record<string, unknown> = { resources };
      if (v117) s.traits = [...(snapshot.traits.get(uuid) ?? [])].sort();
      if (v129) {
        s.parent_provider_uuid = byUuid.get(uuid)?.parent ?? null;
        s.root_provider_uuid = byUuid.get(uuid)?.root ?? uuid;
      }
      summaries[uuid] = s;
    }
    cacheHeaders(req, reply);
    return { allocation_requests: allocationRequests, provider_summaries: summaries };
  });
}

/** Parses the query of GET /allocation_candidates into request groups, with upstream's checks per microversion. */
async function candidateQuery(deps: ApiDeps, req: FastifyRequest): Promise<CandidateQuery> {
  const q = query(req);
  const suffix = atLeast(req, '1.33') ? '([a-zA-Z0-9_-]{1,64})?' : atLeast(req, '1.25') ? '([1-9][0-9]*)?' : '()?';
  const groupKey = new RegExp(`^(resources|required|member_of|in_tree)${suffix}$`);
  allowOnly(q, (k) => {
    const m = groupKey.exec(k);
    if (m) {
      if (m[1] === 'required') return atLeast(req, '1.17');
      if (m[1] === 'member_of') return atLeast(req, '1.21');
      if (m[1] === 'in_tree') return atLeast(req, '1.31');
      return true;
    }
    if (k === 'limit') return atLeast(req, '1.16');
    if (k === 'group_policy') return atLeast(req, '1.25');
    if (k === 'root_required') return atLeast(req, '1.35');
    if (k === 'same_subtree') return atLeast(req, '1.36');
    return false;
  });
  const groups = new Map<string, RequestGroup>();
  const group = (s: string) =>
    groups.get(s) ?? groups.set(s, { suffix: s, resources: {}, requiredTraits: [], forbiddenTraits: [], memberOf: [], forbiddenAggs: [] }).get(s)!;
  const traitNames: string[] = [];
  for (const key of Object.keys(q).sort()) {
    const m = groupKey.exec(key);
    if (!m) continue;
    const [, kind, s = ''] = m;
    const g = group(s);
    if (kind === 'resources') {
      g.resources = parseResources(single(q, key)!);
    } else if (kind === 'required') {
      const values = atLeast(req, '1.39') ? all(q, key) : [single(q, key)!];
      const t = parseTraits(values, req, key);
      g.requiredTraits.push(...t.required);
      g.forbiddenTraits.push(...t.forbidden);
      traitNames.push(...t.required.flat(), ...t.forbidden);
    } else if (kind === 'member_of') {
      const mo = parseMemberOf(all(q, key), req);
      g.memberOf.push(...mo.memberOf);
      g.forbiddenAggs.push(...mo.forbidden);
    } else {
      g.inTree = uuidParam(single(q, key)!, key);
    }
  }
  const list = [...groups.values()];
  if (!list.some((g) => Object.keys(g.resources).length)) {
    throw badRequest('At least one request group (`resources` or `resources{$S}`) is required.', CODES.QUERYPARAM_MISSING_VALUE);
  }
  for (const rc of new Set(list.flatMap((g) => Object.keys(g.resources)))) {
    if (!(await deps.providers.resourceClassExists(rc))) throw badRequest(`Invalid resource class in resources parameter: No such resource class ${rc}.`);
  }
  await checkTraitsExist(deps, traitNames);
  const sameSubtree = all(q, 'same_subtree').map((v) => v.split(',').map((x) => x.trim()));
  for (const s of sameSubtree.flat()) {
    if (!groups.has(s) || s === '') throw badRequest(`Real suffixes should be specified in 'same_subtree': ${s} not found in [${[...groups.keys()].filter(Boolean).join(', ')}].`);
  }
  const resourceless = list.filter((g) => g.suffix !== '' && Object.keys(g.resources).length === 0);
  if (resourceless.length && !atLeast(req, '1.36')) {
    throw badRequest(`All traits parameters must be associated with resources. Found the following orphaned traits keys: ${resourceless.map((g) => `required${g.suffix}`).join(', ')}`);
  }
  for (const g of resourceless) {
    if (!sameSubtree.some((ss) => ss.includes(g.suffix))) {
      throw badRequest(`Resourceless suffixed group request should be specified in 'same_subtree' query param: bad group(s) - ['${g.suffix}'].`);
    }
  }
  const granularWithResources = list.filter((g) => g.suffix !== '' && Object.keys(g.resources).length);
  const policy = single(q, 'group_policy');
  if (policy !== undefined && policy !== 'none' && policy !== 'isolate') {
    throw badRequest(`Invalid query string parameters: '${policy}' is not one of ['none', 'isolate']`, CODES.QUERYPARAM_BAD_VALUE);
  }
  if (granularWithResources.length > 1 && policy === undefined) {
    throw badRequest('The "group_policy" parameter is required when specifying more than one "resources{N}" parameter.', CODES.QUERYPARAM_MISSING_VALUE);
  }
  const limitText = single(q, 'limit');
  let limit: number | undefined;
  if (limitText !== undefined) {
    if (!/^[1-9][0-9]*$/.test(limitText)) throw badRequest(`Invalid query string parameters: '${limitText}' does not match '^[1-9][0-9]*$'`, CODES.QUERYPARAM_BAD_VALUE);
    limit = Number(limitText);
  }
  const root = parseTraits(all(q, 'root_required'), req, 'root_required');
  await checkTraitsExist(deps, [...root.required.flat(), ...root.forbidden], 'root_required');
  // The unsuffixed group without resources only picks trees; it maps nothing.
  const unsuffixed = groups.get('');
  const treeFilter = unsuffixed && Object.keys(unsuffixed.resources).length === 0 ? unsuffixed : undefined;
  return {
    groups: list.filter((g) => g !== treeFilter),
    treeFilter,
    groupPolicy: policy as CandidateQuery['groupPolicy'],
    limit,
    rootRequired: root.required,
    rootForbidden: root.forbidden,
    sameSubtree,
    nested: atLeast(req, '1.29'),
  };
}
