import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { versionNotFound } from '../domain/errors.ts';
import { fromRow, type Instance } from '../domain/instances.ts';
import type { Service } from '../domain/services.ts';
import { USG, enforce, mv, strictQuery, type ApiDeps } from './context.ts';
import { baseOf } from './server-views.ts';
import { UUID, bool, int } from './validate.ts';

type Compute = Service & { hypervisor: NonNullable<Service['hypervisor']> };

/** Before 2.53 ids are integers; this one is stable for a service row (as os-services shows it). */
const legacyId = (uuid: string) => Number.parseInt(uuid.slice(0, 7), 16);

/** strutils.bool_from_string(strict=True) as the 2.53 with_servers parameter takes it. */
function withServersOf(req: FastifyRequest): boolean {
  const v = (req.query as { with_servers?: string }).with_servers;
  return v !== undefined && mv(req, '2.53') ? bool(v, 'with_servers') : false;
}

/**
 * os-hypervisors (admin): one compute node per nova-compute host with its resources
 * as the host last reported them; 2.53 uuid ids, hostname search and with_servers as
 * query parameters (the /search and /servers routes end there); 2.88 drops the
 * resource figures (placement has them), /statistics and /uptime.
 */
export function registerHypervisorRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const idOf = (req: FastifyRequest, s: Compute) => (mv(req, '2.53') ? s.hypervisor.providerUuid : legacyId(s.uuid));
  const computes = async () => (await deps.services.computes()).filter((s): s is Compute => !!s.hypervisor);
  const hostInstances = async () => {
    const rows = await deps.instances.db.selectFrom('instances').selectAll().where('deleted', '=', 0).where('host', 'is not', null).orderBy('created_at').execute();
    const out = new Map<string, Instance[]>();
    for (const r of rows) out.set(r.host!, [...(out.get(r.host!) ?? []), fromRow(r)]);
    return out;
  };

  /** hosted: the host's instances (for the counts); listServers: show them, as with_servers or the /servers route ask. */
  const view = (req: FastifyRequest, s: Compute, detail: boolean, hosted: Instance[], listServers: boolean) => {
    const hv = s.hypervisor;
    const v: Record<string, unknown> = { id: idOf(req, s), hypervisor_hostname: hv.hypervisorHostname, state: s.up ? 'up' : 'down', status: s.disabled ? 'disabled' : 'enabled' };
    if (detail) {
      Object.assign(v, {
        hypervisor_type: hv.hypervisorType,
        hypervisor_version: hv.hypervisorVersion,
        host_ip: hv.hostIp ?? '127.0.0.1',
        service: { id: mv(req, '2.53') ? s.uuid : legacyId(s.uuid), host: s.host, disabled_reason: s.disabledReason },
      });
      if (!mv(req, '2.88')) {
        Object.assign(v, {
          vcpus: hv.vcpus,
          memory_mb: hv.memoryMb,
          local_gb: hv.localGb,
          vcpus_used: hv.vcpusUsed,
          memory_mb_used: hv.memoryMbUsed,
          local_gb_used: hv.localGbUsed,
          free_ram_mb: hv.memoryMb - hv.memoryMbUsed,
          free_disk_gb: hv.localGb - hv.localGbUsed,
          current_workload: hosted.filter((i) => i.taskState !== null).length,
          running_vms: hosted.length,
          disk_available_least: hv.localGb - hv.localGbUsed,
          // 2.28: an object instead of its JSON text.
          cpu_info: mv(req, '2.28') ? (hv.cpuInfo ?? {}) : JSON.stringify(hv.cpuInfo ?? {}),
        });
      } else v.uptime = null;
    }
    if (listServers && hosted.length) v.servers = hosted.map((i) => ({ name: i.name, uuid: i.uuid }));
    else if (listServers && mv(req, '2.75')) v.servers = [];
    return v;
  };

  const list = async (req: FastifyRequest, detail: boolean) => {
    enforce(deps, req, detail ? 'os_compute_api:os-hypervisors:list-detail' : 'os_compute_api:os-hypervisors:list');
    const q = req.query as { limit?: string; marker?: string; hypervisor_hostname_pattern?: string };
    const withServers = withServersOf(req);
    const pattern = mv(req, '2.53') ? q.hypervisor_hostname_pattern : undefined;
    let all = await computes();
    let links = mv(req, '2.33');
    let limit: number | undefined;
    if (pattern !== undefined) {
      if (q.limit !== undefined || q.marker !== undefined) throw badRequest('Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.');
      links = false;
      all = all.filter((s) => s.hypervisor.hypervisorHostname.includes(pattern));
      if (!all.length) throw notFound(`No hypervisor matching '${pattern}' could be found.`);
    } else if (mv(req, '2.33')) {
      if (q.marker !== undefined) {
        const at = all.findIndex((s) => String(idOf(req, s)) === q.marker);
        if (at < 0) throw badRequest(`marker [${q.marker}] not found`);
        all = all.slice(at + 1);
      }
      limit = Math.min(q.limit === undefined ? deps.config.maxLimit : int(q.limit, 'limit', { min: 0 }), deps.config.maxLimit);
      all = all.slice(0, limit);
    }
    const onHost = await hostInstances();
    const hypervisors = all.map((s) => view(req, s, detail, onHost.get(s.host) ?? [], withServers));
    const body: Record<string, unknown> = { hypervisors };
    if (links && limit !== undefined && hypervisors.length === limit && limit > 0) {
      body.hypervisors_links = [{ rel: 'next', href: `${baseOf(req)}/v2.1/os-hypervisors${detail ? '/detail' : ''}?limit=${limit}&marker=${hypervisors.at(-1)!.id}` }];
    }
    return body;
  };
  app.get('/v2.1/os-hypervisors', async (req) => list(req, false));
  app.get('/v2.1/os-hypervisors/detail', async (req) => list(req, true));

  app.get('/v2.1/os-hypervisors/statistics', async (req) => {
    if (mv(req, '2.88')) throw versionNotFound();
    enforce(deps, req, 'os_compute_api:os-hypervisors:statistics');
    const all = await computes();
    const onHost = await hostInstances();
    const sum = (f: (s: Compute) => number) => all.reduce((n, s) => n + f(s), 0);
    return {
      hypervisor_statistics: {
        count: all.length,
        vcpus: sum((s) => s.hypervisor.vcpus),
        memory_mb: sum((s) => s.hypervisor.memoryMb),
        local_gb: sum((s) => s.hypervisor.localGb),
        vcpus_used: sum((s) => s.hypervisor.vcpusUsed),
        memory_mb_used: sum((s) => s.hypervisor.memoryMbUsed),
        local_gb_used: sum((s) => s.hypervisor.localGbUsed),
        free_ram_mb: sum((s) => s.hypervisor.memoryMb - s.hypervisor.memoryMbUsed),
        free_disk_gb: sum((s) => s.hypervisor.localGb - s.hypervisor.localGbUsed),
        current_workload: sum((s) => (onHost.get(s.host) ?? []).filter((i) => i.taskState !== null).length),
        running_vms: sum((s) => (onHost.get(s.host) ?? []).length),
        disk_available_least: sum((s) => s.hypervisor.localGb - s.hypervisor.localGbUsed),
      },
    };
  });

  /** _validate_id: a uuid from 2.53 (else 400), an integer before (else 404). */
  const find = async (req: FastifyRequest, id: string) => {
    if (mv(req, '2.53') && !UUID.test(id)) throw badRequest(`Invalid uuid ${id}`);
    const s = (await computes()).find((c) => String(idOf(req, c)) === id);
    if (!s) throw notFound(`Hypervisor with ID '${id}' could not be found.`);
    return s;
  };
  app.get('/v2.1/os-hypervisors/:id', async (req) => {
    enforce(deps, req, 'os_compute_api:os-hypervisors:show');
    const withServers = withServersOf(req);
    const s = await find(req, (req.params as { id: string }).id);
    return { hypervisor: view(req, s, true, (await hostInstances()).get(s.host) ?? [], withServers) };
  });
  app.get('/v2.1/os-hypervisors/:id/uptime', async (req) => {
    if (mv(req, '2.88')) throw versionNotFound();
    enforce(deps, req, 'os_compute_api:os-hypervisors:uptime');
    await find(req, (req.params as { id: string }).id);
    // The compute drivers here do not report host uptime: upstream answers a driver without it so.
    throw Object.assign(badRequest('Feature not supported.'), { status: 501 });
  });
  // 2.1–2.52 only: search by hostname substring, optionally with the hosts' servers.
  const search = (withServers: boolean) => async (req: FastifyRequest) => {
    if (mv(req, '2.53')) throw versionNotFound();
    enforce(deps, req, withServers ? 'os_compute_api:os-hypervisors:servers' : 'os_compute_api:os-hypervisors:search');
    const pattern = (req.params as { pattern: string }).pattern;
    const found = (await computes()).filter((s) => s.hypervisor.hypervisorHostname.includes(pattern));
    if (!found.length) throw notFound(`No hypervisor matching '${pattern}' could be found.`);
    const onHost = await hostInstances();
    return { hypervisors: found.map((s) => view(req, s, false, onHost.get(s.host) ?? [], withServers)) };
  };
  app.get('/v2.1/os-hypervisors/:pattern/search', search(false));
  app.get('/v2.1/os-hypervisors/:pattern/servers', search(true));
}

