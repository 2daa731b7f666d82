import { ApiError, badRequest, conflict, forbidden } from '@onestack/core/errors.ts';
import type { GlanceConfig } from '../conf.ts';
import type { ImageChanges } from './image-repo.ts';
import { RESERVED, RESERVED_NAMESPACE, type Image, type Visibility } from './image.ts';

/**
 * The attribute rules of upstream's deserializer, ImageFactory and Image
 * setters, applied to a create body or to one JSON Patch operation at a time.
 * Pure: nothing here reads or writes the database.
 */

/** Columns a body or a patch may set, by wire name. */
const CORE = ['name', 'disk_format', 'container_format', 'visibility', 'protected', 'os_hidden', 'min_disk', 'min_ram', 'owner', 'tags'] as const;
type Core = (typeof CORE)[number];

/** Never accepted in a create body (images.py _disallowed_properties). */
const DISALLOWED_ON_CREATE = ['direct_url', 'self', 'file', 'schema', 'stores'];
/** Refused by ImageFactory._check_readonly on create: base attributes only Glance sets. */
const READ_ONLY_ON_CREATE = ['created_at', 'updated_at', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size'];
/** ImageFactory._reserved_properties: what may not become a free-form property. */
const RESERVED_PROPERTIES = ['owner', 'locations', 'deleted', 'deleted_at', 'direct_url', 'self', 'file', 'schema'];

export const readOnly = (key: string) => forbidden(`Attribute '${key}' is read-only.`);
export const reserved = (key: string) => forbidden(`Attribute '${key}' is reserved.`);

export function isReservedName(key: string): boolean {
  return (RESERVED as readonly string[]).includes(key) || key.startsWith(RESERVED_NAMESPACE);
}

/** Attributes refused by name before the schema is even consulted. */
export function checkCreateAllowed(body: Record<string, unknown>): void {
  for (const key of DISALLOWED_ON_CREATE) if (key in body) throw readOnly(key);
}

export interface CreateRequest {
  id?: string;
  name: string | null;
  diskFormat: string | null;
  containerFormat: string | null;
  visibility: Visibility;
  minDisk: number;
  minRam: number;
  /** undefined: the caller's project. */
  owner?: string | null;
  protected: boolean;
  osHidden: boolean;
  properties: Record<string, string>;
  tags: string[];
}

/** A schema-valid create body split into columns and free-form properties, with upstream's checks in upstream's order. */
export function createRequest(body: Record<string, unknown>): CreateRequest {
  const { tags, ...rest } = body as { tags?: string[] } & Record<string, unknown>;
  const base = new Set<string>([...CORE, 'id', ...READ_ONLY_ON_CREATE]);
  const properties: Record<string, string> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (base.has(key)) continue;
    if (key.length > 255) throw badRequest('Custom property should not be greater than 255 characters.');
    if (isReservedName(key)) throw reserved(key);
    properties[key] = value as string;
  }
  for (const key of READ_ONLY_ON_CREATE) if (key in rest) throw readOnly(key);
  for (const key of RESERVED_PROPERTIES) if (key in properties) throw reserved(key);
  const minDisk = nonNegative('min_disk', rest.min_disk ?? 0);
  const minRam = nonNegative('min_ram', rest.min_ram ?? 0);
  return {
    ...(rest.id !== undefined ? { id: rest.id as string } : {}),
    name: (rest.name as string | null | undefined) ?? null,
    diskFormat: (rest.disk_format as string | null | undefined) ?? null,
    containerFormat: (rest.container_format as string | null | undefined) ?? null,
    // Upstream's default since Ocata: shared images are private until a member is added.
    visibility: (rest.visibility as Visibility | undefined) ?? 'shared',
    minDisk,
    minRam,
    ...('owner' in rest ? { owner: rest.owner as string | null } : {}),
    protected: Boolean(rest.protected ?? false),
    osHidden: Boolean(rest.os_hidden ?? false),
    properties,
    tags: [...new Set(tags ?? [])],
  };
}

function nonNegative(param: string, value: unknown): number {
  const n = Number(value);
  if (n < 0) throw new ApiError('bad_request', `Invalid value '${n}' for parameter '${param}': Cannot be a negative value`);
  return n;
}

/** One decoded JSON Patch operation (images.py RequestDeserializer.update). */
export interface Change {
  op: 'add' | 'remove' | 'replace';
  path: string[];
  value?: unknown;
  /** 4 for the v2.0 patch media type, 10 for v2.1: they differ on `add` to an existing attribute. */
  draft: 4 | 10;
}

