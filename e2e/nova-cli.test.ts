import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '@onestack/testing/index.ts';
import { OPENSTACK, startCloud, type Cloud } from './cloud.ts';

const run = promisify(execFile);
const DEMO = 'onestack-demo';
const ADMIN = 'onestack';
const NAME = 'nova-cli-vm';
// TCG on a machine shared by several engineers: a boot takes seconds alone, much longer when loaded;
// the whole file must still fit in the runner's 300 s per test file, `onestack up` included.
const BOOT_TIMEOUT = 150_000;

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** QEMU processes whose command line names this instance (the driver passes its uuid). */
function qemuProcessesOf(uuid: string): number[] {
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
 * Issue 5's acceptance flow through the unmodified openstack CLI as the demo user: a guest booted on
 * a tenant network behind a router, reached at its floating IP over SSH (with `onestack ssh` and
 * with plain ssh from the external namespace) as `cirros` and root, stopped, started, rebooted and
 * deleted without leaving a process, tap or port behind.
 */
describe('openstack CLI: a server from boot to delete, reached over SSH', () => {
  let c: Cloud;
  let ext: string;
  let hostNs: string;
  let keyFile: string;
  let server: { id: string; name: string };
  let fip: string;
  const keys = tempDir('nova-cli-e2e-');

  /** openstack … with a timeout for commands that wait on the guest (cloud.ts's gives up after 60 s). */
  const osWaitRaw = async (cloud: string, ...args: string[]) => {
    try {
      return (await run(OPENSTACK, ['--os-cloud', cloud, ...args], { env: c.env, timeout: BOOT_TIMEOUT + 60_000 })).stdout;
    } catch (e) {
      throw new Error(`openstack ${args.join(' ')} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
    }
  };
  const plainSsh = (user: string, ...command: string[]) =>
    run('ip', ['netns', 'exec', ext, 'ssh', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=20', '-l', user, fip, ...command], { timeout: 60_000 });
  const onestackSsh = (...args: string[]) => c.onestack('ssh', '--cloud', DEMO, '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', ...args);
  const bootId = async () => (await plainSsh('root', 'cat', '/proc/sys/kernel/random/boot_id')).stdout.trim();
  const status = async () => (await c.os(DEMO, 'server', 'show', server.id)).status as string;

  before(async () => {
    c = await startCloud();
    ext = c.env.ONESTACK_NEUTRON_AGENT__EXTERNAL_NAMESPACE!;
    hostNs = c.env.ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE!;
    keyFile = join(keys.path, 'nova-cli-key');
  });
  after(async () => {
    await c?.stop();
    keys.remove();
  });

  it('boots a server on a routed tenant network with a keypair and a security group', async () => {
    const net = await c.os(DEMO, 'network', 'create', 'nova-cli-net');
    const sub = await c.os(DEMO, 'subnet', 'create', '--network', net.id, '--subnet-range', '10.41.0.0/24', 'nova-cli-sub');
    const router = await c.os(DEMO, 'router', 'create', 'nova-cli-router');
    await c.osRaw(DEMO, 'router', 'set', '--external-gateway', 'public', router.id);
    await c.osRaw(DEMO, 'router', 'add', 'subnet', router.id, sub.id);
    const sg = await c.os(DEMO, 'security', 'group', 'create', 'nova-cli-sg');
    await c.os(DEMO, 'security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', '--remote-ip', '0.0.0.0/0', sg.id);
    await c.os(DEMO, 'security', 'group', 'rule', 'create', '--protocol', 'icmp', '--remote-ip', '0.0.0.0/0', sg.id);

    const kp = await c.os(DEMO, 'keypair', 'create', '--private-key', keyFile, 'nova-cli-key');
    assert.equal(kp.name, 'nova-cli-key');
    assert.match(readFileSync(keyFile, 'utf8'), /BEGIN (OPENSSH|RSA) PRIVATE KEY/);
    // The CLI writes it with the umask's mode, which ssh refuses for a private key.
    chmodSync(keyFile, 0o600);

    // nova-compute registers its host a little after `up` returns (it needs the other services first).
    await waitFor('a compute host', 60_000, async () => ((await c.os(ADMIN, 'hypervisor', 'list')) as unknown[]).length > 0 || undefined);
    const out = await osWaitRaw(DEMO, 'server', 'create', '--image', 'onestack-guest', '--flavor', 'm1.nano', '--network', net.id,
      '--key-name', 'nova-cli-key', '--security-group', sg.id, '--wait', NAME, '-f', 'json');
    // With --wait the CLI prints "Error creating server" and exits 0 when the server goes to ERROR.
    if (!out.trim().startsWith('{')) {
      const [failed] = await c.os(ADMIN, 'server', 'list', '--all-projects', '--name', `^${NAME}$`);
      assert.fail(`${out.trim()}: ${JSON.stringify(failed && (await c.os(ADMIN, 'server', 'show', failed.ID)).fault)}`);
    }
    const created = JSON.parse(out);
    assert.equal(created.status, 'ACTIVE');
    server = { id: created.id, name: created.name };
    assert.equal(server.name, NAME);

    const shown = await c.os(DEMO, 'server', 'show', server.id);
    assert.equal(shown.status, 'ACTIVE');
    assert.equal(shown.key_name, 'nova-cli-key');
    assert.match(JSON.stringify(shown.addresses), /nova-cli-net.*10\.41\.0\.\d+/);
    assert.match(JSON.stringify(shown.flavor), /m1\.nano/);
    assert.match(JSON.stringify(shown.image), /onestack-guest/);
    assert.equal(shown['OS-EXT-STS:vm_state'], 'active');
    // The CLI prints the API's number in -f json (1: running) and its name in tables.
    assert.equal(shown['OS-EXT-STS:power_state'], 1);
    assert.equal(shown['OS-EXT-STS:task_state'], null);
    assert.equal(shown['OS-EXT-SRV-ATTR:host'], undefined, 'the host is for admins only');
    const asAdmin = await c.os(ADMIN, 'server', 'show', server.id);
    assert.equal(typeof asAdmin['OS-EXT-SRV-ATTR:host'], 'string');
    assert.match(asAdmin['OS-EXT-SRV-ATTR:instance_name'], /^instance-/);
  });

  it('shows the metadata line on the console and answers SSH at its floating IP as cirros and root', async () => {
    assert.ok(server, 'the server booted');
    let out = '';
    const log = await waitFor('the READY line on the console', BOOT_TIMEOUT, async () => {
      out = await c.osRaw(DEMO, 'console', 'log', 'show', server.id);
      return /=== ONESTACK GUEST READY /.test(out) ? out : undefined;
    }).catch((e: Error) => assert.fail(`${e.message}; the console so far:\n${out.slice(-3000)}`));
    assert.match(log, new RegExp(`metadata from metadata-service: uuid=${server.id} hostname=${NAME} keys=1`));
    assert.match(log, new RegExp(`ONESTACK GUEST READY hostname=${NAME} ip=10\\.41\\.0\\.\\d+ uuid=${server.id} metadata=metadata-service`));

    const created = await c.os(DEMO, 'floating', 'ip', 'create', 'public');
    fip = created.floating_ip_address;
    assert.match(fip, /^172\.24\.4\.\d+$/);
    await c.osRaw(DEMO, 'server', 'add', 'floating', 'ip', server.id, fip);
    // Nova learns of the association from Neutron's notification, as upstream's network-changed event.
    await waitFor('the floating IP in the server\'s addresses', 30_000, async () => JSON.stringify((await c.os(DEMO, 'server', 'show', server.id)).addresses).includes(fip) || undefined);

    // By name: `onestack ssh` finds the floating IP, the external namespace and the default user.
    const viaCommand = await waitFor('onestack ssh', BOOT_TIMEOUT, async () => (await onestackSsh(NAME, '--', 'id', '-un')).stdout.trim());
    assert.equal(viaCommand, 'cirros');
    assert.equal((await onestackSsh('-l', 'root', server.id, '--', 'hostname')).stdout.trim(), NAME);
    // The host key is checked against the console's: a wrong one in the known_hosts it writes would refuse.
    assert.equal((await onestackSsh(NAME, '--', 'hostname')).stdout.trim(), NAME);

    assert.equal((await plainSsh('cirros', 'hostname')).stdout.trim(), NAME);
    assert.equal((await plainSsh('cirros', 'id', '-u')).stdout.trim(), '1000');
    assert.equal((await plainSsh('root', 'id', '-u')).stdout.trim(), '0');
    const ping = await run('ip', ['netns', 'exec', ext, 'busybox', 'ping', '-c', '3', '-W', '5', fip], { timeout: 60_000 });
    assert.match(ping.stdout, /3 packets transmitted, [1-3] packets received/);
  });

  it('stops, starts and reboots the guest through the CLI', async () => {
    assert.ok(server, 'the server booted');
    assert.ok(fip, 'the server was reached');
    const booted = await bootId();
    await c.osRaw(DEMO, 'server', 'stop', server.id);
    await waitFor('SHUTOFF', BOOT_TIMEOUT, async () => ((await status()) === 'SHUTOFF' ? true : undefined));
    assert.equal((await c.os(DEMO, 'server', 'show', server.id))['OS-EXT-STS:power_state'], 4, 'power state 4: shutdown');
    assert.deepEqual(qemuProcessesOf(server.id), [], 'a stopped server has no QEMU process');
    await assert.rejects(c.osRaw(DEMO, 'server', 'stop', server.id), /409|Conflict|state/i);

    await c.osRaw(DEMO, 'server', 'start', server.id);
    await waitFor('ACTIVE after start', BOOT_TIMEOUT, async () => ((await status()) === 'ACTIVE' ? true : undefined));
    const started = await waitFor('SSH after start', BOOT_TIMEOUT, bootId);
    assert.notEqual(started, booted, 'start boots the guest anew');

    await osWaitRaw(DEMO, 'server', 'reboot', '--wait', server.id);
    assert.equal(await status(), 'ACTIVE');
    const rebooted = await waitFor('SSH after reboot', BOOT_TIMEOUT, async () => {
      const id = await bootId();
      return id !== started ? id : undefined;
    });
    assert.notEqual(rebooted, started);
    assert.equal((await onestackSsh(NAME, '--', 'hostname')).stdout.trim(), NAME);

    const actions = (await c.os(DEMO, 'server', 'event', 'list', server.id)) as { Action: string }[];
    for (const a of ['create', 'stop', 'start', 'reboot']) assert.ok(actions.some((x) => x.Action === a), `instance action ${a} recorded`);
  });

  it('deletes the server and leaves no QEMU process, tap or port behind', async () => {
    assert.ok(fip, 'the server was reached');
    const ports = (await c.os(DEMO, 'port', 'list', '--server', server.id)) as { ID: string }[];
    assert.equal(ports.length, 1);
    const tap = `tap${ports[0]!.ID.slice(0, 11)}`;
    assert.match((await run('ip', ['-n', hostNs, 'link', 'show'])).stdout, new RegExp(tap));
    assert.ok(qemuProcessesOf(server.id).length > 0, 'a running server has its QEMU process');

    await osWaitRaw(DEMO, 'server', 'delete', '--wait', server.id);
    await assert.rejects(c.osRaw(DEMO, 'server', 'show', server.id), /No Server found|No server with a name or ID|404/);
    assert.deepEqual(qemuProcessesOf(server.id), []);
    assert.doesNotMatch((await run('ip', ['-n', hostNs, 'link', 'show'])).stdout, new RegExp(tap));
    assert.deepEqual(await c.os(DEMO, 'port', 'list', '--device-id', server.id), []);
    await assert.rejects(c.osRaw(DEMO, 'port', 'show', ports[0]!.ID), /No Port found|404|not found/i);
    await assert.rejects(onestackSsh(NAME, '--', 'true'), /no server named or with id "nova-cli-vm"/);
  });
});
