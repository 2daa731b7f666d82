import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import type { Migration } from '../domain/migrations.ts';
import { enforce, ISO, mv, type ApiDeps } from './context.ts';
import { int } from './validate.ts';

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

/** GET /os-migrations (admin): filters, and from 2.59 paging by marker uuid and changes-since. */
export function registerMigrationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/v2.1/os-migrations', async (req) => {
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
