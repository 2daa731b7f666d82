import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Account } from './client.ts';
import { ONESTACK_WORKERS } from './suite.ts';

const run = promisify(execFile);

/** A Keystone under test, however it was started. */
export interface Target {
  name: string;
  url: string;
  admin: Account;
  demo: Account;
  /** Process groups whose CPU counts as the server's. */
  pgids(): number[];
  /**
   * Empties a token-validation cache shared by all of the server's workers, when
   * it has one that can be emptied from outside (upstream's memcached); onestack's
   * lives in its process and is defeated by walking more tokens than it holds.
   */
  flushTokenCache?(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

async function waitHttp(url: string, child: ChildProcess, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`onestack serve keystone exited early:\n${tail(log)}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`no answer from ${url} within ${timeoutMs / 1000} s:\n${tail(log)}`);
}

async function stopByPid(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * A developer's ONESTACK_* settings (a config file, another port, a PostgreSQL URL)
 * would change what is measured: the server gets only the ones set here.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ONESTACK_')));
}

/**
 * `onestack bootstrap` then `onestack serve keystone` in a scratch state directory,
 * on SQLite, bcrypt cost 12 like the upstream anchor.
 */
export async function startOnestack(root: string, scratch: string): Promise<Target> {
  const dir = join(scratch, 'onestack');
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'onestack.conf');
  writeFileSync(configFile, '');
  const stateDir = join(dir, 'state');
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    ONESTACK_CONFIG: configFile,
    ONESTACK_DEFAULT__STATE_DIR: stateDir,
    ONESTACK_KEYSTONE__PORT: String(port),
    ONESTACK_KEYSTONE__PASSWORD_HASH_ROUNDS: '12',
    ONESTACK_CLOUDS_YAML: join(dir, 'clouds.yaml'),
  };
  const onestack = join(root, 'onestack');
  await run(onestack, ['bootstrap'], { env, cwd: root });
  const secrets = JSON.parse(readFileSync(join(stateDir, 'secrets.json'), 'utf8')) as { admin_password: string; demo_password: string };

  const log = join(dir, 'serve.log');
  const fd = openSync(log, 'a');
  // Its own process group, so that its CPU is told apart from ours and wrk's.
  const child = spawn(onestack, ['serve', 'keystone', '--workers', String(ONESTACK_WORKERS)], { env, cwd: root, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHttp(`${url}/v3`, child, log, 60_000);
  } catch (e) {
    await stopByPid(child);
    throw e;
  }
  return {
    name: 'onestack',
    url,
    admin: { user: 'admin', password: secrets.admin_password, project: 'admin' },
    demo: { user: 'demo', password: secrets.demo_password, project: 'demo' },
    pgids: () => (child.pid ? [child.pid] : []),
    stop: () => stopByPid(child),
  };
}

/** $ONESTACK_ANCHORS, else `shared/anchors` beside the checkout, if there. */
export function findAnchors(root: string): string | undefined {
  const dir = process.env.ONESTACK_ANCHORS || join(root, '..', 'shared', 'anchors');
  return existsSync(join(dir, 'anchor-up.sh')) ? dir : undefined;
}

async function flushMemcached(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port }, () => sock.write('flush_all\r\n'));
    let answer = '';
    sock.setEncoding('utf8');
    sock.setTimeout(5000, () => sock.destroy(new Error('memcached did not answer flush_all')));
    sock.on('data', (d: string) => {
      answer += d;
      if (answer.includes('\r\n')) {
        sock.end();
        if (answer.startsWith('OK')) resolve();
        else reject(new Error(`memcached flush_all: ${answer.trim()}`));
      }
    });
    sock.on('error', reject);
  });
}

/**
 * Debian's Keystone through the project's anchor scripts, in a scratch ANCHOR_DIR
 * that stop() purges. The returned stop() is also what to call when starting failed
 * half-way: anchor-down only signals what anchor-up recorded.
 */
export function upstream(anchors: string, scratch: string): { start(): Promise<Target>; stop(): Promise<void> } {
  const anchorDir = join(scratch, 'anchor');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ANCHOR_DIR: anchorDir,
    // Only Keystone is measured: Swift's sync daemons would only add background load.
    ANCHOR_SWIFT_CONTAINER_SYNC: process.env.ANCHOR_SWIFT_CONTAINER_SYNC ?? '0',
  };
  const port = Number(process.env.ANCHOR_KEYSTONE_PORT || 35357);
  const memcachedPort = Number(process.env.ANCHOR_MEMCACHED_PORT || 11212);
  let started = false;
  const stop = async () => {
    if (!started) return;
    started = false;
    await run(join(anchors, 'anchor-down.sh'), ['--purge'], { env, cwd: scratch });
  };
  const start = async (): Promise<Target> => {
    mkdirSync(scratch, { recursive: true });
    const log = join(scratch, 'anchor-up.log');
    const fd = openSync(log, 'a');
    started = true;
    const child = spawn(join(anchors, 'anchor-up.sh'), [], { env, cwd: scratch, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`anchor-up.sh failed (exit ${code}):\n${tail(log)}`);
    return {
      name: 'upstream',
      url: `http://127.0.0.1:${port}`,
      admin: { user: 'admin', password: process.env.ANCHOR_ADMIN_PASSWORD || 'anchor-admin', project: 'admin' },
      demo: { user: 'demo', password: process.env.ANCHOR_DEMO_PASSWORD || 'anchor-demo', project: 'demo' },
      pgids: () => anchorPgids(join(anchorDir, 'run')),
      flushTokenCache: () => flushMemcached(memcachedPort),
      stop,
    };
  };
  return { start, stop };
}

/** anchor-up records "pid starttime" per daemon, each the leader of its own session. */
function anchorPgids(runDir: string): number[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(runDir, f), 'utf8').split(' ')[0]))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}
