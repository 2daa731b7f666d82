/**
 * Where image bytes live: upstream's glance_store drivers behind one interface.
 *
 * Contract, for every implementation (store-contract.ts checks it):
 * - write() streams: it never holds the whole image in memory. It hashes as the
 *   bytes go by (md5 for `checksum`, sha512 for `os_hash_value`, in one pass) and
 *   counts them; past `maxBytes` it stops at once with StoreSizeLimitError, on a
 *   full disk with StoreFullError, on `signal` with the signal's reason.
 * - A failed write leaves nothing behind: no partial object, no temporary data
 *   visible to read(), and no change to an object written earlier under another id.
 *   (A process killed mid-write can leave a temporary file; FileStore removes those
 *   with removePartials() at service start.)
 * - A successful write is durable (synced) before it resolves, and the object
 *   appears whole or not at all: readers never see a half-written image.
 * - Writing an imageId again replaces that image's object atomically, so a retry
 *   after a crash needs no cleanup; deciding whether a second upload is allowed
 *   (409 on an active image) is the API's job, not the store's.
 * - write() stops reading `data` when it fails but does not destroy it: the caller
 *   owns the source (an HTTP layer may still want to answer on that connection).
 * - The location returned is opaque to callers; read(), localPath() and delete()
 *   accept only locations this store produced (anything else, such as a path
 *   outside the store, is refused with StoreLocationError).
 * - read() of a missing object throws StoreNotFoundError; a range outside the
 *   object throws StoreRangeError (416). `size` is always the whole object's size,
 *   whether or not a range was asked for.
 * - delete() is idempotent: a location that is already gone is fine.
 */
import { ApiError } from '@onestack/core/errors.ts';

export interface StoreWriteResult {
  location: string;
  size: number;
  /** md5 of the bytes, hex: the image's `checksum`. */
  checksum: string;
  osHashAlgo: 'sha512';
  /** hex */
  osHashValue: string;
}

export interface StoreCapabilities {
  /** read() serves byte ranges without reading what comes before them. */
  readRange: boolean;
  /** localPath() gives a file qemu-img can open. */
  localPath: boolean;
}

export interface ImageStore {
  /** The store id shown in /v2/info/stores ('file' by default). */
  readonly id: string;
  readonly capabilities: StoreCapabilities;
  /** `size` is what the client announced, if anything: a store may choose a layout by it, never trusts it. */
  write(imageId: string, data: NodeJS.ReadableStream, opts: { maxBytes: number; signal?: AbortSignal; size?: number }): Promise<StoreWriteResult>;
  /** `end` is inclusive, as in an HTTP Range header. */
  read(location: string, range?: { start: number; end: number }): Promise<{ stream: NodeJS.ReadableStream; size: number }>;
  /** A file path qemu-img can read, for stores that have one (capabilities.localPath). */
  localPath?(location: string): string;
  delete(location: string): Promise<void>;
}

/** More than maxBytes arrived: upstream answers 413 (image_size_cap, or the quota the caller folded into maxBytes). */
export class StoreSizeLimitError extends ApiError {
  constructor(readonly maxBytes: number) {
    super('payload_too_large', 'The provided image is too large.');
    this.name = 'StoreSizeLimitError';
  }
}

export class StoreFullError extends ApiError {
  constructor(storeId: string, cause: unknown) {
    super('payload_too_large', `Image storage media is full: no space left in store ${storeId}`, { cause });
    this.name = 'StoreFullError';
  }
}

export class StoreNotFoundError extends ApiError {
  constructor(location: string) {
    super('not_found', `Image data not found at ${location}`);
    this.name = 'StoreNotFoundError';
  }
}

export class StoreLocationError extends ApiError {
  constructor(location: string, why: string) {
    super('bad_request', `Invalid location ${JSON.stringify(location)}: ${why}`);
    this.name = 'StoreLocationError';
  }
}

export class StoreRangeError extends ApiError {
  constructor(
    readonly range: { start: number; end: number },
    readonly size: number,
  ) {
    super('bad_request', `Requested range ${range.start}-${range.end} not satisfiable for an image of ${size} bytes`, {
      status: 416,
      headers: { 'Content-Range': `bytes */${size}` },
    });
    this.name = 'StoreRangeError';
  }
}

/** Image ids name objects in stores: a conservative character set, never a path. */
const IMAGE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function isImageId(imageId: string): boolean {
  return IMAGE_ID.test(imageId);
}

export function checkImageId(imageId: string): string {
  if (!isImageId(imageId)) throw new StoreLocationError(imageId, 'not a valid image id');
  return imageId;
}

/** Checks a requested range against an object of `size` bytes (end inclusive). */
export function checkRange(range: { start: number; end: number }, size: number): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= size) {
    throw new StoreRangeError(range, size);
  }
}
