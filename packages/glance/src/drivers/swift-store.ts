/**
 * glance_store's `swift` backend, single-tenant: each image is an object
 * named by its id in one container (`glance`) of the Glance service user's
 * own account, located as `swift+config://<store id>/<container>/<image id>`
 * (the account is this store's, so the location names neither it nor a
 * credential, as upstream's swift+config references).
 *
 * An image smaller than large_object_size is one streamed PUT. A larger one,
 * or one whose size was not announced, goes as segments of chunk_size bytes,
 * each a streamed PUT checked against its MD5, then a static large object
 * manifest naming every segment with its ETag and size. Upstream writes a
 * dynamic manifest instead; a static one does not depend on the container
 * listing being up to date when it is read, and Swift checks each segment's
 * ETag as it serves it.
 *
 * Segment names carry a per-write nonce, so a write never touches the
 * segments of the image it replaces: the manifest PUT swaps the whole image
 * at once, and the old segments are deleted after it. A failed write deletes
 * the segments it made; a failed PUT itself leaves nothing (Swift commits an
 * object only when its body arrived whole).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { SwiftError, type SwiftClient } from '@onestack/core/swift-client.ts';
import type { SwiftStoreOptions } from '../conf.ts';
import { ingest } from './image-ingest.ts';
import {
  checkImageId,
  checkRange,
  isImageId,
  StoreLocationError,
  StoreNotFoundError,
  StoreRangeError,
  StoreSizeLimitError,
  type ImageStore,
  type StoreWriteResult,
} from './image-store.ts';

/** Swift's slo max_manifest_segments default: a manifest names at most this many segments. */
const MAX_SEGMENTS = 1000;
const CONTAINER = /^[^/]{1,256}$/;

interface Part {
  name: string;
  bytes: number;
  feed: PassThrough;
  etag: Promise<string>;
}

/** One write's objects: the parts PUT so far and the one being streamed. */
class Upload {
  readonly done: { name: string; etag: string; bytes: number }[] = [];
  private current?: Part;
  private readonly nonce = randomBytes(6).toString('hex');

  constructor(
    private readonly client: SwiftClient,
    private readonly container: string,
    private readonly imageId: string,
    /** Bytes per segment; undefined: the image is one object. */
    private readonly segmentBytes: number | undefined,
  ) {}

  get segmented(): boolean {
    return this.segmentBytes !== undefined;
  }

  async write(batch: Buffer[]): Promise<void> {
    for (let buf of batch) {
      while (buf.length > 0) {
        const part = this.current ?? this.open();
        const n = Math.min(buf.length, (this.segmentBytes ?? Infinity) - part.bytes);
        part.bytes += n;
        // The part's PUT failing (its promise rejects) must not leave us waiting for a drain that never comes.
        if (!part.feed.write(buf.subarray(0, n))) await Promise.race([once(part.feed, 'drain'), part.etag]);
        if (part.bytes === this.segmentBytes) await this.close();
        buf = buf.subarray(n);
      }
    }
  }

  /** Ends the part being streamed and waits for Swift to take it. */
  async close(): Promise<void> {
    const part = this.current;
    if (!part) return;
    part.feed.end();
    const etag = await part.etag;
    this.current = undefined;
    this.done.push({ name: part.name, etag, bytes: part.bytes });
  }

  /** Stops the part being streamed (Swift then keeps nothing of it) and deletes the segments already stored. */
  async abandon(): Promise<void> {
    const part = this.current;
    this.current = undefined;
    if (part) {
      part.feed.destroy(new Error('upload abandoned'));
      await part.etag.catch(() => undefined);
    }
    if (!this.segmented) return;
    const names = [...this.done.map((d) => d.name), ...(part ? [part.name] : [])];
    await Promise.all(names.map((n) => this.client.delete(this.container, n).catch(() => undefined)));
  }

  private open(): Part {
    const index = this.done.length + 1;
    if (this.segmented && index > MAX_SEGMENTS) throw new StoreSizeLimitError(MAX_SEGMENTS * this.segmentBytes!);
    const name = this.segmented ? `${this.imageId}-${this.nonce}-${String(index).padStart(5, '0')}` : this.imageId;
    const feed = new PassThrough({ highWaterMark: 1024 * 1024 });
    const etag = this.client.put(this.container, name, feed, { headers: { 'Content-Type': 'application/octet-stream' } });
    etag.catch(() => undefined);
    this.current = { name, bytes: 0, feed, etag };
    return this.current;
  }
}

export class SwiftImageStore implements ImageStore {
  readonly capabilities = { readRange: true, localPath: false } as const;
  private readonly prefix: string;
  private container?: Promise<void>;

  constructor(
    readonly id: string,
    private readonly client: SwiftClient,
    private readonly o: Pick<SwiftStoreOptions, 'container' | 'createContainer' | 'largeObjectSize' | 'chunkSize'>,
  ) {
    this.prefix = `swift+config://${id}/`;
  }

