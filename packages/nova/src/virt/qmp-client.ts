/**
 * A small client for QEMU's Machine Protocol over a unix socket: the greeting,
 * capabilities negotiation, commands matched to replies by id, and the event stream.
 *
 * QMP is line-delimited JSON. Replies carry the id of their command; events carry
 * none and can arrive between any two replies, so events are dispatched to listeners
 * as they come. A listener that waits for an event must be registered *before* the
 * command that causes it (waitForEvent returns at once with a promise for that).
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package?: string };
  capabilities: string[];
}

/** QEMU answered the command with an error. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

/** No answer in time, or the connection went away (QEMU exited). */
export class QmpConnectionError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'QmpConnectionError';
  }
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** A line longer than this is not QMP; stop reading rather than buffer without bound. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class QmpClient {
  readonly greeting: QmpGreeting;
  private readonly emitter = new EventEmitter();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    greeting: QmpGreeting,
    private readonly defaultTimeoutMs: number,
  ) {
    this.greeting = greeting;
    this.emitter.setMaxListeners(0);
  }

  /** Connects, reads the greeting and leaves negotiation mode (qmp_capabilities). */
  static async connect(path: string, opts: { timeoutMs?: number } = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = connect({ path });
    let buffer = '';
    let client: QmpClient | undefined;
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new QmpConnectionError(`no QMP greeting on ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(new QmpConnectionError(`QMP connect ${path}: ${err.message}`, { cause: err }));
      };
      socket.once('error', fail);
      socket.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        if (buffer.length > MAX_LINE_BYTES) {
          socket.destroy();
          fail(new Error('oversized message'));
          return;
        }
        if (client) {
          buffer = client.consume(buffer);
          return;
        }
        const nl = buffer.indexOf('\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        clearTimeout(timer);
        socket.off('error', fail);
        try {
          const msg = JSON.parse(line) as { QMP?: QmpGreeting };
          if (!msg.QMP) throw new Error(`not a QMP greeting: ${line.slice(0, 200)}`);
          resolve(msg.QMP);
        } catch (err) {
          socket.destroy();
          reject(new QmpConnectionError(`QMP connect ${path}: ${(err as Error).message}`));
        }
      });
    });
    client = new QmpClient(socket, greeting, timeoutMs);
    socket.on('error', (err) => client!.fail(new QmpConnectionError(`QMP socket error: ${err.message}`, { cause: err })));
    socket.on('close', () => client!.fail(new QmpConnectionError('QMP connection closed')));
    buffer = client.consume(buffer);
    try {
      await client.execute('qmp_capabilities');
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Runs a command and resolves with its `return` value; QmpError when QEMU refuses it. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpConnectionError(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Every event as it arrives; returns the function that unsubscribes. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /**
   * Resolves with the first event named `name` (and matching `match`) from now on.
   * Rejects after timeoutMs, or when the connection closes first.
   */
  waitForEvent(name: string, opts: { match?: (e: QmpEvent) => boolean; timeoutMs?: number } = {}): Promise<QmpEvent> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      let unsubscribe = () => {};
      const onClose = (err: Error) => {
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpConnectionError(`no QMP event ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        unsubscribe();
        this.emitter.off('closed', onClose);
      };
      unsubscribe = this.onEvent((e) => {
        if (e.event !== name || (opts.match && !opts.match(e))) return;
        cleanup();
        resolve(e);
      });
      if (this.closedError) onClose(this.closedError);
      else this.emitter.once('closed', onClose);
    });
  }

  /** Resolves when the connection is gone (QEMU exited or close() was called). */
  closed(): Promise<void> {
    if (this.closedError) return Promise.resolve();
    return new Promise((resolve) => this.emitter.once('closed', () => resolve()));
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.fail(new QmpConnectionError('QMP connection closed by the client'));
    this.socket.destroy();
  }

  private consume(buffer: string): string {
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) this.dispatch(line);
    }
    return buffer;
  }

  private dispatch(line: string): void {
    let msg: { id?: number; return?: unknown; error?: { class: string; desc: string }; event?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.event) {
      this.emitter.emit('event', msg as QmpEvent);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new QmpError(p.command, msg.error.class, msg.error.desc));
    else p.resolve(msg.return);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emitter.emit('closed', err);
  }
}
