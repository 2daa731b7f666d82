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
import { Worker } from 'node:worker_threads';
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
/** Bytes per message to the md5 thread: small chunks are gathered, so messages stay few. */
const MD5_MESSAGE_BYTES = 256 * 1024;
/** How far the md5 thread may fall behind before reading waits for it. */
const MD5_BACKLOG_BYTES = 16 * 1024 * 1024;

// Plain CommonJS evaluated in the worker, so it runs without a TypeScript loader.
const MD5_WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', ({ id, op, bytes, n }) => {
  if (op === 'update') {
    let hash = jobs.get(id);
    if (!hash) jobs.set(id, (hash = createHash('md5')));
    hash.update(new Uint8Array(bytes, 0, n));
    parentPort.postMessage({ id, op: 'ack', n });
  } else if (op === 'end') {
    const hash = jobs.get(id) ?? createHash('md5');
    jobs.delete(id);
    parentPort.postMessage({ id, op: 'digest', hex: hash.digest('hex') });
  } else {
    jobs.delete(id);
  }
});
`;

interface Md5Job {
  /** Gathers bytes for the next message; transferred (and replaced) when full. */
  buffer?: Uint8Array<ArrayBuffer>;
  filled: number;
  backlog: number;
  waiters: Array<() => void>;
  done?: { resolve(hex: string): void; reject(e: Error): void };
  failed?: Error;
}

type WorkerReply = { id: number; op: 'ack'; n: number } | { id: number; op: 'digest'; hex: string };

/** One md5 thread per process, shared by concurrent uploads; it holds the process open only while a job runs. */
class Md5Thread {
  private readonly worker = new Worker(MD5_WORKER_SOURCE, { eval: true });
  private readonly jobs = new Map<number, Md5Job>();
  private nextId = 1;
  dead = false;

  constructor() {
    this.worker.unref();
    this.worker.on('message', (m: WorkerReply) => this.onReply(m));
    const die = (e: Error) => {
      this.dead = true;
      for (const job of this.jobs.values()) this.fail(job, e);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`md5 worker exited with code ${code}`)));
  }

  open(): number {
    const id = this.nextId++;
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(id, { filled: 0, backlog: 0, waiters: [] });
    return id;
  }

  /** Resolves at once unless the thread is too far behind on this job. */
  update(id: number, chunk: Buffer): Promise<void> | undefined {
    const job = this.job(id);
    for (let taken = 0; taken < chunk.length; ) {
      job.buffer ??= new Uint8Array(MD5_MESSAGE_BYTES);
      const n = Math.min(chunk.length - taken, job.buffer.length - job.filled);
      job.buffer.set(chunk.subarray(taken, taken + n), job.filled);
      job.filled += n;
      taken += n;
      if (job.filled === job.buffer.length) this.send(id, job);
    }
    if (job.backlog <= MD5_BACKLOG_BYTES) return undefined;
    return new Promise<void>((resolve) => job.waiters.push(resolve));
  }

  digest(id: number): Promise<string> {
    const job = this.job(id);
    this.send(id, job);
    return new Promise<string>((resolve, reject) => {
      job.done = { resolve, reject };
      this.worker.postMessage({ id, op: 'end' });
    });
  }

  /** The gathered bytes go to the thread by transfer, not by copy. */
  private send(id: number, job: Md5Job): void {
    if (!job.buffer || job.filled === 0) return;
    const { buffer } = job.buffer;
    this.worker.postMessage({ id, op: 'update', bytes: buffer, n: job.filled }, [buffer]);
    job.backlog += job.filled;
    job.buffer = undefined;
    job.filled = 0;
  }

  drop(id: number): void {
    if (!this.jobs.delete(id)) return;
    if (!this.dead) this.worker.postMessage({ id, op: 'drop' });
    this.idle();
  }

  private job(id: number): Md5Job {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`md5 job ${id} is not open`);
    if (job.failed) throw job.failed;
    return job;
  }

  private onReply(m: WorkerReply): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    if (m.op === 'ack') {
      job.backlog -= m.n;
      if (job.backlog <= MD5_BACKLOG_BYTES / 2) job.waiters.splice(0).forEach((wake) => wake());
      return;
    }
    this.jobs.delete(m.id);
    this.idle();
    job.done?.resolve(m.hex);
  }

  private fail(job: Md5Job, e: Error): void {
    job.failed = e;
    job.waiters.splice(0).forEach((wake) => wake());
    job.done?.reject(e);
  }

  private idle(): void {
    if (this.jobs.size === 0) this.worker.unref();
  }
}

let md5Thread: Md5Thread | undefined;

function md5ThreadFor(): Md5Thread {
  if (!md5Thread || md5Thread.dead) md5Thread = new Md5Thread();
  return md5Thread;
}

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
