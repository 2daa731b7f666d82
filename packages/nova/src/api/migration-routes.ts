import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { Migration } from '../domain/migrations.ts';
import { enforce, ISO, mv, serverFor, type ApiDeps } from './context.ts';
import { int, noExtra } from './validate.ts';

const iso = (ms: number | null) => (ms === null ? null : ISO(ms)!.replace('Z', '.000000'));

function timeParam(v: string, field: string): number {
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw badRequest(`Invalid input for query parameters ${field}. Value: ${v}. '${v}' is not a 'date-time'`);
  return t;
}

/** One migration as os-migrations shows it: 2.23 adds migration_type, 2.59 the uuid, 2.80 the owner. */
function view(req: FastifyRequest, m: Migration) {
  const out: Record<string, unknown> = {
    id: m.id,
    source_node: m.source_node,
    dest_node: m.dest_node,
    source_compute: m.source_compute,
    dest_compute: m.dest_compute,
    dest_host: m.dest_host,
    status: m.status,
    instance_uuid: m.instance_uuid,
    old_instance_type_id: m.old_flavor_id,
    new_instance_type_id: m.new_flavor_id,
    created_at: iso(m.created_at),
    updated_at: iso(m.updated_at),
  };
  if (mv(req, '2.23')) out.migration_type = m.migration_type;
  if (mv(req, '2.59')) out.uuid = m.uuid;
  if (mv(req, '2.80')) Object.assign(out, { user_id: m.user_id, project_id: m.project_id });
  return out;
}

/** Statuses of a live migration that has not ended (upstream's migration_get_in_progress_by_instance). */
const LIVE_IN_PROGRESS = ['queued', 'preparing', 'running', 'post-migrating'];

/** One in-progress live migration as /servers/{id}/migrations shows it (2.23; 2.59 uuid, 2.80 owner). */
function liveView(req: FastifyRequest, m: Migration) {
  const out: Record<string, unknown> = {
    id: m.id,
    server_uuid: m.instance_uuid,
    source_node: m.source_node,
    dest_node: m.dest_node,
    source_compute: m.source_compute,
    dest_compute: m.dest_compute,
    dest_host: m.dest_host,
    status: m.status,
    created_at: iso(m.created_at),
    updated_at: iso(m.updated_at),
    memory_total_bytes: null,
    memory_processed_bytes: null,
    memory_remaining_bytes: null,
    disk_total_bytes: null,
    disk_processed_bytes: null,
    disk_remaining_bytes: null,
  };
  if (mv(req, '2.59')) out.uuid = m.uuid;
  if (mv(req, '2.80')) Object.assign(out, { user_id: m.user_id, project_id: m.project_id });
  return out;
}

/**
 * GET /servers/{id}/migrations[/{id}] (2.23+, admin): only live migrations in progress,
 * as upstream; onestack has no live migration yet, so the list is empty and any id a 404.
 */
function registerServerMigrationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const live = async (uuid: string) => (await deps.migrations.list({ instanceUuid: uuid, migrationType: 'live-migration' })).filter((m) => LIVE_IN_PROGRESS.includes(m.status));
  const since223 = (req: FastifyRequest) => {
    if (!mv(req, '2.23')) throw notFound('The resource could not be found.');
  };
  app.get('/v2.1/servers/:server_id/migrations', async (req) => {
    since223(req);
    const inst = await serverFor(deps, req, 'os_compute_api:servers:migrations:index');
    return { migrations: (await live(inst.uuid)).map((m) => liveView(req, m)) };
  });
  app.get('/v2.1/servers/:server_id/migrations/:migration_id', async (req) => {
    since223(req);
    const inst = await serverFor(deps, req, 'os_compute_api:servers:migrations:show');
    const id = (req.params as { migration_id: string }).migration_id;
    const m = (await live(inst.uuid)).find((x) => String(x.id) === id);
    if (!m) throw notFound(`In-progress live migration ${id} is not found for server ${inst.uuid}.`);
    return { migration: liveView(req, m) };
  });
}

/** GET /os-migrations (admin): filters, and from 2.59 paging by marker uuid and changes-since. */
export function registerMigrationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  registerServerMigrationRoutes(app, deps);
  app.get('/v2.1/os-migrations', async (req) => {
    // 2.59 closes the query schema; 2.66 and 2.80 widen it.
    if (mv(req, '2.59')) {
      const known = ['hidden', 'host', 'instance_uuid', 'source_compute', 'status', 'migration_type', 'limit', 'marker', 'changes-since'];
      noExtra(req.query as Record<string, unknown>, [...known, ...(mv(req, '2.66') ? ['changes-before'] : []), ...(mv(req, '2.80') ? ['user_id', 'project_id'] : [])]);
    }
    enforce(deps, req, 'os_compute_api:os-migrations:index');
    const q = req.query as Record<string, string | undefined>;
    const filters = {
      status: q.status,
      host: q.host,
      sourceCompute: q.source_compute,
      migrationType: q.migration_type,
      instanceUuid: q.instance_uuid,
      ...(mv(req, '2.80') ? { projectId: q.project_id, userId: q.user_id } : {}),
      ...(mv(req, '2.59') && q['changes-since'] ? { changesSince: timeParam(q['changes-since'], 'changes-since') } : {}),
      ...(mv(req, '2.66') && q['changes-before'] ? { changesBefore: timeParam(q['changes-before'], 'changes-before') } : {}),
    };
    if (filters.changesSince !== undefined && filters.changesBefore !== undefined && filters.changesBefore < filters.changesSince) {
      throw badRequest(`The value of changes-since must be less than or equal to changes-before.`);
    }
    let page: { limit?: number; markerId?: number } = {};
    if (mv(req, '2.59')) {
      const limit = q.limit === undefined ? undefined : int(Number(q.limit), 'limit', { min: 0 });
      let markerId: number | undefined;
      if (q.marker) {
        const marker = await deps.migrations.find(q.marker);
        if (!marker) throw badRequest(`Marker ${q.marker} could not be found.`);
        markerId = marker.id;
      }
      page = { limit, markerId };
    }
    const list = await deps.migrations.list(filters, page);
    const body: Record<string, unknown> = { migrations: list.map((m) => view(req, m)) };
    if (mv(req, '2.59') && page.limit !== undefined && list.length === page.limit && list.length > 0) {
      body.migrations_links = [{ rel: 'next', href: `${req.protocol}://${req.headers.host}/v2.1/os-migrations?limit=${page.limit}&marker=${list[list.length - 1].uuid}` }];
    }
    return body;
  });
}
