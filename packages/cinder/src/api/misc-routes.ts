import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { MAX_MICROVERSION, MIN_MICROVERSION } from '../conf.ts';
import { QUOTA_RESOURCES, type QuotaResource } from '../domain/quotas.ts';
import type { Connector } from '../drivers/volume-driver.ts';
import { ISO, allowed, authOf, boolParam, callerOf, enforce, mv, projectOf, type ApiDeps } from './context.ts';
import { RESOURCE_FILTERS, dictFilter, filtersOf, likeFilters } from './filters.ts';
import { ATTACHMENT_COMPLETE, ATTACHMENT_CREATE, ATTACHMENT_UPDATE, EXTRA_SPEC_UPDATE, EXTRA_SPECS_CREATE, QUOTA_UPDATE, TYPE_ACCESS, TYPE_CREATE, TYPE_UPDATE, actionOf, validBody } from './schemas.ts';
import { attachmentView, baseUrl, typeView } from './views.ts';

const P = '/v3/:project_id';

function versionDoc(base: string) {
  return {
    id: 'v3.0',
    status: 'CURRENT',
    version: MAX_MICROVERSION,
    min_version: MIN_MICROVERSION,
    updated: '2023-08-31T00:00:00Z',
    links: [
      { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
      { rel: 'self', href: `${base}/v3/` },
    ],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
  };
}

export function registerVersionRoutes(app: FastifyInstance): void {
  // Upstream answers / with 300 Multiple Choices.
  app.get('/', { config: { public: true } }, async (req, reply) => {
    reply.code(300);
    return { versions: [versionDoc(baseUrl(req))] };
  });
  app.get('/v3', { config: { public: true } }, async (req) => ({ versions: [versionDoc(baseUrl(req))] }));
}

export function registerTypeRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const specsVisible = (req: FastifyRequest) => allowed(deps, req, 'volume_extension:access_types_extra_specs');
  const typeId = (req: FastifyRequest) => (req.params as { type_id: string }).type_id;
  app.get(`${P}/types`, async (req) => {
    enforce(deps, req, 'volume_extension:type_get_all');
    const c = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    let types = await deps.types.list(c.projectId, c.isAdmin);
    if (q.is_public !== undefined && c.isAdmin && q.is_public !== 'None') types = types.filter((t) => t.isPublic === boolParam(q.is_public, 'is_public'));
    // 3.52: extra_specs (a dict) for everyone as upstream's default resource_filters; before it for admins only.
    const given = mv(req, '3.52') ? filtersOf(req, c, q, { resource: 'volume_type', legacy: RESOURCE_FILTERS.volume_type, since: {} }) : c.isAdmin ? q : {};
    if (given.extra_specs !== undefined) {
      const wanted = Object.entries(dictFilter(given.extra_specs, 'extra_specs'));
      // A key the caller may not read filters to nothing rather than to a wrong answer (upstream's USER_VISIBLE_EXTRA_SPECS).
      if (!specsVisible(req) && wanted.some(([k]) => !['RESKEY:availability_zones', 'multiattach', 'replication_enabled'].includes(k))) types = [];
      types = types.filter((t) => wanted.every(([k, v]) => t.extraSpecs[k] === v));
    }
    return { volume_types: types.map((t) => typeView(t, { specs: specsVisible(req) })) };
  });
  app.get(`${P}/types/default`, async (req) => {
    enforce(deps, req, 'volume_extension:type_get');
    return { volume_type: typeView(await deps.types.find(deps.config.defaultVolumeType), { specs: specsVisible(req) }) };
  });
  app.get(`${P}/types/:type_id`, async (req) => {
    enforce(deps, req, 'volume_extension:type_get');
    const c = callerOf(deps, req);
    return { volume_type: typeView(await deps.types.find(typeId(req), c.projectId, c.isAdmin), { specs: specsVisible(req) }) };
  });
  app.post(`${P}/types`, async (req) => {
    enforce(deps, req, 'volume_extension:type_create');
    const b = validBody<{ volume_type: Record<string, unknown> & { name: string } }>(req, TYPE_CREATE).volume_type;
    const specs = (b.extra_specs ?? {}) as Record<string, unknown>;
    const t = await deps.types.create({
      name: b.name.trim(),
      description: (b.description as string | undefined) ?? null,
      isPublic: b['os-volume-type-access:is_public'] === undefined ? true : boolParam(b['os-volume-type-access:is_public'], 'is_public'),
      extraSpecs: Object.fromEntries(Object.entries(specs).map(([k, v]) => [k, String(v)])),
    });
    return { volume_type: typeView(t, { specs: true }) };
  });
  app.put(`${P}/types/:type_id`, async (req) => {
    enforce(deps, req, 'volume_extension:type_update');
    const b = validBody<{ volume_type: Record<string, unknown> }>(req, TYPE_UPDATE).volume_type;
    const t = await deps.types.update(typeId(req), {
      name: b.name as string | undefined,
      description: b.description as string | undefined,
      isPublic: b.is_public === undefined ? undefined : boolParam(b.is_public, 'is_public'),
    });
    return { volume_type: typeView(t, { specs: true }) };
  });
  app.delete(`${P}/types/:type_id`, async (req, reply) => {
    enforce(deps, req, 'volume_extension:type_delete');
    await deps.types.delete(typeId(req));
    reply.code(202);
    return '';
  });
  app.get(`${P}/types/:type_id/extra_specs`, async (req) => {
    enforce(deps, req, 'volume_extension:types_extra_specs:index');
    return { extra_specs: (await deps.types.find(typeId(req))).extraSpecs };
  });
  app.post(`${P}/types/:type_id/extra_specs`, async (req) => {
    enforce(deps, req, 'volume_extension:types_extra_specs:create');
    const t = await deps.types.find(typeId(req));
    const specs = Object.fromEntries(Object.entries(validBody<{ extra_specs: Record<string, unknown> }>(req, EXTRA_SPECS_CREATE).extra_specs).map(([k, v]) => [k, String(v)]));
    await deps.types.setSpecs(t.id, specs);
    return { extra_specs: specs };
  });
  app.get(`${P}/types/:type_id/extra_specs/:key`, async (req) => {
    enforce(deps, req, 'volume_extension:types_extra_specs:show');
    const key = (req.params as { key: string }).key;
    const t = await deps.types.find(typeId(req));
    if (!(key in t.extraSpecs)) throw notFound(`Volume Type ${t.id} has no extra specs with key ${key}.`);
    return { [key]: t.extraSpecs[key] };
  });
  app.put(`${P}/types/:type_id/extra_specs/:key`, async (req) => {
    enforce(deps, req, 'volume_extension:types_extra_specs:update');
    const key = (req.params as { key: string }).key;
    const body = validBody(req, EXTRA_SPEC_UPDATE);
    if (!(key in body)) throw badRequest('Request body and URI mismatch');
    const t = await deps.types.find(typeId(req));
    await deps.types.setSpecs(t.id, { [key]: String(body[key]) });
    return { [key]: String(body[key]) };
  });
  app.delete(`${P}/types/:type_id/extra_specs/:key`, async (req, reply) => {
    enforce(deps, req, 'volume_extension:types_extra_specs:delete');
    const key = (req.params as { key: string }).key;
    const t = await deps.types.find(typeId(req));
    if (!(await deps.types.deleteSpec(t.id, key))) throw notFound(`Volume Type ${t.id} has no extra specs with key ${key}.`);
    reply.code(202);
    return '';
  });
  app.get(`${P}/types/:type_id/os-volume-type-access`, async (req) => {
    enforce(deps, req, 'volume_extension:volume_type_access');
    const t = await deps.types.find(typeId(req));
    if (t.isPublic) throw notFound(`Access list not available for public volume types.`);
    return { volume_type_access: (await deps.types.access(t.id)).map((p) => ({ volume_type_id: t.id, project_id: p })) };
  });
  app.post(`${P}/types/:type_id/action`, async (req, reply) => {
    const action = actionOf(req);
    if (!TYPE_ACCESS[action]) throw badRequest(`There is no such action: ${action}`);
    const project = validBody<Record<string, { project: string }>>(req, TYPE_ACCESS[action])[action].project;
    const t = await deps.types.find(typeId(req));
    reply.code(202);
    if (action === 'addProjectAccess') {
      enforce(deps, req, 'volume_extension:volume_type_access:addProjectAccess');
      await deps.types.addAccess(t.id, project);
    } else if (action === 'removeProjectAccess') {
      enforce(deps, req, 'volume_extension:volume_type_access:removeProjectAccess');
      await deps.types.removeAccess(t.id, project);
    }
    return '';
  });
}

