import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type Project } from './fixture.ts';

/** upstream's cinder/api/schemas at the microversions where they change (3.53 above all). */
describe('cinder request body schemas', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let a: Project;
  let volumeId: string;

  before(async () => {
    f = await startCinder();
    a = await f.project('schemas');
    volumeId = (await a.member.post('/volumes', { volume: { size: 1, name: 'base' } })).body.volume.id;
    await f.waitFor(a.member, 'volumes', volumeId, ['available']);
  });
  after(() => f?.close());

  const refused = async (res: Promise<{ status: number; body: any }>, message: string) => {
    const r = await res;
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.badRequest.message, message);
  };

  test('volume create: unknown keys pass before 3.53 and are refused from 3.53', async () => {
    const at52 = await a.member.at('3.52').post('/volumes', { volume: { size: 1, name: 'old', unknown_key: 'x' } });
    assert.equal(at52.status, 202);
    await f.waitFor(a.member, 'volumes', at52.body.volume.id, ['available']);
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: 1, unknown_key: 'x' } }), "Invalid input for field/attribute volume. Value: {'size': 1, 'unknown_key': 'x'}. Additional properties are not allowed ('unknown_key' was unexpected)");
    await refused(a.member.at('3.52').post('/volumes', { volume: { size: 1 }, other: {} }), "Additional properties are not allowed ('other' was unexpected)");
    await refused(a.member.at('3.52').post('/volumes', {}), "'volume' is a required property");
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: '0' } }), 'Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1');
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: 'big' } }), "Invalid input for field/attribute size. Value: big. 'big' does not match '^[0-9]+$'");
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: 1, snapshot_id: 'nope' } }), "Invalid input for field/attribute snapshot_id. Value: nope. 'nope' is not valid under any of the given schemas");
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: 1, metadata: { k: 1 } } }), "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'");
    await refused(a.member.at('3.53').post('/volumes', { volume: { size: 1, name: 'n'.repeat(256) } }), 'Invalid input received: name has 256 characters, more than 255.');
    // backup_id is an extra key before 3.47 (then a uuid): not checked as one at 3.46.
    await refused(a.member.at('3.47').post('/volumes', { volume: { size: 1, backup_id: 5 } }), "Invalid input for field/attribute backup_id. Value: 5. 5 is not valid under any of the given schemas");
    const list = (await a.member.get('/volumes')).body.volumes.map((v: { name: string }) => v.name).sort();
    assert.deepEqual(list, ['base', 'old'], 'nothing half made by a refused create');
  });

  test('volume update: an empty update passes before 3.53 and is refused from 3.53', async () => {
    assert.equal((await a.member.at('3.52').put(`/volumes/${volumeId}`, { volume: {} })).status, 200);
    await refused(a.member.at('3.53').put(`/volumes/${volumeId}`, { volume: {} }), 'Invalid input for field/attribute volume. Value: {}. {} is not valid under any of the given schemas');
    await refused(a.member.at('3.52').put(`/volumes/${volumeId}`, { volume: { size: 2 } }), "Invalid input for field/attribute volume. Value: {'size': 2}. Additional properties are not allowed ('size' was unexpected)");
    assert.equal((await a.member.at('3.53').put(`/volumes/${volumeId}`, { volume: { description: 'd' } })).body.volume.description, 'd');
  });

  test('volume actions and metadata', async () => {
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-extend': {} }), "Invalid input for field/attribute os-extend. Value: {}. 'new_size' is a required property");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2, x: 1 } }), "Invalid input for field/attribute os-extend. Value: {'new_size': 2, 'x': 1}. Additional properties are not allowed ('x' was unexpected)");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-retype': { new_type: 't', migration_policy: 'sometimes' } }), "Invalid input for field/attribute migration_policy. Value: sometimes. 'sometimes' is not one of ['on-demand', 'never']");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-set_bootable': { bootable: 'maybe' } }), "Invalid input for field/attribute bootable. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f']");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-attach': { mountpoint: '/dev/vdb' } }), "Invalid input for field/attribute os-attach. Value: {'mountpoint': '/dev/vdb'}. {'mountpoint': '/dev/vdb'} is not valid under any of the given schemas");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-volume_upload_image': { image_name: 'i', visibility: 'public' } }), "Invalid input for field/attribute os-volume_upload_image. Value: {'image_name': 'i', 'visibility': 'public'}. Additional properties are not allowed ('visibility' was unexpected)");
    await refused(a.member.post(`/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2 }, 'os-reserve': {} }), 'Malformed request body');
    await refused(f.admin.post(`/volumes/${volumeId}/action`, { 'os-reset_status': {} }), "Must specify 'status', 'attach_status' or 'migration_status' for update.");
    await refused(f.admin.post(`/volumes/${volumeId}/action`, { 'os-reset_status': { status: 'sleepy' } }), "Volume status: sleepy is invalid, valid statuses are: ['creating', 'available', 'deleting', 'error', 'error_deleting', 'error_managing', 'managing', 'attaching', 'in-use', 'detaching', 'maintenance', 'restoring-backup', 'error_restoring', 'reserved', 'awaiting-transfer', 'backing-up', 'error_backing-up', 'error_extending', 'downloading', 'uploading', 'retyping', 'extending'].");
    await refused(a.member.put(`/volumes/${volumeId}/metadata/k`, { meta: { k: 'v', j: 'w' } }), "Invalid input for field/attribute meta. Value: {'k': 'v', 'j': 'w'}. {'k': 'v', 'j': 'w'} has too many properties");
    await refused(a.member.post(`/volumes/${volumeId}/metadata`, { metadata: { 'bad\tkey': 'v' } }), "Invalid input for field/attribute metadata. Value: {'bad\\tkey': 'v'}. 'bad\\tkey' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'");
    assert.equal((await a.member.post(`/volumes/${volumeId}/action`, { 'os-extend': { new_size: '2' } })).status, 202);
    await f.waitFor(a.member, 'volumes', volumeId, ['available']);
  });

  test('snapshots, backups, attachments, transfers, types', async () => {
    await refused(a.member.post('/snapshots', { snapshot: { name: 's' } }), "Invalid input for field/attribute snapshot. Value: {'name': 's'}. 'volume_id' is a required property");
    await refused(a.member.post('/snapshots', { snapshot: { volume_id: volumeId, size: 1 } }), `Invalid input for field/attribute snapshot. Value: {'volume_id': '${volumeId}', 'size': 1}. Additional properties are not allowed ('size' was unexpected)`);
    await refused(a.member.at('3.42').post('/backups', { backup: { volume_id: volumeId, metadata: {} } }), `Invalid input for field/attribute backup. Value: {'volume_id': '${volumeId}', 'metadata': {}}. Additional properties are not allowed ('metadata' was unexpected)`);
    await refused(a.member.post('/backups', { backup: { volume_id: 'x' } }), "Invalid input for field/attribute volume_id. Value: x. 'x' is not a 'uuid'");
    await refused(a.member.at('3.53').post('/attachments', { attachment: { volume_uuid: volumeId, mode: 'ro' } }), `Invalid input for field/attribute attachment. Value: {'volume_uuid': '${volumeId}', 'mode': 'ro'}. Additional properties are not allowed ('mode' was unexpected)`);
    await refused(a.member.at('3.54').post('/attachments', { attachment: { volume_uuid: volumeId, mode: 'rx' } }), "Invalid input for field/attribute mode. Value: rx. 'rx' is not one of ['rw', 'ro']");
    await refused(a.member.post('/os-volume-transfer', { transfer: { volume_id: volumeId, name: '  ' } }), "Invalid input for field/attribute name. Value:   . '  ' is not valid under any of the given schemas");
    // Outside oneOf the name format's own words replace the validation message (upstream's InvalidName).
    await refused(f.admin.post('/types', { volume_type: { name: '  ' } }), "An invalid 'name' value was provided. The 'name' can not be empty.");
    await refused(a.member.post('/os-volume-transfer', { transfer: { volume_id: volumeId, no_snapshots: true } }), `Invalid input for field/attribute transfer. Value: {'volume_id': '${volumeId}', 'no_snapshots': True}. Additional properties are not allowed ('no_snapshots' was unexpected)`);
    await refused(f.admin.post('/types', { volume_type: { name: '' } }), "Invalid input for field/attribute name. Value: . '' should be non-empty");
    await refused(f.admin.put('/os-quota-sets/' + a.id, { quota_set: {} }), "Invalid input for field/attribute quota_set. Value: {}. {} should be non-empty");
  });
});
