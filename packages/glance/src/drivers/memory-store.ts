/**
 * An ImageStore in memory, for fast tests of the layers above. It keeps whole
 * images in memory by nature; apart from that it honours the ImageStore contract
 * (store-contract.ts runs against it).
 */
import { Readable } from 'node:stream';
import { ingest } from './image-ingest.ts';
import { checkImageId, checkRange, StoreLocationError, StoreNotFoundError, type ImageStore, type StoreWriteResult } from './image-store.ts';

export class MemoryStore implements ImageStore {
  readonly capabilities = { readRange: true, localPath: false } as const;
  private readonly objects = new Map<string, Buffer>();
  private readonly prefix: string;

  constructor(readonly id = 'memory') {
    this.prefix = `memory://${id}/`;
  }

  async write(imageId: string, data: NodeJS.ReadableStream, opts: { maxBytes: number; signal?: AbortSignal }): Promise<StoreWriteResult> {
    const location = this.prefix + checkImageId(imageId);
    const parts: Buffer[] = [];
    const digest = await ingest(data, opts, async (batch) => {
      parts.push(...batch);
    });
    this.objects.set(location, Buffer.concat(parts));
    return { location, ...digest };
  }

  async read(location: string, range?: { start: number; end: number }): Promise<{ stream: NodeJS.ReadableStream; size: number }> {
    const bytes = this.objects.get(this.check(location));
    if (!bytes) throw new StoreNotFoundError(location);
    if (range) checkRange(range, bytes.length);
    const view = range ? bytes.subarray(range.start, range.end + 1) : bytes;
    return { stream: Readable.from([view], { objectMode: false }), size: bytes.length };
  }

  async delete(location: string): Promise<void> {
    this.objects.delete(this.check(location));
  }

  /** Locations currently held, for tests that check nothing was left behind. */
  locations(): string[] {
    return [...this.objects.keys()];
  }

  private check(location: string): string {
    if (!location.startsWith(this.prefix)) throw new StoreLocationError(location, `not a location of store ${this.id}`);
    checkImageId(location.slice(this.prefix.length));
    return location;
  }
}
