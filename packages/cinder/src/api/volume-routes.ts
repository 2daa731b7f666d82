import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { BackupService } from '../domain/backups.ts';
import { LegacyAttach, type Volume } from '../domain/volumes.ts';
import type { Connector } from '../drivers/volume-driver.ts';
import { unmanageSnapshotAction, unmanageVolumeAction } from './manage-routes.ts';
import { allowed, boolParam, callerOf, enforce, mv, projectOf, stringMap, type ApiDeps } from './context.ts';
import { RESOURCE_FILTERS, dictFilter, filtersOf, likeFilters, sortKeysAt, timeComparisons, type FilterRules } from './filters.ts';
import { SNAPSHOT_ACTIONS, SNAPSHOT_CREATE, SNAPSHOT_UPDATE, VOLUME_ACTIONS, VOLUME_CREATE, VOLUME_META_ITEM, VOLUME_METADATA, VOLUME_UPDATE, actionOf, validBody } from './schemas.ts';
import { snapshotView, volumeDetail, volumeSummary } from './views.ts';

const P = '/v3/:project_id';
const VOLUME_FILTERS: FilterRules = {
  resource: 'volume',
  legacy: RESOURCE_FILTERS.volume,
  since: { glance_metadata: '3.4', group_id: '3.10', created_at: '3.60', updated_at: '3.60', consumes_quota: '3.65' },
};
const SNAPSHOT_FILTERS: FilterRules = { resource: 'snapshot', legacy: ['status', 'volume_id', 'name', 'metadata'], since: { metadata: '3.22', consumes_quota: '3.65' } };
const SORT_KEYS = new Set(['id', 'name', 'status', 'size', 'created_at', 'updated_at', 'availability_zone', 'bootable', 'migration_status']);
const SNAPSHOT_SORT_KEYS = ['id', 'status', 'volume_id', 'volume_size', 'created_at', 'updated_at'];

async function volumeFor(deps: ApiDeps, req: FastifyRequest, rule: string): Promise<Volume> {
  projectOf(deps, req);
  const v = await deps.volumes.get((req.params as { volume_id: string }).volume_id, callerOf(deps, req));
  enforce(deps, req, rule, { project_id: v.project_id });
  return v;
}

/** Python's json.dumps of {"metadata": …} (", " and ": " separators, non-ASCII escaped), whose md5 upstream's 3.15 ETag is. */
function metadataEtag(metadata: Record<string, string>): string {
  const py = (s: string) => JSON.stringify(s).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const body = `{"metadata": {${Object.entries(metadata).map(([k, v]) => `${py(k)}: ${py(v)}`).join(', ')}}}`;
  return createHash('md5').update(body).digest('hex');
}

