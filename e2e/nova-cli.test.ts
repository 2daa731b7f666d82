import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';
import { ADMIN, BOOT_TIMEOUT, DEMO, guestTools, qemuProcessesOf, routedNetwork, waitFor } from './nova-guest.ts';

const run = promisify(execFile);
const NAME = 'nova-cli-vm';

/** The first bytes a websocket delivers: what a VNC client reads first is the server's RFB banner. */
function firstBytes(url: string, n: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['binary']);
    let got = Buffer.alloc(0);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      ws.terminate();
      if (err) reject(err);
      else resolve(got.toString('latin1'));
    };
    const timer = setTimeout(() => finish(new Error(`timed out; got ${JSON.stringify(got.toString('latin1'))}`)), timeoutMs);
    ws.on('unexpected-response', (_req, res) => finish(new Error(`websocket refused: status ${res.statusCode}`)));
    ws.on('error', (err) => finish(err));
    ws.on('message', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= n) finish();
    });
  });
}

/**
 * Issue 5's acceptance flow through the unmodified openstack CLI as a project member: a guest booted on
 * a tenant network behind a router, reached at its floating IP over SSH (with `onestack ssh` and with
 * plain ssh from the external namespace) as `cirros` and root; its serial and noVNC consoles; stop,
 * start and reboot as the guest tells them apart (boot_id); a live snapshot that becomes a Glance
 * image booting a second server; deletes that leave no process, tap, disk, port or allocation
 * behind. The rest of the flow is in nova-cli-moves (pause, suspend, resize, rebuild): each file
 * has the runner's 300 s, and TCG guests on a loaded machine boot slowly.
 */
