import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import type { BackupRow } from '../db/schema.ts';
import type { BackupService } from '../domain/backups.ts';
import { allowed, bodyObject, boolParam, callerOf, enforce, mv, projectOf, stringMap, type ApiDeps } from './context.ts';
import { backupDetail, backupSummary } from './views.ts';
import { optionalString } from './volume-routes.ts';

const P = '/v3/:project_id';

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
    const filters: Record<string, string> = {};
    for (const k of ['name', 'status', 'volume_id']) if (q[k] !== undefined) filters[k] = q[k];
    const limit = q.limit === undefined ? deps.config.maxLimit : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 0) throw badRequest('Invalid input received: limit must be an integer 0 or greater');
    const sortDir = (q.sort_dir ?? q.sort?.split(':')[1] ?? 'desc') === 'asc' ? 'asc' : 'desc';
    const rows = await backups.list({ projectId, filters, limit, marker: q.marker, offset: q.offset === undefined ? undefined : Number(q.offset), sortDir });
    const out: Record<string, unknown> = { backups: rows.map((b) => (full ? detail(req, b) : backupSummary(req, b))) };
    if (rows.length === limit && rows.length > 0) {
      const next = new URLSearchParams({ ...q, marker: rows[rows.length - 1].id });
      out.backups_links = [{ href: `${req.protocol}://${req.headers.host}${req.url.split('?')[0]}?${next}`, rel: 'next' }];
    }
    if (mv(req, '3.45') && q.with_count !== undefined && boolParam(q.with_count, 'with_count')) {
      out.count = (await backups.list({ projectId, filters, limit: 1_000_000, sortDir })).length;
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
    const body = bodyObject(req.body, 'backup');
    enforce(deps, req, 'backup:create');
    refuseUnknownKeys(body, ['volume_id', 'container', 'name', 'description', 'display_name', 'display_description', 'incremental', 'force', 'snapshot_id', ...(mv(req, '3.43') ? ['metadata'] : []), ...(mv(req, '3.51') ? ['availability_zone'] : [])]);
    const volumeId = optionalString(body.volume_id, 'volume_id');
    if (!volumeId) throw badRequest("Invalid input for field/attribute backup. Value: " + JSON.stringify(body) + ". 'volume_id' is a required property");
    const b = await backups.create(
      {
        volumeId,
        container: optionalString(body.container, 'container'),
        name: optionalString(body.name ?? body.display_name, 'name'),
        description: optionalString(body.description ?? body.display_description, 'description'),
        incremental: body.incremental === undefined ? false : boolParam(body.incremental, 'incremental'),
        force: body.force === undefined ? false : boolParam(body.force, 'force'),
        snapshotId: optionalString(body.snapshot_id, 'snapshot_id'),
        metadata: mv(req, '3.43') && body.metadata !== undefined && body.metadata !== null ? stringMap(body.metadata, 'metadata') : undefined,
        availabilityZone: mv(req, '3.51') ? optionalString(body.availability_zone, 'availability_zone') : undefined,
      },
      callerOf(deps, req),
    );
    reply.code(202);
    return { backup: backupSummary(req, b) };
  });

  app.put(`${P}/backups/:backup_id`, async (req) => {
    if (!mv(req, '3.9')) throw badRequest('Invalid input received: updating a backup needs microversion 3.9 or later.');
    const b = await backupOf(req);
    enforce(deps, req, 'backup:update', { project_id: b.project_id });
    const body = bodyObject(req.body, 'backup');
    refuseUnknownKeys(body, ['name', 'description', ...(mv(req, '3.43') ? ['metadata'] : [])]);
    const name = optionalString(body.name, 'name');
    const description = optionalString(body.description, 'description');
    const metadata = mv(req, '3.43') && body.metadata !== undefined ? stringMap(body.metadata, 'metadata') : undefined;
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
    const b = await backupOf(req);
    enforce(deps, req, 'backup:restore', { project_id: b.project_id });
    const body = bodyObject(req.body, 'restore');
    const restore = await backups.restore(b, { volumeId: optionalString(body.volume_id, 'volume_id') ?? undefined, name: optionalString(body.name, 'name') }, callerOf(deps, req));
    reply.code(202);
    return { restore };
  });

  app.post(`${P}/backups/:backup_id/action`, async (req, reply) => {
    const b = await backupOf(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    if ('os-reset_status' in body) {
      enforce(deps, req, 'volume_extension:backup_admin_actions:reset_status', { project_id: b.project_id });
      await backups.resetStatus(b, String(bodyObject(body, 'os-reset_status').status));
    } else if ('os-force_delete' in body) {
      enforce(deps, req, 'volume_extension:backup_admin_actions:force_delete', { project_id: b.project_id });
      await backups.delete(b, true, callerOf(deps, req));
    } else {
      throw badRequest('Invalid request body: no known backup action.');
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
    const rec = bodyObject(req.body, 'backup-record');
    if (typeof rec.backup_service !== 'string' || typeof rec.backup_url !== 'string') throw badRequest('Invalid input received: Incorrect request body format.');
    const b = await backups.importRecord(rec.backup_service, rec.backup_url, callerOf(deps, req));
    reply.code(201);
    return { backup: backupSummary(req, b) };
  });
}

/** upstream's schemas of backup create and update: additionalProperties false, keys added per microversion. */
function refuseUnknownKeys(body: Record<string, unknown>, known: string[]): void {
  const extra = Object.keys(body).find((k) => !known.includes(k));
  if (extra !== undefined) throw badRequest(`Invalid input for field/attribute backup. Value: ${JSON.stringify(body)}. Additional properties are not allowed ('${extra}' was unexpected)`);
}
