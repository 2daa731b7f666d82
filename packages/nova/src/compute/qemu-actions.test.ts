/**
 * Server actions on real QEMU guests (one compute host with the QemuDriver beside a
 * Neutron L2/DHCP agent): resize grows the memory and root disk the guest's kernel sees
 * and a revert on the same host brings the original disk back, createImage makes a Glance snapshot a new server boots from, rebuild puts the guest on
 * another image, shelve/unshelve brings it back from its shelved image. One guest is
 * reused throughout; each step waits for the guest's READY line on the serial console.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NovaFixture } from '../../test/fixture.ts';
import type { QemuDriver } from '../virt/qemu-driver.ts';
import { BOOT_TIMEOUT_MS, consoleOutput, READY, runOnSerialConsole, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

describe('server actions on a real QEMU guest', { timeout: 900_000 }, () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let imageId: string;
  let driver: QemuDriver;
  let netId: string;

  before(async () => {
    h = await startQemuTestHost('na', { nova: { vif_plugging_timeout: 120, vif_plugging_is_fatal: true } });
    ({ fx, imageId, driver } = h);
    const net = (await h.stack.fx.admin.post('/v2.0/networks', { network: { name: 'na-net' } })).body.network;
    netId = net.id;
    const sub = await h.stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.74.0.0/24', ip_version: 4, gateway_ip: '10.74.0.1' } });
    assert.equal(sub.status, 201, sub.text);
    const flavor = await fx.admin.post('/v2.1/flavors', { flavor: { name: 'na.bigger', id: 'na-bigger', ram: 256, vcpus: 1, disk: 2 } });
    assert.equal(flavor.status, 200, flavor.text);
  });
  after(() => h?.close());

  const action = async (id: string, body: unknown, status = 202) => {
    const r = await fx.admin.at('2.45').post(`/v2.1/servers/${id}/action`, body);
    assert.equal(r.status, status, r.text);
    return r.body;
  };
  const consoleOf = (id: string) => consoleOutput(fx, id);
  /** The log is appended across power cycles: a new boot is one more READY line. */
  const readyCount = async (id: string) => (await consoleOf(id)).match(new RegExp(READY.source, 'g'))?.length ?? 0;
  const bootedAgain = async (id: string, before: number) => until(`boot ${before + 1} of ${id}`, () => readyCount(id), (n) => n > before, BOOT_TIMEOUT_MS);
  /** What the running guest itself sees: MemTotal (KiB) and the root disk's size in 512-byte sectors. */
  const guestSees = async (id: string): Promise<{ memKb: number; blocks: number }> => {
    const command = 'echo "SEEN mem=$(grep MemTotal /proc/meminfo | tr -s \' \' | cut -d\' \' -f2) blocks=$(cat /sys/block/vda/size) END"';
    const m = await runOnSerialConsole(driver, id, command, /SEEN mem=(\d+) blocks=(\d+) END/);
    return { memKb: Number(m[1]), blocks: Number(m[2]) };
  };
  const waitStatus = (id: string, status: string) => fx.waitFor(fx.admin, id, (s) => (s.status === status && !s['OS-EXT-STS:task_state']) || s.status === 'ERROR', BOOT_TIMEOUT_MS);
  const waitImage = (id: string) => until(`image ${id} active`, async () => (await fx.glanceAdmin.get(`/v2/images/${id}`)).body, (b) => b?.status === 'active', BOOT_TIMEOUT_MS);

  it('resizes (memory and disk grow in the guest), snapshots, boots the snapshot, rebuilds and shelves/unshelves', async (t) => {
    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'na-guest', imageRef: imageId, flavorRef: '42', networks: [{ uuid: netId }], config_drive: true } });
    assert.equal(created.status, 202, created.text);
    const id: string = created.body.server.id;
    assert.equal((await waitStatus(id, 'ACTIVE')).status, 'ACTIVE');
    await bootedAgain(id, 0);
    const small = await guestSees(id);
    assert.equal(small.blocks, 2 * 1024 * 1024, 'a 1 GiB root disk');

    let t0 = Date.now();
    const resize = async (boots: number) => {
      await action(id, { resize: { flavorRef: 'na-bigger' } });
      const resized = await waitStatus(id, 'VERIFY_RESIZE');
      assert.equal(resized.status, 'VERIFY_RESIZE', JSON.stringify(resized.fault ?? resized));
      await bootedAgain(id, boots);
      const big = await guestSees(id);
      assert.equal(big.blocks, 4 * 1024 * 1024, 'the root disk grew to 2 GiB');
      assert.ok(big.memKb > small.memKb + 100 * 1024, `memory ${small.memKb} KiB -> ${big.memKb} KiB`);
    };
    await resize(1);
    // A revert on the same host brings the original disk back, as upstream's `<dir>_resize`.
    await action(id, { revertResize: null });
    assert.equal((await waitStatus(id, 'ACTIVE')).flavor.original_name, 'm1.nano');
    await bootedAgain(id, 2);
    assert.deepEqual(await guestSees(id), small, 'memory and root disk as before the resize');
    assert.ok(!existsSync(join(h.instancesDir, `${id}_resize`)), 'the kept disks are used up');
    t.diagnostic(`resize and revert: ${Date.now() - t0} ms`);
    t0 = Date.now();
    await resize(3);
    await action(id, { confirmResize: null }, 204);
    assert.equal((await waitStatus(id, 'ACTIVE')).flavor.original_name, 'na.bigger');
    assert.ok(!existsSync(join(h.instancesDir, `${id}_resize`)), 'confirm drops the kept disks');
    t.diagnostic(`resize and confirm: ${Date.now() - t0} ms`);

    t0 = Date.now();
    const { image_id: snapId } = await action(id, { createImage: { name: 'na-snap' } });
    const snap = await waitImage(snapId);
    assert.equal(snap.image_type, 'snapshot');
    assert.equal(snap.base_image_ref, imageId);
    await waitStatus(id, 'ACTIVE');
    // A new server from the snapshot, while the first guest is rebuilt onto it.
    const fromSnap = await fx.admin.post('/v2.1/servers', { server: { name: 'na-from-snap', imageRef: snapId, flavorRef: 'na-bigger', networks: [{ uuid: netId }], config_drive: true } });
    assert.equal(fromSnap.status, 202, fromSnap.text);
    const id2: string = fromSnap.body.server.id;
    const rebuilt = await action(id, { rebuild: { imageRef: snapId, name: 'na-rebuilt' } });
    assert.equal(rebuilt.server.image.id, snapId);
    assert.equal((await waitStatus(id2, 'ACTIVE')).status, 'ACTIVE');
    assert.equal((await waitStatus(id, 'ACTIVE')).image.id, snapId);
    await bootedAgain(id2, 0);
    await bootedAgain(id, 0);
    assert.equal((await guestSees(id2)).blocks, 4 * 1024 * 1024);
    assert.equal((await fx.admin.delete(`/v2.1/servers/${id2}`)).status, 204);
    t.diagnostic(`snapshot, boot from it and rebuild: ${Date.now() - t0} ms`);

    t0 = Date.now();
    await action(id, { shelve: null });
    const shelved = await waitStatus(id, 'SHELVED_OFFLOADED');
    assert.equal(shelved.status, 'SHELVED_OFFLOADED', JSON.stringify(shelved.fault ?? shelved));
    await action(id, { unshelve: null });
    assert.equal((await waitStatus(id, 'ACTIVE')).status, 'ACTIVE');
    const [, hostname] = READY.exec(await until('READY after unshelve', () => consoleOf(id), (o) => READY.test(o), BOOT_TIMEOUT_MS))!;
    assert.equal(hostname, 'na-guest', 'the guest keeps its hostname');
    t.diagnostic(`shelve and unshelve: ${Date.now() - t0} ms`);
    assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    await fx.waitFor(fx.admin, id2, (s) => s.status === 'DELETED', 90_000);
  });
});
