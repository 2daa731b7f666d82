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

/** Swift's slo max_manifest_segments default: a manifest names at most this many entries. */
const MAX_SEGMENTS = 1000;
const CONTAINER = /^[^/]{1,256}$/;

interface Part {
  name: string;
  bytes: number;
  feed: PassThrough;
  etag: Promise<string>;
}

/** An object a manifest names: a segment, or a manifest of segments. */
interface Entry {
  name: string;
  etag: string;
  bytes: number;
}

/** Stores a static large object manifest of `entries`; its ETag is the MD5 of theirs. */
async function putManifest(client: SwiftClient, container: string, name: string, entries: Entry[]): Promise<Entry> {
  const manifest = entries.map((e) => ({ path: `/${container}/${e.name}`, etag: e.etag, size_bytes: e.bytes }));
  const expectEtag = createHash('md5').update(entries.map((e) => e.etag).join('')).digest('hex');
  await client.put(container, name, Buffer.from(JSON.stringify(manifest)), {
    query: { 'multipart-manifest': 'put' },
    headers: { 'Content-Type': 'application/octet-stream' },
    expectEtag,
  });
  return { name, etag: expectEtag, bytes: entries.reduce((n, e) => n + e.bytes, 0) };
}

/**
 * One write's objects: the part being streamed, the segments stored since
 * the last fold, and the manifests each `maxSegments` of them were folded
 * into (a manifest names at most that many entries, so an image can have
 * maxSegments² segments, as nested SLOs allow).
 */
class Upload {
  private segments: Entry[] = [];
  private readonly folded: Entry[] = [];
  /** Everything this write stored, for abandon(). */
  private readonly written: string[] = [];
  private current?: Part;
  private count = 0;
  private readonly nonce = randomBytes(6).toString('hex');

  constructor(
    private readonly client: SwiftClient,
    private readonly container: string,
    private readonly imageId: string,
    /** Bytes per segment; undefined: the image is one object. */
    private readonly segmentBytes: number | undefined,
    private readonly maxSegments: number,
  ) {}

  get segmented(): boolean {
    return this.segmentBytes !== undefined;
  }

  /** What the image's manifest names, in order. */
  get entries(): Entry[] {
    return [...this.folded, ...this.segments];
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
    this.segments.push({ name: part.name, etag, bytes: part.bytes });
    if (this.segments.length === this.maxSegments) await this.fold();
  }

  /** Stores the last part; folds the segments when the image's manifest would name too many entries otherwise. */
  async finish(): Promise<void> {
    await this.close();
    if (this.folded.length + this.segments.length > this.maxSegments) await this.fold();
  }

  /** Stops the part being streamed (Swift then keeps nothing of it) and deletes what this write stored. */
  async abandon(): Promise<void> {
    const part = this.current;
    this.current = undefined;
    if (part) {
      part.feed.destroy(new Error('upload abandoned'));
      await part.etag.catch(() => undefined);
    }
    if (!this.segmented) return;
    const names = [...this.written, ...(part ? [part.name] : [])];
    await Promise.all(names.map((n) => this.client.delete(this.container, n).catch(() => undefined)));
  }

  private async fold(): Promise<void> {
    const name = `${this.imageId}-${this.nonce}-m${String(this.folded.length + 1).padStart(5, '0')}`;
    this.written.push(name);
    this.folded.push(await putManifest(this.client, this.container, name, this.segments));
    this.segments = [];
  }

  private open(): Part {
    if (this.segmented && this.folded.length >= this.maxSegments) throw new StoreSizeLimitError(this.maxSegments ** 2 * this.segmentBytes!);
    const name = this.segmented ? `${this.imageId}-${this.nonce}-${String(++this.count).padStart(5, '0')}` : this.imageId;
    const feed = new PassThrough({ highWaterMark: 1024 * 1024 });
    const etag = this.client.put(this.container, name, feed, { headers: { 'Content-Type': 'application/octet-stream' } });
    etag.catch(() => undefined);
    if (this.segmented) this.written.push(name);
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
    private readonly o: Pick<SwiftStoreOptions, 'container' | 'createContainer' | 'largeObjectSize' | 'chunkSize'> & { maxSegments?: number },
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
    const upload = new Upload(this.client, container, imageId, small ? undefined : this.o.chunkSize, this.o.maxSegments ?? MAX_SEGMENTS);
    let digest;
    try {
      digest = await ingest(data, opts, (batch) => upload.write(batch));
      await upload.finish();
    } catch (e) {
      await upload.abandon();
      throw e;
    }
    try {
      // A manifest names at least one segment: an empty image is an empty object.
      if (upload.segmented && upload.entries.length > 0) await putManifest(this.client, container, imageId, upload.entries);
      else if (upload.entries.length === 0) await this.client.put(container, imageId, Buffer.alloc(0));
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

  /**
   * The objects behind the object if it is a manifest, a folded manifest's
   * own segments before it ([] if a plain object, undefined if missing); only
   * names this store gives that image's segments.
   */
  private async segmentsOf(container: string, object: string): Promise<string[] | undefined> {
    const head = await this.client.head(container, object);
    if (!head) return undefined;
    if (String(head['x-static-large-object']).toLowerCase() !== 'true') return [];
    return this.manifestSegments(container, object, `/${container}/${object}-`, 0);
  }

  private async manifestSegments(container: string, manifest: string, mine: string, depth: number): Promise<string[]> {
    const { stream } = await this.client.get(container, manifest, { query: { 'multipart-manifest': 'get' } });
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    const parsed = JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
    const names: string[] = [];
    for (const m of Array.isArray(parsed) ? (parsed as { name?: unknown; sub_slo?: unknown }[]) : []) {
      if (typeof m.name !== 'string' || !m.name.startsWith(mine)) continue;
      const name = m.name.slice(container.length + 2);
      if (m.sub_slo === true && depth < 1) names.push(...(await this.manifestSegments(container, name, mine, depth + 1)));
      names.push(name);
    }
    return names;
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
