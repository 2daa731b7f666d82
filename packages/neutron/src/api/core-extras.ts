import { inTransaction } from '../db/transaction.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { jsonFromDb, jsonToDb, insertIgnoringDuplicates } from '@onestack/core/db/index.ts';
import { credentialsFromAuth } from '@onestack/core/policy/index.ts';
import type { NeutronDB, SubnetPoolRow } from '../db/schema.ts';
import { parseCidr } from '../domain/addresses.ts';
import { networkScope } from '../domain/networks.ts';
import { listAgents } from '../domain/agents.ts';
import { replaceTags, tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, resourceNotFound, type ApiDeps, type Caller } from './context.ts';
import { isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { STANDARD_ATTRS, bool, createBodies, int, intOrNull, listOf, memberBody, owningProject, str, uuidOrNull, type Validator } from './validate.ts';

/** Quotas, tags, subnet pools, RBAC policies and agents. */
export function registerCoreExtras(app: FastifyInstance, deps: ApiDeps): void {
  registerQuotaResources(deps);
  registerTaggables(deps);
  registerQuotaRoutes(app, deps);
  registerTagRoutes(app, deps);
  registerSubnetPoolRoutes(app, deps);
  registerAgentRoutes(app, deps);
}

const countIn = (table: 'networks' | 'subnets' | 'ports' | 'subnetpools' | 'rbac_policies') => async (trx: Kysely<NeutronDB>, projectId: string) => {
  const r = await trx.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).executeTakeFirst();
  return Number(r?.n ?? 0);
};

function registerQuotaResources(deps: ApiDeps): void {
  deps.quotas.register({ name: 'network', count: countIn('networks') });
  deps.quotas.register({ name: 'subnet', count: countIn('subnets') });
  deps.quotas.register({ name: 'port', count: countIn('ports') });
  deps.quotas.register({ name: 'subnetpool', count: countIn('subnetpools') });
  deps.quotas.register({ name: 'rbac_policy', count: countIn('rbac_policies') });
}

function registerTaggables(deps: ApiDeps): void {
  const simple = (collection: string, member: string, table: 'subnetpools') => ({
    collection,
    member,
    async find(db: Kysely<NeutronDB>, id: string, caller: { projectId?: string; isAdmin: boolean }) {
      const r = await db.selectFrom(table).select(['id', 'project_id', 'shared']).where('id', '=', id).executeTakeFirst();
      if (!r || (!caller.isAdmin && r.project_id !== caller.projectId && r.shared !== 1)) return undefined;
      return { id: r.id, project_id: r.project_id, tenant_id: r.project_id, shared: r.shared === 1 };
    },
  });
  deps.tags.register({
    collection: 'networks',
    member: 'network',
    async find(db, id, caller) {
      let q = db.selectFrom('networks').select(['id', 'project_id', 'shared', 'router_external']).where('networks.id', '=', id);
      const scope = networkScope(caller);
      if (scope) q = q.where(scope);
      const r = await q.executeTakeFirst();
      return r && { id: r.id, project_id: r.project_id, tenant_id: r.project_id, shared: r.shared === 1, 'router:external': r.router_external === 1 };
    },
  });
  for (const [collection, member, table] of [
    ['subnets', 'subnet', 'subnets'],
    ['ports', 'port', 'ports'],
  ] as const) {
    deps.tags.register({
      collection,
      member,
      async find(db, id, caller) {
        const r = await db.selectFrom(table).select(['id', 'project_id', 'network_id']).where('id', '=', id).executeTakeFirst();
        if (!r) return undefined;
        const net = await db.selectFrom('networks').select(['project_id', 'shared']).where('id', '=', r.network_id).executeTakeFirst();
        if (!caller.isAdmin && r.project_id !== caller.projectId && net?.project_id !== caller.projectId && !(member === 'subnet' && net?.shared === 1)) return undefined;
        return { id: r.id, project_id: r.project_id, tenant_id: r.project_id, 'network:project_id': net?.project_id ?? null, 'network:tenant_id': net?.project_id ?? null, shared: net?.shared === 1 };
      },
    });
  }
  deps.tags.register(simple('subnetpools', 'subnetpool', 'subnetpools'));
}

// ---------- quotas ----------

function quotaTarget(projectId: string) {
  return { project_id: projectId, tenant_id: projectId };
}

