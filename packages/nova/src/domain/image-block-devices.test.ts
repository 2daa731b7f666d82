import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isApiError } from '@onestack/core/errors.ts';
import { checkBlockDevices, type BdmCheckContext } from './block-device-requests.ts';
import type { BlockDevice } from './block-devices.ts';
import { imageDefinedBlockDevices, imageMapping, mappingsProperty, snapshotImageMapping } from './image-block-devices.ts';
import type { ImageSnapshot } from './instances.ts';
import type { CinderClient } from './service-clients.ts';

const SNAP = '11111111-1111-4111-8111-111111111111';
const image = (properties: Record<string, string>): ImageSnapshot => ({ id: 'img', name: 'snap', diskFormat: 'raw', containerFormat: 'bare', properties, minRam: 0, minDisk: 0 });
const bdm = (o: Partial<BlockDevice>): BlockDevice => ({
  uuid: 'u',
  instanceUuid: 'i',
  sourceType: 'volume',
  destinationType: 'volume',
  bootIndex: 0,
  deviceName: '/dev/vda',
  volumeId: 'v',
  imageId: null,
  volumeSize: 1,
  deleteOnTermination: false,
  tag: 'root-tag',
  attachmentId: 'att',
  connectionInfo: { driver_volume_type: 'file', data: {} },
  volumeType: 'fast',
  diskBus: null,
  deviceType: null,
  guestFormat: null,
  createdAt: 0,
  updatedAt: null,
  ...o,
});

describe('image block device mappings', () => {
  it("writes a volume's mapping as snapshot_from_bdm does, in json.dumps' spacing", () => {
    const m = snapshotImageMapping(SNAP, bdm({ deviceName: 'vdb', bootIndex: null, deleteOnTermination: true }));
    assert.deepEqual(
      Object.entries(m).filter(([, v]) => v !== null),
      [['source_type', 'snapshot'], ['destination_type', 'volume'], ['device_name', '/dev/vdb'], ['delete_on_termination', true], ['snapshot_id', SNAP], ['volume_size', 1]],
    );
    // The volume's own id, tag and type are not the new volume's.
    assert.equal(m.volume_id, null);
    assert.equal(m.tag, null);
    assert.equal(mappingsProperty([{ ...m }]).slice(0, 48), '[{"source_type": "snapshot", "destination_type":');
    const local = imageMapping(bdm({ sourceType: 'blank', destinationType: 'local', guestFormat: 'swap', volumeId: null, deviceName: 'vdc', bootIndex: -1 }));
    assert.deepEqual([local.source_type, local.guest_format, local.device_name, local.tag], ['blank', 'swap', '/dev/vdc', 'root-tag']);
    assert.equal('connection_info' in local, false);
  });

  it('reads v2 mappings back, and legacy ones by the root device name', () => {
    const written = mappingsProperty([snapshotImageMapping(SNAP, bdm({}))]);
    assert.deepEqual(imageDefinedBlockDevices(image({ block_device_mapping: written, bdm_v2: 'True' })), [
      { sourceType: 'snapshot', destinationType: 'volume', uuid: SNAP, bootIndex: 0, volumeSize: 1, deleteOnTermination: false, guestFormat: undefined, deviceName: '/dev/vda', deviceType: undefined, diskBus: undefined, tag: undefined, volumeType: undefined },
    ]);
    const legacy = imageDefinedBlockDevices(image({ root_device_name: '/dev/vda', block_device_mapping: JSON.stringify([{ device_name: 'vda', snapshot_id: SNAP, delete_on_termination: 'True' }, { device_name: 'vdb', virtual_name: 'swap' }, { device_name: 'vdc', no_device: true }]) }));
    assert.deepEqual(
      legacy.map((b) => [b.sourceType, b.destinationType, b.bootIndex, b.deleteOnTermination, b.guestFormat]),
      [['snapshot', 'volume', 0, true, undefined], ['blank', 'local', -1, true, 'swap']],
    );
    assert.deepEqual(imageDefinedBlockDevices(image({})), []);
  });

  it('refuses mappings upstream refuses', () => {
    const bad = (p: Record<string, string>, re: RegExp) =>
      assert.throws(() => imageDefinedBlockDevices(image(p)), (e: unknown) => isApiError(e) && e.status === 400 && re.test(e.message));
    bad({ block_device_mapping: '[{"source_type": "snapshot", "colour": "red"}]', bdm_v2: 'True' }, /^Block Device Mapping is Invalid: Following fields are invalid: colour$/);
    bad({ block_device_mapping: '[{"boot_index": 0}]', bdm_v2: 'True' }, /Some required fields are missing/);
    bad({ block_device_mapping: '[{"device_name": "vda"}]' }, /Unrecognized legacy format\./);
    bad({ block_device_mapping: 'not json', bdm_v2: 'True' }, /is not JSON/);
  });

  it("merges the image's mappings into the request: its boot disk replaces the image one, a device the request maps is the request's", async () => {
    const snapshots: string[] = [];
    const cinder = { call: async (_t: string, _p: string, _m: string, path: string) => (snapshots.push(path), { status: 200, body: { snapshot: { size: 2, volume_id: 'v' } } }) } as unknown as CinderClient;
    const img = image({ bdm_v2: 'True', block_device_mapping: mappingsProperty([snapshotImageMapping(SNAP, bdm({ volumeSize: null })), snapshotImageMapping(SNAP, bdm({ bootIndex: -1, deviceName: '/dev/vdb' }))]) });
    const c: BdmCheckContext = { token: 't', projectId: 'p', cinder, image: async () => img, flavor: { id: '1', name: 'f', vcpus: 1, ram: 64, disk: 1, ephemeral: 0, swap: 0, extraSpecs: {} }, imageRef: 'img', maxCount: 1, multiattach: false, maxLocal: 3 };
    const requested = [
      { sourceType: 'image' as const, destinationType: 'local' as const, uuid: 'img', bootIndex: 0, deleteOnTermination: true },
      { sourceType: 'blank' as const, destinationType: 'volume' as const, bootIndex: -1, volumeSize: 3, deviceName: '/dev/vdb', deleteOnTermination: true },
    ];
    const out = await checkBlockDevices(c, requested, imageDefinedBlockDevices(img));
    assert.deepEqual(out.bdms.map((b) => [b.sourceType, b.bootIndex, b.deviceName, b.volumeSize]), [['blank', -1, '/dev/vdb', 3], ['snapshot', 0, '/dev/vda', 2]]);
    assert.equal(out.volumeBacked, true);
    assert.equal(out.image, img);
    assert.deepEqual(snapshots, [`/snapshots/${SNAP}`]);
  });
});
