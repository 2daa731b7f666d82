/**
 * Boot from volume on real QEMU: Nova asks Cinder (its file driver, qcow2 files) for a
 * volume made of the guest image, connects it through the attachments API and boots the
 * guest from it — no overlay on the image cache, the volume's file is the guest's vda. The
 * guest prints its READY line, does again after stop and start (the volume stays its disk),
 * and deleting the server deletes the volume (delete_on_termination) and leaves no process.
 * The image of a stopped volume-backed guest (a Cinder snapshot of its volume) boots a
 * second guest from a new volume made of the snapshot; so does the image of a RUNNING one,
 * whose locked volume file Cinder's file driver has Nova copy (os-assisted-volume-snapshots:
 * QMP drive-backup in the guest's QEMU), the guest running on unchanged.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startCinder, type CinderFixture } from '../../../cinder/test/fixture.ts';
import { CinderClient as VolumeApi } from '../../../cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../../cinder/src/drivers/file-driver.ts';
import type { NovaHttp } from '../../../cinder/src/domain/nova.ts';
import { cinderServiceUser } from '../../test/with-cinder.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import { BOOT_TIMEOUT_MS, consoleOutput, processesNaming, READY, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

describe('a real QEMU guest booted from a Cinder volume', { timeout: 900_000 }, () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let cinder: CinderFixture;
  let volumesDir: string;
  /** Cinder's way to Nova (its service user), known once Nova listens. */
  let novaForCinder: NovaHttp | undefined;

  before(async () => {
    h = await startQemuTestHost('nbfv', {
      services: async (stack, cleanups) => {
        cinder = await startCinder({
          ks: stack.fx.ks,
          driver: (state) => new FileVolumeDriver({ dir: (volumesDir = join(state, 'volumes')), backendName: 'file', logger: pino({ level: 'silent' }), host: stack.hosts[0].name }),
          compute: { extendVolume: async () => true, createVolumeSnapshot: (v, info) => novaForCinder!.createVolumeSnapshot(v, info) },
        });
        cleanups.push(() => cinder.close());
        return { cinder_url: cinder.url };
      },
    });
    fx = h.fx;
    ({ nova: novaForCinder } = await cinderServiceUser(fx.ks, fx.url));
    // Cinder finds Glance in the catalog (no glance_api_servers), as the all-in-one's does.
    const svc = await fx.ks.ks.catalog.createService({ type: 'image', name: 'glance' });
    await fx.ks.ks.catalog.createEndpoint({ interface: 'public', serviceId: svc.id, url: fx.glanceAdmin.baseUrl });
  });
  after(() => h?.close());

  const consoleOf = (id: string) => consoleOutput(fx, id);

  it('boots from a volume Nova made of the guest image, keeps it across stop/start, deletes it with the server', async (t) => {
    const t0 = Date.now();
    const created = await fx.admin.at('2.67').post('/v2.1/servers', {
      server: {
        name: 'bfv-guest',
        flavorRef: '42',
        networks: 'none',
        config_drive: true,
        block_device_mapping_v2: [{ uuid: h.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1, delete_on_termination: true }],
      },
    });
    assert.equal(created.status, 202, created.text);
    const id: string = created.body.server.id;
    const active = await fx.waitFor(fx.admin, id, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    assert.equal(active.image, '');
    const [{ id: volumeId }] = active['os-extended-volumes:volumes_attached'];
    const vols = new VolumeApi(cinder.url, fx.ks.admin.token, cinder.adminProjectId, '3.44');
    const volume = (await vols.get(`/volumes/${volumeId}`)).body.volume;
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.bootable, 'true');

    // The guest's disk is the volume's file, not an overlay in the instance directory.
    const path = join(volumesDir, `volume-${volumeId}.qcow2`);
    assert.ok(existsSync(path), path);
    const pid = Number(readFileSync(join(h.instancesDir, id, 'qemu.pid'), 'utf8').trim());
    assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path), 'QEMU opens the volume file');
    assert.equal(existsSync(join(h.instancesDir, id, 'disk')), false);

    const lastReady = (o: string) => o.match(new RegExp(READY.source, 'g'))?.at(-1);
    const log = await until('the READY line', () => consoleOf(id), (o) => READY.test(o), BOOT_TIMEOUT_MS);
    assert.equal(READY.exec(log)![3], id);
    const firstBoot = lastReady(log);
    t.diagnostic(`READY from the volume after ${Date.now() - t0} ms`);

    for (const action of ['os-stop', 'os-start']) {
      assert.equal((await fx.admin.post(`/v2.1/servers/${id}/action`, { [action]: null })).status, 202);
      await fx.waitFor(fx.admin, id, (s) => !s['OS-EXT-STS:task_state'], BOOT_TIMEOUT_MS);
    }
    const started = await fx.admin.get(`/v2.1/servers/${id}`);
    assert.equal(started.body.server.status, 'ACTIVE');
    // The restarted guest booted from the same volume: a READY line of its own (another uptime).
    await until('READY after start', () => consoleOf(id), (o) => !!lastReady(o) && lastReady(o) !== firstBoot, BOOT_TIMEOUT_MS);

    assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    assert.deepEqual(processesNaming(id), [], 'QEMU process gone');
    await cinder.volumes.drain();
    assert.equal((await vols.get(`/volumes/${volumeId}`)).status, 404, 'the volume went with the server');
    assert.equal(existsSync(path), false, 'the volume file is gone');
  });
  /**
   * createImage of a volume-backed guest, stopped or running, and a second guest booted from
   * that image (a new volume of the root volume's snapshot) to READY.
   */
  async function secondGuestFromImage(t: { diagnostic(m: string): void }, running: boolean): Promise<void> {
    const vols = new VolumeApi(cinder.url, fx.ks.admin.token, cinder.adminProjectId, '3.44');
    const created = await fx.admin.at('2.67').post('/v2.1/servers', {
      server: { name: 'bfv-src', flavorRef: '42', networks: 'none', config_drive: true, block_device_mapping_v2: [{ uuid: h.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1, delete_on_termination: true }] },
    });
    assert.equal(created.status, 202, created.text);
    const a: string = created.body.server.id;
    const active = await fx.waitFor(fx.admin, a, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    const [{ id: rootVolume }] = active['os-extended-volumes:volumes_attached'];
    await until('the READY line', () => consoleOf(a), (o) => READY.test(o), BOOT_TIMEOUT_MS);
    const pidOf = (id: string) => Number(readFileSync(join(h.instancesDir, id, 'qemu.pid'), 'utf8').trim());
    const aPid = running ? pidOf(a) : 0;
    if (!running) {
      // Stopped, QEMU has let go of the volume's file, which Cinder's file driver then copies.
      assert.equal((await fx.admin.post(`/v2.1/servers/${a}/action`, { 'os-stop': null })).status, 202);
      await fx.waitFor(fx.admin, a, (s) => s.status === 'SHUTOFF' && !s['OS-EXT-STS:task_state'], BOOT_TIMEOUT_MS);
    }

    const snap = await fx.admin.at('2.45').post(`/v2.1/servers/${a}/action`, { createImage: { name: 'bfv-src-snap' } });
    assert.equal(snap.status, 202, snap.text);
    const imageId: string = snap.body.image_id;
    const image = (await fx.glanceAdmin.get(`/v2/images/${imageId}`)).body;
    assert.deepEqual([image.status, image.size], ['active', 0]);
    const [mapping] = JSON.parse(image.block_device_mapping) as { snapshot_id: string }[];
    const snapshot = await cinder.waitFor(vols, 'snapshots', mapping.snapshot_id, ['available']);
    assert.equal(snapshot.volume_id, rootVolume);
    if (running) {
      // The running guest's QEMU wrote the copy (the file's lock keeps qemu-img out); it runs on, on its volume.
      assert.equal(pidOf(a), aPid);
      assert.ok(existsSync(`/proc/${aPid}`), 'the source guest still runs');
      assert.equal((await fx.admin.get(`/v2.1/servers/${a}`)).body.server.status, 'ACTIVE');
      assert.ok(existsSync(join(volumesDir, `snapshot-${snapshot.id}.qcow2`)));
    }

    const t0 = Date.now();
    const second = await fx.admin.post('/v2.1/servers', { server: { name: 'bfv-copy', imageRef: imageId, flavorRef: '42', networks: 'none', config_drive: true } });
    assert.equal(second.status, 202, second.text);
    const b: string = second.body.server.id;
    const bActive = await fx.waitFor(fx.admin.at('2.3'), b, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(bActive.status, 'ACTIVE', JSON.stringify(bActive.fault ?? bActive));
    const [{ id: copyVolume, delete_on_termination }] = bActive['os-extended-volumes:volumes_attached'];
    assert.equal(delete_on_termination, true);
    assert.equal((await vols.get(`/volumes/${copyVolume}`)).body.volume.snapshot_id, snapshot.id);
    assert.ok(readFileSync(`/proc/${pidOf(b)}/cmdline`, 'utf8').includes(join(volumesDir, `volume-${copyVolume}.qcow2`)), 'QEMU opens the new volume');
    const log = await until('READY from the copy', () => consoleOf(b), (o) => READY.test(o), BOOT_TIMEOUT_MS);
    assert.equal(READY.exec(log)![3], b);
    t.diagnostic(`READY from the snapshot's volume after ${Date.now() - t0} ms`);

    for (const id of [b, a]) {
      assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
      await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
      assert.deepEqual(processesNaming(id), [], 'QEMU process gone');
    }
    assert.equal((await fx.glanceAdmin.delete(`/v2/images/${imageId}`)).status, 204);
    await cinder.volumes.drain();
    assert.equal((await vols.get(`/volumes/${copyVolume}`)).status, 404, 'the copy went with its server');
    // The source's volume outlives its server while a snapshot depends on it, as upstream's Cinder keeps it.
    assert.equal((await vols.get(`/volumes/${rootVolume}`)).body.volume.status, 'available');
    assert.equal((await vols.delete(`/snapshots/${snapshot.id}`)).status, 202);
    await cinder.volumes.drain();
    assert.equal((await vols.delete(`/volumes/${rootVolume}`)).status, 202);
    await cinder.volumes.drain();
    assert.deepEqual(readdirSync(volumesDir).filter((f) => /^(volume|snapshot)-/.test(f)), [], 'no volume or snapshot file left');
  }

  it("boots a second guest from the image of a stopped volume-backed one: a new volume made of the root volume's snapshot", (t) => secondGuestFromImage(t, false));
  it('boots a second guest from the image of a RUNNING volume-backed one: Nova copied the locked volume for Cinder', (t) => secondGuestFromImage(t, true));
});