/** Quota names as the API shows them: upstream's resource names (network, subnet, port, router, floatingip …). */
function registerQuotaRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const db = () => deps.database.db;
  const projectOf = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.get('/v2.0/quotas', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'get_quota', quotaTarget(caller.projectId ?? ''));
    const rows = await db().selectFrom('quotas').select(['project_id']).distinct().execute();
    const out = [];
    for (const r of rows) {
      if (!caller.isAdmin && r.project_id !== caller.projectId) continue;
      out.push({ ...(await deps.quotas.limits(db(), r.project_id)), project_id: r.project_id, tenant_id: r.project_id });
    }
    return { quotas: out };
  });

  app.get('/v2.0/quotas/:id/default', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'get_quota', quotaTarget(projectOf(req)));
    return { quota: { ...deps.quotas.defaultsAll(), project_id: projectOf(req), tenant_id: projectOf(req) } };
  });

  app.get('/v2.0/quotas/:id/details', async (req) => {
    const caller = callerOf(deps, req);
    const projectId = projectOf(req);
    authorizeAction(deps, caller, 'get_quota', quotaTarget(projectId));
    const limits = await deps.quotas.limits(db(), projectId);
    const used = await deps.quotas.usage(db(), projectId);
    return { quota: Object.fromEntries(Object.entries(limits).map(([k, limit]) => [k, { limit, used: used[k] ?? 0, reserved: 0 }])) };
  });

  app.get('/v2.0/quotas/:id', async (req) => {
    const caller = callerOf(deps, req);
    const projectId = projectOf(req);
    authorizeAction(deps, caller, 'get_quota', quotaTarget(projectId));
    return { quota: await deps.quotas.limits(db(), projectId) };
  });

  app.put('/v2.0/quotas/:id', async (req) => {
    const caller = callerOf(deps, req);
    const projectId = projectOf(req);
    authorizeAction(deps, caller, 'update_quota', quotaTarget(projectId));
    const body = (req.body ?? {}) as { quota?: Record<string, unknown> };
    if (typeof body.quota !== 'object' || body.quota === null) throw badRequest('Resource body required', { type: 'HTTPBadRequest' });
    const changes: Record<string, number> = {};
    for (const [k, v] of Object.entries(body.quota)) {
      if (k === 'force' || k === 'check_limit') continue;
      if (!deps.quotas.has(k)) throw badRequest(`Unrecognized attribute(s) '${k}'`, { type: 'HTTPBadRequest' });
      changes[k] = int(-1)(v, k) as number;
    }
    await inTransaction(deps.database, async (trx) => {
      for (const [resource, limit] of Object.entries(changes)) {
        await trx.deleteFrom('quotas').where('project_id', '=', projectId).where('resource', '=', resource).execute();
        await trx.insertInto('quotas').values({ project_id: projectId, resource, limit }).execute();
      }
    });
    return { quota: await deps.quotas.limits(db(), projectId) };
  });

  app.delete('/v2.0/quotas/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const projectId = projectOf(req);
    authorizeAction(deps, caller, 'delete_quota', quotaTarget(projectId));
    await db().deleteFrom('quotas').where('project_id', '=', projectId).execute();
    reply.code(204);
  });
}

// ---------- tags ----------

const TAG_MAX = 60;

function checkTag(tag: unknown): string {
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > TAG_MAX || tag.includes(',') || tag.includes('/')) {
    throw badRequest(`Invalid input for operation: '${String(tag)}' is not a valid tag.`, { type: 'InvalidInput' });
  }
  return tag;
}

