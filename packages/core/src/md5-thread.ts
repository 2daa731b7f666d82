/**
 * md5 of byte streams on one helper thread per process, shared by concurrent
 * jobs: md5 costs more CPU per byte than copying the bytes to disk, so a process
 * that also reads sockets and writes files keeps up only when the hash runs on
 * another core. Bytes are gathered into messages and transferred, not copied
 * again; a job that falls too far behind makes its writer wait.
 */
import { Worker } from 'node:worker_threads';

/** Bytes per message to the md5 thread: small chunks are gathered, so messages stay few. */
const MD5_MESSAGE_BYTES = 1024 * 1024;
/** How far the md5 thread may fall behind before reading waits for it. */
const MD5_BACKLOG_BYTES = 16 * 1024 * 1024;
/** Buffers kept for reuse: one job's whole backlog. */
const MAX_SPARE_BUFFERS = MD5_BACKLOG_BYTES / MD5_MESSAGE_BYTES;

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
    parentPort.postMessage({ id, op: 'ack', n, bytes }, [bytes]);
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

type WorkerReply = { id: number; op: 'ack'; n: number; bytes: ArrayBuffer } | { id: number; op: 'digest'; hex: string };

/** One md5 thread per process, shared by concurrent uploads; it holds the process open only while a job runs. */
export class Md5Thread {
  private readonly worker = new Worker(MD5_WORKER_SOURCE, { eval: true });
  private readonly jobs = new Map<number, Md5Job>();
  /**
   * Message buffers the thread has hashed and handed back. Reused rather than allocated per message:
   * a fresh 256 KiB buffer is zero-filled, page-faulted in and later collected, which cost the main
   * thread more than the copy into it.
   */
  private readonly spare: ArrayBuffer[] = [];
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
      job.buffer ??= new Uint8Array(this.spare.pop() ?? new ArrayBuffer(MD5_MESSAGE_BYTES));
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
    if (m.op === 'ack' && this.spare.length < MAX_SPARE_BUFFERS) this.spare.push(m.bytes);
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

/** The process's md5 thread, started again if it died. */
export function md5ThreadFor(): Md5Thread {
  if (!md5Thread || md5Thread.dead) md5Thread = new Md5Thread();
  return md5Thread;
}