export function registerQuotaRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const target = (req: FastifyRequest) => (req.params as { target: string }).target;
  app.get(`${P}/os-quota-sets/:target`, async (req) => {
    projectOf(deps, req);
    const id = target(req);
    enforce(deps, req, 'volume_extension:quotas:show', { project_id: id });
    const limits = await deps.quotas.limits(id);
    const q = req.query as Record<string, string>;
    if (q.usage !== undefined && boolParam(q.usage, 'usage')) {
      const used = await deps.quotas.usage(id);
      const out: Record<string, unknown> = { id };
      for (const r of QUOTA_RESOURCES) out[r] = { limit: limits[r], in_use: used[r], reserved: 0, allocated: 0 };
      return { quota_set: out };
    }
    return { quota_set: { id, ...limits } };
  });
  app.get(`${P}/os-quota-sets/:target/defaults`, async (req) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:quotas:show', { project_id: target(req) });
    return { quota_set: { id: target(req), ...deps.quotas.defaults } };
  });
  app.put(`${P}/os-quota-sets/:target`, async (req) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:quotas:update', { project_id: target(req) });
    const body = validBody<{ quota_set: Record<string, unknown> }>(req, QUOTA_UPDATE).quota_set;
    const values: Partial<Record<QuotaResource, number>> = {};
    for (const [k, v] of Object.entries(body)) {
      if (!(QUOTA_RESOURCES as readonly string[]).includes(k)) throw badRequest(`Bad key(s) in quota set: ${k}`);
      const n = Number(v);
      if (!Number.isInteger(n) || n < -1) throw badRequest(`Invalid input received: Quota limit ${JSON.stringify(v)} for ${k} must be an integer -1 or greater.`);
      values[k as QuotaResource] = n;
    }
    await deps.quotas.set(target(req), values);
    return { quota_set: await deps.quotas.limits(target(req)) };
  });
  app.delete(`${P}/os-quota-sets/:target`, async (req) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:quotas:delete', { project_id: target(req) });
    await deps.quotas.reset(target(req));
    return '';
  });
  app.get(`${P}/limits`, async (req) => {
    projectOf(deps, req);
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    // From 3.39 an admin may name the project (tenant_id is upstream's older spelling); others always read their own.
    const named = mv(req, '3.39') && caller.isAdmin ? (q.project_id ?? q.tenant_id) : undefined;
    const projectId = named || caller.projectId;
    const l = await deps.quotas.limits(projectId);
    const absolute: Record<string, number> = {
      maxTotalBackups: l.backups,
      maxTotalVolumeGigabytes: l.gigabytes,
      maxTotalSnapshots: l.snapshots,
      maxTotalBackupGigabytes: l.backup_gigabytes,
      maxTotalVolumes: l.volumes,
    };
    // Upstream's used-limits extension adds the usage only when its policy allows, else the limits stand alone.
    if (allowed(deps, req, 'limits_extension:used_limits')) {
      const u = await deps.quotas.usage(projectId);
      Object.assign(absolute, { totalSnapshotsUsed: u.snapshots, totalBackupGigabytesUsed: u.backup_gigabytes, totalVolumesUsed: u.volumes, totalBackupsUsed: u.backups, totalGigabytesUsed: u.gigabytes });
    }
    return { limits: { rate: [], absolute } };
  });
}

