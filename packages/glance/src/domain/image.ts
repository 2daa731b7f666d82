/**
 * The image as Glance's domain layer sees it, and the rules every code path
 * shares: the status machine (glance/domain Image.valid_state_targets) and the
 * attribute classes the API refuses to let clients set.
 */
export const STATUSES = ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] as const;
export type ImageStatus = (typeof STATUSES)[number];

export const VISIBILITIES = ['community', 'public', 'private', 'shared'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

export const MEMBER_STATUSES = ['pending', 'accepted', 'rejected'] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];

/** Where an image's bytes live: one per store holding a copy. */
export interface ImageLocation {
  id: string;
  store: string;
  url: string;
  createdAt: number;
}

export interface Image {
  id: string;
  name: string | null;
  diskFormat: string | null;
  containerFormat: string | null;
  size: number | null;
  virtualSize: number | null;
  status: ImageStatus;
  visibility: Visibility;
  checksum: string | null;
  osHashAlgo: string | null;
  osHashValue: string | null;
  minDisk: number;
  minRam: number;
  owner: string | null;
  protected: boolean;
  osHidden: boolean;
  createdAt: number;
  updatedAt: number;
  properties: Record<string, string>;
  tags: string[];
  /** Copies of the data in the stores, oldest first. */
  locations: ImageLocation[];
}

export interface ImageMember {
  imageId: string;
  memberId: string;
  status: MemberStatus;
  createdAt: number;
  updatedAt: number;
}

/** Attributes of the image view no client writes (images.py RequestDeserializer._readonly_properties). */
export const READ_ONLY = ['created_at', 'updated_at', 'status', 'checksum', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'id', 'os_hash_algo', 'os_hash_value'] as const;

/** Never stored as properties: upstream's columns and bookkeeping of old (_reserved_properties). */
export const RESERVED = ['location', 'deleted', 'deleted_at'] as const;

/** Properties Glance itself keeps on images (import progress, locks); clients may read but not write them. */
export const RESERVED_NAMESPACE = 'os_glance';

/** Which status may follow which, as upstream's Image.valid_state_targets. */
const TRANSITIONS: Record<ImageStatus, readonly ImageStatus[]> = {
  queued: ['saving', 'uploading', 'importing', 'active', 'deleted'],
  saving: ['active', 'killed', 'deleted', 'queued'],
  uploading: ['importing', 'queued', 'deleted'],
  importing: ['active', 'deleted', 'queued'],
  active: ['pending_delete', 'deleted', 'deactivated'],
  killed: ['deleted'],
  pending_delete: ['deleted', 'active'],
  deleted: [],
  deactivated: ['active', 'deleted'],
};

/** The statuses an image may leave for `to`: what a compare-and-swap on the status column expects. */
export function sourcesOf(to: ImageStatus): ImageStatus[] {
  return STATUSES.filter((s) => TRANSITIONS[s].includes(to));
}

export function transitionMessage(from: string, to: string): string {
  return `Image status transition from ${from} to ${to} is not allowed`;
}

/** Data may only be saved once both formats are known (upstream's status setter). */
export function missingFormats(image: Pick<Image, 'diskFormat' | 'containerFormat'>): string | undefined {
  const missing = [image.diskFormat ? undefined : 'disk_format', image.containerFormat ? undefined : 'container_format'].filter((x) => x !== undefined);
  if (missing.length === 0) return undefined;
  return missing.length === 1 ? `Property ${missing[0]} must be set prior to saving data.` : `Properties ${missing.join(', ')} must be set prior to saving data.`;
}