const START_FORMATS = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$/;

/** _parse_datetime: three strftime formats, naive times are UTC, empty means now. */
function parseTime(v: string | undefined, now: number): number {
  if (!v) return now;
  const m = START_FORMATS.exec(v);
  const t = m ? Date.parse(`${m[1]}T${m[2]}${m[3] ? m[3].slice(0, 4) : ''}${m[4] ?? 'Z'}`) : Number.NaN;
  if (Number.isNaN(t)) throw badRequest('Invalid datetime string: Datetime is in invalid format');
  return t;
}

/**
 * os-simple-tenant-usage: per project, the hours each instance existed in [start, end)
 * and those hours weighed by its flavor's vCPUs, RAM and disk; deleted instances count
 * for the time they lived. 2.40 pages by instance (limit, marker = instance uuid).
 */
export function registerUsageRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const usages = async (req: FastifyRequest, projectId: string | undefined, detailed: boolean, links: boolean) => {
    const q = req.query as { start?: string; end?: string; limit?: string; marker?: string };
    const now = Date.now();
    const start = parseTime(q.start, now);
    let stop = parseTime(q.end, now);
    if (!(start < stop)) throw badRequest('Invalid start time. The start time cannot occur after the end time.');
    stop = Math.min(stop, now);
    const limit = links && q.limit !== undefined ? Math.min(int(q.limit, 'limit', { min: 0 }), deps.config.maxLimit) : deps.config.maxLimit;
    let query = deps.instances.db
      .selectFrom('instances')
      .selectAll()
      .where((eb) => eb.or([eb('terminated_at', 'is', null), eb('terminated_at', '>', start)]))
      .where('launched_at', '<', stop)
      .orderBy('created_at')
      .orderBy('uuid');
    if (projectId) query = query.where('project_id', '=', projectId);
    let rows = (await query.execute()).map(fromRow);
    if (links && q.marker !== undefined) {
      const at = rows.findIndex((i) => i.uuid === q.marker);
      if (at < 0) throw badRequest(`Marker ${q.marker} could not be found.`);
      rows = rows.slice(at + 1);
    }
    rows = rows.slice(0, limit);
    const summaries = new Map<string, Record<string, any>>();
    for (const i of rows) {
      const launched = i.launchedAt!;
      const hours = (Math.min(stop, i.terminatedAt ?? stop) - Math.max(launched, start)) / 3_600_000;
      const ended = i.terminatedAt;
      const usage = {
        instance_id: i.uuid,
        name: i.name,
        hours,
        memory_mb: i.flavor.ram,
        local_gb: i.flavor.disk + i.flavor.ephemeral,
        vcpus: i.flavor.vcpus,
        tenant_id: i.projectId,
        flavor: i.flavor.name,
        started_at: USG(launched),
        ended_at: USG(ended),
        state: ended ? 'terminated' : i.vmState,
        uptime: Math.floor(((ended ?? now) - launched) / 1000),
      };
      let s = summaries.get(i.projectId);
      if (!s) {
        s = { tenant_id: i.projectId, ...(detailed ? { server_usages: [] } : {}), total_local_gb_usage: 0, total_vcpus_usage: 0, total_memory_mb_usage: 0, total_hours: 0, start: USG(start), stop: USG(stop) };
        summaries.set(i.projectId, s);
      }
      s.total_local_gb_usage += usage.local_gb * hours;
      s.total_vcpus_usage += usage.vcpus * hours;
      s.total_memory_mb_usage += usage.memory_mb * hours;
      s.total_hours += hours;
      if (detailed) s.server_usages.push(usage);
    }
    const next = links && rows.length > 0 && rows.length === limit ? nextLink(req, projectId, rows.at(-1)!.uuid, limit) : undefined;
    return { list: [...summaries.values()], next };
  };
  const nextLink = (req: FastifyRequest, projectId: string | undefined, marker: string, limit: number) => {
    const params = new URLSearchParams(Object.entries(req.query as Record<string, string>).filter(([k]) => k !== 'marker' && k !== 'limit'));
    params.set('limit', String(limit));
    params.set('marker', marker);
    return [{ rel: 'next', href: `${baseOf(req)}/v2.1/os-simple-tenant-usage${projectId ? `/${projectId}` : ''}?${params}` }];
  };
  app.get('/v2.1/os-simple-tenant-usage', async (req) => {
    strictQuery(req, ['start', 'end', 'detailed', 'limit', 'marker']);
    enforce(deps, req, 'os_compute_api:os-simple-tenant-usage:list');
    const detailed = (req.query as { detailed?: string }).detailed === '1';
    const { list, next } = await usages(req, undefined, detailed, mv(req, '2.40'));
    return { tenant_usages: list, ...(next ? { tenant_usages_links: next } : {}) };
  });
  app.get('/v2.1/os-simple-tenant-usage/:tenant_id', async (req) => {
    strictQuery(req, ['start', 'end', 'limit', 'marker']);
    const projectId = (req.params as { tenant_id: string }).tenant_id;
    enforce(deps, req, 'os_compute_api:os-simple-tenant-usage:show', { project_id: projectId });
    const { list, next } = await usages(req, projectId, true, mv(req, '2.40'));
    return { tenant_usage: list[0] ?? {}, ...(next ? { tenant_usage_links: next } : {}) };
  });
}
