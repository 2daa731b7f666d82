import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';
import { DEMO, guestTools, qemuProcessesOf, routedNetwork } from './nova-guest.ts';

const run = promisify(execFile);
const NAME = 'nova-moves-vm';

/**
 * Issue 5's acceptance flow through the unmodified openstack CLI, continued from nova-cli (one file
 * each keeps both inside the runner's 300 s per file): pause and suspend, after which the same boot
 * goes on; a resize whose new memory the guest sees in /proc/meminfo, confirmed; a rebuild the guest
 * boots again from. The guest is reached at its fixed address from its router's namespace.
 */
describe('openstack CLI: pause, suspend, resize and rebuild of a real guest', () => {
  let c: Cloud;
  let g: ReturnType<typeof guestTools>;
  let lab: Awaited<ReturnType<typeof routedNetwork>>;
  let server: { id: string; name: string } | undefined;
  let ip: string;
  const keys = tempDir('onestack-nova-moves-');
  const keyFile = join(keys.path, 'nova-moves-key');
  const t0 = Date.now();

  const bootId = (previous?: string) => g.bootIdAt(lab.router, ip, previous);
  const memTotalKiB = async () => Number((await g.sshAt(lab.router, ip, 'grep', 'MemTotal', '/proc/meminfo')).stdout.match(/MemTotal:\s+(\d+) kB/)![1]);
  const powerState = async () => (await g.server(server!.id))?.['OS-EXT-STS:power_state'];

  before(async () => {
    c = await sharedCloud('nova-moves');
    g = guestTools(c, keyFile, c.env.ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE!);
    lab = await routedNetwork(c, 'nova-moves', '10.42.0.0/24', keyFile);
  });
  after(async () => {
    await g?.deleteIfRunning(server?.id);
    await c?.stop();
    keys.remove();
    console.log(`# e2e/nova-cli-moves.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  it('pauses and unpauses, suspends and resumes: the same boot goes on', async () => {
    server = await g.createServer(NAME, '--image', 'onestack-guest', '--flavor', 'm1.nano', '--network', lab.net, '--key-name', lab.key, '--security-group', lab.sg);
    ip = await g.fixedIp(server.id, 'nova-moves-net');
    const booted = await bootId();

    await c.osRaw(DEMO, 'server', 'pause', server.id);
    await g.waitStatus(server.id, 'PAUSED');
    assert.equal(await powerState(), 3, 'power state 3: paused');
    assert.ok(qemuProcessesOf(server.id).length > 0, 'a paused server keeps its QEMU process');
    // A paused guest runs no vCPU: it cannot answer.
    const routerNs = `${c.env.ONESTACK_NEUTRON_AGENT__NAMESPACE_PREFIX}qrouter-${lab.router}`;
    await assert.rejects(run('ip', ['netns', 'exec', routerNs, 'busybox', 'ping', '-c', '1', '-W', '2', ip], { timeout: 20_000 }));
    await c.osRaw(DEMO, 'server', 'unpause', server.id);
    await g.waitStatus(server.id, 'ACTIVE');
    assert.equal(await bootId(), booted);

    await c.osRaw(DEMO, 'server', 'suspend', server.id);
    await g.waitStatus(server.id, 'SUSPENDED');
    assert.equal(await powerState(), 7, 'power state 7: suspended');
    await assert.rejects(c.osRaw(DEMO, 'server', 'pause', server.id), /409|Conflict|state/i);
    await c.osRaw(DEMO, 'server', 'resume', server.id);
    await g.waitStatus(server.id, 'ACTIVE');
    assert.equal(await bootId(), booted);
  });

  it('resizes to a flavor with more memory, which the guest sees, and confirms', async () => {
    assert.ok(server, 'the server booted');
    const before = { boot: await bootId(), mem: await memTotalKiB() };
    await g.osWaitRaw(DEMO, 'server', 'resize', '--flavor', 'm1.micro', '--wait', server.id);
    assert.equal(await g.status(server.id), 'VERIFY_RESIZE');
    await bootId(before.boot);
    const after = await memTotalKiB();
    // m1.nano has 128 MiB, m1.micro 192: the kernel keeps some of each for itself.
    assert.ok(after - before.mem > 50 * 1024, `MemTotal ${before.mem} kB before, ${after} kB after`);
    await c.osRaw(DEMO, 'server', 'resize', 'confirm', server.id);
    await g.waitStatus(server.id, 'ACTIVE');
    assert.match(JSON.stringify((await c.os(DEMO, 'server', 'show', server.id)).flavor), /m1\.micro/);
    // Confirmed: the allocation the migration held for the old flavor is gone, the server's is the new flavor's.
    const allocations = await g.allocations(server.id);
    assert.equal(allocations.length, 1);
    assert.equal(allocations[0]!.resources.MEMORY_MB, 192);
  });

  it('rebuilds the server from its image: the guest boots again under the same name', async () => {
    assert.ok(server, 'the server booted');
    const booted = await bootId();
    await g.osWaitRaw(DEMO, 'server', 'rebuild', '--image', 'onestack-guest', '--wait', server.id);
    assert.equal(await g.status(server.id), 'ACTIVE');
    await bootId(booted);
    assert.equal((await g.sshAt(lab.router, ip, 'hostname')).stdout.trim(), NAME);

    const actions = (await c.os(DEMO, 'server', 'event', 'list', server.id)) as { Action: string }[];
    for (const a of ['create', 'pause', 'unpause', 'suspend', 'resume', 'resize', 'confirmResize', 'rebuild']) {
      assert.ok(actions.some((x) => x.Action === a), `instance action ${a} recorded: ${actions.map((x) => x.Action).join(' ')}`);
    }
  });

  it('deletes the server, leaving nothing behind', async () => {
    assert.ok(server, 'the server booted');
    await g.deleteLeavingNothing(server.id);
    server = undefined;
  });
});