/** `/v2.0/{collection}/{id}/tags` for every registered taggable resource, including those other modules register later. */
function registerTagRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const db = () => deps.database.db;
  // Upstream's tagging controller: the parent must be visible, then `<action>_<member>:tags` decides.
  const resolve = async (req: FastifyRequest, action: 'get' | 'create' | 'update' | 'delete') => {
    const { collection, id } = req.params as { collection: string; id: string };
    const res = deps.tags.get(collection);
    if (!res) throw new ApiError('not_found', 'The resource could not be found.', { type: 'HTTPNotFound' });
    const caller = callerOf(deps, req);
    const target = await res.find(db(), id, caller);
    if (!target) throw resourceNotFound(res.member, id);
    authorizeAction(deps, caller, `${action}_${res.member}:tags`, target);
    return { id, caller };
  };
  const touch = async (trx: Kysely<NeutronDB>, req: FastifyRequest, id: string) => {
    const { collection } = req.params as { collection: string };
    const table = (collection === 'security-groups' ? 'securitygroups' : collection) as 'networks';
    // The parent's revision moves with its tags, as upstream's standard attributes do; tables other modules own may not exist under this name.
    await trx
      .updateTable(table)
      .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: deps.clock.now() }))
      .where('id', '=', id)
      .execute()
      .catch(() => undefined);
  };

  app.get('/v2.0/:collection/:id/tags', async (req) => {
    const { id } = await resolve(req, 'get');
    return { tags: (await tagsOf(db(), [id])).get(id) ?? [] };
  });
  app.get('/v2.0/:collection/:id/tags/:tag', async (req, reply) => {
    const { id } = await resolve(req, 'get');
    const { tag } = req.params as { tag: string };
    const has = await db().selectFrom('tags').select('tag').where('resource_id', '=', id).where('tag', '=', tag).executeTakeFirst();
    if (!has) throw new ApiError('not_found', `Tag ${tag} could not be found.`, { type: 'TagNotFound' });
    reply.code(204);
  });
  app.put('/v2.0/:collection/:id/tags', async (req) => {
    const { id } = await resolve(req, 'update');
    const body = (req.body ?? {}) as { tags?: unknown };
    if (!Array.isArray(body.tags)) throw badRequest("Invalid input for operation: 'tags' is not a list.", { type: 'InvalidInput' });
    const tags = body.tags.map(checkTag);
    await inTransaction(deps.database, async (trx) => {
      await replaceTags(trx, id, tags);
      await touch(trx, req, id);
    });
    return { tags: [...new Set(tags)].sort() };
  });
  app.put('/v2.0/:collection/:id/tags/:tag', async (req, reply) => {
    const { id } = await resolve(req, 'update');
    const tag = checkTag((req.params as { tag: string }).tag);
    await inTransaction(deps.database, async (trx) => {
      await insertIgnoringDuplicates(trx, 'tags', { resource_id: id, tag }).execute();
      await touch(trx, req, id);
    });
    reply.code(201);
    return null;
  });
  app.post('/v2.0/:collection/:id/tags', async (req, reply) => {
    const { id } = await resolve(req, 'create');
    const body = (req.body ?? {}) as { tags?: unknown };
    if (!Array.isArray(body.tags)) throw badRequest("Invalid input for operation: 'tags' is not a list.", { type: 'InvalidInput' });
    const tags = body.tags.map(checkTag);
    await inTransaction(deps.database, async (trx) => {
      for (const tag of new Set(tags)) await insertIgnoringDuplicates(trx, 'tags', { resource_id: id, tag }).execute();
      await touch(trx, req, id);
    });
    reply.code(201);
    return { tags };
  });
  app.delete('/v2.0/:collection/:id/tags', async (req, reply) => {
    const { id } = await resolve(req, 'delete');
    await inTransaction(deps.database, async (trx) => {
      await replaceTags(trx, id, []);
      await touch(trx, req, id);
    });
    reply.code(204);
  });
  app.delete('/v2.0/:collection/:id/tags/:tag', async (req, reply) => {
    const { id } = await resolve(req, 'delete');
    const { tag } = req.params as { tag: string };
    const r = await db().deleteFrom('tags').where('resource_id', '=', id).where('tag', '=', tag).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new ApiError('not_found', `Tag ${tag} could not be found.`, { type: 'TagNotFound' });
    reply.code(204);
  });
}

// ---------- subnet pools ----------

const POOL_LIST: ListSpec = {
  table: 'subnetpools',
  collection: 'subnetpools',
  columns: {
    ip_version: { column: 'ip_version', type: 'int', sortable: true },
    default_prefixlen: { column: 'default_prefixlen', type: 'int', sortable: true },
    min_prefixlen: { column: 'min_prefixlen', type: 'int', sortable: true },
    max_prefixlen: { column: 'max_prefixlen', type: 'int', sortable: true },
    shared: { column: 'shared', type: 'bool', sortable: true },
    is_default: { column: 'is_default', type: 'bool', sortable: true },
    address_scope_id: { column: 'address_scope_id', type: 'string', sortable: true },
    default_quota: { column: 'default_quota', type: 'int', sortable: false },
  },
  ignored: ['prefixes', 'tags'],
};

const POOL_ATTRS: Record<string, Validator> = {
  ...STANDARD_ATTRS,
  prefixes: listOf(str(64)),
  default_prefixlen: int(0, 128),
  min_prefixlen: int(0, 128),
  max_prefixlen: int(0, 128),
  shared: bool,
  is_default: bool,
  default_quota: intOrNull(0),
  address_scope_id: uuidOrNull,
};

