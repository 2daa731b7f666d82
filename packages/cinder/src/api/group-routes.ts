import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { GroupSnapshotRow } from '../db/schema.ts';
import type { GroupType } from '../domain/group-types.ts';
import { GROUP_SNAPSHOT_STATUSES, GROUP_STATUSES, type Group } from '../domain/groups.ts';
import { allowed, bodyObject, boolParam, callerOf, enforce, ISO, mv, projectOf, stringMap, type ApiDeps } from './context.ts';
import { filtersOf } from './filters.ts';
import { baseUrl } from './views.ts';
import { optionalString, pageOf } from './volume-routes.ts';

const P = '/v3/:project_id';
const SORT_KEYS = new Set(['id', 'name', 'status', 'created_at', 'updated_at', 'availability_zone', 'group_type_id', 'project_id', 'description', 'group_id']);

/** A method newer than the request: upstream's VersionNotFoundForAPIMethod, rendered as a bare 404. */
function since(req: FastifyRequest, version: string): void {
  if (!mv(req, version)) throw notFound('The resource could not be found.');
}

/** jsonschema's additionalProperties refusal, in upstream's words. */
function onlyKeys(body: Record<string, unknown>, field: string, keys: string[]): void {
  const extra = Object.keys(body).filter((k) => !keys.includes(k));
  if (extra.length) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${JSON.stringify(body)}. Additional properties are not allowed ('${extra[0]}' was unexpected)`);
}

function required(body: Record<string, unknown>, field: string, key: string): void {
  if (body[key] === undefined) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${JSON.stringify(body)}. '${key}' is a required property`);
}

/** upstream's name/description: stripped, ≤ 255. */
function text(v: unknown, field: string): string | null {
  const s = optionalString(v, field);
  return s === undefined || s === null ? null : s.trim();
}

function statusOf(args: Record<string, unknown>, valid: string[], what: 'Group' | 'GroupSnapshot'): string {
  required(args, 'reset_status', 'status');
  if (typeof args.status !== 'string') throw badRequest(`Invalid input for field/attribute status. Value: ${JSON.stringify(args.status)}. ${JSON.stringify(args.status)} is not of type 'string'`);
  const status = args.status.trim().toLowerCase();
  const label = what === 'Group' ? 'Group' : 'Group snapshot';
  if (!status) throw badRequest(`Invalid ${what === 'Group' ? 'Group' : 'GroupSnapshot'} Status: The 'status' can not be empty.`);
  if (!valid.includes(status)) throw badRequest(`Invalid ${what === 'Group' ? 'Group' : 'GroupSnapshot'} Status: ${label} status: ${args.status} is invalid, valid status are: [${valid.map((s) => `'${s}'`).join(', ')}].`);
  return status;
}

function typeView(deps: ApiDeps, req: FastifyRequest, t: GroupType) {
  const out: Record<string, unknown> = { id: t.id, name: t.name, description: t.description, is_public: t.isPublic };
  if (allowed(deps, req, 'group:access_group_types_specs')) out.group_specs = t.groupSpecs;
  return out;
}

function groupView(deps: ApiDeps, req: FastifyRequest, g: Group, volumeIds: string[]) {
  const out: Record<string, unknown> = {
    id: g.id,
    status: g.status,
    availability_zone: g.availability_zone,
    created_at: ISO(g.created_at),
    name: g.name,
    description: g.description,
    group_type: g.group_type_id,
    volume_types: g.volumeTypeIds,
  };
  if (mv(req, '3.14')) {
    out.group_snapshot_id = g.group_snapshot_id;
    out.source_group_id = g.source_group_id;
  }
  const q = req.query as Record<string, string>;
  if (mv(req, '3.25') && q.list_volume !== undefined && boolParam(q.list_volume, 'list_volume')) out.volumes = volumeIds;
  if (mv(req, '3.38')) out.replication_status = g.replication_status;
  if (mv(req, '3.58') && allowed(deps, req, 'group:group_project_attribute')) out.project_id = g.project_id;
  return out;
}

function groupSnapshotView(deps: ApiDeps, req: FastifyRequest, s: GroupSnapshotRow) {
  const out: Record<string, unknown> = { id: s.id, group_id: s.group_id, group_type_id: s.group_type_id, status: s.status, created_at: ISO(s.created_at), name: s.name, description: s.description };
  if (mv(req, '3.58') && allowed(deps, req, 'group:group_snapshot_project_attribute')) out.project_id = s.project_id;
  return out;
}