/** The image as a patch sees it, before it is saved: columns by wire name, properties, tags. */
export interface Draft {
  status: Image['status'];
  core: Record<Core, unknown>;
  properties: Record<string, string>;
}

export function draftOf(image: Image): Draft {
  return {
    status: image.status,
    core: {
      name: image.name,
      disk_format: image.diskFormat,
      container_format: image.containerFormat,
      visibility: image.visibility,
      protected: image.protected,
      os_hidden: image.osHidden,
      min_disk: image.minDisk,
      min_ram: image.minRam,
      owner: image.owner,
      tags: [...image.tags],
    },
    properties: { ...image.properties },
  };
}

function isCore(key: string): key is Core {
  return (CORE as readonly string[]).includes(key);
}

/** The proxy Image's attributes that are not settable columns: a patch may not remove them either. */
const OTHER_ATTRIBUTES = ['locations', 'member', 'extra_properties', 'image_id'];

/**
 * Applies one add/replace/remove to a draft (ImagesController._do_*).
 * Locations are refused earlier: they are never shown here.
 */
export function applyChange(draft: Draft, change: Change, o: { isAdmin: boolean }): void {
  const key = change.path[0];
  if (change.op === 'remove') {
    if (isCore(key) || OTHER_ATTRIBUTES.includes(key)) throw forbidden(`Property ${key} may not be removed.`);
    if (!(key in draft.properties)) throw conflict(`Property ${key} does not exist.`);
    delete draft.properties[key];
    return;
  }
  if (change.op === 'replace' && key === 'owner' && !o.isAdmin) throw forbidden("Owner can't be updated by non admin.");
  if (isCore(key)) {
    if (change.op === 'add' && change.draft === 4) throw conflict(`Property ${key} already present.`);
    setCore(draft, key, change.value);
    return;
  }
  if (change.op === 'replace' && !(key in draft.properties)) throw conflict(`Property ${key} does not exist.`);
  if (change.op === 'add' && change.draft === 4 && key in draft.properties) throw conflict(`Property ${key} already present.`);
  draft.properties[key] = change.value as string;
}

function setCore(draft: Draft, key: Core, value: unknown): void {
  switch (key) {
    case 'disk_format':
    case 'container_format':
      if (draft.status !== 'queued' && draft.status !== 'importing') throw forbidden(`Attribute ${key} can be only replaced for a queued image.`);
      break;
    case 'min_disk':
    case 'min_ram':
      nonNegative(key, value);
      break;
    case 'tags':
      value = [...new Set(value as string[])];
      break;
  }
  draft.core[key] = value;
}

/** What saving the draft changes, relative to the image it started from. */
export function changesOf(image: Image, draft: Draft): ImageChanges {
  const before = draftOf(image);
  const columns: ImageChanges['columns'] = {};
  for (const key of CORE) {
    if (key === 'tags' || JSON.stringify(before.core[key]) === JSON.stringify(draft.core[key])) continue;
    const v = draft.core[key];
    (columns as Record<string, unknown>)[key] = key === 'protected' || key === 'os_hidden' ? (v ? 1 : 0) : v;
  }
  const setProperties = Object.fromEntries(Object.entries(draft.properties).filter(([k, v]) => before.properties[k] !== v));
  const removeProperties = Object.keys(before.properties).filter((k) => !(k in draft.properties));
  const tags = draft.core.tags as string[];
  const tagsChanged = JSON.stringify([...tags].sort()) !== JSON.stringify([...before.core.tags as string[]].sort());
  return { columns, setProperties, removeProperties, ...(tagsChanged ? { tags } : {}) };
}

/** Upstream's legacy per-image quotas (glance/quota): 413 past image_property_quota or image_tag_quota. */
export function checkImageQuotas(properties: Record<string, unknown>, tags: string[], config: Pick<GlanceConfig, 'propertyQuota' | 'tagQuota'>): void {
  const nProps = Object.keys(properties).length;
  if (config.propertyQuota >= 0 && nProps > config.propertyQuota) {
    throw new ApiError(
      'payload_too_large',
      `The limit has been exceeded on the number of allowed image properties. Attempted: ${nProps}, Maximum: ${config.propertyQuota}`,
    );
  }
  if (config.tagQuota >= 0 && tags.length > config.tagQuota) {
    throw new ApiError('payload_too_large', `The limit has been exceeded on the number of allowed image tags. Attempted: ${tags.length}, Maximum: ${config.tagQuota}`);
  }
}
