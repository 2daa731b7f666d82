import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

describe('cinder volume transfers', () => {
  let f: CinderFixture;
  let a: Project;
  let b: Project;

  before(async () => {
    f = await startCinder();
    a = await f.project('giver');
    b = await f.project('taker');
  });
  after(() => f?.close());

  const newVolume = async () => {
    const v = (await a.member.post('/volumes', { volume: { size: 1, name: 'moving' } })).body.volume;
    await f.waitFor(a.member, 'volumes', v.id, ['available']);
    return v;
  };

  test('create with auth_key, list/show to the owner only, accept by another project with its snapshots (3.55 resource, 3.57 fields)', async () => {
    const v = await newVolume();
    const snap = (await a.member.post('/snapshots', { snapshot: { volume_id: v.id } })).body.snapshot;
    await f.waitFor(a.member, 'snapshots', snap.id, ['available']);
    assert.equal((await a.member.at('3.54').post('/volume-transfers', { transfer: { volume_id: v.id } })).status, 404);
    assert.equal((await a.reader.at('3.55').post('/volume-transfers', { transfer: { volume_id: v.id } })).status, 403);
    const created = await a.member.at('3.57').post('/volume-transfers', { transfer: { volume_id: v.id, name: 'gift' } });
    assert.equal(created.status, 202);
    const t = created.body.transfer;
    assert.equal(t.name, 'gift');
    assert.equal(t.auth_key.length, 16);
    assert.equal(t.no_snapshots, false);
    assert.equal(t.accepted, false);
    assert.equal((await a.member.get(`/volumes/${v.id}`)).body.volume.status, 'awaiting-transfer');
    assert.equal((await a.member.post('/volume-transfers', { transfer: { volume_id: v.id } })).status, 404);
    assert.equal((await a.member.post('/os-volume-transfer', { transfer: { volume_id: v.id } })).status, 400);

    assert.deepEqual((await a.member.get('/os-volume-transfer')).body.transfers.map((x: { id: string }) => x.id), [t.id]);
    assert.deepEqual((await b.member.get('/os-volume-transfer')).body.transfers, []);
    assert.equal((await b.member.get(`/os-volume-transfer/${t.id}`)).status, 404);
    const shown = (await a.member.at('3.57').get(`/volume-transfers/${t.id}`)).body.transfer;
    assert.equal(shown.source_project_id, a.id);
    assert.equal(shown.auth_key, undefined);

    const wrong = await b.member.post(`/os-volume-transfer/${t.id}/accept`, { accept: { auth_key: 'x'.repeat(16) } });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.badRequest.message, `Invalid auth key: Attempt to transfer ${t.id} with invalid auth key.`);
    const ok = await b.member.post(`/os-volume-transfer/${t.id}/accept`, { accept: { auth_key: t.auth_key } });
    assert.equal(ok.status, 202);
    assert.equal(ok.body.transfer.volume_id, v.id);
    const moved = (await b.member.get(`/volumes/${v.id}`)).body.volume;
    assert.equal(moved.status, 'available');
    assert.equal((await a.member.get(`/volumes/${v.id}`)).status, 404);
    assert.equal((await b.member.get(`/snapshots/${snap.id}`)).status, 200);
    assert.equal((await a.member.get(`/os-volume-transfer/${t.id}`)).status, 404);
    assert.equal((await b.member.post(`/os-volume-transfer/${t.id}/accept`, { accept: { auth_key: t.auth_key } })).status, 404);
  });

  test('no_snapshots leaves the snapshots behind; delete gives the volume back', async () => {
    const v = await newVolume();
    const t = (await a.member.at('3.55').post('/volume-transfers', { transfer: { volume_id: v.id, no_snapshots: true } })).body.transfer;
    assert.equal(t.no_snapshots, true);
    assert.equal((await b.member.delete(`/os-volume-transfer/${t.id}`)).status, 404);
    assert.equal((await a.member.delete(`/os-volume-transfer/${t.id}`)).status, 202);
    assert.equal((await a.member.get(`/volumes/${v.id}`)).body.volume.status, 'available');
    assert.deepEqual((await a.member.get('/os-volume-transfer')).body.transfers, []);
  });
});