function poolView(p: SubnetPoolRow, tags: string[]) {
  return {
    id: p.id,
    name: p.name,
    tenant_id: p.project_id,
    prefixes: jsonFromDb(p.prefixes),
    default_prefixlen: p.default_prefixlen,
    min_prefixlen: p.min_prefixlen,
    max_prefixlen: p.max_prefixlen,
    is_default: p.is_default === 1,
    shared: p.shared === 1,
    default_quota: p.default_quota,
    address_scope_id: p.address_scope_id,
    ip_version: p.ip_version,
    description: p.description,
    tags,
    created_at: isoTime(p.created_at),
    updated_at: isoTime(p.updated_at),
    revision_number: p.revision_number,
    project_id: p.project_id,
  };
}

function normalizePrefixes(list: string[]): { prefixes: string[]; version: number } {
  if (list.length === 0) throw badRequest("Invalid input for prefixes. Reason: prefixes must not be empty.", { type: 'HTTPBadRequest' });
  const parsed = list.map((p) => {
    const c = parseCidr(p, false);
    if (!c) throw badRequest(`Invalid input for prefixes. Reason: '${p}' is not a valid IP subnet.`, { type: 'HTTPBadRequest' });
    return c;
  });
  const versions = new Set(parsed.map((c) => c.version));
  if (versions.size > 1) throw badRequest('Illegal subnetpool prefix bounds: Cannot mix IPv4 and IPv6 prefixes in a subnet pool.', { type: 'PrefixVersionMismatch' });
  return { prefixes: parsed.map((c) => c.text), version: parsed[0].version };
}

function registerSubnetPoolRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const db = () => deps.database.db;
  const scope = (caller: Caller) => (caller.isAdmin ? undefined : (eb: any) => eb.or([eb('subnetpools.project_id', '=', caller.projectId ?? ''), eb('subnetpools.shared', '=', 1)]));
  const target = (p: Pick<SubnetPoolRow, 'id' | 'project_id' | 'shared'>) => ({ id: p.id, project_id: p.project_id, tenant_id: p.project_id, shared: p.shared === 1 });
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    let q = db().selectFrom('subnetpools').selectAll('subnetpools').where('subnetpools.id', '=', id);
    const s = scope(caller);
    if (s) q = q.where(s);
    const p = await q.executeTakeFirst();
    if (!p) throw resourceNotFound('subnetpool', id);
    return p;
  };
  const views = async (rows: SubnetPoolRow[]) => {
    const tags = await tagsOf(db(), rows.map((r) => r.id));
    return rows.map((r) => poolView(r, tags.get(r.id) ?? []));
  };
  const bounds = (version: number, a: { default_prefixlen?: number; min_prefixlen?: number; max_prefixlen?: number }, prefixes: string[]) => {
    const max = a.max_prefixlen ?? (version === 4 ? 32 : 128);
    const smallest = Math.min(...prefixes.map((p) => parseCidr(p)!.prefix));
    const min = a.min_prefixlen ?? (version === 4 ? 8 : 64);
    const def = a.default_prefixlen ?? min;
    if (max > (version === 4 ? 32 : 128) || min > max || def < min || def > max) {
      throw badRequest(`Illegal prefix bounds: min_prefixlen ${min}, default_prefixlen ${def}, max_prefixlen ${max}.`, { type: 'IllegalSubnetPoolPrefixBounds' });
    }
    void smallest;
    return { min, max, def };
  };

  app.get('/v2.0/subnetpools', async (req) => {
    const caller = callerOf(deps, req);
    const { rows, fields, links } = await listRows<SubnetPoolRow>(db(), req, POOL_LIST, scope(caller), { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    return { subnetpools: (await views(rows)).map((v) => selectFields(v, fields)), ...(links ? { subnetpools_links: links } : {}) };
  });
  app.get('/v2.0/subnetpools/:id', async (req) => {
    const caller = callerOf(deps, req);
    const p = await load(req, caller);
    authorizeAction(deps, caller, 'get_subnetpool', target(p), { member: 'subnetpool', id: p.id, visible: false });
    return { subnetpool: (await views([p]))[0] };
  });
  app.post('/v2.0/subnetpools', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'subnetpool', 'subnetpools');
    const inputs = items.map((b) => memberBody(b, 'subnetpool', POOL_ATTRS));
    deps.notifier.start('subnetpool', 'create', req.body, req.ctx);
    const rows = await inTransaction(deps.database, async (trx) => {
      const out: SubnetPoolRow[] = [];
      for (const a of inputs) {
        const projectId = owningProject(a, caller);
        authorizeAction(deps, caller, 'create_subnetpool', { project_id: projectId, tenant_id: projectId }, { attrs: a });
        if (a.prefixes === undefined) throw badRequest("Failed to parse request. Required attribute 'prefixes' not specified", { type: 'HTTPBadRequest' });
        const { prefixes, version } = normalizePrefixes(a.prefixes as string[]);
        const b = bounds(version, a as never, prefixes);
        await deps.quotas.check(trx, projectId, 'subnetpool');
        if (a.is_default) {
          const existing = await trx.selectFrom('subnetpools').select('id').where('is_default', '=', 1).where('ip_version', '=', version).executeTakeFirst();
          if (existing) throw badRequest(`Invalid input for operation: A default subnetpool for this IP family has already been set. Only one default may exist per IP family.`, { type: 'InvalidInput' });
        }
        const now = deps.clock.now();
        const row: SubnetPoolRow = {
          id: deps.ids.uuid(),
          project_id: projectId,
          name: (a.name as string | undefined) ?? '',
          description: (a.description as string | undefined) ?? '',
          revision_number: 0,
          created_at: now,
          updated_at: now,
          ip_version: version,
          default_prefixlen: b.def,
          min_prefixlen: b.min,
          max_prefixlen: b.max,
          shared: a.shared ? 1 : 0,
          is_default: a.is_default ? 1 : 0,
          default_quota: (a.default_quota as number | null | undefined) ?? null,
          address_scope_id: (a.address_scope_id as string | null | undefined) ?? null,
          prefixes: jsonToDb(prefixes),
        };
        await trx.insertInto('subnetpools').values(row).execute();
        out.push(row);
      }
      return out;
    });
    const vs = await views(rows);
    for (const v of vs) deps.notifier.end('subnetpool', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { subnetpools: vs } : { subnetpool: vs[0] };
  });
  app.put('/v2.0/subnetpools/:id', async (req) => {
    const caller = callerOf(deps, req);
    const p = await load(req, caller);
    const a = memberBody(req.body, 'subnetpool', { name: str(255), description: str(255), prefixes: listOf(str(64)), default_prefixlen: int(0, 128), min_prefixlen: int(0, 128), max_prefixlen: int(0, 128), is_default: bool, default_quota: intOrNull(0), address_scope_id: uuidOrNull });
    authorizeAction(deps, caller, 'update_subnetpool', target(p), { attrs: a, member: 'subnetpool', id: p.id, visible: deps.enforcer.enforce('get_subnetpool', target(p), credentialsFromAuth(caller.auth)) });
    deps.notifier.start('subnetpool', 'update', req.body, req.ctx);
    const changes: Partial<SubnetPoolRow> = {};
    if (a.name !== undefined) changes.name = a.name as string;
    if (a.description !== undefined) changes.description = a.description as string;
    let prefixes = jsonFromDb<string[]>(p.prefixes);
    if (a.prefixes !== undefined) {
      const n = normalizePrefixes(a.prefixes as string[]);
      if (n.version !== p.ip_version) throw badRequest('Illegal subnetpool prefix bounds: prefix version mismatch.', { type: 'PrefixVersionMismatch' });
      // Prefixes may only grow: every old prefix must stay covered.
      const parsed = n.prefixes.map((x) => parseCidr(x)!);
      for (const old of prefixes.map((x) => parseCidr(x)!)) {
        if (!parsed.some((c) => old.first >= c.first && old.last <= c.last)) throw badRequest(`Illegal update to prefixes: ${old.text} would be removed.`, { type: 'IllegalSubnetPoolPrefixUpdate' });
      }
      prefixes = n.prefixes;
      changes.prefixes = jsonToDb(prefixes);
    }
    if (a.default_prefixlen !== undefined || a.min_prefixlen !== undefined || a.max_prefixlen !== undefined) {
      const b = bounds(p.ip_version, { default_prefixlen: (a.default_prefixlen as number) ?? p.default_prefixlen, min_prefixlen: (a.min_prefixlen as number) ?? p.min_prefixlen, max_prefixlen: (a.max_prefixlen as number) ?? p.max_prefixlen }, prefixes);
      Object.assign(changes, { default_prefixlen: b.def, min_prefixlen: b.min, max_prefixlen: b.max });
    }
    if (a.is_default !== undefined) changes.is_default = a.is_default ? 1 : 0;
    if (a.default_quota !== undefined) changes.default_quota = a.default_quota as number | null;
    if (a.address_scope_id !== undefined) changes.address_scope_id = a.address_scope_id as string | null;
    const next = { ...changes, revision_number: p.revision_number + 1, updated_at: Math.max(deps.clock.now(), p.updated_at) };
    await db().updateTable('subnetpools').set(next).where('id', '=', p.id).execute();
    const view = (await views([{ ...p, ...next }]))[0];
    deps.notifier.end('subnetpool', 'update', view, req.ctx);
    return { subnetpool: view };
  });
  app.delete('/v2.0/subnetpools/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const p = await load(req, caller);
    authorizeAction(deps, caller, 'delete_subnetpool', target(p), { member: 'subnetpool', id: p.id, visible: deps.enforcer.enforce('get_subnetpool', target(p), credentialsFromAuth(caller.auth)) });
    const view = (await views([p]))[0];
    await inTransaction(deps.database, async (trx) => {
      const used = await trx.selectFrom('subnets').select('id').where('subnetpool_id', '=', p.id).executeTakeFirst();
      if (used) throw new ApiError('conflict', `Subnet pool ${p.id} cannot be deleted because it is in use by one or more subnets.`, { type: 'SubnetPoolInUse' });
      await trx.deleteFrom('tags').where('resource_id', '=', p.id).execute();
      await trx.deleteFrom('subnetpools').where('id', '=', p.id).execute();
    });
    deps.notifier.deleted('subnetpool', p.id, view, req.ctx);
    reply.code(204);
  });
}

