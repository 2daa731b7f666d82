import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type Project } from './fixture.ts';

/** 3.3 user messages for the failures upstream records beyond volume creation (cinder/message/message_field.py ids). */
describe('cinder user messages for failed actions', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let p: Project;

  before(async () => {
    f = await startCinder();
    p = await f.project('failures');
  });
  after(() => f?.close());

  const messagesOf = async (resourceUuid: string) =>
    (await p.member.at('3.5').get(`/messages?resource_uuid=${resourceUuid}`)).body.messages.map((m: Record<string, unknown>) => [m.event_id, m.resource_type, m.user_message]);
  const newVolume = async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    return v;
  };

  test('extend, snapshot create and delete, attachment update failures in the driver', async () => {
    const v = await newVolume();
    f.fake!.failNext.add('extendVolume');
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-extend': { new_size: 2 } })).status, 202);
    await f.waitFor(p.member, 'volumes', v.id, ['error_extending']);
    assert.deepEqual(await messagesOf(v.id), [['VOLUME_VOLUME_007_010', 'VOLUME', 'extend volume:Volume Driver failed to extend volume.']]);

    const w = await newVolume();
    f.fake!.failNext.add('createSnapshot');
    const bad = (await p.member.post('/snapshots', { snapshot: { volume_id: w.id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', bad.id, ['error']);
    assert.deepEqual(await messagesOf(bad.id), [['VOLUME_VOLUME_SNAPSHOT_009_013', 'VOLUME_SNAPSHOT', 'create snapshot:Snapshot failed to create.']]);
    const good = (await p.member.post('/snapshots', { snapshot: { volume_id: w.id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', good.id, ['available']);
    f.fake!.failNext.add('deleteSnapshot');
    assert.equal((await p.member.delete(`/snapshots/${good.id}`)).status, 202);
    await f.waitFor(p.member, 'snapshots', good.id, ['error_deleting']);
    assert.deepEqual(await messagesOf(good.id), [['VOLUME_VOLUME_SNAPSHOT_010_016', 'VOLUME_SNAPSHOT', 'delete snapshot:Snapshot failed to delete.']]);

    const x = await newVolume();
    const a = (await p.member.at('3.27').post('/attachments', { attachment: { volume_uuid: x.id, instance_uuid: '4f0e0b8a-6a54-4d2b-9a54-0c1f7a7c2f11' } })).body.attachment;
    f.fake!.failNext.add('initializeConnection');
    assert.equal((await p.member.at('3.27').put(`/attachments/${a.id}`, { attachment: { connector: { host: 'elsewhere' } } })).status, 500);
    assert.deepEqual(await messagesOf(x.id), [['VOLUME_VOLUME_004_001', 'VOLUME', 'update attachment:An unknown error occurred.']]);
  });

  test('a backup no zone can take: BACKUP_SCHEDULE_ERROR on the backup', async () => {
    const v = await newVolume();
    const b = (await p.member.at('3.51').post('/backups', { backup: { volume_id: v.id, availability_zone: 'nowhere' } })).body.backup;
    assert.deepEqual(await messagesOf(b.id), [['VOLUME_VOLUME_BACKUP_013_024', 'VOLUME_BACKUP', 'create backup:Backup failed to schedule. Service not found for creating backup.']]);
  });
});
