/**
 * Host programs are forked by a small helper process, not by the service itself.
 *
 * Node forks synchronously (libuv's fork(), whose cost grows with the parent's memory
 * mappings): about 7 ms per program in a service process of a few hundred MB on these
 * VMs, 5–40 ms under load, during which the service's event loop stands still, and a
 * Neutron agent sync runs dozens of `ip`/`bridge`/`nft`. The helper is plain JavaScript
 * of a few dozen lines (about 40 MB): its forks take ~1.5 ms and none of them stalls the
 * service. Upstream keeps its root-running helper (privsep) apart for a similar reason.
 *
 * The helper only executes: runCommand has checked the program and every argument and
 * built the environment before a request is sent, and logs the outcome. One helper per
 * process, started on the first call, started again if it dies; it holds the process open
 * only while a call runs, and exits when its parent goes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface SpawnRequest {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  input?: string | Uint8Array;
  timeoutMs: number;
  killGraceMs: number;
  maxOutputBytes: number;
  /** Open an IPC channel to the program and pass its messages (and the handles they carry) on. */
  ipc: boolean;
}

export interface SpawnOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** Set when the helper ended the program. */
  failure?: 'timeout' | 'output_limit';
  /** Set when the program could not be started (or the helper died under it). */
  spawnError?: string;
}

// Its own file (not `node -e SOURCE`), so that `ps` shows a name rather than the whole program.
const HELPER_PATH = fileURLToPath(new URL('./exec-helper.cjs', import.meta.url));

type HelperReply = { op: 'message'; id: number; message: unknown } | { op: 'done'; id: number; out: SpawnOutcome };

interface Call {
  resolve(out: SpawnOutcome): void;
  onMessage?: (message: unknown, handle: unknown) => void;
}

class Spawner {
  private readonly calls = new Map<number, Call>();
  private nextId = 1;

  constructor(private readonly helper: ChildProcess) {
    helper.on('message', (m: HelperReply, handle: unknown) => {
      const call = this.calls.get(m.id);
      if (!call) return;
      if (m.op === 'message') {
        call.onMessage?.(m.message, handle);
        return;
      }
      this.calls.delete(m.id);
      this.idle();
      // Structured clone gives Uint8Arrays back; callers read Buffers (views, not copies).
      const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
      call.resolve({ ...m.out, stdout: buf(m.out.stdout), stderr: buf(m.out.stderr) });
    });
    const die = (why: string) => {
      if (spawner === this) spawner = undefined;
      for (const call of this.calls.values()) call.resolve({ code: null, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), spawnError: why });
      this.calls.clear();
    };
    helper.on('error', (e) => die(`exec helper failed: ${e.message}`));
    helper.on('exit', (code, signal) => die(`exec helper exited (${signal ?? code})`));
    this.idle();
  }

  run(req: SpawnRequest, onMessage?: Call['onMessage']): Promise<SpawnOutcome> {
    const id = this.nextId++;
    if (this.calls.size === 0) this.busy();
    return new Promise((resolve) => {
      this.calls.set(id, { resolve, onMessage });
      this.helper.send({ op: 'run', id, req });
    });
  }

  private busy(): void {
    this.helper.ref();
    this.helper.channel?.ref();
  }

  private idle(): void {
    if (this.calls.size) return;
    this.helper.unref();
    this.helper.channel?.unref();
  }
}

let spawner: Spawner | undefined;

/** Runs one program through the process's exec helper; never rejects (see spawnError). */
export function spawnViaHelper(req: SpawnRequest, onMessage?: (message: unknown, handle: unknown) => void): Promise<SpawnOutcome> {
  spawner ??= new Spawner(
    spawn(process.execPath, [HELPER_PATH], {
      // Not the service's environment (credentials, NODE_OPTIONS with a TypeScript loader): each request carries its own.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
    }),
  );
  return spawner.run(req, onMessage);
}