// ---------- agents ----------

function registerAgentRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const db = () => deps.database.db;
  const view = (a: Awaited<ReturnType<typeof listAgents>>[number]) => a;
  app.get('/v2.0/agents', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'get_agent', {});
    const query = (req.query ?? {}) as Record<string, unknown>;
    const all = await listAgents(db(), deps.clock, deps.config.agentDownTimeMs);
    const filtered = all.filter((a) =>
      Object.entries(query).every(([k, v]) => {
        if (k === 'fields') return true;
        if (!(k in a)) throw new ApiError('bad_request', `[${k}] is invalid attribute for filtering`, { type: 'HTTPBadRequest' });
        const values = (Array.isArray(v) ? v : [v]).map(String);
        return values.includes(String((a as Record<string, unknown>)[k]));
      }),
    );
    const fields = ([] as string[]).concat((query.fields as string[] | string | undefined) ?? []);
    return { agents: filtered.map((a) => selectFields(view(a), fields)) };
  });
  app.get('/v2.0/agents/:id', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'get_agent', {});
    const id = (req.params as { id: string }).id;
    const a = (await listAgents(db(), deps.clock, deps.config.agentDownTimeMs)).find((x) => x.id === id);
    if (!a) throw new ApiError('not_found', `Agent ${id} could not be found.`, { type: 'AgentNotFound' });
    return { agent: a };
  });
  app.put('/v2.0/agents/:id', async (req) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'update_agent', {});
    const id = (req.params as { id: string }).id;
    const a = memberBody(req.body, 'agent', { admin_state_up: bool, description: str(255) });
    const changes: Record<string, unknown> = {};
    if (a.admin_state_up !== undefined) changes.admin_state_up = a.admin_state_up ? 1 : 0;
    if (a.description !== undefined) changes.description = a.description;
    const r = Object.keys(changes).length ? await db().updateTable('agents').set(changes).where('id', '=', id).executeTakeFirst() : { numUpdatedRows: 1n };
    const found = (await listAgents(db(), deps.clock, deps.config.agentDownTimeMs)).find((x) => x.id === id);
    if (Number(r.numUpdatedRows) === 0 || !found) throw new ApiError('not_found', `Agent ${id} could not be found.`, { type: 'AgentNotFound' });
    return { agent: found };
  });
  app.delete('/v2.0/agents/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    authorizeAction(deps, caller, 'delete_agent', {});
    const id = (req.params as { id: string }).id;
    const r = await db().deleteFrom('agents').where('id', '=', id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new ApiError('not_found', `Agent ${id} could not be found.`, { type: 'AgentNotFound' });
    reply.code(204);
  });
}
