import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { MAX_MICROVERSION, MIN_MICROVERSION } from '../conf.ts';
import { QUOTA_RESOURCES, type QuotaResource } from '../domain/quotas.ts';
import { ISO, authOf, enforce, mv, strictQuery, type ApiDeps } from './context.ts';
import { baseOf } from './server-views.ts';
import { bool, int, obj, str } from './validate.ts';

function versionDoc(base: string) {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: MAX_MICROVERSION,
    min_version: MIN_MICROVERSION,
    updated: '2013-07-23T11:33:21Z',
    links: [
      { rel: 'self', href: `${base}/v2.1/` },
      { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' },
    ],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
  };
}

export function registerVersionRoutes(app: FastifyInstance): void {
  app.get('/', { config: { public: true } }, async (req) => {
    const base = baseOf(req);
    return {
      versions: [
        { id: 'v2.0', status: 'SUPPORTED', version: '', min_version: '', updated: '2011-01-21T11:33:21Z', links: [{ rel: 'self', href: `${base}/v2/` }] },
        { ...versionDoc(base), links: [{ rel: 'self', href: `${base}/v2.1/` }] },
      ],
    };
  });
  app.get('/v2.1', { config: { public: true } }, async (req) => ({ version: versionDoc(baseOf(req)) }));
}

const NETWORK_QUOTAS = ['fixed_ips', 'floating_ips', 'security_group_rules', 'security_groups'];
const INJECTED_QUOTAS = ['injected_files', 'injected_file_content_bytes', 'injected_file_path_bytes'];

export function registerQuotaRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const usage = async (projectId: string) => {
    const u = await deps.instances.usage(projectId);
    const keypairs = 0;
    const groups = Number((await deps.instances.db.selectFrom('server_groups').select((eb) => eb.fn.countAll().as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow()).n);
    return { instances: u.instances, cores: u.cores, ram: u.ram, key_pairs: keypairs, server_groups: groups } as Partial<Record<QuotaResource, number>>;
  };
  const quotaSet = (id: string, l: Record<string, number>, req: FastifyRequest) => {
    const out: Record<string, unknown> = { id };
    for (const r of QUOTA_RESOURCES) out[r] = l[r];
    if (!mv(req, '2.36')) Object.assign(out, { fixed_ips: -1, floating_ips: -1, security_group_rules: -1, security_groups: -1 });
    if (mv(req, '2.57')) for (const r of INJECTED_QUOTAS) delete out[r];
    return out;
  };
  app.get('/v2.1/os-quota-sets/:project_id', async (req) => {
    strictQuery(req, ['user_id']);
    const id = (req.params as { project_id: string }).project_id;
    enforce(deps, req, 'os_compute_api:os-quota-sets:show', { project_id: id });
    return { quota_set: quotaSet(id, { ...(await deps.quotas.limits(id)) }, req) };
  });
  app.get('/v2.1/os-quota-sets/:project_id/defaults', async (req) => {
    const id = (req.params as { project_id: string }).project_id;
    enforce(deps, req, 'os_compute_api:os-quota-sets:defaults', { project_id: id });
    return { quota_set: quotaSet(id, { ...(await deps.quotas.classLimits('default')) }, req) };
  });
  app.get('/v2.1/os-quota-sets/:project_id/detail', async (req) => {
    strictQuery(req, ['user_id']);
    const id = (req.params as { project_id: string }).project_id;
    enforce(deps, req, 'os_compute_api:os-quota-sets:detail', { project_id: id });
    const l = await deps.quotas.limits(id);
    const u = await usage(id);
    const limits = quotaSet(id, { ...l }, req);
    const out: Record<string, unknown> = { id };
    for (const [r, limit] of Object.entries(limits)) if (r !== 'id') out[r] = { limit, in_use: u[r as QuotaResource] ?? 0, reserved: 0 };
    return { quota_set: out };
  });
  app.put('/v2.1/os-quota-sets/:project_id', async (req) => {
    strictQuery(req, ['user_id']);
    const id = (req.params as { project_id: string }).project_id;
    enforce(deps, req, 'os_compute_api:os-quota-sets:update', { project_id: id });
    const qs = obj(obj(req.body, 'body').quota_set, 'quota_set');
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(qs)) {
      if (k === 'force') {
        bool(v, 'force');
        continue;
      }
      // Before 2.36 the nova-network quotas are accepted and mean nothing; from 2.57 injected files are gone.
      if (!mv(req, '2.36') && NETWORK_QUOTAS.includes(k)) {
        int(v, k, { min: -1 });
        continue;
      }
      if (!(QUOTA_RESOURCES as string[]).includes(k) || (mv(req, '2.57') && INJECTED_QUOTAS.includes(k))) throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
      values[k] = int(v, k, { min: -1 });
    }
    await deps.quotas.set(id, values);
    const out = quotaSet(id, { ...(await deps.quotas.limits(id)) }, req);
    delete out.id;
    return { quota_set: out };
  });
  app.delete('/v2.1/os-quota-sets/:project_id', async (req, reply) => {
    strictQuery(req, ['user_id']);
    const id = (req.params as { project_id: string }).project_id;
    enforce(deps, req, 'os_compute_api:os-quota-sets:delete', { project_id: id });
    await deps.quotas.reset(id);
    reply.code(202);
    return '';
  });
  app.get('/v2.1/limits', async (req) => {
    strictQuery(req, ['tenant_id']);
    const q = req.query as { tenant_id?: string };
    let projectId = authOf(req).projectId ?? '';
    if (q.tenant_id && q.tenant_id !== projectId) {
      enforce(deps, req, 'os_compute_api:limits:other_project', { project_id: q.tenant_id });
      projectId = q.tenant_id;
    } else enforce(deps, req, 'os_compute_api:limits');
    const l = await deps.quotas.limits(projectId);
    const u = await usage(projectId);
    const absolute: Record<string, number> = {
      maxTotalInstances: l.instances,
      maxTotalCores: l.cores,
      maxTotalRAMSize: l.ram,
      maxServerMeta: l.metadata_items,
      maxTotalKeypairs: l.key_pairs,
      maxServerGroups: l.server_groups,
      maxServerGroupMembers: l.server_group_members,
      totalInstancesUsed: u.instances ?? 0,
      totalCoresUsed: u.cores ?? 0,
      totalRAMUsed: u.ram ?? 0,
      totalServerGroupsUsed: u.server_groups ?? 0,
    };
    if (!mv(req, '2.36')) Object.assign(absolute, { maxSecurityGroups: -1, maxSecurityGroupRules: -1, maxTotalFloatingIps: -1, totalSecurityGroupsUsed: 0, totalFloatingIpsUsed: 0 });
    if (!mv(req, '2.39')) absolute.maxImageMeta = 128;
    if (!mv(req, '2.57')) Object.assign(absolute, { maxPersonality: l.injected_files, maxPersonalitySize: l.injected_file_content_bytes });
    return { limits: { rate: [], absolute } };
  });
}

