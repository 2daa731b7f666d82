import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound } from '@onestack/core/errors.ts';
import type { TransferRow } from '../db/schema.ts';
import { TRANSFER_SORT_KEYS, type TransferPage, type TransferService } from '../domain/transfers.ts';
import { ISO, boolParam, callerOf, enforce, mv, projectOf, type ApiDeps } from './context.ts';
import { TRANSFER_ACCEPT, TRANSFER_CREATE, TRANSFER_CREATE_V355, validBody } from './schemas.ts';
import { links } from './views.ts';
import { pageOf } from './volume-routes.ts';

const P = '/v3/:project_id';

function summary(req: FastifyRequest, kind: string, t: TransferRow) {
  return { id: t.id, name: t.display_name, volume_id: t.volume_id, links: links(req, t.source_project_id, kind, t.id) };
}

function detail(req: FastifyRequest, kind: string, t: TransferRow) {
  const out: Record<string, unknown> = { ...summary(req, kind, t), created_at: ISO(t.created_at) };
  if (mv(req, '3.55')) out.no_snapshots = Boolean(t.no_snapshots);
  if (mv(req, '3.57')) Object.assign(out, { destination_project_id: t.destination_project_id, source_project_id: t.source_project_id, accepted: Boolean(t.accepted) });
  return out;
}

function nextHref(req: FastifyRequest, q: Record<string, string>, marker: string): string {
  const next = new URLSearchParams({ ...q, marker });
  next.delete('offset');
  return `${req.protocol}://${req.headers.host}${req.url.split('?')[0]}?${next}`;
}

/**
 * Volume transfers: upstream's os-volume-transfer (every microversion) and
 * volume-transfers (3.55+, with no_snapshots), same handlers.
 */
export function registerTransferRoutes(app: FastifyInstance, deps: ApiDeps, transfers: TransferService): void {
  for (const kind of ['os-volume-transfer', 'volume-transfers']) {
    const gate = (req: FastifyRequest) => {
      projectOf(deps, req);
      // Below 3.55 the new resource does not exist.
      if (kind === 'volume-transfers' && !mv(req, '3.55')) throw notFound('The resource could not be found.');
    };
    const transferOf = (req: FastifyRequest) => transfers.get((req.params as { transfer_id: string }).transfer_id, callerOf(deps, req));
    const list = async (req: FastifyRequest, full: boolean) => {
      gate(req);
      enforce(deps, req, 'volume:get_all_transfers');
      const caller = callerOf(deps, req);
      const q = req.query as Record<string, string>;
      const allTenants = q.all_tenants !== undefined && boolParam(q.all_tenants, 'all_tenants');
      const page = pageOf(deps, q, TRANSFER_SORT_KEYS);
      // Before 3.59 upstream ignores sort and marker: oldest first, sliced by offset and limit.
      const paged = mv(req, '3.59') ? { ...page, sort: page.sort.length ? page.sort : [['created_at', 'desc'] as const] } : { ...page, marker: undefined, sort: [['created_at', 'asc'] as const] };
      const rows = await transfers.list(caller, allTenants, q, paged as TransferPage);
      const out: Record<string, unknown> = { transfers: rows.map((t) => (full ? detail(req, kind, t) : summary(req, kind, t))) };
      if (rows.length === page.limit && rows.length > 0) out.transfers_links = [{ href: nextHref(req, q, rows[rows.length - 1].id), rel: 'next' }];
      return out;
    };
    app.get(`${P}/${kind}`, (req) => list(req, false));
    app.get(`${P}/${kind}/detail`, (req) => list(req, true));
    app.get(`${P}/${kind}/:transfer_id`, async (req) => {
      gate(req);
      const t = await transferOf(req);
      enforce(deps, req, 'volume:get_transfer', { project_id: t.source_project_id });
      return { transfer: detail(req, kind, t) };
    });
    app.post(`${P}/${kind}`, async (req, reply) => {
      gate(req);
      const body = validBody<{ transfer: Record<string, unknown> }>(req, kind === 'volume-transfers' ? TRANSFER_CREATE_V355 : TRANSFER_CREATE).transfer;
      enforce(deps, req, 'volume:create_transfer');
      const noSnapshots = body.no_snapshots !== undefined ? boolParam(body.no_snapshots, 'no_snapshots') : false;
      const t = await transfers.create({ volumeId: String(body.volume_id), name: (body.name as string | null | undefined) ?? null, noSnapshots }, callerOf(deps, req));
      reply.code(202);
      return { transfer: { ...detail(req, kind, t), auth_key: t.auth_key } };
    });
    app.post(`${P}/${kind}/:transfer_id/accept`, async (req, reply) => {
      gate(req);
      const accept = validBody<{ accept: { auth_key: string | number } }>(req, TRANSFER_ACCEPT).accept;
      enforce(deps, req, 'volume:accept_transfer');
      const t = await transfers.accept((req.params as { transfer_id: string }).transfer_id, String(accept.auth_key), callerOf(deps, req));
      reply.code(202);
      return { transfer: summary(req, kind, t) };
    });
    app.delete(`${P}/${kind}/:transfer_id`, async (req, reply) => {
      gate(req);
      const t = await transferOf(req);
      enforce(deps, req, 'volume:delete_transfer', { project_id: t.source_project_id });
      await transfers.delete(t, callerOf(deps, req));
      reply.code(202);
      return '';
    });
  }
}
