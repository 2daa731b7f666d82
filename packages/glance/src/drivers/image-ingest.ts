/**
 * The streaming half every store shares: read an image's bytes once, count them
 * against a limit, hash them (md5 for `checksum`, sha512 for `os_hash_value`) and
 * hand them to the store in batches, with a bounded amount in memory.
 *
 * md5 and sha512 together cost more CPU per byte than copying the bytes to disk, so
 * md5 runs on a helper thread while sha512 and the I/O stay on this one: the two
 * hashes use two cores and uploads keep up with a plain copy.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { md5ThreadFor } from '@onestack/core/md5-thread.ts';
import { StoreSizeLimitError } from './image-store.ts';

export interface IngestResult {
  size: number;
  checksum: string;
  osHashAlgo: 'sha512';
  osHashValue: string;
}

/** Bytes handed to the store at once; one batch is written while the next one fills. */
const BATCH_BYTES = 1024 * 1024;
/** Chunks per batch at most (IOV_MAX): a client trickling tiny chunks must not pile up objects. */
const BATCH_CHUNKS = 1024;
/** md5 (on the helper thread) and sha512 (here) of a stream of chunks. */
class ImageDigest {
  size = 0;
  private readonly sha512: Hash = createHash('sha512');
  private readonly md5 = md5ThreadFor();
  private readonly job = this.md5.open();

  add(chunk: Buffer): Promise<void> | undefined {
    this.size += chunk.length;
    this.sha512.update(chunk);
    return this.md5.update(this.job, chunk);
  }

  async finish(): Promise<IngestResult> {
    const checksum = await this.md5.digest(this.job);
    return { size: this.size, checksum, osHashAlgo: 'sha512', osHashValue: this.sha512.digest('hex') };
  }

  abandon(): void {
    this.md5.drop(this.job);
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** The next chunk, or the signal's reason as soon as it fires, even while the source is stalled. */
function nextOrAbort<T>(next: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return next;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function chunksOf(data: NodeJS.ReadableStream): AsyncIterator<Buffer | string> {
  // The caller owns the source: stopping early must not destroy it.
  const iterable = data instanceof Readable ? data.iterator({ destroyOnReturn: false }) : data;
  return iterable[Symbol.asyncIterator]();
}

/**
 * Reads `data` to its end, counting, hashing and passing it to `sink` in batches
 * of about BATCH_BYTES, one batch in flight at a time. Throws StoreSizeLimitError
 * as soon as more than maxBytes have arrived, the signal's reason when it fires,
 * or whatever the source or the sink throws; the caller removes what the sink kept.
 */
export async function ingest(
  data: NodeJS.ReadableStream,
  opts: { maxBytes: number; signal?: AbortSignal },
  sink: (batch: Buffer[]) => Promise<void>,
): Promise<IngestResult> {
  const digest = new ImageDigest();
  const chunks = chunksOf(data);
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let inFlight: Promise<void> = Promise.resolve();
  try {
    for (;;) {
      const next = await nextOrAbort(chunks.next(), opts.signal);
      if (next.done) break;
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      if (digest.size + chunk.length > opts.maxBytes) throw new StoreSizeLimitError(opts.maxBytes);
      const behind = digest.add(chunk);
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_CHUNKS) {
        await inFlight;
        inFlight = sink(batch);
        batch = [];
        batchBytes = 0;
      }
      if (behind) await nextOrAbort(behind, opts.signal);
    }
    await inFlight;
    if (batch.length > 0) await sink(batch);
    return await digest.finish();
  } catch (e) {
    // A batch still being written must settle before the caller removes its file.
    await inFlight.catch(() => {});
    digest.abandon();
    // Not awaited: on a stalled source the iterator's return waits for the pending read.
    void chunks.return?.().catch(() => {});
    throw e;
  }
}
