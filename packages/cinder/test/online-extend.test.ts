/**
 * Online extend (3.42): an in-use volume grows and the servers it is attached to are told
 * through Nova's volume-extended event; Nova unreachable leaves the extend done (upstream logs it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NovaHttp } from '../src/domain/nova.ts';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

const SERVER = '11111111-1111-4111-8111-111111111111';

describe('online extend of an in-use volume', () => {
  let f: CinderFixture;
  let p: Project;
  const told: [string[], string][] = [];
  /** What the service's Nova client does; the second test makes it the real client aimed at a closed port. */
  let compute = async (servers: string[], volumeId: string): Promise<boolean> => told.push([servers, volumeId]) > 0;

  before(async () => {
    f = await startCinder({ compute: { extendVolume: (servers, volumeId) => compute(servers, volumeId) } });
    p = await f.project('online-extend');
  });
  after(() => f?.close());

  const attachedVolume = async () => {
    const c = p.member.at('3.44');
    const v = (await c.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(c, 'volumes', v.id, ['available']);
    const a = await c.post('/attachments', { attachment: { volume_uuid: v.id, instance_uuid: SERVER, connector: { host: 'compute-1', mountpoint: '/dev/vdb' } } });
    assert.equal(a.status, 200, a.text);
    assert.equal((await c.post(`/attachments/${a.body.attachment.id}/action`, { 'os-complete': {} })).status, 204);
    assert.equal((await c.get(`/volumes/${v.id}`)).body.volume.status, 'in-use');
    return v.id as string;
  };

  test('grows the volume, back to in-use, and tells Nova which servers see it', async () => {
    const v = await attachedVolume();
    assert.equal((await p.member.at('3.41').post(`/volumes/${v}/action`, { 'os-extend': { new_size: 2 } })).status, 400);
    assert.deepEqual(told, [], 'nothing told for a refused extend');
    assert.equal((await p.member.at('3.42').post(`/volumes/${v}/action`, { 'os-extend': { new_size: 2 } })).status, 202);
    await f.volumes.drain();
    const after = (await p.member.at('3.42').get(`/volumes/${v}`)).body.volume;
    assert.deepEqual([after.status, after.size], ['in-use', 2]);
    assert.deepEqual(told, [[[SERVER], v]]);
  });

  test('Nova unreachable: the extend stands, the failure is logged and told the user (3.3 message)', async () => {
    const errors: unknown[] = [];
    const nova = new NovaHttp({ session: { tokenId: async () => 'service-token', endpointUrl: async () => 'http://127.0.0.1:9/v2.1' }, logger: { error: (o: unknown) => void errors.push(o) } });
    compute = (servers, volumeId) => nova.extendVolume(servers, volumeId);
    const v = await attachedVolume();
    assert.equal((await p.member.at('3.42').post(`/volumes/${v}/action`, { 'os-extend': { new_size: 3 } })).status, 202);
    await f.volumes.drain();
    const after = (await p.member.at('3.42').get(`/volumes/${v}`)).body.volume;
    assert.deepEqual([after.status, after.size], ['in-use', 3]);
    assert.equal(errors.length, 1);
    const told = (await p.member.at('3.3').get('/messages')).body.messages.filter((m: { resource_uuid: string }) => m.resource_uuid === v);
    assert.deepEqual(told.map((m: { event_id: string; user_message: string }) => [m.event_id, m.user_message]), [['VOLUME_VOLUME_007_009', 'extend volume:Compute service failed to extend volume.']]);
  });
});
