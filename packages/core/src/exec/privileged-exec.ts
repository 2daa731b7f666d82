/**
 * The one place that runs host programs (ip, bridge, nft, dnsmasq, qemu-img, losetup,
 * lvm …). Programs get argument vectors, never a shell string, so no value can be
 * reinterpreted as shell syntax; every argument is checked, every call is logged, and
 * a timeout kills the program's whole process group.
 *
 * Secrets belong on stdin (`input`), which is never logged; arguments always are.
 * runCommand's programs are forked by a small helper process (spawner.ts), so that the
 * service's event loop never stands still for a fork; startCommand's long-lived ones are
 * forked here, once each.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.ts';
import { spawnViaHelper } from './spawner.ts';

/** Bare program names resolve only here: never against the caller's PATH. */
export const PROGRAM_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'] as const;

const DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024;
const DEFAULT_KILL_GRACE_MS = 2000;
const STDERR_TAIL_CHARS = 2000;

const POSITIONAL = Symbol('positional');

/**
 * A data value (interface name, path, address …) placed where the program reads
 * operands. It may not start with `-`, so that a value coming from an API request can
 * never be taken for an option by the program.
 */
export interface Positional {
  readonly [POSITIONAL]: true;
  readonly value: string;
}

export type Arg = string | Positional;

export class UnsafeArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeArgumentError';
  }
}

function checkText(what: string, value: unknown): string {
  if (typeof value !== 'string') throw new UnsafeArgumentError(`${what} must be a string, got ${typeof value}`);
  if (value.includes('\0')) throw new UnsafeArgumentError(`${what} contains a NUL byte: ${JSON.stringify(value)}`);
  if (/[\r\n]/.test(value)) throw new UnsafeArgumentError(`${what} contains a line break: ${JSON.stringify(value)}`);
  return value;
}

export function positional(value: string): Positional {
  checkText('positional argument', value);
  if (value === '') throw new UnsafeArgumentError('positional argument is empty');
  if (value.startsWith('-')) {
    throw new UnsafeArgumentError(`positional argument ${JSON.stringify(value)} starts with "-" and would read as an option`);
  }
  return Object.freeze({ [POSITIONAL]: true as const, value });
}

function isPositional(arg: unknown): arg is Positional {
  return typeof arg === 'object' && arg !== null && (arg as Positional)[POSITIONAL] === true;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const BARE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

/** The absolute path `program` runs as: an absolute path as is, a bare name from PROGRAM_DIRS. */
export function which(program: string): string | undefined {
  if (isAbsolute(program)) return isExecutableFile(program) ? program : undefined;
  if (!BARE_NAME.test(program)) return undefined;
  return PROGRAM_DIRS.map((dir) => join(dir, program)).find(isExecutableFile);
}

export type ExecLogger = Pick<Logger, 'info' | 'warn'>;

export interface RunOptions {
  /** Past this the process group gets SIGTERM, then SIGKILL after killGraceMs. */
  timeoutMs: number;
  logger: ExecLogger;
  /** Written to stdin, then stdin is closed; without it stdin is /dev/null. */
  input?: string | Uint8Array;
  /**
   * Added to a minimal environment (PATH of PROGRAM_DIRS, LC_ALL=C): the service's own
   * environment may carry credentials, and output is parsed in the C locale.
   */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** Exit codes that count as success; [0] by default. */
  allowedExitCodes?: readonly number[];
  /** Larger stdout fails the call (a truncated listing would be misparsed); stderr keeps its tail. */
  maxOutputBytes?: number;
  killGraceMs?: number;
  /**
   * Opens a Node IPC channel to the program (a Node script, possibly behind `ip netns exec`)
   * and hands each message, with the socket or server handle it may carry, to this callback:
   * how a helper started inside a network namespace passes back a socket bound there.
   */
  onMessage?: (message: unknown, handle: unknown) => void;
}

export interface CommandResult {
  program: string;
  args: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export type CommandFailure = 'not_found' | 'spawn' | 'exit' | 'signal' | 'timeout' | 'output_limit';

export class CommandError extends Error {
  readonly program: string;
  readonly args: readonly string[];
  readonly reason: CommandFailure;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderrTail: string;
  readonly durationMs: number;

  constructor(fields: {
    program: string;
    args: readonly string[];
    reason: CommandFailure;
    detail: string;
    exitCode?: number | null;
    signal?: NodeJS.Signals | null;
    stdout?: string;
    stderr?: string;
    durationMs?: number;
    cause?: unknown;
  }) {
    const stderrTail = (fields.stderr ?? '').slice(-STDERR_TAIL_CHARS).trim();
    const lastLines = stderrTail.split('\n').slice(-3).join(' | ');
    super(
      `${[fields.program, ...fields.args].join(' ')}: ${fields.detail}${lastLines ? `: ${lastLines}` : ''}`,
      fields.cause === undefined ? undefined : { cause: fields.cause },
    );
    this.name = 'CommandError';
    this.program = fields.program;
    this.args = fields.args;
    this.reason = fields.reason;
    this.exitCode = fields.exitCode ?? null;
    this.signal = fields.signal ?? null;
    this.stdout = fields.stdout ?? '';
    this.stderrTail = stderrTail;
    this.durationMs = fields.durationMs ?? 0;
  }
}

function validate(program: string, args: readonly Arg[], opts: RunOptions): string[] {
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
    throw new UnsafeArgumentError(`timeoutMs must be a positive number, got ${opts.timeoutMs}`);
  }
  return validateArgv(program, args, opts);
}

function validateArgv(program: string, args: readonly Arg[], opts: Pick<RunOptions, 'env' | 'cwd'>): string[] {
  checkText('program', program);
  const acceptable = program.includes('/') ? isAbsolute(program) && normalize(program) === program : BARE_NAME.test(program);
  if (!acceptable) {
    throw new UnsafeArgumentError(`program ${JSON.stringify(program)} must be a bare name or a normalized absolute path`);
  }
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UnsafeArgumentError(`invalid environment variable name ${JSON.stringify(key)}`);
    checkText(`environment variable ${key}`, value);
  }
  if (opts.cwd !== undefined) checkText('cwd', opts.cwd);
  return args.map((arg, i) => (isPositional(arg) ? arg.value : checkText(`argument ${i + 1}`, arg)));
}

