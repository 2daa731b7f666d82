import type { Task } from '../domain/image-repo.ts';
import type { Image, ImageMember } from '../domain/image.ts';
import { isoTime } from '../domain/time.ts';

/** Properties Glance keeps for itself and never shows (images.py ResponseSerializer._hidden_properties). */
const HIDDEN = ['os_glance_stage_host', 'os_glance_hash_op_host'];

/** An image as upstream's ResponseSerializer._format_image renders it, in the same key order. */
export function imageView(image: Image): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(image.properties)) if (!HIDDEN.includes(k)) view[k] = v;
  Object.assign(view, {
    name: image.name,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    visibility: image.visibility,
    size: image.size,
    virtual_size: image.virtualSize,
    status: image.status,
    checksum: image.checksum,
    protected: image.protected,
    min_ram: image.minRam,
    min_disk: image.minDisk,
    owner: image.owner,
    os_hidden: image.osHidden,
    os_hash_algo: image.osHashAlgo,
    os_hash_value: image.osHashValue,
    id: image.id,
    created_at: isoTime(image.createdAt),
    updated_at: isoTime(image.updatedAt),
    tags: [...image.tags],
    self: `/v2/images/${image.id}`,
    file: `/v2/images/${image.id}/file`,
    schema: '/v2/schemas/image',
  });
  // Multi-store deployments say where the data is.
  if (image.locations.length) view.stores = image.locations.map((l) => l.store).join(',');
  return view;
}

export function memberView(m: ImageMember): Record<string, unknown> {
  return {
    member_id: m.memberId,
    image_id: m.imageId,
    status: m.status,
    created_at: isoTime(m.createdAt),
    updated_at: isoTime(m.updatedAt),
    schema: '/v2/schemas/member',
  };
}

/** A task as tasks_get_by_image formats it. */
export function taskView(t: Task): Record<string, unknown> {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    owner: t.owner,
    expires_at: t.expiresAt === null ? null : isoTime(t.expiresAt),
    created_at: isoTime(t.createdAt),
    updated_at: isoTime(t.updatedAt),
    deleted_at: null,
    deleted: false,
    image_id: t.imageId,
    request_id: t.requestId,
    user_id: t.userId,
    input: t.input,
    result: t.result,
    message: t.message,
  };
}
