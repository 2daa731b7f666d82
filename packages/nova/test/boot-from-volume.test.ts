import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { CinderClient as VolumeApi, startCinder } from '../../cinder/test/fixture.ts';
import { JsonClient } from '@onestack/testing/index.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { InstanceSpec } from '../src/virt/driver.ts';
import type { NovaFixture, Project } from './fixture.ts';
import { novaBesideCinder } from './with-cinder.ts';

/** The fake hypervisor, remembering what it was asked to boot and failing a spawn when told to. */
class RecordingFakeDriver extends FakeDriver {
  readonly specs = new Map<string, InstanceSpec>();
  failSpawn = false;
  override async spawn(spec: InstanceSpec): Promise<void> {
    if (this.failSpawn) throw new Error('fake driver: spawn failed as asked');
    this.specs.set(spec.uuid, spec);
    return super.spawn(spec);
  }
}

/**
 * Boot from volume (block_device_mapping_v2) through a real Cinder with its fake volume
 * driver and a fake compute host: the volume the user gives, a volume Nova makes from an
 * image, delete_on_termination, the views, placement's claim, upstream's 400s, and no
 * volume or attachment left behind when a build fails.
 */
describe('nova boot from volume', () => {
  let ks: KeystoneFixture;
  let cinder: Awaited<ReturnType<typeof startCinder>>;
  let f: NovaFixture;
  let p: Project;
  let vol: VolumeApi;
  let driver: RecordingFakeDriver;
  let netless: { name: string; flavorRef: string; networks: 'none' };

  const volume = async (id: string) => (await vol.get(`/volumes/${id}`)).body.volume;
  const bootableVolume = async (name: string) => {
    const r = await vol.post('/volumes', { volume: { name, size: 1, imageRef: f.imageId } });
    assert.equal(r.status, 202, r.text);
    return (await cinder.waitFor(vol, 'volumes', r.body.volume.id, ['available'])).id as string;
  };
  const projectVolumes = async () => (await vol.get('/volumes/detail')).body.volumes as { id: string; status: string; name: string }[];
  const create = (server: Record<string, unknown>, c = p.member.at('2.67')) => c.post('/v2.1/servers', { server: { ...netless, ...server } });

  before(async () => {
    ks = await startKeystone();
    cinder = await startCinder({ ks });
    driver = new RecordingFakeDriver({ hostname: 'bfv-h1' });
    ({ f, p, vol } = await novaBesideCinder(ks, cinder.url, driver, 'bfv'));
    // Cinder finds Glance in the catalog, as a deployment without glance_api_servers does.
    const svc = await ks.ks.catalog.createService({ type: 'image', name: 'glance' });
    await ks.ks.catalog.createEndpoint({ interface: 'public', serviceId: svc.id, url: f.glanceAdmin.baseUrl });
    netless = { name: 'bfv', flavorRef: '1', networks: 'none' };
  });
  after(async () => {
    await f?.close();
    await cinder?.close();
    await ks?.close();
  });

  it('boots from the volume given (openstack server create --volume): no image, volume in-use, kept at delete', async () => {
    const v = await bootableVolume('root');
    // As the CLI sends it: boot_index as a string, imageRef empty.
    const r = await create({ imageRef: '', block_device_mapping_v2: [{ uuid: v, boot_index: '0', source_type: 'volume', destination_type: 'volume' }] });
    assert.equal(r.status, 202, r.text);
    const id = r.body.server.id;
    const s = await f.waitFor(p.member, id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    const shown = (await p.member.at('2.3').get(`/v2.1/servers/${id}`)).body.server;
    assert.equal(shown.image, '');
    assert.deepEqual(shown['os-extended-volumes:volumes_attached'], [{ id: v, delete_on_termination: false }]);
    assert.deepEqual((await p.member.at('2.1').get(`/v2.1/servers/${id}`)).body.server['os-extended-volumes:volumes_attached'], [{ id: v }]);
    const spec = driver.specs.get(id)!;
    assert.equal(spec.image, undefined);
    assert.deepEqual(spec.blockDevices.map((b) => [b.volumeId, b.bootIndex]), [[v, 0]]);
    const inUse = await volume(v);
    assert.equal(inUse.status, 'in-use');
    assert.equal(inUse.attachments[0].server_id, id);
    assert.equal(inUse.attachments[0].device, '/dev/vda');
    // The root disk is the volume: the host gives no DISK_GB for it (flavor 1 has a 1 GiB disk).
    const alloc = await f.nova.core.placement.allocations(id);
    const resources = Object.values(alloc.allocations)[0].resources;
    assert.equal(resources.DISK_GB, undefined);
    assert.equal(resources.MEMORY_MB, 256);

    for (const action of ['os-stop', 'os-start']) {
      assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { [action]: null })).status, 202);
      await f.waitFor(p.member, id, (x) => !x['OS-EXT-STS:task_state']);
    }
    assert.equal((await f.waitFor(p.member, id)).status, 'ACTIVE');
    // Shelved and offloaded, then unshelved: the guest boots from its volume again.
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { shelve: null })).status, 202);
    assert.equal((await f.waitFor(p.member, id, (x) => x.status === 'SHELVED_OFFLOADED' && !x['OS-EXT-STS:task_state'])).status, 'SHELVED_OFFLOADED');
    driver.specs.delete(id);
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { unshelve: null })).status, 202);
    assert.equal((await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state'])).status, 'ACTIVE');
    assert.equal(driver.specs.get(id)!.image, undefined);
    assert.deepEqual(driver.specs.get(id)!.blockDevices.map((b) => [b.volumeId, b.bootIndex]), [[v, 0]]);
    assert.equal((await volume(v)).status, 'in-use');
    const rebuild = await p.member.post(`/v2.1/servers/${id}/action`, { rebuild: { imageRef: f.imageId } });
    assert.equal(rebuild.status, 400, rebuild.text);
    assert.equal(rebuild.body.badRequest.message, `Image ${f.imageId} is unacceptable: Unable to rebuild with a different image for a volume-backed server.`);

    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    const after = await volume(v);
    assert.equal(after.status, 'available');
    assert.deepEqual(after.attachments, []);
    assert.equal((await f.database.db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', '=', id).execute()).length, 0);
  });

  it('makes the boot volume from an image (--boot-from-volume) and deletes it with the server (delete_on_termination)', async () => {
    const before = new Set((await projectVolumes()).map((x) => x.id));
    const r = await create({
      block_device_mapping_v2: [
        { uuid: f.imageId, boot_index: 0, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true },
        { source_type: 'blank', destination_type: 'volume', volume_size: 1, delete_on_termination: true },
      ],
    });
    assert.equal(r.status, 202, r.text);
    const id = r.body.server.id;
    const s = await f.waitFor(p.member, id, undefined, 20_000);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    const made = (await projectVolumes()).filter((x) => !before.has(x.id));
    assert.equal(made.length, 2);
    // Upstream names the blank volumes it makes after the instance, and no other.
    const blank = made.find((x) => x.name === `${id}-blank-vol`)!;
    assert.ok(blank, JSON.stringify(made));
    assert.equal((await volume(blank.id)).status, 'in-use');
    const v = await volume(made.find((x) => x !== blank)!.id);
    assert.equal(v.name, '');
    assert.equal(v.status, 'in-use');
    assert.equal(v.bootable, 'true');
    assert.equal(v.volume_image_metadata.image_id, f.imageId);
    assert.deepEqual((await p.member.at('2.3').get(`/v2.1/servers/${id}`)).body.server['os-extended-volumes:volumes_attached'], [{ id: v.id, delete_on_termination: true }, { id: blank.id, delete_on_termination: true }]);
    assert.deepEqual(driver.specs.get(id)!.blockDevices.map((b) => [b.volumeId, b.bootIndex]), [[v.id, 0], [blank.id, undefined]]);

    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    await cinder.volumes.drain();
    assert.equal((await vol.get(`/volumes/${v.id}`)).status, 404);
    assert.equal((await vol.get(`/volumes/${blank.id}`)).status, 404);
  });

  it('refuses bad mappings with upstream 400s, reserving nothing', async () => {
    const blank = (await vol.post('/volumes', { volume: { name: 'blank', size: 1 } })).body.volume.id;
    await cinder.waitFor(vol, 'volumes', blank, ['available']);
    const missing = '00000000-0000-4000-8000-000000000000';
    const bdm = (x: Record<string, unknown>) => ({ block_device_mapping_v2: [x] });
    const cases: [Record<string, unknown>, RegExp, string?][] = [
      [{}, /^Missing imageRef attribute$/],
      [{ block_device_mapping: [{ volume_id: blank, device_name: 'vda' }], ...bdm({ uuid: blank, boot_index: 0, source_type: 'volume' }) }, /^Using different block_device_mapping syntaxes is not allowed in the same request\.$/],
      [bdm({ uuid: blank, source_type: 'blank', destination_type: 'volume', boot_index: 0 }), /^Block Device Mapping is Invalid: Invalid device UUID\.$/],
      [bdm({ source_type: 'volume', boot_index: 0 }), /^Block Device Mapping is Invalid: Missing device UUID\.$/],
      [bdm({ uuid: f.imageId, source_type: 'image', destination_type: 'local', boot_index: 0 }), /^Block Device Mapping is Invalid: Mapping image to local is not supported\.$/],
      [bdm({ uuid: blank, source_type: 'volume', destination_type: 'volume', boot_index: 1 }), /^Block Device Mapping is Invalid: Boot sequence for the instance and image\/block device mapping combination is not valid\.$/],
      [bdm({ uuid: missing, source_type: 'volume', destination_type: 'volume', boot_index: 0 }), new RegExp(`^Block Device Mapping is Invalid: failed to get volume ${missing}\\.$`)],
      [bdm({ uuid: blank, source_type: 'volume', destination_type: 'volume', boot_index: 0 }), new RegExp(`^Block Device ${blank} is not bootable\\.$`)],
      [bdm({ uuid: f.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0 }), /^Images with destination_type 'volume' need to have a non-zero size specified$/],
      [bdm({ uuid: missing, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1 }), new RegExp(`^Block Device Mapping is Invalid: failed to get image ${missing}\\.$`)],
      [{ imageRef: missing, ...bdm({ source_type: 'blank', destination_type: 'volume', volume_size: 1 }) }, new RegExp(`^Image ${missing} could not be found\\.$`)],
      [bdm({ source_type: 'blank', destination_type: 'volume', boot_index: 0 }), /^Blank volumes \(source: 'blank', dest: 'volume'\) need to have non-zero size$/],
      [bdm({ uuid: blank, source_type: 'volume', destination_type: 'volume', boot_index: 0, volume_type: 'x' }), /^Block Device Mapping is Invalid: Specifying volume type to existing volume is not supported\.$/],
      [bdm({ uuid: f.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1, volume_type: 'no-such-type' }), /^Volume type no-such-type could not be found\.$/],
      [bdm({ uuid: blank, source_type: 'volume', boot_index: 0, volume_size: 0 }), /volume_size.*less than the minimum of 1/],
      [bdm({ uuid: blank, source_type: 'volume', boot_index: 'first' }), /boot_index.*does not match/],
      [bdm({ uuid: blank, source_type: 'disk', boot_index: 0 }), /source_type.*is not one of \['volume', 'image', 'snapshot', 'blank'\]/],
      [{ ...bdm({ uuid: blank, source_type: 'volume', boot_index: 0 }), min_count: 2 }, /^Cannot attach one or more volumes to multiple instances$/],
    ];
    for (const [body, message] of cases) {
      const r = await create(body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.body.badRequest.message, message, JSON.stringify(body));
    }
    // volume_type arrived in 2.67, tag in 2.32 and again from 2.42.
    const typed = await create(bdm({ uuid: f.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1, volume_type: 'x' }), p.member.at('2.66'));
    assert.match(typed.body.badRequest.message, /Additional properties are not allowed \('volume_type' was unexpected\)/);
    const tagged = await create(bdm({ uuid: f.imageId, source_type: 'image', destination_type: 'volume', boot_index: 0, volume_size: 1, tag: 't' }), p.member.at('2.41'));
    assert.match(tagged.body.badRequest.message, /'tag' was unexpected/);
    assert.equal((await volume(blank)).status, 'available');
    assert.deepEqual((await volume(blank)).attachments, []);
  });

  it('boots from a volume Nova makes of a snapshot (openstack server create --snapshot)', async () => {
    const v = await bootableVolume('snapped');
    const snap = await vol.post('/snapshots', { snapshot: { volume_id: v, name: 'snap' } });
    assert.equal(snap.status, 202, snap.text);
    await cinder.waitFor(vol, 'snapshots', snap.body.snapshot.id, ['available']);
    const before = new Set((await projectVolumes()).map((x) => x.id));
    const r = await create({ imageRef: '', block_device_mapping_v2: [{ uuid: snap.body.snapshot.id, boot_index: '0', source_type: 'snapshot', destination_type: 'volume', delete_on_termination: false }] });
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(p.member, r.body.server.id, undefined, 20_000);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    const [made] = (await projectVolumes()).filter((x) => !before.has(x.id));
    const shown = await volume(made.id);
    assert.equal(shown.snapshot_id, snap.body.snapshot.id);
    assert.equal(shown.size, 1);
    assert.equal(shown.status, 'in-use');
    assert.equal(driver.specs.get(r.body.server.id)!.blockDevices[0].volumeId, made.id);
    assert.equal((await p.member.delete(`/v2.1/servers/${r.body.server.id}`)).status, 204);
    await f.waitFor(p.member, r.body.server.id, (x) => x.status === 'DELETED');
    assert.equal((await volume(made.id)).status, 'available');
    assert.equal((await vol.delete(`/volumes/${made.id}`)).status, 202);
    await cinder.volumes.drain();
    assert.equal((await vol.delete(`/snapshots/${snap.body.snapshot.id}`)).status, 202);
  });

  it('a flavor without a root disk boots volume-backed servers only (zero_disk_flavor policy)', async () => {
    const fl = await f.admin.post('/v2.1/flavors', { flavor: { name: 'bfv-zero', id: 'bfv-zero', ram: 64, vcpus: 1, disk: 0 } });
    assert.equal(fl.status, 200, fl.text);
    const fromImage = await create({ imageRef: f.imageId, flavorRef: 'bfv-zero' });
    assert.equal(fromImage.status, 403, fromImage.text);
    assert.equal(fromImage.body.forbidden.message, 'Only volume-backed servers are allowed for flavors with zero disk.');
    const v = await bootableVolume('zero');
    const r = await create({ flavorRef: 'bfv-zero', block_device_mapping_v2: [{ uuid: v, boot_index: 0, source_type: 'volume', destination_type: 'volume', delete_on_termination: true }] });
    assert.equal(r.status, 202, r.text);
    assert.equal((await f.waitFor(p.member, r.body.server.id)).status, 'ACTIVE');
    assert.equal((await p.member.delete(`/v2.1/servers/${r.body.server.id}`)).status, 204);
    await f.waitFor(p.member, r.body.server.id, (x) => x.status === 'DELETED');
  });

  it('takes the legacy block_device_mapping: the volume on vda boots', async () => {
    const v = await bootableVolume('legacy');
    const r = await create({ block_device_mapping: [{ volume_id: v, device_name: 'vda', delete_on_termination: 'true' }], networks: undefined }, p.member.at('2.3'));
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(p.member.at('2.3'), r.body.server.id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    assert.deepEqual(s['os-extended-volumes:volumes_attached'], [{ id: v, delete_on_termination: true }]);
    assert.equal(driver.specs.get(r.body.server.id)!.blockDevices[0].bootIndex, 0);
    assert.equal((await p.member.delete(`/v2.1/servers/${r.body.server.id}`)).status, 204);
    await f.waitFor(p.member, r.body.server.id, (x) => x.status === 'DELETED');
    await cinder.volumes.drain();
    assert.equal((await vol.get(`/volumes/${v}`)).status, 404);
  });

  it('refuses a volume another server uses', async () => {
    const v = await bootableVolume('taken');
    const first = await create({ block_device_mapping_v2: [{ uuid: v, boot_index: 0, source_type: 'volume', destination_type: 'volume' }] });
    assert.equal((await f.waitFor(p.member, first.body.server.id)).status, 'ACTIVE');
    const second = await create({ block_device_mapping_v2: [{ uuid: v, boot_index: 0, source_type: 'volume', destination_type: 'volume' }] });
    assert.equal(second.status, 400);
    assert.equal(second.body.badRequest.message, `Invalid volume: volume '${v}' status must be 'available'. Currently in 'in-use'`);
    await p.member.delete(`/v2.1/servers/${first.body.server.id}`);
    await f.waitFor(p.member, first.body.server.id, (x) => x.status === 'DELETED');
  });

  it('a failed build leaves ERROR with a readable fault, the volume nova made deleted and the user volume available', async () => {
    const before = new Set((await projectVolumes()).map((x) => x.id));
    cinder.fake!.failNext.add('copyImageToVolume');
    const r = await create({ block_device_mapping_v2: [{ uuid: f.imageId, boot_index: 0, source_type: 'image', destination_type: 'volume', volume_size: 1 }] });
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(p.member, r.body.server.id, undefined, 20_000);
    assert.equal(s.status, 'ERROR');
    assert.match(s.fault.message, /^Build of instance .* aborted: Volume [0-9a-f-]+ did not finish being created even after we waited \d+ seconds or \d+ attempts\. And its status is error\.$/);
    await cinder.volumes.drain();
    assert.deepEqual((await projectVolumes()).filter((x) => !before.has(x.id)), []);

    const mine = await bootableVolume('mine');
    driver.failSpawn = true;
    try {
      const r2 = await create({
        block_device_mapping_v2: [
          { uuid: mine, boot_index: 0, source_type: 'volume', destination_type: 'volume' },
          { source_type: 'blank', destination_type: 'volume', volume_size: 1, boot_index: -1, delete_on_termination: false },
        ],
      });
      assert.equal(r2.status, 202, r2.text);
      const s2 = await f.waitFor(p.member, r2.body.server.id, undefined, 20_000);
      assert.equal(s2.status, 'ERROR');
      assert.match(s2.fault.message, /spawn failed as asked/);
      const left = await volume(mine);
      assert.equal(left.status, 'available');
      assert.deepEqual(left.attachments, []);
      await cinder.volumes.drain();
      assert.deepEqual((await projectVolumes()).filter((x) => !before.has(x.id)).map((x) => x.id), [mine]);
      // Deleting the ERROR server leaves the user's volume alone.
      assert.equal((await p.member.delete(`/v2.1/servers/${r2.body.server.id}`)).status, 204);
      await f.waitFor(p.member, r2.body.server.id, (x) => x.status === 'DELETED');
      assert.equal((await volume(mine)).status, 'available');
    } finally {
      driver.failSpawn = false;
    }
  });
  it('createImage of a volume-backed server: Cinder snapshots and an image of mappings, which boots a new volume of each snapshot', async () => {
    const glance = new JsonClient(f.glanceAdmin.baseUrl, p.member.token);
    const before = new Set((await projectVolumes()).map((x) => x.id));
    const made = (await vol.post('/volumes', { volume: { name: 'snap-root', size: 1, imageRef: f.imageId, description: 'the root disk' } })).body.volume.id as string;
    await cinder.waitFor(vol, 'volumes', made, ['available']);
    const r = await create({
      block_device_mapping_v2: [
        { uuid: made, boot_index: 0, source_type: 'volume', destination_type: 'volume' },
        { source_type: 'blank', destination_type: 'volume', volume_size: 1, boot_index: -1, delete_on_termination: true },
      ],
    });
    assert.equal(r.status, 202, r.text);
    const a = r.body.server.id as string;
    assert.equal((await f.waitFor(p.member, a, undefined, 20_000)).status, 'ACTIVE');
    const [, data] = (await p.member.at('2.3').get(`/v2.1/servers/${a}`)).body.server['os-extended-volumes:volumes_attached'].map((x: { id: string }) => x.id);

    // The caller's metadata may not set what the snapshot writes itself.
    const snap = await p.member.at('2.45').post(`/v2.1/servers/${a}/action`, { createImage: { name: 'bfv-snap', metadata: { purpose: 'test', root_device_name: '/dev/sdz' } } });
    assert.equal(snap.status, 202, snap.text);
    const imageId = snap.body.image_id as string;
    assert.equal(snap.headers.get('location'), null);
    // Nothing for the host to do: no task state, the server stays ACTIVE.
    const during = (await p.member.get(`/v2.1/servers/${a}`)).body.server;
    assert.equal(during.status, 'ACTIVE');
    assert.equal(during['OS-EXT-STS:task_state'], null);
    const action = (await p.member.get(`/v2.1/servers/${a}/os-instance-actions`)).body.instanceActions.find((x: { action: string }) => x.action === 'createImage');
    assert.ok(action);
    const events = (await f.admin.get(`/v2.1/servers/${a}/os-instance-actions/${action.request_id}`)).body.instanceAction.events;
    assert.deepEqual(events.map((e: { event: string; result: string }) => `${e.event}:${e.result}`), ['api_snapshot_instance:Success']);

    const image = (await glance.get(`/v2/images/${imageId}`)).body;
    assert.equal(image.status, 'active');
    assert.equal(image.size, 0);
    assert.equal(image.disk_format, 'raw');
    assert.equal(image.container_format, 'bare');
    assert.equal(image.visibility, 'private');
    assert.equal(image.name, 'bfv-snap');
    assert.equal(image.min_disk, 1);
    assert.equal(image.purpose, 'test');
    assert.equal(image.bdm_v2, 'True');
    assert.equal(image.root_device_name, '/dev/vda');
    // Upstream's volume-backed snapshot names no image_type or instance.
    assert.equal(image.image_type, undefined);
    assert.equal(image.instance_uuid, undefined);
    // As Python's json.dumps writes it.
    assert.match(image.block_device_mapping, /^\[\{"source_type": "snapshot", /);
    const mapping = JSON.parse(image.block_device_mapping) as Record<string, unknown>[];
    const keys = ['source_type', 'destination_type', 'guest_format', 'device_type', 'disk_bus', 'boot_index', 'device_name', 'delete_on_termination', 'snapshot_id', 'volume_id', 'volume_size', 'image_id', 'no_device', 'tag', 'volume_type', 'encrypted', 'encryption_secret_uuid', 'encryption_format', 'encryption_options'];
    assert.equal(mapping.length, 2);
    for (const m of mapping) assert.deepEqual(Object.keys(m).sort(), [...keys].sort());
    const [rootMap, dataMap] = mapping;
    assert.deepEqual(
      [rootMap.source_type, rootMap.destination_type, rootMap.boot_index, rootMap.device_name, rootMap.delete_on_termination, rootMap.volume_size, rootMap.volume_id, rootMap.image_id],
      ['snapshot', 'volume', 0, '/dev/vda', false, 1, null, null],
    );
    assert.deepEqual([dataMap.boot_index, dataMap.device_name, dataMap.delete_on_termination, dataMap.volume_size], [-1, '/dev/vdb', true, 1]);
    const snapshots = [];
    for (const [m, volumeId] of [[rootMap, made], [dataMap, data]] as const) {
      const s = await cinder.waitFor(vol, 'snapshots', String(m.snapshot_id), ['available']);
      assert.equal(s.volume_id, volumeId);
      assert.equal(s.size, 1);
      assert.equal(s.name, 'snapshot for bfv-snap');
      snapshots.push(s);
    }
    // Upstream gives each snapshot its volume's description.
    assert.equal(snapshots[0].description, 'the root disk');

    // Before 2.45 the image is in the Location header.
    const old = await p.member.at('2.44').post(`/v2.1/servers/${a}/action`, { createImage: { name: 'bfv-snap-old' } });
    assert.equal(old.status, 202, old.text);
    const oldId = old.headers.get('location')!.split('/').pop()!;
    assert.match(old.headers.get('location')!, new RegExp(`/images/${oldId}$`));
    const oldSnaps = (JSON.parse((await glance.get(`/v2/images/${oldId}`)).body.block_device_mapping) as { snapshot_id: string }[]).map((m) => m.snapshot_id);

    // A server of the image boots from new volumes, one per snapshot, as the image's mappings say.
    const b = await create({ imageRef: imageId });
    assert.equal(b.status, 202, b.text);
    const bId = b.body.server.id as string;
    const sb = await f.waitFor(p.member.at('2.3'), bId, undefined, 20_000);
    assert.equal(sb.status, 'ACTIVE', JSON.stringify(sb.fault));
    assert.equal(sb.image.id, imageId);
    const attached = sb['os-extended-volumes:volumes_attached'] as { id: string; delete_on_termination: boolean }[];
    assert.deepEqual(attached.map((x) => x.delete_on_termination), [false, true]);
    const newRoot = await volume(attached[0].id);
    const newData = await volume(attached[1].id);
    assert.equal(newRoot.snapshot_id, rootMap.snapshot_id);
    assert.equal(newData.snapshot_id, dataMap.snapshot_id);
    assert.deepEqual([newRoot.status, newRoot.size, newRoot.attachments[0].device], ['in-use', 1, '/dev/vda']);
    assert.equal(newData.attachments[0].device, '/dev/vdb');
    const spec = driver.specs.get(bId)!;
    assert.equal(spec.image, undefined);
    assert.deepEqual(spec.blockDevices.map((x) => [x.volumeId, x.bootIndex]), [[newRoot.id, 0], [newData.id, undefined]]);
    const resources = Object.values((await f.nova.core.placement.allocations(bId)).allocations)[0].resources;
    assert.equal(resources.DISK_GB, undefined);

    // Deleting the image leaves its snapshots, as upstream.
    for (const id of [imageId, oldId]) assert.equal((await glance.delete(`/v2/images/${id}`)).status, 204);
    for (const s of [...snapshots.map((x) => x.id), ...oldSnaps]) assert.equal((await vol.get(`/snapshots/${s}`)).body.snapshot.status, 'available');

    for (const id of [bId, a]) {
      assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
      await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    }
    await cinder.volumes.drain();
    // delete_on_termination: B's data volume goes, its root stays; A's data volume has snapshots, which Cinder will not delete under it.
    assert.equal((await vol.get(`/volumes/${newData.id}`)).status, 404);
    for (const id of [newRoot.id, made, data]) {
      const left = await volume(id);
      assert.equal(left.status, 'available', id);
      assert.deepEqual(left.attachments, []);
    }
    for (const s of [...snapshots.map((x) => x.id), ...oldSnaps]) assert.equal((await vol.delete(`/snapshots/${s}`)).status, 202);
    await cinder.volumes.drain();
    for (const id of [newRoot.id, made, data]) assert.equal((await vol.delete(`/volumes/${id}`)).status, 202);
    await cinder.volumes.drain();
    assert.deepEqual((await projectVolumes()).filter((x) => !before.has(x.id)), []);
    assert.deepEqual((await vol.get('/snapshots')).body.snapshots, []);
    for (const id of [a, bId]) assert.deepEqual((await f.nova.core.placement.allocations(id)).allocations, {});
    assert.equal((await f.database.db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', 'in', [a, bId]).execute()).length, 0);
  });

  it('createImage of a volume-backed server over the snapshot quota: refused before any snapshot, or the ones made deleted', async () => {
    const glance = new JsonClient(f.glanceAdmin.baseUrl, p.member.token);
    const cinderAdmin = new VolumeApi(cinder.url, ks.admin.token!, cinder.adminProjectId, '3.44');
    const r = await create({
      block_device_mapping_v2: [
        { uuid: f.imageId, boot_index: 0, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true },
        { source_type: 'blank', destination_type: 'volume', volume_size: 1, boot_index: -1, delete_on_termination: true },
      ],
    });
    const id = r.body.server.id as string;
    assert.equal((await f.waitFor(p.member, id, undefined, 20_000)).status, 'ACTIVE');
    const images = async () => ((await glance.get('/v2/images?visibility=private')).body.images as unknown[]).length;
    const imagesBefore = await images();
    const usage = (await cinderAdmin.get(`/os-quota-sets/${p.id}?usage=true`)).body.quota_set;
    try {
      // Two volumes, room for one snapshot: upstream's check before it starts.
      await cinderAdmin.put(`/os-quota-sets/${p.id}`, { quota_set: { snapshots: usage.snapshots.in_use + 1 } });
      const refused = await p.member.post(`/v2.1/servers/${id}/action`, { createImage: { name: 'over' } });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.body.forbidden.message, 'Quota exceeded for resources: snapshots');
      // Room for both snapshots but for the gigabytes of one: Cinder refuses the second, the first goes.
      await cinderAdmin.put(`/os-quota-sets/${p.id}`, { quota_set: { snapshots: -1, gigabytes: usage.gigabytes.in_use + 1 } });
      const midway = await p.member.post(`/v2.1/servers/${id}/action`, { createImage: { name: 'midway' } });
      assert.equal(midway.status, 403, midway.text);
      assert.equal(midway.body.forbidden.message, 'Quota exceeded for resources: snapshots');
      await cinder.volumes.drain();
      assert.deepEqual((await vol.get('/snapshots')).body.snapshots, []);
      // The first snapshot was made, and deleted again.
      const rows = await cinder.database.db.selectFrom('snapshots').select(['deleted', 'status']).where('name', '=', 'snapshot for midway').execute();
      assert.deepEqual(rows.map((x) => [Number(x.deleted), x.status]), [[1, 'deleted']]);
      assert.equal(await images(), imagesBefore);
      const actions = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.filter((x: { action: string }) => x.action === 'createImage');
      assert.equal(actions.length, 1);
      const events = (await f.admin.get(`/v2.1/servers/${id}/os-instance-actions/${actions[0].request_id}`)).body.instanceAction.events;
      assert.deepEqual(events.map((e: { event: string; result: string }) => `${e.event}:${e.result}`), ['api_snapshot_instance:Error']);
      assert.equal((await p.member.get(`/v2.1/servers/${id}`)).body.server.status, 'ACTIVE');
    } finally {
      await cinderAdmin.delete(`/os-quota-sets/${p.id}`);
    }
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { shelve: null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'SHELVED_OFFLOADED' && !x['OS-EXT-STS:task_state']);
    const shelved = await p.member.post(`/v2.1/servers/${id}/action`, { createImage: { name: 'shelved' } });
    assert.equal(shelved.status, 409, shelved.text);
    assert.equal(shelved.body.conflictingRequest.message, `Cannot 'createImage' instance ${id} while it is in vm_state shelved_offloaded`);
    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    await cinder.volumes.drain();
  });
});
