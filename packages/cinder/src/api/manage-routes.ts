import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { formatVersion } from '@onestack/core/http/microversion.ts';
import type { Location, ManageablePage } from '../domain/manage.ts';
import type { ManageableResource } from '../drivers/volume-driver.ts';
import { boolParam, callerOf, enforce, mv, projectOf, stringMap, type ApiDeps } from './context.ts';
import { validBody, type Versioned } from './schemas.ts';
import { snapshotView, volumeDetail } from './views.ts';

const P = '/v3/:project_id';

const nullableString = { type: ['string', 'null'], maxLength: 255 };
const host = { type: ['string', 'null'], minLength: 1, maxLength: 255 };
const metadata = { type: ['object', 'null'], additionalProperties: { type: 'string', maxLength: 255 } };

const volumeManage = (more: Record<string, object>) => ({
  type: 'object',
  properties: {
    volume: {
      type: 'object',
      properties: {
        description: nullableString,
        availability_zone: nullableString,
        bootable: { type: ['boolean', 'string'] },
        volume_type: nullableString,
        name: nullableString,
        host,
        ref: { type: ['object', 'string'] },
        metadata,
        ...more,
      },
      required: ['ref'],
      additionalProperties: false,
    },
  },
  required: ['volume'],
  additionalProperties: false,
});
/** upstream's schemas/volume_manage.py: cluster from 3.16. */
const VOLUME_MANAGE_BODY: Versioned = [
  { schema: volumeManage({}), max: '3.15' },
  { schema: volumeManage({ cluster: { type: ['string', 'null'], minLength: 0, maxLength: 255 } }), min: '3.16' },
];

/** upstream's schemas/snapshot_manage.py. */
const SNAPSHOT_MANAGE_BODY = {
  type: 'object',
  properties: {
    snapshot: {
      type: 'object',
      properties: {
        description: nullableString,
        metadata,
        name: nullableString,
        volume_id: { type: 'string', format: 'uuid' },
        ref: { type: ['object', 'null', 'string'] },
      },
      required: ['ref', 'volume_id'],
      additionalProperties: false,
    },
  },
  required: ['snapshot'],
  additionalProperties: false,
};

/** VersionNotFoundForAPIMethod (404): the v3 manageable_* resources exist from 3.8. */
function need38(req: FastifyRequest): void {
  if (!mv(req, '3.8')) throw notFound(`API version ${req.ctx.microversion ? formatVersion(req.ctx.microversion) : '3.0'} is not supported on this method.`);
}

/** upstream's common.get_cluster_host: host alone below `clusterFrom`, else exactly one of host and cluster. */
function locationOf(req: FastifyRequest, params: Record<string, unknown>, clusterFrom: string): Location {
  const clustered = mv(req, clusterFrom);
  const cluster = clustered ? (params.cluster as string | null | undefined) || undefined : undefined;
  const h = (params.host as string | null | undefined) || undefined;
  if (!!cluster === !!h) throw badRequest(`Invalid input received: ${clustered ? 'One and only one of cluster and host must be set.' : 'Host field is missing.'}`);
  return { host: h, cluster };
}

/** upstream's get_pagination_params and get_sort_params(default_key='reference'), keys checked as resource_common_manage. */
function pageOf(deps: ApiDeps, q: Record<string, string>): ManageablePage {
  const limit = q.limit === undefined ? deps.config.maxLimit : Number(q.limit);
  if (!Number.isInteger(limit)) throw badRequest('limit param must be an integer');
  if (limit < 0) throw badRequest('limit param must be positive');
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(offset)) throw badRequest('Invalid input received: offset must be an integer.');
  if (offset < 0) throw badRequest('Invalid input received: offset must be >= 0.');
  let pairs: [string, string][];
  if (q.sort !== undefined) {
    if (q.sort_key !== undefined || q.sort_dir !== undefined) throw badRequest("The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.");
    pairs = q.sort.split(',').map((p) => {
      const [k, d] = p.split(':');
      return [k.trim(), (d ?? 'desc').trim()];
    });
  } else pairs = [[q.sort_key ?? 'reference', q.sort_dir ?? 'desc']];
  const badKeys = pairs.map(([k]) => k).filter((k) => k !== 'reference' && k !== 'size');
  if (badKeys.length) throw badRequest(`Invalid sort keys passed: ${badKeys.join(', ')}`);
  const badDirs = pairs.map(([, d]) => d).filter((d) => d !== 'asc' && d !== 'desc');
  if (badDirs.length) throw badRequest(`Invalid sort dirs passed: ${badDirs.join(', ')}`);
  return { marker: q.marker, limit: Math.min(limit, deps.config.maxLimit), offset, sort: pairs as ManageablePage['sort'] };
}

function manageableView(e: ManageableResource, detail: boolean, snapshot: boolean): Record<string, unknown> {
  return {
    reference: e.reference,
    size: e.size,
    safe_to_manage: e.safeToManage,
    ...(detail ? { reason_not_safe: e.reasonNotSafe, cinder_id: e.cinderId, extra_info: e.extraInfo } : {}),
    ...(snapshot ? { source_reference: e.sourceReference ?? null } : {}),
  };
}