export function registerAdminRoutes(app: FastifyInstance, deps: ApiDeps): void {
  // 3.33: the filters a non-admin may use, per resource (upstream has no policy on it).
  app.get(`${P}/resource_filters`, async (req) => {
    projectOf(deps, req);
    if (!mv(req, '3.33')) throw notFound('The resource could not be found.');
    const resource = (req.query as Record<string, string>).resource;
    const chosen = resource === undefined ? Object.entries(RESOURCE_FILTERS) : Object.entries(RESOURCE_FILTERS).filter(([r]) => r === resource);
    return { resource_filters: chosen.map(([r, filters]) => ({ resource: r, filters })) };
  });
  app.get(`${P}/os-availability-zone`, async (req) => {
    enforce(deps, req, 'volume_extension:availability_zone_list');
    return { availabilityZoneInfo: [{ zoneName: deps.config.availabilityZone, zoneState: { available: true } }] };
  });
  app.get(`${P}/os-services`, async (req) => {
    enforce(deps, req, 'volume_extension:services:index');
    const q = req.query as Record<string, string>;
    const rows = (await deps.services.list()).filter((s) => (!q.host || s.host === q.host) && (!q.binary || s.binary === q.binary));
    return {
      services: rows.map((s) => ({
        binary: s.binary,
        host: s.host,
        zone: s.availability_zone,
        status: s.disabled ? 'disabled' : 'enabled',
        state: deps.services.isUp(s) ? 'up' : 'down',
        updated_at: ISO(s.updated_at),
        disabled_reason: s.disabled_reason,
        ...(mv(req, '3.7') ? { cluster: null } : {}),
        ...(mv(req, '3.49') && s.binary === 'cinder-volume' ? { backend_state: 'up' } : {}),
      })),
    };
  });
  app.get(`${P}/scheduler-stats/get_pools`, async (req) => {
    enforce(deps, req, 'scheduler_extension:scheduler_stats:get_pools');
    const { detail: detailParam, ...filters } = req.query as Record<string, string>;
    const detail = boolParam(detailParam ?? 'false', 'detail');
    const type = await poolFilters(req, filters, deps);
    const all = (await deps.scheduler.pools()).flatMap(({ backend, stats }) =>
      stats.pools.map((p) => ({
        name: `${backend.host}#${p.pool_name}`,
        capabilities: {
          ...p,
          volume_backend_name: stats.volume_backend_name,
          vendor_name: stats.vendor_name,
          driver_version: stats.driver_version,
          storage_protocol: stats.storage_protocol,
          timestamp: new Date().toISOString(),
        } as Record<string, unknown>,
      })),
    );
    const pools: typeof all = [];
    for (const pool of all) {
      if (filters.name !== undefined && pool.name !== filters.name) continue;
      // upstream's _equal_after_convert: booleans as bool strings, anything else compared as text.
      const equal = ([k, v]: [string, string]) => (typeof pool.capabilities[k] === 'boolean' ? pool.capabilities[k] === boolParam(v, k) : String(pool.capabilities[k]) === v);
      if (!Object.entries(filters).filter(([k]) => k !== 'name' && k !== 'volume_type').every(equal)) continue;
      if (type && !(await deps.scheduler.passes(pool.name, { size: 0, extraSpecs: type.extraSpecs }).then(() => true, () => false))) continue;
      pools.push(pool);
    }
    return { pools: pools.map((p) => (detail ? p : { name: p.name })) };
  });
}

