import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand } from '@onestack/core/exec/privileged-exec.ts';

export const QUIET = { info() {}, warn() {} };

/** Keystone and Glance, each in its own process, so that Glance's memory and CPU are its own. */
export interface Cloud {
  glanceUrl: string;
  glancePid: number;
  /** Process groups of both servers, for CPU accounting. */
  pgids: number[];
  /** A project-scoped admin token. */
  token: string;
  storeDir: string;
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

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-30).join('\n') : '';
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  if (await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)])) {
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * `onestack bootstrap`, then `onestack serve keystone` and `onestack serve
 * glance` in a scratch state directory on free ports, with none of the
 * developer's ONESTACK_* settings (another store, a PostgreSQL URL would
 * change what is measured).
 */
export async function startCloud(root: string, dir: string): Promise<Cloud> {
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'onestack.conf');
  writeFileSync(configFile, '');
  const stateDir = join(dir, 'state');
  const keystonePort = await freePort();
  const glancePort = await freePort();
  const env: Record<string, string> = {
    ...(Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('ONESTACK_') && v !== undefined)) as Record<string, string>),
    ONESTACK_CONFIG: configFile,
    ONESTACK_DEFAULT__STATE_DIR: stateDir,
    ONESTACK_KEYSTONE__PORT: String(keystonePort),
    ONESTACK_GLANCE__PORT: String(glancePort),
    ONESTACK_KEYSTONE__PASSWORD_HASH_ROUNDS: '4',
    ONESTACK_CLOUDS_YAML: join(dir, 'clouds.yaml'),
  };
  const onestack = join(root, 'onestack');
  await runCommand(onestack, ['bootstrap'], { env, cwd: root, logger: QUIET, timeoutMs: 120_000 });

  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children.reverse()) await stopChild(c);
  };
  const serve = async (service: string, probe: string) => {
    const log = join(dir, `serve-${service}.log`);
    const fd = openSync(log, 'a');
    // Its own process group: its CPU is told apart from the client's.
    const child = spawn(onestack, ['serve', service], { env, cwd: root, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    children.push(child);
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(200)) {
      if (child.exitCode !== null) throw new Error(`onestack serve ${service} exited:\n${tail(log)}`);
      if (await fetch(probe).then((r) => r.ok, () => false)) return child;
    }
    throw new Error(`onestack serve ${service} did not answer ${probe} within 60 s:\n${tail(log)}`);
  };
  try {
    const keystone = await serve('keystone', `http://127.0.0.1:${keystonePort}/v3`);
    const glanceUrl = `http://127.0.0.1:${glancePort}`;
    const glance = await serve('glance', `${glanceUrl}/healthcheck`);
    const { admin_password: password } = JSON.parse(readFileSync(join(stateDir, 'secrets.json'), 'utf8')) as { admin_password: string };
    const res = await fetch(`http://127.0.0.1:${keystonePort}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password } } },
          scope: { project: { name: 'admin', domain: { id: 'default' } } },
        },
      }),
    });
    const token = res.headers.get('x-subject-token');
    if (res.status !== 201 || !token) throw new Error(`admin token: ${res.status} ${await res.text()}`);
    // `onestack serve glance` is a launcher script: the node process is the one listening.
    const glancePid = ((await (await fetch(`${glanceUrl}/healthcheck`, { headers: { accept: 'application/json' } })).json()) as { pid: number }).pid;
    return {
      glanceUrl,
      glancePid,
      pgids: [keystone.pid!, glance.pid!],
      token,
      storeDir: join(stateDir, 'glance', 'images'),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