/** upstream's _get_collection_links: a next link when the page is full. */
function nextLink(req: FastifyRequest, collection: string, rows: { id: string }[], limit: number): { href: string; rel: string }[] | undefined {
  if (!rows.length || rows.length < limit) return undefined;
  const params = new URLSearchParams(req.query as Record<string, string>);
  params.set('marker', rows[rows.length - 1].id);
  params.delete('offset');
  return [{ href: `${baseUrl(req)}/v3/${(req.params as { project_id: string }).project_id}/${collection}?${params}`, rel: 'next' }];
}

export function registerGroupRoutes(app: FastifyInstance, deps: ApiDeps): void {
  registerGroupTypeRoutes(app, deps);
  registerGroupsRoutes(app, deps);
  registerGroupSnapshotRoutes(app, deps);
}

function registerGroupTypeRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const gt = deps.groupTypes;
  const open = (req: FastifyRequest) => {
    projectOf(deps, req);
    since(req, '3.11');
    return callerOf(deps, req);
  };
  const typeId = (req: FastifyRequest) => (req.params as { type_id: string }).type_id;

  app.get(`${P}/group_types`, async (req) => {
    const caller = open(req);
    const q = req.query as Record<string, string>;
    const isPublic = q.is_public === undefined || q.is_public.toLowerCase() === 'none' ? undefined : boolParam(q.is_public, 'is_public');
    const page = pageOf(deps, q, new Set(['id', 'name', 'created_at', 'updated_at', 'description', 'is_public']));
    let types = await gt.list({ isAdmin: caller.isAdmin, isPublic });
    if (page.sort.length) {
      const [key, dir] = page.sort[0];
      const v = (t: GroupType) => String((({ id: t.id, name: t.name, description: t.description ?? '', is_public: t.isPublic }) as Record<string, unknown>)[key] ?? '');
      types = [...types].sort((a, b) => (dir === 'asc' ? 1 : -1) * v(a).localeCompare(v(b)));
    }
    if (page.marker !== undefined) {
      const at = types.findIndex((t) => t.id === page.marker);
      if (at < 0) throw notFound(`Group type ${page.marker} could not be found.`);
      types = types.slice(at + 1);
    }
    types = types.slice(page.offset ?? 0, (page.offset ?? 0) + page.limit);
    const out: Record<string, unknown> = { group_types: types.map((t) => typeView(deps, req, t)) };
    const next = q.limit !== undefined ? nextLink(req, 'group_types', types, page.limit) : undefined;
    if (next) out.group_type_links = next;
    return out;
  });
  app.get(`${P}/group_types/:type_id`, async (req) => {
    const caller = open(req);
    const id = typeId(req);
    if (id === 'default') {
      const name = deps.config.defaultGroupType;
      const t = name ? await gt.byName(name, true).catch(() => undefined) : undefined;
      if (!t) throw notFound('Default group type can not be found.');
      return { group_type: typeView(deps, req, t) };
    }
    return { group_type: typeView(deps, req, await gt.get(id, caller.isAdmin)) };
  });
  app.post(`${P}/group_types`, async (req, reply) => {
    open(req);
    enforce(deps, req, 'group:group_types:create');
    const b = bodyObject(req.body, 'group_type');
    onlyKeys(b, 'group_type', ['name', 'description', 'is_public', 'group_specs']);
    required(b, 'group_type', 'name');
    const name = optionalString(b.name, 'name');
    if (!name || !name.trim()) throw badRequest(`Invalid input for field/attribute name. Value: ${JSON.stringify(b.name)}. ${JSON.stringify(b.name)} is too short`);
    const t = await gt.create({ name, description: optionalString(b.description, 'description') ?? null, isPublic: b.is_public === undefined ? true : boolParam(b.is_public, 'is_public'), specs: stringMap(b.group_specs, 'group_specs') });
    reply.code(202);
    return { group_type: typeView(deps, req, t) };
  });
  app.put(`${P}/group_types/:type_id`, async (req) => {
    open(req);
    enforce(deps, req, 'group:group_types:update');
    const b = bodyObject(req.body, 'group_type');
    onlyKeys(b, 'group_type', ['name', 'description', 'is_public']);
    const name = optionalString(b.name, 'name');
    if (name !== undefined && name !== null && !name.trim()) throw badRequest('Group type name can not be empty.');
    const description = optionalString(b.description, 'description');
    const isPublic = b.is_public === undefined || b.is_public === null ? undefined : boolParam(b.is_public, 'is_public');
    if ((name === undefined || name === null) && description === undefined && isPublic === undefined) throw badRequest('Specify group type name, description or a combination thereof.');
    const t = await gt.update(typeId(req), { name: name ?? undefined, description, isPublic });
    return { group_type: typeView(deps, req, t) };
  });
  app.delete(`${P}/group_types/:type_id`, async (req, reply) => {
    open(req);
    enforce(deps, req, 'group:group_types:delete');
    await gt.delete(typeId(req));
    reply.code(202);
    return '';
  });

  // group_specs: the type must exist (404) before the key is looked at.
  const specsOf = async (req: FastifyRequest, rule: string) => {
    open(req);
    enforce(deps, req, rule);
    return gt.get(typeId(req), true);
  };
  app.get(`${P}/group_types/:type_id/group_specs`, async (req) => ({ group_specs: (await specsOf(req, 'group:group_types_specs:get_all')).groupSpecs }));
  app.post(`${P}/group_types/:type_id/group_specs`, async (req, reply) => {
    const t = await specsOf(req, 'group:group_types_specs:create');
    const specs = stringMap(bodyObject(req.body, 'group_specs'), 'group_specs');
    await gt.setSpecs(t.id, specs);
    reply.code(202);
    return { group_specs: specs };
  });
  app.get(`${P}/group_types/:type_id/group_specs/:key`, async (req) => {
    const t = await specsOf(req, 'group:group_types_specs:get');
    const key = (req.params as { key: string }).key;
    if (!(key in t.groupSpecs)) throw notFound(`Group Type ${t.id} has no extra spec with key ${key}.`);
    return { [key]: t.groupSpecs[key] };
  });
  app.put(`${P}/group_types/:type_id/group_specs/:key`, async (req) => {
    const t = await specsOf(req, 'group:group_types_specs:update');
    const key = (req.params as { key: string }).key;
    const body = stringMap(req.body ?? {}, 'group_specs');
    if (!(key in body)) throw badRequest('Request body and URI mismatch');
    await gt.setSpecs(t.id, body);
    return body;
  });
  app.delete(`${P}/group_types/:type_id/group_specs/:key`, async (req, reply) => {
    const t = await specsOf(req, 'group:group_types_specs:delete');
    await gt.deleteSpec(t.id, (req.params as { key: string }).key);
    reply.code(202);
    return '';
  });
}

function registerGroupsRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const groups = deps.groups;
  const groupFor = async (req: FastifyRequest, version: string, rule: string) => {
    projectOf(deps, req);
    since(req, version);
    const g = await groups.get((req.params as { group_id: string }).group_id, callerOf(deps, req));
    enforce(deps, req, rule, { project_id: g.project_id });
    return g;
  };
  const memberIds = async (g: Group) => (await groups.volumesOf(g.id)).map((v) => v.id);

  const list = async (req: FastifyRequest, detail: boolean) => {
    projectOf(deps, req);
    since(req, '3.13');
    enforce(deps, req, 'group:get_all');
    const caller = callerOf(deps, req);
    const q = { ...(req.query as Record<string, string>) };
    delete q.list_volume;
    const page = pageOf(deps, q, SORT_KEYS);
    const allTenants = caller.isAdmin && q.all_tenants !== undefined;
    const filters = filtersOf(req, caller, q, { resource: 'group', legacy: Object.keys(q), since: {} });
    const rows = await groups.list({ projectId: allTenants ? undefined : caller.projectId, filters, sort: page.sort, page });
    const out: Record<string, unknown> = {
      groups: await Promise.all(rows.map(async (g) => (detail ? groupView(deps, req, g, await memberIds(g)) : { id: g.id, name: g.name }))),
    };
    const next = nextLink(req, 'groups', rows, page.limit);
    if (next) out.group_links = next;
    return out;
  };
  app.get(`${P}/groups`, (req) => list(req, false));
  app.get(`${P}/groups/detail`, (req) => list(req, true));
  app.get(`${P}/groups/:group_id`, async (req) => {
    const g = await groupFor(req, '3.13', 'group:get');
    return { group: groupView(deps, req, g, await memberIds(g)) };
  });

  app.post(`${P}/groups`, async (req, reply) => {
    projectOf(deps, req);
    since(req, '3.13');
    const b = bodyObject(req.body, 'group');
    onlyKeys(b, 'group', ['name', 'description', 'group_type', 'volume_types', 'availability_zone']);
    required(b, 'group', 'group_type');
    required(b, 'group', 'volume_types');
    enforce(deps, req, 'group:create');
    if (typeof b.group_type !== 'string') throw badRequest(`Invalid input for field/attribute group_type. Value: ${JSON.stringify(b.group_type)}. ${JSON.stringify(b.group_type)} is not of type 'string'`);
    const vt = b.volume_types;
    if (!Array.isArray(vt) || !vt.every((t) => typeof t === 'string' && t.length <= 255)) throw badRequest(`Invalid input for field/attribute volume_types. Value: ${JSON.stringify(vt)}. ${JSON.stringify(vt)} is not of type 'array'`);
    if (vt.length === 0) throw badRequest('Invalid input for field/attribute volume_types. Value: []. [] is too short');
    if (new Set(vt).size !== vt.length) throw badRequest(`Invalid input for field/attribute volume_types. Value: ${JSON.stringify(vt)}. ${JSON.stringify(vt)} has non-unique elements`);
    const g = await groups.create(
      { name: text(b.name, 'name'), description: text(b.description, 'description'), groupType: b.group_type, volumeTypes: vt as string[], availabilityZone: optionalString(b.availability_zone, 'availability_zone') },
      callerOf(deps, req),
    );
    reply.code(202);
    return { group: { id: g.id, name: g.name } };
  });

  // 3.14: POST /groups/action {"create-from-src": …} (a collection action).
  app.post(`${P}/groups/action`, async (req, reply) => {
    projectOf(deps, req);
    since(req, '3.14');
    const b = bodyObject(req.body, 'create-from-src');
    onlyKeys(b, 'create-from-src', ['name', 'description', 'group_snapshot_id', 'source_group_id']);
    const snap = optionalString(b.group_snapshot_id, 'group_snapshot_id');
    const source = optionalString(b.source_group_id, 'source_group_id');
    if (!snap === !source) {
      const why = snap ? "is valid under each of {'required': ['source_group_id']}, {'required': ['group_snapshot_id']}" : 'is not valid under any of the given schemas';
      throw badRequest(`Invalid input for field/attribute create-from-src. Value: ${JSON.stringify(b)}. ${JSON.stringify(b)} ${why}`);
    }
    enforce(deps, req, 'group:create');
    const g = await groups.createFromSource({ name: text(b.name, 'name'), description: text(b.description, 'description'), groupSnapshotId: snap ?? undefined, sourceGroupId: source ?? undefined }, callerOf(deps, req));
    reply.code(202);
    return { group: { id: g.id, name: g.name } };
  });

  app.put(`${P}/groups/:group_id`, async (req, reply) => {
    const b = bodyObject(req.body, 'group');
    onlyKeys(b, 'group', ['name', 'description', 'add_volumes', 'remove_volumes']);
    if (!['name', 'description', 'add_volumes', 'remove_volumes'].some((k) => k in b)) {
      throw badRequest(`Invalid input for field/attribute group. Value: ${JSON.stringify(b)}. ${JSON.stringify(b)} is not valid under any of the given schemas`);
    }
    const g = await groupFor(req, '3.13', 'group:update');
    await groups.update(
      g,
      {
        name: 'name' in b ? text(b.name, 'name') : undefined,
        description: 'description' in b ? text(b.description, 'description') : undefined,
        addVolumes: optionalString(b.add_volumes, 'add_volumes') ?? undefined,
        removeVolumes: optionalString(b.remove_volumes, 'remove_volumes') ?? undefined,
      },
      callerOf(deps, req),
    );
    reply.code(202);
    return '';
  });

  app.post(`${P}/groups/:group_id/action`, async (req, reply: FastifyReply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const [action] = Object.keys(body);
    const args = (body[action] ?? {}) as Record<string, unknown>;
    if (typeof args !== 'object' || Array.isArray(args)) throw badRequest(`Invalid input for field/attribute ${action}. Value: ${JSON.stringify(args)}. ${JSON.stringify(args)} is not of type 'object'`);
    const caller = callerOf(deps, req);
    reply.code(202);
    switch (action) {
      case 'delete': {
        onlyKeys(args, 'delete', ['delete-volumes']);
        const g = await groupFor(req, '3.13', 'group:delete');
        await groups.delete(g, args['delete-volumes'] === undefined ? false : boolParam(args['delete-volumes'], 'delete-volumes'), caller);
        return '';
      }
      case 'reset_status': {
        const status = statusOf(args, GROUP_STATUSES, 'Group');
        const g = await groupFor(req, '3.20', 'group:reset_status');
        await groups.resetStatus(g, status);
        return '';
      }
      case 'enable_replication':
      case 'disable_replication':
      case 'failover_replication':
      case 'list_replication_targets': {
        const verb = action.split('_')[0] as 'enable' | 'disable' | 'failover' | 'list';
        const g = await groupFor(req, '3.38', `group:${action}`);
        await groups.replicationAction(g, verb);
        if (verb !== 'list') return '';
        reply.code(200);
        return { replication_targets: [] };
      }
      default:
        projectOf(deps, req);
        throw badRequest(`There is no such action: ${action ?? ''}`);
    }
  });
}

function registerGroupSnapshotRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const groups = deps.groups;
  const snapFor = async (req: FastifyRequest, version: string, rule: string) => {
    projectOf(deps, req);
    since(req, version);
    const s = await groups.getSnapshot((req.params as { id: string }).id, callerOf(deps, req));
    enforce(deps, req, rule, { project_id: s.project_id });
    return s;
  };
  const list = async (req: FastifyRequest, detail: boolean) => {
    projectOf(deps, req);
    since(req, '3.14');
    enforce(deps, req, 'group:get_all_group_snapshots');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    // Filters, sort and paging arrived in 3.29; before it every group snapshot of the project, newest first.
    const paged = mv(req, '3.29');
    const page = paged ? pageOf(deps, q, SORT_KEYS) : { limit: Number.MAX_SAFE_INTEGER, sort: [] as [string, 'asc' | 'desc'][], marker: undefined, offset: undefined };
    const allTenants = caller.isAdmin && q.all_tenants !== undefined;
    const filters = paged ? filtersOf(req, caller, q, { resource: 'group_snapshot', legacy: Object.keys(q), since: {} }) : {};
    const rows = await groups.listSnapshots({ projectId: allTenants ? undefined : caller.projectId, filters, sort: page.sort, page });
    const out: Record<string, unknown> = { group_snapshots: rows.map((s) => (detail ? groupSnapshotView(deps, req, s) : { id: s.id, name: s.name })) };
    const next = paged ? nextLink(req, 'group_snapshots', rows, page.limit) : undefined;
    if (next) out.group_snapshot_links = next;
    return out;
  };
  app.get(`${P}/group_snapshots`, (req) => list(req, false));
  app.get(`${P}/group_snapshots/detail`, (req) => list(req, true));
  app.get(`${P}/group_snapshots/:id`, async (req) => ({ group_snapshot: groupSnapshotView(deps, req, await snapFor(req, '3.14', 'group:get_group_snapshot')) }));
  app.post(`${P}/group_snapshots`, async (req, reply) => {
    projectOf(deps, req);
    since(req, '3.14');
    const b = bodyObject(req.body, 'group_snapshot');
    onlyKeys(b, 'group_snapshot', ['name', 'description', 'group_id']);
    required(b, 'group_snapshot', 'group_id');
    const caller = callerOf(deps, req);
    const group = await groups.get(String(optionalString(b.group_id, 'group_id')), caller);
    enforce(deps, req, 'group:create_group_snapshot', { project_id: group.project_id });
    const s = await groups.createSnapshot(group, { name: text(b.name, 'name'), description: text(b.description, 'description') }, caller);
    reply.code(202);
    return { group_snapshot: { id: s.id, name: s.name, group_type_id: s.group_type_id } };
  });
  app.delete(`${P}/group_snapshots/:id`, async (req, reply) => {
    const s = await snapFor(req, '3.14', 'group:delete_group_snapshot');
    await groups.deleteSnapshot(s, callerOf(deps, req));
    reply.code(202);
    return '';
  });
  app.post(`${P}/group_snapshots/:id/action`, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, Record<string, unknown>>;
    const [action] = Object.keys(body);
    if (action !== 'reset_status') {
      projectOf(deps, req);
      throw badRequest(`There is no such action: ${action ?? ''}`);
    }
    const status = statusOf(body[action] ?? {}, GROUP_SNAPSHOT_STATUSES, 'GroupSnapshot');
    const s = await snapFor(req, '3.19', 'group:reset_group_snapshot_status');
    await groups.resetSnapshotStatus(s, status);
    reply.code(202);
    return '';
  });
}
