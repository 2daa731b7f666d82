import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';
import { ADMIN, BOOT_TIMEOUT, DEMO, guestTools, qemuProcessesOf, routedNetwork, waitFor } from './nova-guest.ts';

/**
 * Issues 5 and 6: boot from volume through the unmodified openstack CLI as a project member.
 * `server create --volume` boots a real QEMU guest from a Cinder volume made of the guest
 * image, `--boot-from-volume 1 --image onestack-guest` has Nova make that volume; both reach
 * the guest's READY line on the console, `volume show` says in-use, and deleting the server
 * gives the user's volume back (available) or deletes the one made with
 * delete_on_termination. `server image create` of the running volume-backed server makes
 * Cinder snapshots of its volumes (the guest's QEMU copies the files it holds locked, asked by
 * Cinder through Nova's os-assisted-volume-snapshots) and an image that `server create
 * --image` boots from new volumes made of them.
 */
describe('openstack CLI: boot from volume', () => {
  let c: Cloud;
  let g: ReturnType<typeof guestTools>;
  let lab: Awaited<ReturnType<typeof routedNetwork>>;
  let keyFile: string;
  const servers: string[] = [];
  const volumes: string[] = [];
  const images: string[] = [];
  const snapshots: string[] = [];
  const keys = tempDir('nova-bfv-e2e-');
  const t0 = Date.now();

  before(async () => {
    c = await sharedCloud('nova-boot-from-volume');
    keyFile = join(keys.path, 'nova-bfv-key');
    g = guestTools(c, keyFile, c.env.ONESTACK_NEUTRON_AGENT__HOST_NAMESPACE!);
    lab = await routedNetwork(c, 'nova-bfv', '10.44.0.0/24', keyFile);
    await waitFor('a compute host', 60_000, async () => ((await c.os(ADMIN, 'hypervisor', 'list')) as unknown[]).length > 0 || undefined);
  });
  after(async () => {
    await g?.deleteIfRunning(...servers);
    for (const i of images) await c.osRaw(DEMO, 'image', 'delete', i).catch(() => undefined);
    for (const sn of snapshots) await c.osRaw(DEMO, 'volume', 'snapshot', 'delete', sn).catch(() => undefined);
    for (const v of volumes) await c.osRaw(DEMO, 'volume', 'delete', v).catch(() => undefined);
    await c?.stop();
    keys.remove();
    console.log(`# e2e/nova-boot-from-volume.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  const volume = (id: string) => c.os(DEMO, 'volume', 'show', id);
  const common = () => ['--flavor', 'm1.nano', '--network', lab.net, '--key-name', lab.key, '--security-group', lab.sg];
  /** The console log once it has the guest's READY line (the guest booted from its disk and found its metadata). */
  const readyLine = async (id: string) => {
    let out = '';
    return waitFor('the READY line on the console', BOOT_TIMEOUT, async () => {
      out = await c.osRaw(DEMO, 'console', 'log', 'show', id);
      return /=== ONESTACK GUEST READY /.test(out) ? out : undefined;
    }).catch((e: Error) => assert.fail(`${e.message}; the console so far:\n${out.slice(-3000)}`));
  };

  let byVolume: { server: string; volume: string };
  let byImage: { server: string; root: string; blank: string };

  // The two boots go together: each is a TCG boot of tens of seconds on a loaded machine.
  it('server create --volume, and --boot-from-volume 1 --image onestack-guest (Nova makes the volumes): both boot from volumes', async () => {
    const v = await c.os(DEMO, 'volume', 'create', '--size', '1', '--image', 'onestack-guest', 'nova-bfv-root');
    volumes.push(v.id);
    await waitFor('volume available', 120_000, async () => ((await volume(v.id)).status === 'available' ? true : undefined));
    const before = new Set(((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).map((x) => x.ID));
    const created = await Promise.allSettled([
      g.createServer('nova-bfv-vol', '--volume', v.id, ...common()),
      // The CLI's --boot-from-volume leaves delete_on_termination false; a second, blank volume asks for it.
      g.createServer('nova-bfv-img', '--boot-from-volume', '1', '--image', 'onestack-guest', '--block-device', 'source_type=blank,destination_type=volume,volume_size=1,delete_on_termination=true', ...common()),
    ]);
    for (const r of created) if (r.status === 'fulfilled') servers.push(r.value.id);
    const [s, t] = created.map((r) => (r.status === 'fulfilled' ? r.value : assert.fail(r.reason as Error)));

    // --volume: the user's volume is the root disk.
    const shown = await c.os(DEMO, 'server', 'show', s.id);
    assert.equal(shown.image, 'N/A (booted from volume)');
    assert.match(JSON.stringify(shown.volumes_attached), new RegExp(v.id));
    const inUse = await volume(v.id);
    assert.equal(inUse.status, 'in-use');
    assert.match(JSON.stringify(inUse.attachments), new RegExp(s.id));
    // The root disk is the volume: the host's placement claim has no DISK_GB.
    const alloc = await g.allocations(s.id);
    assert.equal(alloc.length, 1);
    assert.equal(alloc[0].resources.DISK_GB, undefined);
    byVolume = { server: s.id, volume: v.id };

    // --boot-from-volume --image: Nova made a root volume of the image and the blank one.
    const made = await Promise.all(((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).filter((x) => !before.has(x.ID)).map((x) => volume(x.ID)));
    assert.equal(made.length, 2);
    volumes.push(...made.map((x) => x.id as string));
    const root = made.find((x) => x.bootable === 'true')!;
    const blank = made.find((x) => x.bootable !== 'true')!;
    assert.ok(root && blank, JSON.stringify(made));
    for (const x of made) {
      assert.equal(x.status, 'in-use');
      assert.match(JSON.stringify(x.attachments), new RegExp(t.id));
    }
    assert.equal((await c.os(DEMO, 'server', 'show', t.id)).image, 'N/A (booted from volume)');
    byImage = { server: t.id, root: root.id, blank: blank.id };

    const [log] = await Promise.all([readyLine(s.id), readyLine(t.id)]);
    assert.match(log, new RegExp(`ONESTACK GUEST READY hostname=nova-bfv-vol .*uuid=${s.id}`));
  });

  it('server image create of the running --boot-from-volume server: snapshots of its volumes; server create --image boots from copies of them', async () => {
    assert.ok(byImage, 'the server booted');
    // Running: Cinder's file driver has Nova copy the volume files the guest's QEMU holds locked.
    const pidsBefore = qemuProcessesOf(byImage.server);
    const made = JSON.parse(await g.osWaitRaw(DEMO, 'server', 'image', 'create', '--name', 'nova-bfv-snap', '--wait', byImage.server, '-f', 'json'));
    images.push(made.id);
    const image = await c.os(DEMO, 'image', 'show', made.id);
    assert.equal(image.status, 'active');
    assert.equal(image.size, 0);
    assert.equal(image.properties.bdm_v2, 'True');
    assert.equal(image.properties.root_device_name, '/dev/vda');
    const mapping = JSON.parse(image.properties.block_device_mapping) as { snapshot_id: string; boot_index: number | null; delete_on_termination: boolean }[];
    // The CLI gives the blank volume no boot_index, which the mapping keeps.
    assert.deepEqual(mapping.map((m) => [m.boot_index, m.delete_on_termination]), [[0, false], [null, true]]);
    for (const m of mapping) {
      snapshots.push(m.snapshot_id);
      const snap = await waitFor('snapshot made', 120_000, async () => {
        const x = await c.os(DEMO, 'volume', 'snapshot', 'show', m.snapshot_id);
        return x.status !== 'creating' ? x : undefined;
      });
      assert.equal(snap.status, 'available');
      assert.equal(snap.name, 'snapshot for nova-bfv-snap');
    }
    // The source guest ran on through the copies: the same QEMU, still ACTIVE.
    assert.deepEqual(qemuProcessesOf(byImage.server), pidsBefore);
    assert.equal((await c.os(DEMO, 'server', 'show', byImage.server)).status, 'ACTIVE');

    const before = new Set(((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).map((x) => x.ID));
    const copy = await g.createServer('nova-bfv-copy', '--image', 'nova-bfv-snap', ...common());
    servers.push(copy.id);
    const copies = await Promise.all(((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).filter((x) => !before.has(x.ID)).map((x) => volume(x.ID)));
    volumes.push(...copies.map((x) => x.id as string));
    assert.deepEqual(copies.map((x) => x.snapshot_id).sort(), [...snapshots].sort());
    const log = await readyLine(copy.id);
    assert.match(log, new RegExp(`ONESTACK GUEST READY hostname=nova-bfv-copy .*uuid=${copy.id}`));

    // delete_on_termination as the image's mappings say: the root's copy stays, the blank's goes.
    await g.osWaitRaw(DEMO, 'server', 'delete', '--wait', copy.id);
    servers.splice(servers.indexOf(copy.id), 1);
    assert.deepEqual(qemuProcessesOf(copy.id), []);
    const rootCopy = copies.find((x) => x.snapshot_id === mapping[0]!.snapshot_id)!;
    const blankCopy = copies.find((x) => x.snapshot_id === mapping[1]!.snapshot_id)!;
    await waitFor('the blank copy deleted', 60_000, async () => ((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).every((x) => x.ID !== blankCopy.id) || undefined);
    assert.equal((await volume(rootCopy.id)).status, 'available');
    // Deleting the image leaves the snapshots, as upstream; they go here so the volumes can.
    await c.osRaw(DEMO, 'image', 'delete', made.id);
    images.splice(images.indexOf(made.id), 1);
    for (const id of snapshots.splice(0)) {
      assert.equal((await c.os(DEMO, 'volume', 'snapshot', 'show', id)).status, 'available');
      await c.osRaw(DEMO, 'volume', 'snapshot', 'delete', id);
      await waitFor('snapshot deleted', 60_000, async () => ((await c.os(DEMO, 'volume', 'snapshot', 'list')) as { ID: string }[]).every((x) => x.ID !== id) || undefined);
    }
  });

  it('delete gives the user\'s volume back', async () => {
    assert.ok(byVolume, 'the server booted');
    await g.osWaitRaw(DEMO, 'server', 'delete', '--wait', byVolume.server);
    servers.splice(servers.indexOf(byVolume.server), 1);
    assert.deepEqual(qemuProcessesOf(byVolume.server), []);
    const back = await volume(byVolume.volume);
    assert.equal(back.status, 'available');
    assert.deepEqual(back.attachments, []);
  });

  it('delete keeps the root volume Nova made, deletes the delete_on_termination one', async () => {
    assert.ok(byImage, 'the server booted');
    await g.osWaitRaw(DEMO, 'server', 'delete', '--wait', byImage.server);
    servers.splice(servers.indexOf(byImage.server), 1);
    assert.deepEqual(qemuProcessesOf(byImage.server), []);
    await waitFor('the blank volume deleted', 60_000, async () => ((await c.os(DEMO, 'volume', 'list')) as { ID: string }[]).every((x) => x.ID !== byImage.blank) || undefined);
    const kept = await volume(byImage.root);
    assert.equal(kept.status, 'available');
    assert.deepEqual(kept.attachments, []);
  });
});