/** A ref the drivers here cannot read (a bare string) is an invalid reference, as theirs would say. */
function refOf(ref: unknown): Record<string, unknown> {
  if (typeof ref === 'object' && ref !== null) return ref as Record<string, unknown>;
  throw badRequest(`Manage existing volume failed due to invalid backend reference ${JSON.stringify(ref)}: Reference must contain source-name element.`);
}

/**
 * Manage existing (os-volume-manage/os-snapshot-manage at every version; the v3
 * manageable_volumes/manageable_snapshots from 3.8; cluster in listings from 3.17).
 */
export function registerManageRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const manageVolume = async (req: FastifyRequest, reply: FastifyReply) => {
    projectOf(deps, req);
    const v = validBody<{ volume: Record<string, unknown> }>(req, VOLUME_MANAGE_BODY).volume;
    enforce(deps, req, 'volume_extension:volume_manage');
    const loc = locationOf(req, v, '3.16');
    const caller = callerOf(deps, req);
    const volume = await deps.manage.manageVolume(
      {
        ...loc,
        ref: refOf(v.ref),
        name: typeof v.name === 'string' && v.name ? v.name.trim() : undefined,
        description: typeof v.description === 'string' && v.description ? v.description.trim() : undefined,
        volumeType: (v.volume_type as string | null | undefined) || undefined,
        metadata: stringMap(v.metadata, 'metadata'),
        availabilityZone: (v.availability_zone as string | null | undefined) ?? undefined,
        bootable: v.bootable === undefined ? false : boolParam(v.bootable, 'bootable'),
      },
      caller,
    );
    reply.code(202);
    return { volume: volumeDetail(req, volume, { admin: caller.isAdmin }) };
  };
  const manageSnapshot = async (req: FastifyRequest, reply: FastifyReply) => {
    projectOf(deps, req);
    const s = validBody<{ snapshot: Record<string, unknown> }>(req, SNAPSHOT_MANAGE_BODY).snapshot;
    const caller = callerOf(deps, req);
    const volume = await deps.volumes.get(s.volume_id as string, caller);
    enforce(deps, req, 'snapshot_extension:snapshot_manage', { project_id: volume.project_id });
    const snap = await deps.manage.manageSnapshot(
      volume,
      { ref: refOf(s.ref), name: (s.name as string | null | undefined) ?? null, description: (s.description as string | null | undefined) ?? null, metadata: stringMap(s.metadata, 'metadata') },
      caller,
    );
    reply.code(202);
    return { snapshot: snapshotView(req, snap) };
  };
  const list = (kind: 'volume' | 'snapshot', detail: boolean) => async (req: FastifyRequest) => {
    projectOf(deps, req);
    enforce(deps, req, kind === 'volume' ? 'volume_extension:list_manageable' : 'snapshot_extension:list_manageable');
    const q = req.query as Record<string, string>;
    const loc = locationOf(req, q, '3.17');
    const entries = await deps.manage.manageable(kind, loc, pageOf(deps, q));
    return { [`manageable-${kind}s`]: entries.map((e) => manageableView(e, detail, kind === 'snapshot')) };
  };
  const v3 =
    <T>(fn: (req: FastifyRequest, reply: FastifyReply) => Promise<T>) =>
    (req: FastifyRequest, reply: FastifyReply) => {
      need38(req);
      return fn(req, reply);
    };

  app.post(`${P}/os-volume-manage`, manageVolume);
  app.post(`${P}/manageable_volumes`, v3(manageVolume));
  app.get(`${P}/os-volume-manage`, list('volume', false));
  app.get(`${P}/os-volume-manage/detail`, list('volume', true));
  app.get(`${P}/manageable_volumes`, v3(list('volume', false)));
  app.get(`${P}/manageable_volumes/detail`, v3(list('volume', true)));
  app.post(`${P}/os-snapshot-manage`, manageSnapshot);
  app.post(`${P}/manageable_snapshots`, v3(manageSnapshot));
  app.get(`${P}/os-snapshot-manage`, list('snapshot', false));
  app.get(`${P}/os-snapshot-manage/detail`, list('snapshot', true));
  app.get(`${P}/manageable_snapshots`, v3(list('snapshot', false)));
  app.get(`${P}/manageable_snapshots/detail`, v3(list('snapshot', true)));
}

/** The os-unmanage volume action (upstream's volume_unmanage extension): 202, the volume leaves Cinder, its data stays. */
export async function unmanageVolumeAction(deps: ApiDeps, req: FastifyRequest): Promise<void> {
  projectOf(deps, req);
  const v = await deps.volumes.get((req.params as { volume_id: string }).volume_id, callerOf(deps, req));
  enforce(deps, req, 'volume_extension:volume_unmanage', { project_id: v.project_id });
  await deps.manage.unmanageVolume(v, callerOf(deps, req));
}

/** The os-unmanage snapshot action (snapshot_unmanage extension). */
export async function unmanageSnapshotAction(deps: ApiDeps, req: FastifyRequest): Promise<void> {
  projectOf(deps, req);
  const s = await deps.volumes.getSnapshotRow((req.params as { snapshot_id: string }).snapshot_id, callerOf(deps, req));
  enforce(deps, req, 'snapshot_extension:snapshot_unmanage', { project_id: s.project_id });
  await deps.manage.unmanageSnapshot(s);
}
