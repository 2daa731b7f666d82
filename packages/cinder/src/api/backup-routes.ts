import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import type { BackupRow } from '../db/schema.ts';
import type { BackupService } from '../domain/backups.ts';
import { allowed, boolParam, callerOf, enforce, mv, projectOf, type ApiDeps } from './context.ts';
import { BACKUP_ACTIONS, BACKUP_CREATE, BACKUP_IMPORT, BACKUP_RESTORE, BACKUP_UPDATE, actionOf, validBody } from './schemas.ts';
import { backupDetail, backupSummary } from './views.ts';
import { RESOURCE_FILTERS, filtersOf, likeFilters, sortKeysAt, type FilterRules } from './filters.ts';
import { optionalString, pageOf } from './volume-routes.ts';

const P = '/v3/:project_id';
/** upstream's backup filter options before 3.31 (its default resource_filters after). */
const BACKUP_FILTERS: FilterRules = { resource: 'backup', legacy: RESOURCE_FILTERS.backup, since: {} };
const BACKUP_SORT_KEYS = ['id', 'status', 'size', 'volume_id', 'availability_zone', 'container', 'created_at', 'updated_at'];

/** Block Storage v3 backups as upstream's cinder/api/contrib/backups.py and backup_actions. */
export function registerBackupRoutes(app: FastifyInstance, deps: ApiDeps, backups: BackupService): void {
  const backupOf = async (req: FastifyRequest): Promise<BackupRow> => {
    projectOf(deps, req);
    return backups.get((req.params as { backup_id: string }).backup_id, callerOf(deps, req));
  };
  const detail = (req: FastifyRequest, b: BackupRow) => backupDetail(req, b, { projectAttr: allowed(deps, req, 'backup:backup_project_attribute') });

  const list = async (req: FastifyRequest, full: boolean) => {
    projectOf(deps, req);
    enforce(deps, req, 'backup:get_all');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    const allTenants = caller.isAdmin && q.all_tenants !== undefined && boolParam(q.all_tenants, 'all_tenants');
    const projectId = allTenants ? q.project_id : caller.projectId;
    const given = filtersOf(req, caller, q, BACKUP_FILTERS);
    const filters: Record<string, string> = {};
    for (const k of ['name', 'status', 'volume_id']) if (given[k] !== undefined) filters[k] = given[k];
    const like = likeFilters(req, given, ['name', 'status', 'volume_id']);
    const page = pageOf(deps, q, sortKeysAt(req, BACKUP_SORT_KEYS, '3.37'));
    const limit = page.limit;
    const rows = await backups.list({ projectId, filters, like, limit, marker: page.marker, offset: page.offset, sort: page.sort });
    const out: Record<string, unknown> = { backups: rows.map((b) => (full ? detail(req, b) : backupSummary(req, b))) };
    if (rows.length === limit && rows.length > 0) {
      const next = new URLSearchParams({ ...q, marker: rows[rows.length - 1].id });
      out.backups_links = [{ href: `${req.protocol}://${req.headers.host}${req.url.split('?')[0]}?${next}`, rel: 'next' }];
    }
    if (mv(req, '3.45') && q.with_count !== undefined && boolParam(q.with_count, 'with_count')) {
      out.count = (await backups.list({ projectId, filters, like, limit: 1_000_000, sort: [] })).length;
    }
    return out;
  };
  app.get(`${P}/backups`, (req) => list(req, false));
  app.get(`${P}/backups/detail`, (req) => list(req, true));

  app.get(`${P}/backups/:backup_id`, async (req) => {
    const b = await backupOf(req);
    enforce(deps, req, 'backup:get', { project_id: b.project_id });
    return { backup: detail(req, b) };
  });

  app.post(`${P}/backups`, async (req, reply) => {
    projectOf(deps, req);
    const body = validBody<{ backup: Record<string, unknown> }>(req, BACKUP_CREATE).backup;
    enforce(deps, req, 'backup:create');
    const b = await backups.create(
      {
        volumeId: String(body.volume_id),
        container: optionalString(body.container, 'container'),
        name: optionalString(body.name, 'name'),
        description: optionalString(body.description, 'description'),
        incremental: body.incremental === undefined ? false : boolParam(body.incremental, 'incremental'),
        force: body.force === undefined ? false : boolParam(body.force, 'force'),
        snapshotId: optionalString(body.snapshot_id, 'snapshot_id'),
        metadata: (body.metadata ?? undefined) as Record<string, string> | undefined,
        availabilityZone: optionalString(body.availability_zone, 'availability_zone'),
      },
      callerOf(deps, req),
    );
    reply.code(202);
    return { backup: backupSummary(req, b) };
  });

  app.put(`${P}/backups/:backup_id`, async (req) => {
    if (!mv(req, '3.9')) throw badRequest('Invalid input received: updating a backup needs microversion 3.9 or later.');
    const body = validBody<{ backup: Record<string, unknown> | null }>(req, BACKUP_UPDATE).backup ?? {};
    const b = await backupOf(req);
    enforce(deps, req, 'backup:update', { project_id: b.project_id });
    const name = optionalString(body.name, 'name');
    const description = optionalString(body.description, 'description');
    const metadata = body.metadata as Record<string, string> | undefined;
    const updated = await backups.update(b, { ...(name !== undefined ? { name } : {}), ...(description !== undefined ? { description } : {}), ...(metadata !== undefined ? { metadata } : {}) });
    // upstream answers an update with the summary view.
    return { backup: backupSummary(req, updated) };
  });

  app.delete(`${P}/backups/:backup_id`, async (req, reply) => {
    const b = await backupOf(req);
    enforce(deps, req, 'backup:delete', { project_id: b.project_id });
    await backups.delete(b, false, callerOf(deps, req));
    reply.code(202);
    return '';
  });

  app.post(`${P}/backups/:backup_id/restore`, async (req, reply) => {
    const body = validBody<{ restore: Record<string, unknown> | null }>(req, BACKUP_RESTORE).restore ?? {};
    const b = await backupOf(req);
    enforce(deps, req, 'backup:restore', { project_id: b.project_id });
    const restore = await backups.restore(b, { volumeId: optionalString(body.volume_id, 'volume_id') ?? undefined, name: optionalString(body.name, 'name') }, callerOf(deps, req));
    reply.code(202);
    return { restore };
  });

  app.post(`${P}/backups/:backup_id/action`, async (req, reply) => {
    const action = actionOf(req);
    if (!BACKUP_ACTIONS[action]) throw badRequest(`There is no such action: ${action}`);
    const body = validBody<Record<string, Record<string, unknown>>>(req, BACKUP_ACTIONS[action]);
    const b = await backupOf(req);
    if (action === 'os-reset_status') {
      enforce(deps, req, 'volume_extension:backup_admin_actions:reset_status', { project_id: b.project_id });
      await backups.resetStatus(b, String(body[action].status).toLowerCase());
    } else {
      enforce(deps, req, 'volume_extension:backup_admin_actions:force_delete', { project_id: b.project_id });
      await backups.delete(b, true, callerOf(deps, req));
    }
    reply.code(202);
    return '';
  });

  app.get(`${P}/backups/:backup_id/export_record`, async (req) => {
    const b = await backupOf(req);
    enforce(deps, req, 'backup:export-import', { project_id: b.project_id });
    return { 'backup-record': backups.exportRecord(b) };
  });

  app.post(`${P}/backups/import_record`, async (req, reply) => {
    projectOf(deps, req);
    enforce(deps, req, 'backup:backup-import');
    const rec = validBody<{ 'backup-record': { backup_service: string; backup_url: string } }>(req, BACKUP_IMPORT)['backup-record'];
    const b = await backups.importRecord(rec.backup_service, rec.backup_url, callerOf(deps, req));
    reply.code(201);
    return { backup: backupSummary(req, b) };
  });
}
