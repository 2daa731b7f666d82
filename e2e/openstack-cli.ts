/**
 * `/usr/bin/openstack ARGS` for the end-to-end tests, through one fork server per test process
 * (openstack-forkserver.py): Debian's CLI code, unmodified, with the command's own argv,
 * environment, working directory and exit status, in a process of its own, without the
 * 1.5 s of Python imports each command would spend first. Settles as promisify(execFile)
 * does: stdout and stderr, or an Error carrying them with `code` (or `signal`, `killed`).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** The real clients live under Debian's python, whatever python3 is first on PATH. */
export const PYTHON = '/usr/bin/python3';
const SERVER = join(dirname(fileURLToPath(import.meta.url)), 'openstack-forkserver.py');

export interface CliOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Past this the command gets SIGTERM and the call fails with `killed` set. */
  timeout?: number;
}

export interface CliError extends Error {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  killed: boolean;
}

interface Pending {
  args: string[];
  files: { stdout: string; stderr: string };
  pid?: number;
  timer?: NodeJS.Timeout;
  killed: boolean;
  resolve(r: { stdout: string; stderr: string }): void;
  reject(e: Error): void;
}

/** SIGTERM to a command that may have exited meanwhile (its status not read yet). */
function terminate(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // ESRCH: it is gone; its status reply settles the call.
  }
}

class ForkServer {
  private readonly proc: ChildProcessByStdio<Writable, Readable, null>;
  private readonly dir = mkdtempSync(join(tmpdir(), 'onestack-e2e-cli-'));
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(onGone: () => void) {
    this.proc = spawn(PYTHON, [SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.onReply(JSON.parse(line)));
    this.proc.on('exit', (code, signal) => {
      onGone();
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`the openstack fork server exited (${signal ?? code}) under: openstack ${p.args.join(' ')}`));
      }
      this.pending.clear();
      rmSync(this.dir, { recursive: true, force: true });
    });
    process.once('exit', () => rmSync(this.dir, { recursive: true, force: true }));
    this.idle();
  }

  run(args: string[], opts: CliOptions): Promise<{ stdout: string; stderr: string }> {
    const id = this.nextId++;
    const files = { stdout: join(this.dir, `${id}.out`), stderr: join(this.dir, `${id}.err`) };
    const env = Object.fromEntries(Object.entries(opts.env).filter((e): e is [string, string] => e[1] !== undefined));
    if (this.pending.size === 0) this.hold(true);
    return new Promise((resolve, reject) => {
      const p: Pending = { args, files, killed: false, resolve, reject };
      this.pending.set(id, p);
      if (opts.timeout) {
        p.timer = setTimeout(() => {
          p.killed = true;
          if (p.pid) terminate(p.pid);
        }, opts.timeout);
      }
      this.proc.stdin.write(`${JSON.stringify({ id, argv: args, env, cwd: opts.cwd ?? process.cwd(), ...files })}\n`);
    });
  }

  private onReply(m: { id: number; pid?: number; status?: number }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.status === undefined) {
      p.pid = m.pid;
      if (p.killed && p.pid) terminate(p.pid);
      return;
    }
    this.pending.delete(m.id);
    this.idle();
    clearTimeout(p.timer);
    const read = (f: string) => {
      const text = readFileSync(f, 'utf8');
      rmSync(f, { force: true });
      return text;
    };
    const stdout = read(p.files.stdout);
    const stderr = read(p.files.stderr);
    if (m.status === 0) return p.resolve({ stdout, stderr });
    const err = new Error(`Command failed: /usr/bin/openstack ${p.args.join(' ')}\n${stderr}`) as CliError;
    Object.assign(err, { stdout, stderr, code: m.status > 0 ? m.status : null, signal: m.status < 0 ? `signal ${-m.status}` : null, killed: p.killed });
    p.reject(err);
  }

  private idle(): void {
    if (this.pending.size === 0) this.hold(false);
  }

  /** The server holds the test process open only while a command runs. */
  private hold(on: boolean): void {
    for (const h of [this.proc, this.proc.stdout as unknown as Socket, this.proc.stdin as unknown as Socket]) {
      if (on) h.ref();
      else h.unref();
    }
  }
}

let server: ForkServer | undefined;

export function openstack(args: string[], opts: CliOptions): Promise<{ stdout: string; stderr: string }> {
  server ??= new ForkServer(() => (server = undefined));
  return server.run(args, opts);
}