/** Sends a signal to the whole group the program leads (it is spawned detached, so it leads one). */
function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export async function runCommand(program: string, args: readonly Arg[], opts: RunOptions): Promise<CommandResult> {
  const argv = validate(program, args, opts);
  const { logger } = opts;
  const resolved = which(program);
  if (!resolved) {
    const detail = isAbsolute(program) ? 'not an executable file' : `not found in ${PROGRAM_DIRS.join(':')}`;
    logger.warn({ program, args: argv, reason: 'not_found' }, 'exec failed');
    throw new CommandError({ program, args: argv, reason: 'not_found', detail });
  }
  const allowed = opts.allowedExitCodes ?? [0];
  const maxBytes = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const started = performance.now();

  const out = await spawnViaHelper(
    {
      file: resolved,
      args: argv,
      env: { PATH: PROGRAM_DIRS.join(':'), LC_ALL: 'C', ...opts.env },
      cwd: opts.cwd,
      input: opts.input,
      timeoutMs: opts.timeoutMs,
      killGraceMs: opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      maxOutputBytes: maxBytes,
      ipc: opts.onMessage !== undefined,
    },
    opts.onMessage,
  );
  const { code, signal, failure, spawnError } = out;
  const durationMs = Math.round(performance.now() - started);
  const stdout = out.stdout.toString('utf8');
  const stderr = out.stderr.toString('utf8');
  const logFields = { program: resolved, args: argv, exit_code: code, signal, duration_ms: durationMs };

  if (spawnError === undefined && !failure && code !== null && allowed.includes(code)) {
    logger.info(logFields, 'exec');
    return { program: resolved, args: argv, exitCode: code, stdout, stderr, durationMs };
  }
  const [reason, detail]: [CommandFailure, string] =
    spawnError !== undefined
      ? ['spawn', `could not start: ${spawnError}`]
      : failure === 'timeout'
        ? ['timeout', `timed out after ${opts.timeoutMs} ms`]
        : failure === 'output_limit'
          ? ['output_limit', `output exceeded ${maxBytes} bytes`]
          : signal
            ? ['signal', `killed by ${signal}`]
            : ['exit', `exited with code ${code}`];
  logger.warn({ ...logFields, reason, stderr_tail: stderr.slice(-STDERR_TAIL_CHARS) }, 'exec failed');
  throw new CommandError({ program: resolved, args: argv, reason, detail, exitCode: code, signal, stdout, stderr, durationMs });
}

export interface StartOptions extends Pick<RunOptions, 'env' | 'cwd' | 'killGraceMs'> {
  logger: ExecLogger;
  /** Each line of stdout, without its line break; a line longer than 64 KiB is cut there. */
  onLine: (line: string) => void;
}

export interface RunningCommand {
  readonly pid: number;
  /** Settles when the program has exited, however (never rejects). */
  readonly exited: Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; stderrTail: string }>;
  /** SIGTERM to the program's process group, SIGKILL after killGraceMs; resolves once it has exited. */
  stop(): Promise<void>;
}

const MAX_LINE_CHARS = 64 * 1024;

/**
 * Starts a program that runs until stopped (`ip monitor`), with the argument checks of
 * runCommand and no timeout: its stdout is handed over line by line. The caller owns the
 * process and must stop() it; it leads its own process group, so stop() reaches its children.
 */
export function startCommand(program: string, args: readonly Arg[], opts: StartOptions): RunningCommand {
  const argv = validateArgv(program, args, opts);
  const resolved = which(program);
  if (!resolved) throw new CommandError({ program, args: argv, reason: 'not_found', detail: `not found in ${PROGRAM_DIRS.join(':')}` });
  const child = spawn(resolved, argv, {
    shell: false,
    detached: true,
    cwd: opts.cwd,
    env: { PATH: PROGRAM_DIRS.join(':'), LC_ALL: 'C', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
  });
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!.slice(0, MAX_LINE_CHARS);
    for (const line of lines) opts.onLine(line.slice(0, MAX_LINE_CHARS));
  });
  const exited = new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; stderrTail: string }>((resolve) => {
    child.on('error', (e) => {
      stderr += e.message;
      // A failed spawn emits no 'close' when no stdio was opened; 'close' still follows otherwise.
      if (child.pid === undefined) resolve({ exitCode: null, signal: null, stderrTail: stderr });
    });
    child.on('close', (exitCode, signal) => resolve({ exitCode, signal, stderrTail: stderr.trim() }));
  });
  void exited.then((r) => opts.logger.info({ program: resolved, args: argv, pid: child.pid, exit_code: r.exitCode, signal: r.signal }, 'exec ended'));
  opts.logger.info({ program: resolved, args: argv, pid: child.pid }, 'exec started');
  return {
    pid: child.pid ?? -1,
    exited,
    async stop() {
      signalGroup(child.pid, 'SIGTERM');
      const kill = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
      await exited;
      clearTimeout(kill);
    },
  };
}
