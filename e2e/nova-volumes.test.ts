import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';
import { ADMIN, DEMO, guestTools, routedNetwork, waitFor } from './nova-guest.ts';

/**
 * Issues 5 and 6 together through the unmodified openstack CLI as a project member: a Cinder
 * volume hot-plugged into a running guest (`server add volume`), formatted and written inside
 * the guest over SSH, detached (`server remove volume`), attached to a second guest that reads
 * the data back; `volume show` follows (in-use with the attachment, available again), and
 * deleting the server gives the volume back.
 */
describe('openstack CLI: a volume hot-plugged into running guests', () => {
  let c: Cloud;
  let keyFile: string;
  let g: ReturnType<typeof guestTools>;
  let a: { id: string; name: string } | undefined;
  let b: { id: string; name: string } | undefined;
  let volumeId: string;
  let lab: Awaited<ReturnType<typeof routedNetwork>>;
  /** Fixed addresses by server id: the guests are reached from their router's namespace (no CLI start per probe). */
  const ips = new Map<string, string>();
  const keys = tempDir('nova-volumes-e2e-');
  const t0 = Date.now();

  before(async () => {
    c = await sharedCloud('nova-volumes');
    keyFile = join(keys.path, 'nova-vol-key');
    g = guestTools(c, keyFile, c.env.ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE!);
  });
  after(async () => {
    await g?.deleteIfRunning(a?.id, b?.id);
    if (volumeId) await c.osRaw(DEMO, 'volume', 'delete', volumeId).catch(() => undefined);
    await c?.stop();
    keys.remove();
    console.log(`# e2e/nova-volumes.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  const rootSsh = (server: string, command: string) => g.sshAt(lab.router, ips.get(server)!, command);
  /** The guest's disk whose serial is the volume's id (virtio-blk carries its first 20 characters), as root over SSH (one string: ssh hands the remote shell a line). */
  const diskOf = async (server: string, volume: string) =>
    (await rootSsh(server, `for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "${volume.slice(0, 20)}" ] && echo \${d##*/}; done; true`)).stdout.trim();
  const volume = async () => c.os(DEMO, 'volume', 'show', volumeId);

  it('boots two guests and makes a volume', async () => {
    lab = await routedNetwork(c, 'nova-vol', '10.43.0.0/24', keyFile);
    await waitFor('a compute host', 60_000, async () => ((await c.os(ADMIN, 'hypervisor', 'list')) as unknown[]).length > 0 || undefined);
    const args = ['--image', 'onestack-guest', '--flavor', 'm1.nano', '--network', lab.net, '--key-name', lab.key, '--security-group', lab.sg];
    [a, b] = await Promise.all([g.createServer('nova-vol-a', ...args), g.createServer('nova-vol-b', ...args)]);
    const v = await c.os(DEMO, 'volume', 'create', '--size', '1', 'nova-vol-data');
    volumeId = v.id;
    assert.equal((await waitFor('volume available', 60_000, async () => ((await volume()).status === 'available' ? true : undefined))), true);
    for (const s of [a, b]) ips.set(s.id, await g.fixedIp(s.id, 'nova-vol-net'));
    await Promise.all([a, b].map((s) => g.bootIdAt(lab.router, ips.get(s.id)!)));
  });

  it('server add volume: in-use, and the running guest sees a new disk it can format and write', async () => {
    assert.ok(a && volumeId, 'the guests booted');
    await c.osRaw(DEMO, 'server', 'add', 'volume', a.id, volumeId);
    const shown = await volume();
    assert.equal(shown.status, 'in-use');
    assert.match(JSON.stringify(shown.attachments), new RegExp(a.id));
    const listed = await c.os(DEMO, 'server', 'volume', 'list', a.id).catch(() => undefined);
    if (listed) assert.deepEqual(listed.map((x: { 'Volume ID': string }) => x['Volume ID']), [volumeId]);

    const disk = await waitFor('the disk in the guest', 60_000, async () => (await diskOf(a!.id, volumeId)) || undefined);
    assert.match(disk, /^vd[b-z]$/);
    const out = await rootSsh(a.id, `mke2fs /dev/${disk} && mkdir -p /mnt/vol && mount -t ext2 /dev/${disk} /mnt/vol && echo "written by ${a.id}" > /mnt/vol/proof && sync && umount /mnt/vol && echo DONE`);
    assert.match(out.stdout, /DONE/);
  });

  it('server remove volume: the disk is gone from the guest and the volume available', async () => {
    assert.ok(a && volumeId);
    await c.osRaw(DEMO, 'server', 'remove', 'volume', a.id, volumeId);
    await waitFor('volume available', 60_000, async () => ((await volume()).status === 'available' ? true : undefined));
    assert.deepEqual((await volume()).attachments, []);
    assert.equal(await diskOf(a.id, volumeId), '', 'the guest lost the disk');
  });

  it('the second guest reads what the first wrote; deleting it gives the volume back', async () => {
    assert.ok(b && volumeId);
    await c.osRaw(DEMO, 'server', 'add', 'volume', b.id, volumeId);
    assert.equal((await volume()).status, 'in-use');
    const disk = await waitFor('the disk in the second guest', 60_000, async () => (await diskOf(b!.id, volumeId)) || undefined);
    const out = await rootSsh(b.id, `mkdir -p /mnt/vol && mount -t ext2 -o ro /dev/${disk} /mnt/vol && cat /mnt/vol/proof && umount /mnt/vol`);
    assert.equal(out.stdout.trim(), `written by ${a!.id}`);

    await g.osWaitRaw(DEMO, 'server', 'delete', '--wait', b.id);
    b = undefined;
    const after = await volume();
    assert.equal(after.status, 'available');
    assert.deepEqual(after.attachments, []);
  });

  it('volume set --size on the attached volume (3.42): the running guest sees its disk grow', async () => {
    assert.ok(a && volumeId);
    await c.osRaw(DEMO, 'server', 'add', 'volume', a.id, volumeId);
    const disk = await waitFor('the disk in the guest', 60_000, async () => (await diskOf(a!.id, volumeId)) || undefined);
    /** The guest's own idea of the disk's size, in 512-byte sectors. */
    const sectors = async () => Number((await rootSsh(a!.id, `cat /sys/block/${disk}/size`)).stdout.trim());
    assert.equal(await sectors(), 2 * 1024 * 1024, '1 GiB');
    await c.osRaw(DEMO, '--os-volume-api-version', '3.42', 'volume', 'set', '--size', '2', volumeId);
    const grown = await waitFor('volume extended', 60_000, async () => {
      const v = await volume();
      return v.status === 'in-use' || v.status === 'error_extending' ? v : undefined;
    });
    assert.deepEqual([grown.status, grown.size], ['in-use', 2]);
    await waitFor('the guest sees 2 GiB', 60_000, async () => ((await sectors()) === 4 * 1024 * 1024 ? true : undefined));
    const events = (await c.os(DEMO, 'server', 'event', 'list', a.id)) as { Action: string }[];
    assert.ok(events.some((e) => e.Action === 'extend_volume'), JSON.stringify(events));
  });
});