/**
 * upstream's get_pools filters: none before 3.28, then the pool name and any capability
 * (equality), volume_type from 3.35; from 3.31 only the pool resource_filters (name,
 * volume_type), for admins too. Answers the volume type to filter on, if any.
 */
async function poolFilters(req: FastifyRequest, filters: Record<string, string>, deps: ApiDeps) {
  if (!mv(req, '3.28')) {
    for (const k of Object.keys(filters)) delete filters[k];
    return undefined;
  }
  if (mv(req, '3.31')) {
    const invalid = Object.keys(filters).filter((k) => !RESOURCE_FILTERS.pool.includes(k));
    if (invalid.length) throw badRequest(`Invalid filters ${invalid.join(',')} are found in query options.`);
  }
  if (filters.volume_type === undefined || !mv(req, '3.35')) {
    delete filters.volume_type;
    return undefined;
  }
  return deps.types.find(filters.volume_type);
}

export function registerAttachmentRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const need = (req: FastifyRequest, v: string) => {
    if (!mv(req, v)) throw notFound('The resource could not be found.');
  };
  const attachmentFor = async (req: FastifyRequest, rule: string) => {
    projectOf(deps, req);
    const r = await deps.volumes.getAttachment((req.params as { attachment_id: string }).attachment_id, callerOf(deps, req));
    enforce(deps, req, rule, { project_id: r.volume.project_id });
    return r;
  };
  app.post(`${P}/attachments`, async (req) => {
    need(req, '3.27');
    projectOf(deps, req);
    const b = validBody<{ attachment: Record<string, unknown> & { volume_uuid: string; mode?: string } }>(req, ATTACHMENT_CREATE).attachment;
    enforce(deps, req, 'volume:attachment_create');
    const caller = callerOf(deps, req);
    const mode = b.mode;
    const v = await deps.volumes.get(b.volume_uuid, caller);
    const a = await deps.volumes.createAttachment(v, { instanceUuid: b.instance_uuid as string | undefined, connector: b.connector as Connector | undefined, mode }, caller);
    return { attachment: attachmentView(a, { detail: true }) };
  });
  app.get(`${P}/attachments`, async (req) => {
    need(req, '3.27');
    projectOf(deps, req);
    enforce(deps, req, 'volume:attachment_get_all');
    const c = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    const given = filtersOf(req, c, q, { resource: 'attachment', legacy: RESOURCE_FILTERS.attachment, since: {} });
    // upstream's instance_id is the attachment's instance_uuid; status and attach_status are its attach_status.
    const columns = { volume_id: 'volume_attachment.volume_id', instance_id: 'volume_attachment.instance_uuid', status: 'volume_attachment.attach_status', attach_status: 'volume_attachment.attach_status' } as const;
    let query = deps.volumes.db
      .selectFrom('volume_attachment')
      .innerJoin('volumes', 'volumes.id', 'volume_attachment.volume_id')
      .selectAll('volume_attachment')
      .where('volume_attachment.deleted', '=', 0);
    if (!(c.isAdmin && q.all_tenants !== undefined)) query = query.where('volumes.project_id', '=', c.projectId);
    for (const [k, col] of Object.entries(columns)) if (given[k] !== undefined) query = query.where(col, '=', given[k]);
    for (const [k, v] of Object.entries(likeFilters(req, given, Object.keys(columns)))) query = query.where(columns[k as keyof typeof columns], 'like', `%${v}%`);
    const rows = await query.execute();
    return { attachments: rows.map((a) => attachmentView(a, { detail: false })) };
  });
  app.get(`${P}/attachments/:attachment_id`, async (req) => {
    need(req, '3.27');
    const { attachment } = await attachmentFor(req, 'volume:attachment_get');
    return { attachment: attachmentView(attachment, { detail: true }) };
  });
  app.put(`${P}/attachments/:attachment_id`, async (req) => {
    need(req, '3.27');
    const b = validBody<{ attachment: Record<string, unknown> }>(req, ATTACHMENT_UPDATE).attachment;
    const { attachment, volume } = await attachmentFor(req, 'volume:attachment_update');
    const a = await deps.volumes.connectAttachment(volume, attachment, b.connector as Connector, callerOf(deps, req));
    return { attachment: attachmentView(a, { detail: true }) };
  });
  app.post(`${P}/attachments/:attachment_id/action`, async (req, reply) => {
    need(req, '3.44');
    const action = actionOf(req);
    if (action !== 'os-complete') throw badRequest(`There is no such action: ${action}`);
    validBody(req, ATTACHMENT_COMPLETE);
    const { attachment, volume } = await attachmentFor(req, 'volume:attachment_complete');
    await deps.volumes.completeAttachment(volume, attachment, callerOf(deps, req));
    reply.code(204);
    return '';
  });
  app.delete(`${P}/attachments/:attachment_id`, async (req) => {
    need(req, '3.27');
    const { attachment, volume } = await attachmentFor(req, 'volume:attachment_delete');
    await deps.volumes.deleteAttachment(volume, attachment, callerOf(deps, req));
    return { attachments: [] };
  });
  void authOf;
}