/** 3.15: an If-Match naming none of the metadata's current ETags is a bare 412, as upstream's _validate_etag. */
function etagMismatch(req: FastifyRequest, reply: FastifyReply, metadata: Record<string, string>): boolean {
  const header = req.headers['if-match'];
  if (!mv(req, '3.15') || header === undefined) return false;
  const tags = String(header).split(',').map((t) => t.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1'));
  if (tags.includes(metadataEtag(metadata))) return false;
  reply.code(412);
  return true;
}

export function optionalString(v: unknown, field: string, max = 255): string | null | undefined {
  if (v === undefined || v === null) return v as null | undefined;
  if (typeof v !== 'string') throw badRequest(`Invalid input for field/attribute ${field}. Value: ${JSON.stringify(v)}. ${JSON.stringify(v)} is not of type 'string', 'null'`);
  if (v.length > max) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${v}. '${v}' is too long`);
  return v;
}

/** Upstream accepts size as an integer or a string of one; anything else is a 400 with its validator's words. */
function sizeOf(v: unknown, field = 'size'): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${JSON.stringify(v)}. ${JSON.stringify(v)} is not of type 'integer', 'string', 'null'`);
  if (n < 1) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${n}. ${n} is less than the minimum of 1`);
  if (n > 2147483647) throw badRequest(`Invalid input for field/attribute ${field}. Value: ${n}. ${n} is greater than the maximum of 2147483647`);
  return n;
}

export function pageOf(deps: ApiDeps, q: Record<string, string>, sortKeys: ReadonlySet<string> = SORT_KEYS) {
  const limit = q.limit === undefined ? deps.config.maxLimit : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 0) throw badRequest('Invalid input received: limit must be an integer 0 or greater');
  const offset = q.offset === undefined ? undefined : Number(q.offset);
  if (offset !== undefined && (!Number.isInteger(offset) || offset < 0)) throw badRequest('Invalid input received: offset must be an integer 0 or greater');
  const sort: [string, 'asc' | 'desc'][] = [];
  const keys = q.sort ? q.sort.split(',') : q.sort_key ? [`${q.sort_key}:${q.sort_dir ?? 'desc'}`] : [];
  for (const part of keys) {
    const [key, dir = 'desc'] = part.trim().split(':');
    if (!sortKeys.has(key)) throw badRequest(`Invalid input received: Invalid sort key ${key}`);
    if (dir !== 'asc' && dir !== 'desc') throw badRequest(`Invalid input received: Unknown sort direction, must be 'desc' or 'asc'`);
    sort.push([key, dir]);
  }
  return { limit: Math.min(limit, deps.config.maxLimit), offset, marker: q.marker, sort };
}

export function registerVolumeRoutes(app: FastifyInstance, deps: ApiDeps, backups: BackupService): void {
  const legacy = new LegacyAttach(deps.volumes);
  const list = async (req: FastifyRequest, detail: boolean) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume:get_all');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    const page = pageOf(deps, q);
    const allTenants = caller.isAdmin && q.all_tenants !== undefined && boolParam(q.all_tenants, 'all_tenants');
    const given = filtersOf(req, caller, q, VOLUME_FILTERS);
    const filters: Record<string, string> = {};
    for (const k of ['name', 'status', 'availability_zone', 'bootable', 'size', 'migration_status', 'group_id']) if (given[k] !== undefined) filters[k] = given[k];
    // upstream converts consumes_quota to its use_quota column (false only for migration targets here).
    if (given.consumes_quota !== undefined) filters.consumes_quota = String(boolParam(given.consumes_quota, 'consumes_quota'));
    const metadata = given.metadata ? dictFilter(given.metadata, 'metadata') : undefined;
    const imageMetadata = given.glance_metadata ? dictFilter(given.glance_metadata, 'glance_metadata') : undefined;
    const times = timeComparisons(given);
    // 3.34: `key~=value` is a substring (SQL LIKE) match; the default resource_filters admit it for admins only.
    const like = likeFilters(req, given, ['name', 'status', 'availability_zone', 'migration_status']);
    const projectId = allTenants ? (q.project_id ?? undefined) : caller.projectId;
    const rows = await deps.volumes.listRows({ projectId, filters, sort: page.sort, limit: page.limit, marker: page.marker, offset: page.offset, metadata, imageMetadata, times, like });
    const vols = await Promise.all(rows.map((r) => deps.volumes.hydrate(r)));
    const out: Record<string, unknown> = { volumes: vols.map((v) => (detail ? volumeDetail(req, v, { admin: caller.isAdmin }) : volumeSummary(req, v))) };
    if (rows.length === page.limit && rows.length > 0) {
      const next = new URLSearchParams({ ...q, marker: rows[rows.length - 1].id });
      next.delete('offset');
      out.volumes_links = [{ href: `${req.protocol}://${req.headers.host}${req.url.split('?')[0]}?${next}`, rel: 'next' }];
    }
    if (mv(req, '3.45') && q.with_count !== undefined && boolParam(q.with_count, 'with_count')) {
      out.count = (await deps.volumes.listRows({ projectId, filters, sort: [], limit: 1_000_000, metadata, imageMetadata, times, like })).length;
    }
    return out;
  };
  app.get(`${P}/volumes`, (req) => list(req, false));
  app.get(`${P}/volumes/detail`, (req) => list(req, true));
  // 3.12 (metadata 3.36): like upstream, only all_tenants narrows it; other filters are not applied.
  app.get(`${P}/volumes/summary`, async (req) => {
    projectOf(deps, req);
    if (!mv(req, '3.12')) throw notFound('The resource could not be found.');
    enforce(deps, req, 'volume:get_all');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    const allTenants = caller.isAdmin && q.all_tenants !== undefined && boolParam(q.all_tenants, 'all_tenants');
    const db = deps.volumes.db;
    let totals = db.selectFrom('volumes').select((eb) => [eb.fn.countAll<number | string>().as('n'), eb.fn.sum<number | string | null>('size').as('size')]).where('deleted', '=', 0);
    let meta = db.selectFrom('volume_metadata').innerJoin('volumes', 'volumes.id', 'volume_metadata.volume_id').select(['volume_metadata.key', 'volume_metadata.value']).distinct().where('volumes.deleted', '=', 0).where('volume_metadata.kind', '=', 'user');
    if (!allTenants) {
      totals = totals.where('project_id', '=', caller.projectId);
      meta = meta.where('volumes.project_id', '=', caller.projectId);
    }
    const t = await totals.executeTakeFirstOrThrow();
    const out: Record<string, unknown> = { total_count: Number(t.n), total_size: Number(t.size ?? 0) };
    if (mv(req, '3.36')) {
      const metadata: Record<string, string[]> = {};
      for (const r of await meta.orderBy('volume_metadata.key').orderBy('volume_metadata.value').execute()) (metadata[r.key] ??= []).push(r.value);
      out.metadata = metadata;
    }
    return { 'volume-summary': out };
  });

  app.post(`${P}/volumes`, async (req, reply) => {
    projectOf(deps, req);
    const body = validBody<{ volume: Record<string, unknown> }>(req, VOLUME_CREATE).volume;
    enforce(deps, req, 'volume:create');
    const caller = callerOf(deps, req);
    const imageId = optionalString(body.imageRef ?? body.image_id, 'imageRef') ?? undefined;
    if (imageId) enforce(deps, req, 'volume:create_from_image');
    // upstream reads backup_id at every version (before 3.47 it passes as an unchecked extra key).
    const backupId = optionalString(body.backup_id, 'backup_id');
    const backup = backupId ? await backups.sourceFor(backupId, caller) : undefined;
    const volumeType = optionalString(body.volume_type, 'volume_type') ?? undefined;
    // Like upstream, group_id is read at every version (a group exists only from 3.13).
    const groupId = optionalString(body.group_id, 'group_id');
    const group = groupId ? await deps.groups.checkNewMember(groupId, volumeType, caller) : undefined;
    const volume = await deps.volumes.create(
      {
        size: sizeOf(body.size),
        name: optionalString(body.name ?? body.display_name, 'name'),
        description: optionalString(body.description ?? body.display_description, 'description'),
        volumeType,
        availabilityZone: optionalString(body.availability_zone, 'availability_zone') ?? undefined,
        metadata: stringMap(body.metadata, 'metadata'),
        snapshotId: optionalString(body.snapshot_id, 'snapshot_id') ?? undefined,
        sourceVolid: optionalString(body.source_volid, 'source_volid') ?? undefined,
        imageId,
        multiattach: body.multiattach === undefined ? undefined : boolParam(body.multiattach, 'multiattach'),
        backup,
        groupId: group?.id,
      },
      caller,
    );
    reply.code(202);
    return { volume: volumeDetail(req, volume, { admin: caller.isAdmin }) };
  });

  app.get(`${P}/volumes/:volume_id`, async (req) => {
    const v = await volumeFor(deps, req, 'volume:get');
    return { volume: volumeDetail(req, v, { admin: callerOf(deps, req).isAdmin }) };
  });

  app.put(`${P}/volumes/:volume_id`, async (req) => {
    const body = validBody<{ volume: Record<string, unknown> }>(req, VOLUME_UPDATE).volume;
    const v = await volumeFor(deps, req, 'volume:update');
    const updated = await deps.volumes.update(v, {
      name: optionalString(body.name ?? body.display_name, 'name'),
      description: optionalString(body.description ?? body.display_description, 'description'),
      metadata: body.metadata === undefined ? undefined : stringMap(body.metadata, 'metadata'),
    });
    return { volume: volumeDetail(req, updated, { admin: callerOf(deps, req).isAdmin }) };
  });

  app.delete(`${P}/volumes/:volume_id`, async (req, reply) => {
    const q = req.query as Record<string, string>;
    // force exists from 3.23; below it upstream ignores the parameter.
    const force = mv(req, '3.23') && q.force !== undefined && boolParam(q.force, 'force');
    const v = await volumeFor(deps, req, force ? 'volume:force_delete' : 'volume:delete');
    await deps.volumes.delete(v, { cascade: q.cascade !== undefined && boolParam(q.cascade, 'cascade'), force }, callerOf(deps, req));
    reply.code(202);
    return '';
  });

  // ---- metadata
  app.get(`${P}/volumes/:volume_id/metadata`, async (req, reply) => {
    const { metadata } = await volumeFor(deps, req, 'volume:get_volume_metadata');
    if (mv(req, '3.15')) reply.header('etag', metadataEtag(metadata));
    return { metadata };
  });
  app.get(`${P}/volumes/:volume_id/metadata/:key`, async (req) => {
    const v = await volumeFor(deps, req, 'volume:get_volume_metadata');
    const key = (req.params as { key: string }).key;
    if (!(key in v.metadata)) throw notFound(`Metadata item was not found`);
    return { meta: { [key]: v.metadata[key] } };
  });
  app.post(`${P}/volumes/:volume_id/metadata`, async (req) => {
    const md = validBody<{ metadata: Record<string, string> }>(req, VOLUME_METADATA).metadata;
    const v = await volumeFor(deps, req, 'volume:create_volume_metadata');
    await deps.volumes.setMetadata(v.id, 'user', md, false);
    return { metadata: (await deps.volumes.get(v.id, callerOf(deps, req))).metadata };
  });
  app.put(`${P}/volumes/:volume_id/metadata`, async (req, reply) => {
    const md = validBody<{ metadata: Record<string, string> }>(req, VOLUME_METADATA).metadata;
    const v = await volumeFor(deps, req, 'volume:update_volume_metadata');
    if (etagMismatch(req, reply, v.metadata)) return '';
    await deps.volumes.setMetadata(v.id, 'user', md, true);
    return { metadata: md };
  });
  app.put(`${P}/volumes/:volume_id/metadata/:key`, async (req, reply) => {
    const meta = validBody<{ meta: Record<string, string> }>(req, VOLUME_META_ITEM).meta;
    const v = await volumeFor(deps, req, 'volume:update_volume_metadata');
    if (etagMismatch(req, reply, v.metadata)) return '';
    const key = (req.params as { key: string }).key;
    if (!(key in meta)) throw badRequest('Request body and URI mismatch');
    await deps.volumes.setMetadata(v.id, 'user', meta, false);
    return { meta };
  });
  app.delete(`${P}/volumes/:volume_id/metadata/:key`, async (req) => {
    const v = await volumeFor(deps, req, 'volume:delete_volume_metadata');
    if (!(await deps.volumes.deleteMetadataKey(v.id, (req.params as { key: string }).key))) throw notFound('Metadata item was not found');
    return '';
  });

  // ---- actions
  app.post(`${P}/volumes/:volume_id/action`, async (req, reply) => {
    const action = actionOf(req);
    const schema = VOLUME_ACTIONS[action];
    if (!schema) throw badRequest(`There is no such action: ${action}`);
    const args = (validBody<Record<string, Record<string, unknown> | null>>(req, schema)[action] ?? {}) as Record<string, unknown>;
    const caller = callerOf(deps, req);
    reply.code(202);
    switch (action) {
      case 'os-extend': {
        const v = await volumeFor(deps, req, 'volume:extend');
        if (v.status === 'in-use') {
          // Extending an attached volume arrived in 3.42; below it upstream answers as for any other non-available status.
          if (!mv(req, '3.42')) throw badRequest(`Invalid volume: Volume status must be 'available' to extend, but current status is: in-use.`);
          enforce(deps, req, 'volume:extend_attached_volume', { project_id: v.project_id });
        }
        await deps.volumes.extend(v, Number(args.new_size), caller);
        return '';
      }
      case 'revert': {
        if (!mv(req, '3.40')) throw badRequest('There is no such action: revert');
        const v = await volumeFor(deps, req, 'volume:revert_to_snapshot');
        await deps.volumes.revertToSnapshot(v, optionalString(args.snapshot_id, 'snapshot_id') ?? null, caller);
        return '';
      }
      case 'os-reset_status': {
        if (!args.status && !args.attach_status && !args.migration_status) throw badRequest("Must specify 'status', 'attach_status' or 'migration_status' for update.");
        const v = await volumeFor(deps, req, 'volume_extension:volume_admin_actions:reset_status');
        await deps.volumes.resetStatus(v, args as Record<string, string>);
        return '';
      }
      case 'os-migrate_volume': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_admin_actions:migrate_volume');
        if (mv(req, '3.16') && args.cluster !== undefined) throw badRequest('Invalid input received: migration to a cluster is not supported by this cloud.');
        const host = args.host as string | null | undefined;
        if (!host) throw badRequest('Invalid input received: One and only one of cluster and host must be set.');
        const flag = (name: string) => (args[name] === undefined ? false : boolParam(args[name], name));
        await deps.migrations.migrate(v, { host, forceHostCopy: flag('force_host_copy'), lockVolume: flag('lock_volume') });
        return '';
      }
      case 'os-migrate_volume_completion': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_admin_actions:migrate_volume_completion');
        const newVolume = await deps.volumes.get(String(args.new_volume), callerOf(deps, req));
        const error = args.error === undefined ? false : boolParam(args.error, 'error');
        reply.code(200);
        return { save_volume_id: await deps.migrations.completion(v, newVolume, error) };
      }
      case 'os-force_delete': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_admin_actions:force_delete');
        await deps.volumes.delete(v, { cascade: true, force: true }, caller);
        return '';
      }
      case 'os-volume_upload_image': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_actions:upload_image');
        const imageName = String(args.image_name);
        const diskFormat = String(args.disk_format ?? 'raw');
        if (diskFormat !== 'raw' && diskFormat !== 'qcow2') throw badRequest(`Invalid input received: Invalid disk-format '${diskFormat}' is specified. Allowed disk-formats are raw, qcow2.`);
        const containerFormat = String(args.container_format ?? 'bare');
        const force = args.force === undefined ? false : boolParam(args.force, 'force');
        const visibility = args.visibility as string | undefined;
        const isProtected = args.protected !== undefined ? boolParam(args.protected, 'protected') : undefined;
        const up = await deps.volumes.uploadToImage(v, { imageName, force, diskFormat, containerFormat, visibility, protected: isProtected }, caller);
        return {
          'os-volume_upload_image': {
            id: v.id,
            updated_at: new Date().toISOString(),
            status: 'uploading',
            display_description: v.description,
            size: v.size,
            volume_type: { id: v.volume_type_id, name: v.typeName },
            image_id: up.imageId,
            container_format: containerFormat,
            disk_format: diskFormat,
            image_name: imageName,
            ...(mv(req, '3.1') ? { visibility: visibility ?? 'private', protected: isProtected ?? false } : {}),
          },
        };
      }
      case 'os-retype': {
        const v = await volumeFor(deps, req, 'volume:retype');
        const policy = (args.migration_policy ?? 'never') as 'never' | 'on-demand';
        await deps.migrations.retype(v, String(args.new_type), policy, caller);
        return '';
      }
      case 'os-set_bootable': {
        const v = await volumeFor(deps, req, 'volume:update');
        await deps.volumes.setFlag(v, 'bootable', boolParam(args.bootable, 'bootable'));
        reply.code(200);
        return '';
      }
      case 'os-update_readonly_flag': {
        const v = await volumeFor(deps, req, 'volume:update_readonly_flag');
        await deps.volumes.setFlag(v, 'readonly', boolParam(args.readonly, 'readonly'));
        return '';
      }
      case 'os-unmanage':
        await unmanageVolumeAction(deps, req);
        return '';
      case 'os-reserve':
        await legacy.reserve(await volumeFor(deps, req, 'volume_extension:volume_actions:reserve'));
        return '';
      case 'os-unreserve':
        await legacy.unreserve(await volumeFor(deps, req, 'volume_extension:volume_actions:unreserve'));
        return '';
      case 'os-begin_detaching':
        await legacy.beginDetaching(await volumeFor(deps, req, 'volume_extension:volume_actions:begin_detaching'));
        return '';
      case 'os-roll_detaching':
        await legacy.rollDetaching(await volumeFor(deps, req, 'volume_extension:volume_actions:roll_detaching'));
        return '';
      case 'os-initialize_connection': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_actions:initialize_connection');
        reply.code(200);
        return { connection_info: await legacy.initializeConnection(v, args.connector as Connector) };
      }
      case 'os-terminate_connection': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_actions:terminate_connection');
        await legacy.terminateConnection(v, (args.connector ?? {}) as Connector);
        return '';
      }
      case 'os-attach': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_actions:attach');
        const mode = String(args.mode ?? 'rw');
        await legacy.attach(v, { instanceUuid: args.instance_uuid as string | undefined, hostName: args.host_name as string | undefined, mountpoint: String(args.mountpoint), mode }, caller);
        return '';
      }
      case 'os-detach': {
        const v = await volumeFor(deps, req, 'volume_extension:volume_actions:detach');
        await legacy.detach(v, args.attachment_id as string | undefined, caller);
        return '';
      }
      default:
        throw badRequest(`There is no such action: ${action}`);
    }
  });

  // ---- snapshots
  const snapList = async (req: FastifyRequest) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume:get_all_snapshots');
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, string>;
    const page = pageOf(deps, q, sortKeysAt(req, SNAPSHOT_SORT_KEYS, '3.30'));
    let query = deps.volumes.db.selectFrom('snapshots').selectAll().where('deleted', '=', 0);
    const allTenants = caller.isAdmin && q.all_tenants !== undefined && boolParam(q.all_tenants, 'all_tenants');
    if (!allTenants) query = query.where('project_id', '=', caller.projectId);
    const given = filtersOf(req, caller, q, SNAPSHOT_FILTERS);
    if (given.volume_id) query = query.where('volume_id', '=', given.volume_id);
    if (given.status) query = query.where('status', '=', given.status);
    if (given.name) query = query.where('name', '=', given.name);
    for (const [k, v] of Object.entries(likeFilters(req, given, ['name', 'status', 'volume_id']))) query = query.where(k as 'name', 'like', `%${v}%`);
    // Every snapshot here counts against quota (upstream's use_quota); its zone is its volume's.
    if (given.consumes_quota !== undefined && !boolParam(given.consumes_quota, 'consumes_quota')) query = query.where('id', '=', '');
    if (given.availability_zone) query = query.where('volume_id', 'in', deps.volumes.db.selectFrom('volumes').select('id').where('availability_zone', '=', given.availability_zone));
    const metadata = given.metadata ? Object.entries(dictFilter(given.metadata, 'metadata')) : [];
    const sort = page.sort.length ? page.sort : ([['created_at', 'desc']] as [string, 'asc' | 'desc'][]);
    sort.push(['id', sort[0][1]]);
    if (page.marker) {
      const m = await deps.volumes.db.selectFrom('snapshots').selectAll().where('id', '=', page.marker).executeTakeFirst();
      if (!m) throw badRequest(`Marker ${page.marker} could not be found.`);
      query = query.where((eb) =>
        eb.or(sort.map(([key, dir], i) => eb.and([...sort.slice(0, i).map(([k]) => eb(k as 'id', '=', (m as unknown as Record<string, never>)[k])), eb(key as 'id', dir === 'asc' ? '>' : '<', (m as unknown as Record<string, never>)[key])]))),
      );
    }
    for (const [k, d] of sort) query = query.orderBy(k as 'id', d);
    // Snapshot metadata is one JSON column: with a metadata filter (3.22) the page is cut after matching.
    if (!metadata.length) return { caller, rows: await query.limit(page.limit).offset(page.offset ?? 0).execute() };
    const matching = (await query.execute()).filter((s) => {
      const m = (s.metadata ? JSON.parse(s.metadata) : {}) as Record<string, string>;
      return metadata.every(([k, v]) => m[k] === v);
    });
    const from = page.offset ?? 0;
    return { caller, rows: matching.slice(from, from + page.limit) };
  };
  app.get(`${P}/snapshots`, async (req) => ({ snapshots: (await snapList(req)).rows.map((s) => ({ id: s.id, name: s.name, status: s.status, size: s.volume_size, volume_id: s.volume_id, ...snapshotView(req, s) })) }));
  app.get(`${P}/snapshots/detail`, async (req) => ({ snapshots: (await snapList(req)).rows.map((s) => snapshotView(req, s)) }));
  app.post(`${P}/snapshots`, async (req, reply) => {
    projectOf(deps, req);
    const body = validBody<{ snapshot: Record<string, unknown> }>(req, SNAPSHOT_CREATE).snapshot;
    enforce(deps, req, 'volume:create_snapshot');
    const caller = callerOf(deps, req);
    const v = await deps.volumes.get(String(body.volume_id), caller);
    const snap = await deps.volumes.createSnapshot(
      v,
      {
        name: optionalString(body.name ?? body.display_name, 'name'),
        description: optionalString(body.description ?? body.display_description, 'description'),
        force: body.force === undefined ? false : boolParam(body.force, 'force'),
        metadata: stringMap(body.metadata, 'metadata'),
      },
      caller,
    );
    reply.code(202);
    return { snapshot: snapshotView(req, snap) };
  });
  const snapFor = async (req: FastifyRequest, rule: string) => {
    projectOf(deps, req);
    const s = await deps.volumes.getSnapshotRow((req.params as { snapshot_id: string }).snapshot_id, callerOf(deps, req));
    enforce(deps, req, rule, { project_id: s.project_id });
    return s;
  };
  app.get(`${P}/snapshots/:snapshot_id`, async (req) => ({ snapshot: snapshotView(req, await snapFor(req, 'volume:get_snapshot')) }));
  app.put(`${P}/snapshots/:snapshot_id`, async (req) => {
    const body = validBody<{ snapshot: Record<string, unknown> }>(req, SNAPSHOT_UPDATE).snapshot;
    const s = await snapFor(req, 'volume:update_snapshot');
    const set: Record<string, unknown> = { updated_at: Date.now() };
    if ('name' in body || 'display_name' in body) set.name = optionalString(body.name ?? body.display_name, 'name');
    if ('description' in body || 'display_description' in body) set.description = optionalString(body.description ?? body.display_description, 'description');
    await deps.volumes.db.updateTable('snapshots').set(set).where('id', '=', s.id).execute();
    return { snapshot: snapshotView(req, await deps.volumes.getSnapshotRow(s.id, callerOf(deps, req))) };
  });
  app.delete(`${P}/snapshots/:snapshot_id`, async (req, reply) => {
    const s = await snapFor(req, 'volume:delete_snapshot');
    await deps.volumes.deleteSnapshot(s, callerOf(deps, req));
    reply.code(202);
    return '';
  });
  app.post(`${P}/snapshots/:snapshot_id/action`, async (req, reply) => {
    const action = actionOf(req);
    if (!SNAPSHOT_ACTIONS[action]) throw badRequest(`There is no such action: ${action}`);
    const body = validBody<Record<string, Record<string, unknown>>>(req, SNAPSHOT_ACTIONS[action]);
    reply.code(202);
    if (action === 'os-reset_status') {
      const s = await snapFor(req, 'volume_extension:snapshot_admin_actions:reset_status');
      const status = String(body[action].status).toLowerCase();
      await deps.volumes.db.updateTable('snapshots').set({ status }).where('id', '=', s.id).execute();
      return '';
    }
    if (action === 'os-unmanage') {
      await unmanageSnapshotAction(deps, req);
      return '';
    }
    if (action === 'os-update_snapshot_status') {
      const s = await snapFor(req, 'snapshot_extension:snapshot_actions:update_snapshot_status');
      await deps.volumes.updateSnapshotStatus(s, body[action] as { status: string; progress?: string });
      return '';
    }
    if (action === 'os-force_delete') {
      const s = await snapFor(req, 'volume_extension:snapshot_admin_actions:force_delete');
      await deps.volumes.deleteSnapshot(s, callerOf(deps, req), true);
    }
    return '';
  });
  void allowed;
}
