import type { FastifyRequest } from 'fastify';
import type { AttachmentRow, BackupRow, SnapshotRow } from '../db/schema.ts';
import type { VolumeType } from '../domain/volume-types.ts';
import type { Volume } from '../domain/volumes.ts';
import { parseJson } from '../domain/volumes.ts';
import { ISO, mv } from './context.ts';

export function baseUrl(req: FastifyRequest): string {
  const proto = (req.headers['x-forwarded-proto'] as string | undefined) ?? req.protocol;
  return `${proto}://${req.headers.host}`;
}

export function links(req: FastifyRequest, projectId: string, kind: string, id: string) {
  const base = baseUrl(req);
  return [
    { href: `${base}/v3/${projectId}/${kind}/${id}`, rel: 'self' },
    { href: `${base}/${projectId}/${kind}/${id}`, rel: 'bookmark' },
  ];
}

export function volumeSummary(req: FastifyRequest, v: Volume) {
  return { id: v.id, name: v.name, links: links(req, v.project_id, 'volumes', v.id) };
}

export function volumeAttachmentView(a: AttachmentRow) {
  return { server_id: a.instance_uuid, attachment_id: a.id, attached_at: ISO(a.attach_time), host_name: a.attached_host, volume_id: a.volume_id, device: a.mountpoint, id: a.volume_id };
}

export function volumeDetail(req: FastifyRequest, v: Volume, opts: { admin: boolean }) {
  const out: Record<string, unknown> = {
    id: v.id,
    name: v.name,
    description: v.description,
    status: v.status,
    size: v.size,
    availability_zone: v.availability_zone,
    created_at: ISO(v.created_at),
    updated_at: ISO(v.updated_at),
    attachments: v.attachments.filter((a) => a.attach_status === 'attached').map(volumeAttachmentView),
    links: links(req, v.project_id, 'volumes', v.id),
    volume_type: v.typeName,
    snapshot_id: v.snapshot_id,
    source_volid: v.source_volid,
    metadata: v.metadata,
    user_id: v.user_id,
    bootable: v.bootable ? 'true' : 'false',
    encrypted: v.encrypted === 1,
    replication_status: null,
    consistencygroup_id: v.consistencygroup_id,
    multiattach: v.multiattach === 1,
    'os-vol-tenant-attr:tenant_id': v.project_id,
  };
  if (Object.keys(v.imageMetadata).length) out.volume_image_metadata = v.imageMetadata;
  if (opts.admin) {
    // upstream's detail view shows admins the plain field too; Nova's swap reads it.
    out.migration_status = v.migration_status;
    out['os-vol-host-attr:host'] = v.host;
    out['os-vol-mig-status-attr:migstat'] = v.migration_status;
    out['os-vol-mig-status-attr:name_id'] = v.name_id;
  }
  if (mv(req, '3.13')) out.group_id = v.group_id;
  if (mv(req, '3.21')) out.provider_id = null;
  if (mv(req, '3.48')) {
    out.service_uuid = null;
    out.shared_targets = false;
  }
  if (mv(req, '3.61') && opts.admin) out.cluster_name = null;
  if (mv(req, '3.63')) out.volume_type_id = v.volume_type_id;
  return out;
}

export function snapshotView(req: FastifyRequest, s: SnapshotRow) {
  const out: Record<string, unknown> = {
    id: s.id,
    name: s.name,
    description: s.description,
    status: s.status,
    size: s.volume_size,
    volume_id: s.volume_id,
    created_at: ISO(s.created_at),
    updated_at: ISO(s.updated_at),
    metadata: (parseJson(s.metadata) as Record<string, string> | undefined) ?? {},
  };
  // volume_extension:extended_snapshot_attributes is a reader rule upstream: every caller who sees the snapshot.
  out['os-extended-snapshot-attributes:progress'] = s.progress;
  out['os-extended-snapshot-attributes:project_id'] = s.project_id;
  if (mv(req, '3.41')) out.user_id = s.user_id;
  if (mv(req, '3.14')) out.group_snapshot_id = s.group_snapshot_id;
  if (mv(req, '3.65')) out.consumes_quota = true;
  return out;
}

export function typeView(t: VolumeType, opts: { specs: boolean }) {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    is_public: t.isPublic,
    'os-volume-type-access:is_public': t.isPublic,
    extra_specs: opts.specs ? t.extraSpecs : undefined,
    qos_specs_id: null,
  };
}

export function attachmentView(a: AttachmentRow, opts: { detail: boolean }) {
  const base = { id: a.id, status: a.attach_status, instance: a.instance_uuid, volume_id: a.volume_id };
  if (!opts.detail) return base;
  return {
    ...base,
    attached_at: ISO(a.attach_time),
    detached_at: ISO(a.detach_time),
    attach_mode: a.attach_mode,
    connection_info: (parseJson(a.connection_info) as Record<string, unknown> | undefined) ?? {},
  };
}

export function backupSummary(req: FastifyRequest, b: BackupRow) {
  return { id: b.id, name: b.name, links: links(req, b.project_id, 'backups', b.id) };
}

export function backupDetail(req: FastifyRequest, b: BackupRow, opts: { projectAttr: boolean }) {
  const out: Record<string, unknown> = {
    id: b.id,
    status: b.status,
    size: b.size,
    object_count: b.object_count,
    availability_zone: b.availability_zone,
    container: b.container,
    created_at: ISO(b.created_at),
    updated_at: ISO(b.updated_at),
    name: b.name,
    description: b.description,
    fail_reason: b.fail_reason,
    volume_id: b.volume_id,
    links: links(req, b.project_id, 'backups', b.id),
    is_incremental: b.parent_id !== null,
    has_dependent_backups: b.num_dependent_backups > 0,
    snapshot_id: b.snapshot_id,
    data_timestamp: ISO(b.data_timestamp),
  };
  if (mv(req, '3.18') && opts.projectAttr) out['os-backup-project-attr:project_id'] = b.project_id;
  if (mv(req, '3.43')) out.metadata = b.metadata ? JSON.parse(b.metadata) : {};
  if (mv(req, '3.56')) out.user_id = b.user_id;
  return out;
}
