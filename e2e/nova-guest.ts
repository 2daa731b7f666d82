/**
 * What the e2e files that boot real guests through the openstack CLI share: a routed tenant
 * network with a keypair and a security group for SSH and ping, `server create --wait`, status
 * polling, and the proof that a deleted server left nothing behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { type Cloud } from './cloud.ts';
import { openstack } from './openstack-cli.ts';

const run = promisify(execFile);
export const DEMO = 'onestack-demo';
export const ADMIN = 'onestack';
// TCG on a machine shared by several engineers: a boot takes seconds alone, much longer when loaded.
export const BOOT_TIMEOUT = 150_000;

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** QEMU processes whose command line names this instance (the driver passes its uuid). */
export function qemuProcessesOf(uuid: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(join('/proc', p, 'cmdline'), 'utf8');
        return cmd.includes('qemu-system') && cmd.includes(uuid);
      } catch {
        return false; // exited while we looked
      }
    })
    .map(Number);
}

/**
 * The REST APIs as `cloud`'s user of clouds.yaml, for polling and for looking at what a delete left:
 * a CLI run costs seconds on a loaded machine, and a wait polls many times. The actions themselves go
 * through the CLI.
 */
function restApi(c: Cloud, cloud: string) {
  let session: Promise<{ token: string; urls: Map<string, string> }> | undefined;
  const login = async () => {
    const auth = (parse(readFileSync(c.cloudsYaml, 'utf8')) as { clouds: Record<string, { auth: Record<string, string> }> }).clouds[cloud]!.auth;
    const scope = { project: { name: auth.project_name, domain: { name: auth.project_domain_name } } };
    const user = { name: auth.username, password: auth.password, domain: { name: auth.user_domain_name } };
    const res = await fetch(`${auth.auth_url!.replace(/\/v3\/?$/, '')}/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user } }, scope } }),
    });
    assert.equal(res.status, 201, `login as ${auth.username}`);
    const catalog = (await res.json()).token.catalog as { type: string; endpoints: { interface: string; url: string }[] }[];
    const urls = new Map(catalog.map((e) => [e.type, e.endpoints.find((x) => x.interface === 'public')!.url.replace(/\/$/, '')]));
    return { token: res.headers.get('x-subject-token')!, urls };
  };
  /** GET `path` of the service of catalog type `type`: the body, or undefined on 404. */
  return async (type: string, path: string): Promise<Record<string, any> | undefined> => {
    session ??= login();
    const { token, urls } = await session;
    const res = await fetch(`${urls.get(type)}${path}`, { headers: { 'x-auth-token': token, 'openstack-api-version': 'compute 2.47' } });
    if (res.status === 404) return undefined;
    assert.equal(res.status, 200, `GET ${type} ${path}`);
    return res.json();
  };
}

/** A tenant network `<prefix>-net` on `cidr` behind a router to `public`, a security group for SSH and ICMP, a keypair whose private key is `keyFile`. */
export async function routedNetwork(c: Cloud, prefix: string, cidr: string, keyFile: string, cloud = DEMO) {
  const net = await c.os(cloud, 'network', 'create', `${prefix}-net`);
  const sub = await c.os(cloud, 'subnet', 'create', '--network', net.id, '--subnet-range', cidr, `${prefix}-sub`);
  const router = await c.os(cloud, 'router', 'create', `${prefix}-router`);
  await c.osRaw(cloud, 'router', 'set', '--external-gateway', 'public', router.id);
  await c.osRaw(cloud, 'router', 'add', 'subnet', router.id, sub.id);
  const sg = await c.os(cloud, 'security', 'group', 'create', `${prefix}-sg`);
  await c.os(cloud, 'security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', '--remote-ip', '0.0.0.0/0', sg.id);
  await c.os(cloud, 'security', 'group', 'rule', 'create', '--protocol', 'icmp', '--remote-ip', '0.0.0.0/0', sg.id);
  const kp = await c.os(cloud, 'keypair', 'create', '--private-key', keyFile, `${prefix}-key`);
  assert.match(readFileSync(keyFile, 'utf8'), /BEGIN (OPENSSH|RSA) PRIVATE KEY/);
  // The CLI writes it with the umask's mode, which ssh refuses for a private key.
  chmodSync(keyFile, 0o600);
  return { net: net.id as string, subnet: sub.id as string, router: router.id as string, sg: sg.id as string, key: kp.name as string };
}

/** CLI helpers bound to a cloud; `hostNs` is where the compute host's taps live. */
export function guestTools(c: Cloud, keyFile: string, hostNs: string) {
  /** openstack … with a timeout for commands that wait on the guest (cloud.ts's gives up after 60 s). */
  const osWaitRaw = async (cloud: string, ...args: string[]) => {
    try {
      return (await openstack(['--os-cloud', cloud, ...args], { env: c.env, timeout: BOOT_TIMEOUT + 60_000 })).stdout;
    } catch (e) {
      throw new Error(`openstack ${args.join(' ')} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
    }
  };
  const api = restApi(c, DEMO);
  const adminApi = restApi(c, ADMIN);
  const server = async (id: string) => (await api('compute', `/servers/${id}`))?.server as Record<string, any> | undefined;
  const portsOf = async (id: string) => (await api('network', `/v2.0/ports?device_id=${id}`))!.ports as { id: string }[];
  const status = async (id: string) => (await server(id))?.status as string | undefined;
  const instanceDir = (id: string) => join(c.stateDir, 'nova', 'instances', id);
  /** The consumer's allocations, one per resource provider. */
  const allocations = async (id: string) => Object.values((await adminApi('placement', `/allocations/${id}`))!.allocations as Record<string, { resources: Record<string, number> }>);
  const taps = async () => (await run('ip', ['-n', hostNs, 'link', 'show'])).stdout;
  /** `onestack ssh` as `user` to a server by name or id (floating IP, else its fixed IP from a router's namespace). */
  const ssh = (server: string, user: string, ...command: string[]) =>
    c.onestack('ssh', '--cloud', DEMO, '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-l', user, server, '--', ...command);
  /**
   * Plain ssh as root to `ip` from the namespace of `router` (on the guest's subnet): what `onestack ssh`
   * does for a fixed address, without a CLI start per command (seconds each on a loaded machine).
   */
  const sshAt = (router: string, ip: string, ...command: string[]) =>
    run('ip', ['netns', 'exec', `${c.env.ONESTACK_NEUTRON_AGENT__NAMESPACE_PREFIX}qrouter-${router}`, 'ssh', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=20', '-l', 'root', ip, ...command], { timeout: 60_000 });

  return {
    osWaitRaw,
    status,
    instanceDir,
    allocations,
    ssh,
    sshAt,
    /** The server as the API shows it to the project's user (no CLI run). */
    server,
    /** Until the server's status is `want` with no task in progress. */
    waitStatus: (id: string, want: string) =>
      waitFor(`${id} ${want}`, BOOT_TIMEOUT, async () => {
        const s = await server(id);
        return s?.status === want && !s['OS-EXT-STS:task_state'] ? true : undefined;
      }),

    /** `server create --wait` of a server named `name`, which it asserts ACTIVE; the CLI's JSON. */
    async createServer(name: string, ...args: string[]) {
      const out = await osWaitRaw(DEMO, 'server', 'create', ...args, '--wait', name, '-f', 'json');
      // With --wait the CLI prints "Error creating server" and exits 0 when the server goes to ERROR.
      if (!out.trim().startsWith('{')) {
        const [failed] = await c.os(ADMIN, 'server', 'list', '--all-projects', '--name', `^${name}$`);
        assert.fail(`${out.trim()}: ${JSON.stringify(failed && (await c.os(ADMIN, 'server', 'show', failed.ID)).fault)}`);
      }
      const created = JSON.parse(out);
      assert.equal(created.status, 'ACTIVE');
      return created as { id: string; name: string };
    },

    /** The guest's boot_id once it answers `onestack ssh` with one other than `previous` (a guest that booted again). */
    bootId(server: string, previous?: string) {
      return waitFor(`SSH to ${server}`, BOOT_TIMEOUT, async () => {
        const id = (await ssh(server, 'root', 'cat', '/proc/sys/kernel/random/boot_id')).stdout.trim();
        return id !== previous ? id : undefined;
      });
    },

    /** bootId() over sshAt(). */
    bootIdAt(router: string, ip: string, previous?: string) {
      return waitFor(`SSH to ${ip}`, BOOT_TIMEOUT, async () => {
        const id = (await sshAt(router, ip, 'cat', '/proc/sys/kernel/random/boot_id')).stdout.trim();
        return id !== previous ? id : undefined;
      });
    },

    /** The server's fixed address on `network` (by name). */
    async fixedIp(id: string, network: string) {
      const addresses = (await c.os(DEMO, 'server', 'show', id)).addresses as Record<string, string[]>;
      const ip = addresses[network]?.[0];
      assert.ok(ip, `an address on ${network}: ${JSON.stringify(addresses)}`);
      return ip;
    },

    /** Deletes `id` through the CLI and proves nothing of it is left: QEMU process, tap, instance dir, port, allocation. */
    async deleteLeavingNothing(id: string) {
      const ports = await portsOf(id);
      assert.equal(ports.length, 1);
      const tap = new RegExp(`tap${ports[0]!.id.slice(0, 11)}`);
      // Each of these holds before the delete, so that its absence after means something.
      assert.match(await taps(), tap);
      assert.ok(qemuProcessesOf(id).length > 0, 'a running server has its QEMU process');
      assert.ok(existsSync(instanceDir(id)), 'a server has its instance directory');
      assert.equal((await allocations(id)).length, 1, 'a server has its placement allocation');

      await osWaitRaw(DEMO, 'server', 'delete', '--wait', id);
      await assert.rejects(c.osRaw(DEMO, 'server', 'show', id), /No Server found|No server with a name or ID|404/);
      assert.deepEqual(qemuProcessesOf(id), []);
      assert.doesNotMatch(await taps(), tap);
      assert.ok(!existsSync(instanceDir(id)), `${instanceDir(id)} is gone`);
      assert.deepEqual(await portsOf(id), []);
      assert.equal(await api('network', `/v2.0/ports/${ports[0]!.id}`), undefined, 'port gone');
      assert.deepEqual(await allocations(id), []);
    },

    /** For `after`: deletes what a failed test left running, so that no QEMU process outlives the file on a shared cloud. */
    async deleteIfRunning(...ids: (string | undefined)[]) {
      for (const id of ids) if (id && qemuProcessesOf(id).length) await osWaitRaw(DEMO, 'server', 'delete', '--wait', id).catch(() => undefined);
    },
  };
}