export function registerServiceRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const view = (req: FastifyRequest, s: Awaited<ReturnType<ApiDeps['services']['list']>>[number], zones: Map<string, string>) => ({
    id: mv(req, '2.53') ? s.uuid : Number.parseInt(s.uuid.slice(0, 7), 16),
    binary: s.binary,
    host: s.host,
    zone: s.binary === 'nova-compute' ? (zones.get(s.host) ?? deps.config.defaultAz) : 'internal',
    status: s.disabled ? 'disabled' : 'enabled',
    state: s.up ? 'up' : 'down',
    updated_at: ISO(s.updatedAt)?.replace('Z', '.000000'),
    disabled_reason: s.disabledReason,
    ...(mv(req, '2.11') ? { forced_down: s.forcedDown } : {}),
  });
  app.get('/v2.1/os-services', async (req) => {
    strictQuery(req, ['host', 'binary']);
    enforce(deps, req, 'os_compute_api:os-services:list');
    const q = req.query as { host?: string; binary?: string };
    const zones = await deps.aggregates.hostZones();
    return { services: (await deps.services.list({ host: q.host, binary: q.binary })).map((s) => view(req, s, zones)) };
  });
  app.put('/v2.1/os-services/:id', async (req) => {
    enforce(deps, req, 'os_compute_api:os-services:update');
    if (!mv(req, '2.53')) throw notFound('Use microversion 2.53 or later to update a service by id.');
    const id = (req.params as { id: string }).id;
    const s = await deps.services.get(id);
    if (!s) throw notFound(`Service ${id} could not be found.`);
    const b = obj(req.body, 'body');
    const set: { disabled?: boolean; disabledReason?: string | null; forcedDown?: boolean } = {};
    if (b.status !== undefined) {
      const st = str(b.status, 'status');
      if (st !== 'enabled' && st !== 'disabled') throw badRequest(`Invalid input for field/attribute status. Value: ${st}.`);
      set.disabled = st === 'disabled';
      set.disabledReason = st === 'disabled' ? (b.disabled_reason === undefined ? null : str(b.disabled_reason, 'disabled_reason', { max: 255 })) : null;
    } else if (b.disabled_reason !== undefined) throw badRequest('Specifying a disabled_reason is only supported when the status is disabled.');
    if (b.forced_down !== undefined) set.forcedDown = bool(b.forced_down, 'forced_down');
    await deps.services.update(id, set);
    return { service: view(req, (await deps.services.get(id))!, await deps.aggregates.hostZones()) };
  });
  app.delete('/v2.1/os-services/:id', async (req, reply) => {
    enforce(deps, req, 'os_compute_api:os-services:delete');
    await deps.services.delete((req.params as { id: string }).id);
    reply.code(204);
    return '';
  });
}