  async write(imageId: string, data: NodeJS.ReadableStream, opts: { maxBytes: number; signal?: AbortSignal; size?: number }): Promise<StoreWriteResult> {
    checkImageId(imageId);
    await this.ensureContainer();
    const { container } = this.o;
    const small = opts.size !== undefined && opts.size > 0 && opts.size < this.o.largeObjectSize;
    // Before the bytes stream (a stream cannot be sent again): this request renews a token Swift refuses.
    const previous = await this.segmentsOf(container, imageId);
    const upload = new Upload(this.client, container, imageId, small ? undefined : this.o.chunkSize);
    let digest;
    try {
      digest = await ingest(data, opts, (batch) => upload.write(batch));
      await upload.close();
    } catch (e) {
      await upload.abandon();
      throw e;
    }
    try {
      // A manifest names at least one segment: an empty image is an empty object.
      if (upload.done.length === 0) await this.client.put(container, imageId, Buffer.alloc(0));
      else if (upload.segmented) await this.putManifest(imageId, upload);
    } catch (e) {
      await upload.abandon();
      throw e;
    }
    // The replaced image's segments; none of this write's (their names carry its nonce).
    await this.deleteSegments(container, previous ?? []);
    return { location: `${this.prefix}${container}/${imageId}`, ...digest };
  }

  async read(location: string, range?: { start: number; end: number }): Promise<{ stream: NodeJS.ReadableStream; size: number }> {
    const { container, object } = this.parse(location);
    try {
      if (!range) {
        const { stream, size } = await this.client.get(container, object);
        return { stream, size };
      }
      const head = await this.client.head(container, object);
      if (!head) throw new StoreNotFoundError(location);
      checkRange(range, Number(head['content-length']));
      const { stream, size } = await this.client.get(container, object, { range });
      return { stream, size };
    } catch (e) {
      if (e instanceof SwiftError && e.status === 404) throw new StoreNotFoundError(location);
      if (e instanceof SwiftError && e.status === 416 && range) throw new StoreRangeError(range, 0);
      throw e;
    }
  }

  /** The manifest first, so the image is gone at once; then its segments (a crash between leaves only unreferenced segments). */
  async delete(location: string): Promise<void> {
    const { container, object } = this.parse(location);
    const segments = await this.segmentsOf(container, object);
    if (segments === undefined) return;
    await this.client.delete(container, object);
    await this.deleteSegments(container, segments);
  }

  /** Every object in the store's container, segments included (for tests that check nothing was left). */
  objects(): Promise<string[]> {
    return this.client.list(this.o.container);
  }

  private ensureContainer(): Promise<void> {
    const { container, createContainer } = this.o;
    this.container ??= this.client.ensureContainer(container, { create: createContainer }).catch((e: unknown) => {
      this.container = undefined;
      throw e;
    });
    return this.container;
  }

  private async putManifest(imageId: string, upload: Upload): Promise<void> {
    const { container } = this.o;
    const manifest = upload.done.map((d) => ({ path: `/${container}/${d.name}`, etag: d.etag, size_bytes: d.bytes }));
    // A static large object's ETag is the MD5 of its segments' ETags.
    const expectEtag = createHash('md5').update(upload.done.map((d) => d.etag).join('')).digest('hex');
    await this.client.put(container, imageId, Buffer.from(JSON.stringify(manifest)), {
      query: { 'multipart-manifest': 'put' },
      headers: { 'Content-Type': 'application/octet-stream' },
      expectEtag,
    });
  }

  /** The segments of the object if it is a manifest ([] if a plain object, undefined if missing), only ones this store names. */
  private async segmentsOf(container: string, object: string): Promise<string[] | undefined> {
    const head = await this.client.head(container, object);
    if (!head) return undefined;
    if (String(head['x-static-large-object']).toLowerCase() !== 'true') return [];
    const raw = await this.manifestOf(container, object);
    const mine = `/${container}/${object}-`;
    return raw.flatMap((m) => (typeof m.name === 'string' && m.name.startsWith(mine) ? [m.name.slice(container.length + 2)] : []));
  }

  private async manifestOf(container: string, object: string): Promise<{ name?: unknown }[]> {
    const { stream } = await this.client.get(container, object, { query: { 'multipart-manifest': 'get' } });
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    const parsed = JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
    return Array.isArray(parsed) ? (parsed as { name?: unknown }[]) : [];
  }

  private async deleteSegments(container: string, names: string[]): Promise<void> {
    for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map((n) => this.client.delete(container, n)));
  }

  /** The container and object of a location this store made; anything else is refused. */
  private parse(location: string): { container: string; object: string } {
    if (!location.startsWith(this.prefix)) throw new StoreLocationError(location, `not a location of the ${this.id} store`);
    const parts = location.slice(this.prefix.length).split('/');
    if (parts.length !== 2 || !CONTAINER.test(parts[0]) || !isImageId(parts[1])) throw new StoreLocationError(location, `not an image of the ${this.id} store`);
    return { container: parts[0], object: parts[1] };
  }
}
