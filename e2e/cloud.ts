import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { tempDir } from '@onestack/testing/index.ts';
import { openstack } from './openstack-cli.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ONESTACK = join(ROOT, 'onestack');

export { PYTHON } from './openstack-cli.ts';

/** Set by `scripts/test.sh` during its e2e phase: the JSON file describing the cloud every sharedCloud() attaches to. */
export const SHARED_CLOUD_VAR = 'ONESTACK_E2E_SHARED_CLOUD';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface Cloud {
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** Holds the clouds `onestack` (admin) and `onestack-demo` (a member of `project`). */
  cloudsYaml: string;
  /** The project of the `onestack-demo` cloud: `demo` for startCloud(), one of the test file's own for sharedCloud(). */
  project: string;
  /** `onestack ARGS` with this cloud's environment. */
  onestack(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** `openstack --os-cloud CLOUD ARGS -f json`, parsed; throws with stderr on failure. */
  os(cloud: string, ...args: string[]): Promise<any>;
  /** Like os() but for commands that print nothing; returns stdout. */
  osRaw(cloud: string, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * What a cloud in `dir` differs by from the caller's environment: free ports, a clouds.yaml
 * kept away from the user's, and the neutron agent's namespaces named as
 * packages/testing/src/netns.ts names a test's (onestack-t<pid>-<n>-…), `ownerPid` being a
 * process that lives as long as the cloud: a later lab sweeps them only once it has died.
 */
async function cloudVars(dir: string, ownerPid: number, seq: number): Promise<Record<string, string>> {
  // The state dir lies below this one, and dnsmasq (as its own user) must pass through to its files.
  chmodSync(dir, 0o711);
  const nsBase = `onestack-t${ownerPid}-${900 + seq}-`;
  const cloudsYaml = join(dir, 'clouds.yaml');
  const storagePort = String(await freePort());
  return {
    ONESTACK_DEFAULT__STATE_DIR: join(dir, 'state'),
    ONESTACK_KEYSTONE__PORT: String(await freePort()),
    ONESTACK_GLANCE__PORT: String(await freePort()),
    ONESTACK_NEUTRON__PORT: String(await freePort()),
    ONESTACK_PLACEMENT__PORT: String(await freePort()),
    ONESTACK_NOVA__PORT: String(await freePort()),
    ONESTACK_NOVA__METADATA_LISTEN_PORT: String(await freePort()),
    ONESTACK_NOVA_CONSOLE__NOVNCPROXY_PORT: String(await freePort()),
    ONESTACK_NOVA_CONSOLE__SERIALPROXY_PORT: String(await freePort()),
    ONESTACK_SWIFT__PORT: String(await freePort()),
    ONESTACK_CINDER__PORT: String(await freePort()),
    ONESTACK_SWIFT_STORAGE__PORT: storagePort,
    ONESTACK_SWIFT_REPLICATOR__PORT: String(await freePort()),
    // The replicator finds this node's devices in the ring by the storage node's port.
    ONESTACK_SWIFT_REPLICATOR__STORAGE_PORT: storagePort,
    ONESTACK_NEUTRON_AGENT__PORT: String(await freePort()),
    ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE: `${nsBase}host`,
    ONESTACK_NEUTRON_AGENT__NAMESPACE_PREFIX: nsBase,
    ONESTACK_NEUTRON_AGENT__EXTERNAL_NAMESPACE: `${nsBase}ext`,
    ONESTACK_KEYSTONE__PASSWORD_HASH_ROUNDS: '4',
    ONESTACK_CLOUDS_YAML: cloudsYaml,
    OS_CLIENT_CONFIG_FILE: cloudsYaml,
    // Every cloud of every run shares one guest image build (build.sh --reuse under a lock): after the first, `up` spends about a second on it.
    ONESTACK_ONESTACK__GUEST_IMAGE_DIR: process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image'),
  };
}

function onestackWith(env: NodeJS.ProcessEnv) {
  // Past a timeout the detached `up` it started keeps going without its caller: give `up` on a
  // loaded machine (110–130 s seen at load 30+) room, within the runner's 300 s per file.
  return (...args: string[]) => run(ONESTACK, args, { env, timeout: 240_000 });
}

/** Network namespaces whose names start with `prefix`. */
export async function namespaces(prefix: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n): n is string => !!n && n.startsWith(prefix));
}

/** `onestack down --purge`, then proof that it left none of the cloud's namespaces behind. */
async function downAndCheck(env: NodeJS.ProcessEnv): Promise<void> {
  await onestackWith(env)('down', '--purge').catch(() => undefined);
  const left = await namespaces(env.ONESTACK_NEUTRON_AGENT__NAMESPACE_PREFIX!);
  if (left.length) throw new Error(`onestack down --purge left namespaces behind: ${left.join(' ')}`);
}

function handle(env: NodeJS.ProcessEnv, project: string, stop: () => Promise<void>): Cloud {
  const osRaw = async (cloud: string, ...args: string[]) => {
    try {
      return (await openstack(['--os-cloud', cloud, ...args], { env, timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`openstack ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  };
  return {
    env,
    stateDir: env.ONESTACK_DEFAULT__STATE_DIR!,
    cloudsYaml: env.OS_CLIENT_CONFIG_FILE!,
    project,
    onestack: onestackWith(env),
    osRaw,
    async os(cloud: string, ...args: string[]) {
      const out = await osRaw(cloud, ...args, '-f', 'json');
      return out.trim() ? JSON.parse(out) : undefined;
    },
    stop,
  };
}

let cloudSeq = 0;

/**
 * Clouds of this process that are still up: the test runner kills a file that overruns its
 * timeout with SIGTERM, before any `after` runs, and a cloud left up would load the machine
 * for the rest of the run. So, as packages/testing's netns labs do, a synchronous last chance.
 */
const liveClouds = new Set<() => void>();
let signalHooksInstalled = false;

function downOnExit(env: NodeJS.ProcessEnv, dir: string): () => void {
  const down = () => {
    liveClouds.delete(down);
    spawnSync(ONESTACK, ['down', '--purge'], { env, timeout: 60_000, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  liveClouds.add(down);
  if (!signalHooksInstalled) {
    signalHooksInstalled = true;
    process.on('exit', () => [...liveClouds].forEach((d) => d()));
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = () => {
        [...liveClouds].forEach((d) => d());
        process.removeListener(sig, onSignal);
        // Again, for the other handlers (netns labs re-raise only when alone) and then the default action.
        process.kill(process.pid, sig);
      };
      process.on(sig, onSignal);
    }
  }
  return down;
}

/**
 * A cloud of the test file's own: `onestack up --detach` in a scratch state directory on free
 * ports. For files that need a configuration of their own (`extraEnv`, e.g. a size cap or a
 * PostgreSQL URL) or another command; every other file uses sharedCloud().
 */
export async function startCloud(extraEnv: Record<string, string> = {}, command: string[] = ['up', '--detach']): Promise<Cloud> {
  const dir = tempDir('onestack-e2e-');
  const env = { ...process.env, ...(await cloudVars(dir.path, process.pid, cloudSeq++)), ...extraEnv };
  const lastChance = downOnExit(env, dir.path);
  const stop = async () => {
    liveClouds.delete(lastChance);
    try {
      await downAndCheck(env);
    } finally {
      dir.remove();
    }
  };
  try {
    await onestackWith(env)(...command);
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
  return handle(env, 'demo', stop);
}

interface SharedCloudFile {
  /** cloudVars() of the running cloud. */
  vars: Record<string, string>;
  dir: string;
}

/**
 * The e2e phase's cloud (scripts/test.sh): `onestack up` in a scratch directory, its description
 * written to `file`. A port found free can be taken by someone else before `up` binds it; one
 * file would then fail, but here the whole phase would: so a second try, on other ports.
 */
export async function upSharedCloud(file: string, ownerPid: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const dir = tempDir('onestack-e2e-shared-');
    const desc: SharedCloudFile = { vars: await cloudVars(dir.path, ownerPid, attempt - 1), dir: dir.path };
    // Written first, so that downSharedCloud() cleans up after an `up` that failed half-way.
    writeFileSync(file, JSON.stringify(desc), { mode: 0o600 });
    try {
      await onestackWith({ ...process.env, ...desc.vars })('up', '--detach');
      return;
    } catch (e) {
      if (attempt === 2) throw e;
      console.error(`the shared e2e cloud did not come up, trying again: ${(e as Error).message}`);
      await downSharedCloud(file);
    }
  }
}

export async function downSharedCloud(file: string): Promise<void> {
  const desc = JSON.parse(readFileSync(file, 'utf8')) as SharedCloudFile;
  try {
    await downAndCheck({ ...process.env, ...desc.vars });
  } finally {
    rmSync(desc.dir, { recursive: true, force: true });
  }
}

/**
 * The cloud most e2e files run on: the one scripts/test.sh started for the whole e2e phase,
 * or, when the file runs alone, one of its own (stopped by stop()). Either way the file gets a
 * project and user of its own, `e2e-<name>`, behind the `onestack-demo` cloud of its
 * clouds.yaml, so files do not see each other's networks, containers or quotas. The admin
 * (`onestack` cloud) is shared: what a file makes as admin takes names no other file uses.
 */
export async function sharedCloud(name: string): Promise<Cloud> {
  const descFile = process.env[SHARED_CLOUD_VAR];
  const base = descFile ? attach(descFile) : await startCloud();
  const dir = tempDir(`onestack-e2e-${name}-`);
  try {
    const cloudsYaml = join(dir.path, 'clouds.yaml');
    const project = `e2e-${name}`;
    writeFileSync(cloudsYaml, stringify({ clouds: await withOwnProject(base.cloudsYaml, project) }), { mode: 0o600 });
    const env = { ...base.env, OS_CLIENT_CONFIG_FILE: cloudsYaml };
    return handle(env, project, async () => {
      dir.remove();
      await base.stop();
    });
  } catch (e) {
    dir.remove();
    await base.stop().catch(() => undefined);
    throw e;
  }
}

function attach(descFile: string): Cloud {
  const desc = JSON.parse(readFileSync(descFile, 'utf8')) as SharedCloudFile;
  // scripts/test.sh stops it once every file has run.
  return handle({ ...process.env, ...desc.vars }, 'demo', async () => undefined);
}

type CloudsEntry = { auth: Record<string, string> } & Record<string, unknown>;

/** Adds cloud `name` to `c`'s clouds.yaml: the admin cloud's settings, logged in as another user of another project. */
export function addCloud(c: Cloud, name: string, user: { username: string; password: string; project_name: string }): void {
  const doc = parse(readFileSync(c.cloudsYaml, 'utf8')) as { clouds: Record<string, CloudsEntry> };
  const admin = doc.clouds.onestack!;
  doc.clouds[name] = { ...admin, auth: { ...admin.auth, ...user } };
  writeFileSync(c.cloudsYaml, stringify(doc), { mode: 0o600 });
}

/** The names of the files below `path` (relative to the cloud's state dir), at any depth; none when it does not exist. */
export function stateFiles(c: Cloud, ...path: string[]): string[] {
  const dir = join(c.stateDir, ...path);
  return existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name) : [];
}

/** The admin cloud of `cloudsYaml` as is, and a demo cloud for a new member of a new project `project`. */
async function withOwnProject(cloudsYaml: string, project: string): Promise<Record<string, CloudsEntry>> {
  const admin = (parse(readFileSync(cloudsYaml, 'utf8')) as { clouds: Record<string, CloudsEntry> }).clouds.onestack!;
  const keystone = keystoneAdmin(admin.auth);
  const projectId = (await keystone('POST', '/projects', { project: { name: project, domain_id: 'default' } })).project.id;
  const password = randomBytes(12).toString('hex');
  const userId = (await keystone('POST', '/users', { user: { name: project, password, domain_id: 'default', default_project_id: projectId } })).user.id;
  const member = (await keystone('GET', '/roles?name=member')).roles[0].id;
  await keystone('PUT', `/projects/${projectId}/users/${userId}/roles/${member}`);
  const auth = { ...admin.auth, username: project, password, project_name: project };
  return { onestack: admin, 'onestack-demo': { ...admin, auth } };
}

/** Keystone's REST API as the cloud admin: faster than three runs of the CLI for setting up a project. */
function keystoneAdmin(auth: Record<string, string>) {
  const v3 = `${auth.auth_url!.replace(/\/v3\/?$/, '')}/v3`;
  let token: Promise<string> | undefined;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${v3}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`keystone ${method} ${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  const login = async () => {
    const scope = { project: { name: auth.project_name, domain: { name: auth.project_domain_name } } };
    const user = { name: auth.username, password: auth.password, domain: { name: auth.user_domain_name } };
    const res = await call('POST', '/auth/tokens', { auth: { identity: { methods: ['password'], password: { user } }, scope } });
    return res.headers.get('x-subject-token')!;
  };
  return async (method: string, path: string, body?: unknown): Promise<any> => {
    token ??= login();
    const res = await call(method, path, body, { 'x-auth-token': await token });
    return res.status === 204 ? undefined : res.json();
  };
}