describe('openstack CLI: a server from boot to delete, reached over SSH', () => {
  let c: Cloud;
  let ext: string;
  let keyFile: string;
  let server: { id: string; name: string };
  let lab: Awaited<ReturnType<typeof routedNetwork>>;
  let fromSnapshot: { id: string; ip: string } | undefined;
  let snapshot: string | undefined;
  let fip: string;
  let g: ReturnType<typeof guestTools>;
  const keys = tempDir('onestack-nova-cli-');
  const t0 = Date.now();

  const plainSsh = (user: string, ...command: string[]) =>
    run('ip', ['netns', 'exec', ext, 'ssh', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=20', '-l', user, fip, ...command], { timeout: 60_000 });
  const onestackSsh = (...args: string[]) => c.onestack('ssh', '--cloud', DEMO, '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', ...args);
  const bootId = async () => (await plainSsh('root', 'cat', '/proc/sys/kernel/random/boot_id')).stdout.trim();
  /** The boot_id once SSH answers with one other than `previous` (a guest that booted again). */
  const newBootId = (what: string, previous: string) =>
    waitFor(`SSH after ${what}`, BOOT_TIMEOUT, async () => {
      const id = await bootId();
      return id !== previous ? id : undefined;
    });
  const status = () => g.status(server.id);
  const waitStatus = (want: string) => g.waitStatus(server.id, want);

  before(async () => {
    c = await sharedCloud('nova-cli');
    ext = c.env.ONESTACK_NEUTRON_AGENT__EXTERNAL_NAMESPACE!;
    keyFile = join(keys.path, 'nova-cli-key');
    g = guestTools(c, keyFile, c.env.ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE!);
  });
  after(async () => {
    await g?.deleteIfRunning(server?.id, fromSnapshot?.id);
    if (snapshot) await c.osRaw(DEMO, 'image', 'delete', snapshot).catch(() => undefined);
    await c?.stop();
    keys.remove();
    console.log(`# e2e/nova-cli.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  it('boots a server on a routed tenant network with a keypair and a security group', async () => {
    lab = await routedNetwork(c, 'nova-cli', '10.41.0.0/24', keyFile);
    assert.equal(lab.key, 'nova-cli-key');
    // nova-compute registers its host a little after `up` returns (it needs the other services first).
    await waitFor('a compute host', 60_000, async () => ((await c.os(ADMIN, 'hypervisor', 'list')) as unknown[]).length > 0 || undefined);
    server = await g.createServer(NAME, '--image', 'onestack-guest', '--flavor', 'm1.nano', '--network', lab.net, '--key-name', lab.key, '--security-group', lab.sg);
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

  it('shows the boot and metadata lines on the console and answers SSH at its floating IP as cirros and root', async () => {
    assert.ok(server, 'the server booted');
    let out = '';
    const log = await waitFor('the READY line on the console', BOOT_TIMEOUT, async () => {
      out = await c.osRaw(DEMO, 'console', 'log', 'show', server.id);
      return /=== ONESTACK GUEST READY /.test(out) ? out : undefined;
    }).catch((e: Error) => assert.fail(`${e.message}; the console so far:\n${out.slice(-3000)}`));
    assert.match(log, /onestack-guest\[[\d.]+\]: initramfs/, 'the first line the guest prints as it boots');
    assert.match(log, new RegExp(`metadata from metadata-service: uuid=${server.id} hostname=${NAME} keys=1`));
    assert.match(log, new RegExp(`ONESTACK GUEST READY hostname=${NAME} ip=10\\.41\\.0\\.\\d+ uuid=${server.id} metadata=metadata-service`));
    // --lines: the API's os-getConsoleOutput length, the last lines only.
    const tail = await c.osRaw(DEMO, 'console', 'log', 'show', '--lines', '3', server.id);
    assert.ok(tail.trim().split('\n').length <= 3, tail);

    const created = await c.os(DEMO, 'floating', 'ip', 'create', 'public');
    fip = created.floating_ip_address;
    assert.match(fip, /^172\.24\.4\.\d+$/);
    await c.osRaw(DEMO, 'server', 'add', 'floating', 'ip', server.id, fip);
    // Nova learns of the association from Neutron's notification, as upstream's network-changed event.
    await waitFor('the floating IP in the server\'s addresses', 30_000, async () => JSON.stringify((await c.os(DEMO, 'server', 'show', server.id)).addresses).includes(fip) || undefined);

    // By name: `onestack ssh` finds the floating IP, the external namespace and the default user.
    const viaCommand = await waitFor('onestack ssh', BOOT_TIMEOUT, async () => (await onestackSsh(NAME, '--', 'id', '-un')).stdout.trim());
    assert.equal(viaCommand, 'cirros');
    // By id as root; the host key is checked against the console's: a wrong one in the known_hosts the first call wrote would refuse.
    assert.equal((await onestackSsh('-l', 'root', server.id, '--', 'hostname')).stdout.trim(), NAME);

    assert.equal((await plainSsh('cirros', 'hostname')).stdout.trim(), NAME);
    assert.equal((await plainSsh('cirros', 'id', '-u')).stdout.trim(), '1000');
    assert.equal((await plainSsh('root', 'id', '-u')).stdout.trim(), '0');
    const ping = await run('ip', ['netns', 'exec', ext, 'busybox', 'ping', '-c', '3', '-W', '5', fip], { timeout: 60_000 });
    assert.match(ping.stdout, /3 packets transmitted, [1-3] packets received/);
  });

  it("hands out a noVNC URL whose page loads and whose websocket speaks QEMU's RFB", async () => {
    assert.ok(server, 'the server booted');
    const shown = await c.os(DEMO, 'console', 'url', 'show', '--novnc', server.id);
    assert.equal(shown.type, 'novnc');
    const url = new URL(shown.url);
    assert.equal(url.protocol, 'http:');
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    // noVNC's page opens ws://<its host>/<path>; the path carries the token.
    const path = url.searchParams.get('path');
    assert.match(path ?? '', /^\?token=[\w-]+$/);
    const banner = await firstBytes(`ws://${url.host}/${path}`, 12, 30_000);
    assert.match(banner, /^RFB 003\.00\d\n$/);
    // Without the token the proxy refuses the upgrade.
    await assert.rejects(firstBytes(`ws://${url.host}/?token=not-a-token`, 12, 10_000), /status 40[13]/);
  });

  it('stops, starts and reboots the guest through the CLI', async () => {
    assert.ok(fip, 'the server was reached');
    const booted = await bootId();
    await c.osRaw(DEMO, 'server', 'stop', server.id);
    await waitStatus('SHUTOFF');
    assert.equal((await c.os(DEMO, 'server', 'show', server.id))['OS-EXT-STS:power_state'], 4, 'power state 4: shutdown');
    assert.deepEqual(qemuProcessesOf(server.id), [], 'a stopped server has no QEMU process');
    await assert.rejects(c.osRaw(DEMO, 'server', 'stop', server.id), /409|Conflict|state/i);

    await c.osRaw(DEMO, 'server', 'start', server.id);
    await waitStatus('ACTIVE');
    const started = await newBootId('start', booted);

    await g.osWaitRaw(DEMO, 'server', 'reboot', '--wait', server.id);
    assert.equal(await status(), 'ACTIVE');
    await newBootId('reboot', started);
    assert.equal((await plainSsh('cirros', 'hostname')).stdout.trim(), NAME);

    const actions = (await c.os(DEMO, 'server', 'event', 'list', server.id)) as { Action: string }[];
    for (const a of ['create', 'stop', 'start', 'reboot']) {
      assert.ok(actions.some((x) => x.Action === a), `instance action ${a} recorded: ${actions.map((x) => x.Action).join(' ')}`);
    }
  });

  it('snapshots the running server into an image that boots a second server', async () => {
    assert.ok(fip, 'the server was reached');
    await g.osWaitRaw(DEMO, 'server', 'image', 'create', '--name', 'nova-cli-snapshot', '--wait', server.id);
    const image = await c.os(DEMO, 'image', 'show', 'nova-cli-snapshot');
    snapshot = image.id;
    assert.equal(image.status, 'active');
    assert.equal(image.properties?.image_type, 'snapshot');
    assert.equal(image.properties?.instance_uuid, server.id);
    // Taken live: the server goes on.
    assert.equal(await status(), 'ACTIVE');
    assert.equal((await plainSsh('cirros', 'hostname')).stdout.trim(), NAME);

    const second = await g.createServer('nova-cli-from-snapshot', '--image', image.id, '--flavor', 'm1.nano', '--network', lab.net, '--key-name', lab.key, '--security-group', lab.sg);
    fromSnapshot = { id: second.id, ip: await g.fixedIp(second.id, 'nova-cli-net') };
    assert.match(JSON.stringify((await c.os(DEMO, 'server', 'show', second.id)).image), new RegExp(image.id));
    await g.bootIdAt(lab.router, fromSnapshot.ip);
    assert.equal((await g.sshAt(lab.router, fromSnapshot.ip, 'hostname')).stdout.trim(), 'nova-cli-from-snapshot');
  });

  it('deletes both servers and the snapshot, leaving no QEMU process, tap, disk, port or allocation behind', async () => {
    assert.ok(fip, 'the server was reached');
    if (fromSnapshot) {
      await g.deleteLeavingNothing(fromSnapshot.id);
      fromSnapshot = undefined;
    }
    await g.deleteLeavingNothing(server.id);
    await assert.rejects(onestackSsh(NAME, '--', 'true'), /no server named or with id "nova-cli-vm"/);
    assert.ok(snapshot, 'the snapshot was made');
    await c.osRaw(DEMO, 'image', 'delete', snapshot);
    await assert.rejects(c.osRaw(DEMO, 'image', 'show', snapshot), /No Image found|404|not found/i);
    snapshot = undefined;
  });
});
