import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from '@onestack/testing/index.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ONESTACK = join(ROOT, 'onestack');

/** The real openstack CLI lives under Debian's python, whatever python3 is first on PATH. */
export const OPENSTACK = '/usr/bin/openstack';
export const PYTHON = '/usr/bin/python3';

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
  cloudsYaml: string;
  /** `onestack ARGS` with this cloud's environment. */
  onestack(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** `openstack --os-cloud CLOUD ARGS -f json`, parsed; throws with stderr on failure. */
  os(cloud: string, ...args: string[]): Promise<any>;
  /** Like os() but for commands that print nothing; returns stdout. */
  osRaw(cloud: string, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `onestack up --detach` in a scratch state directory on free ports, with its
 * clouds.yaml kept away from the user's. Extra environment (e.g. a PostgreSQL URL)
 * goes through `extraEnv`.
 */
let cloudSeq = 0;

export async function startCloud(extraEnv: Record<string, string> = {}, command: string[] = ['up', '--detach']): Promise<Cloud> {
  const dir = tempDir('onestack-e2e-');
  // The neutron agent's namespaces are named as packages/testing/src/netns.ts names a test's
  // (onestack-t<pid>-<n>-…): `down` removes them, and a later lab sweeps them if this process died.
  const nsBase = `onestack-t${process.pid}-${900 + cloudSeq++}-`;
  const cloudsYaml = join(dir.path, 'clouds.yaml');
  const storagePort = String(await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ONESTACK_DEFAULT__STATE_DIR: join(dir.path, 'state'),
    ONESTACK_KEYSTONE__PORT: String(await freePort()),
    ONESTACK_GLANCE__PORT: String(await freePort()),
    ONESTACK_NEUTRON__PORT: String(await freePort()),
    ONESTACK_PLACEMENT__PORT: String(await freePort()),
    ONESTACK_NOVA__PORT: String(await freePort()),
    ONESTACK_NOVA__METADATA_LISTEN_PORT: String(await freePort()),
    ONESTACK_SWIFT__PORT: String(await freePort()),
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
    ...extraEnv,
  };
  const onestack = (...args: string[]) => run(ONESTACK, args, { env, timeout: 120_000 });
  const osRaw = async (cloud: string, ...args: string[]) => {
    try {
      return (await run(OPENSTACK, ['--os-cloud', cloud, ...args], { env, timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`openstack ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  };
  const os = async (cloud: string, ...args: string[]) => {
    const out = await osRaw(cloud, ...args, '-f', 'json');
    return out.trim() ? JSON.parse(out) : undefined;
  };
  await onestack(...command);
  return {
    env,
    stateDir: env.ONESTACK_DEFAULT__STATE_DIR!,
    cloudsYaml,
    onestack,
    os,
    osRaw,
    async stop() {
      await onestack('down', '--purge').catch(() => undefined);
      dir.remove();
    },
  };
}
