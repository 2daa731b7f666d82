import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { faultMessage, startGlance, type GlanceFixture, type Project } from './fixture.ts';

const PATCH = { 'content-type': 'application/openstack-images-v2.1-json-patch' };

describe('glance sharing: visibility and image members', () => {
  let g: GlanceFixture;
  let owner: Project;
  let friend: Project;
  let stranger: Project;
  let shared: string;

  before(async () => {
    g = await startGlance();
    owner = await g.project('owner');
    friend = await g.project('friend');
    stranger = await g.project('stranger');
    shared = (await owner.member.post('/v2/images', { name: 'shared', disk_format: 'raw', container_format: 'bare' })).body.id;
    await owner.member.upload(shared, 'shared bytes');
  });
  after(() => g.close());

  it('lets the owner add members to a shared image, as pending', async () => {
    const res = await owner.member.post(`/v2/images/${shared}/members`, { member: friend.id });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.body), ['member_id', 'image_id', 'status', 'created_at', 'updated_at', 'schema']);
    assert.equal(res.body.member_id, friend.id);
    assert.equal(res.body.image_id, shared);
    assert.equal(res.body.status, 'pending');
    assert.equal(res.body.schema, '/v2/schemas/member');
    const dup = await owner.member.post(`/v2/images/${shared}/members`, { member: friend.id });
    assert.equal(dup.status, 409);
    assert.match(faultMessage(dup), new RegExp(`Member ${friend.id} is duplicated for image ${shared}`));
    assert.equal((await owner.member.post(`/v2/images/${shared}/members`, {})).status, 400);
    assert.equal((await owner.member.post(`/v2/images/${shared}/members`, { member: '' })).status, 400);
    // Only the owner (a member of its project) adds members.
    assert.equal((await owner.reader.post(`/v2/images/${shared}/members`, { member: stranger.id })).status, 403);
    assert.equal((await stranger.member.post(`/v2/images/${shared}/members`, { member: stranger.id })).status, 404);
  });

  it('shows a pending member the image but not in its default list', async () => {
    assert.equal((await friend.member.get(`/v2/images/${shared}`)).status, 200);
    assert.equal((await stranger.member.get(`/v2/images/${shared}`)).status, 404);
    const list = await friend.member.get('/v2/images');
    assert.equal(list.body.images.some((i: { id: string }) => i.id === shared), false);
  });

  it('lets only the member accept or reject', async () => {
    const byOwner = await owner.member.put(`/v2/images/${shared}/members/${friend.id}`, { status: 'accepted' });
    assert.equal(byOwner.status, 403);
    assert.match(faultMessage(byOwner), /You are not authorized to complete modify_member action\./);
    const bad = await friend.member.put(`/v2/images/${shared}/members/${friend.id}`, { status: 'maybe' });
    assert.equal(bad.status, 400);
    assert.match(faultMessage(bad), /Incorrect request: Status must be "pending", "accepted" or "rejected"\./);
    assert.equal((await friend.member.put(`/v2/images/${shared}/members/${friend.id}`, {})).status, 400);
    const ok = await friend.member.put(`/v2/images/${shared}/members/${friend.id}`, { status: 'accepted' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.status, 'accepted');
    const list = await friend.member.get('/v2/images');
    assert.ok(list.body.images.some((i: { id: string }) => i.id === shared));
    const down = await friend.member.raw('GET', `/v2/images/${shared}/file`);
    assert.equal(await down.text(), 'shared bytes');
    const rejected = await friend.member.put(`/v2/images/${shared}/members/${friend.id}`, { status: 'rejected' });
    assert.equal(rejected.body.status, 'rejected');
    assert.equal((await friend.member.get('/v2/images')).body.images.some((i: { id: string }) => i.id === shared), false);
    assert.ok((await friend.member.get('/v2/images?member_status=rejected')).body.images.some((i: { id: string }) => i.id === shared));
    await friend.member.put(`/v2/images/${shared}/members/${friend.id}`, { status: 'accepted' });
  });

  it('lists all members to the owner, only its own membership to a member', async () => {
    await owner.member.post(`/v2/images/${shared}/members`, { member: stranger.id });
    const all = await owner.member.get(`/v2/images/${shared}/members`);
    assert.equal(all.status, 200);
    assert.equal(all.body.schema, '/v2/schemas/members');
    assert.deepEqual(all.body.members.map((m: { member_id: string }) => m.member_id).sort(), [friend.id, stranger.id].sort());
    const mine = await friend.member.get(`/v2/images/${shared}/members`);
    assert.deepEqual(mine.body.members.map((m: { member_id: string }) => m.member_id), [friend.id]);
    assert.equal((await friend.member.get(`/v2/images/${shared}/members/${friend.id}`)).body.status, 'accepted');
    assert.equal((await friend.member.get(`/v2/images/${shared}/members/${stranger.id}`)).status, 404);
    // A member cannot change another member's status: it does not see that membership.
    assert.equal((await friend.member.put(`/v2/images/${shared}/members/${stranger.id}`, { status: 'accepted' })).status, 404);
    assert.equal((await owner.member.get(`/v2/images/${shared}/members/${stranger.id}`)).body.status, 'pending');
  });

  it('lets only the owner remove members, and a removed member loses the image', async () => {
    assert.equal((await friend.member.delete(`/v2/images/${shared}/members/${stranger.id}`)).status, 404);
    assert.equal((await owner.member.delete(`/v2/images/${shared}/members/${stranger.id}`)).status, 204);
    assert.equal((await owner.member.delete(`/v2/images/${shared}/members/${stranger.id}`)).status, 404);
    assert.equal((await stranger.member.get(`/v2/images/${shared}`)).status, 404);
  });

  it('has members only on shared images', async () => {
    const priv = (await owner.member.post('/v2/images', { name: 'private', visibility: 'private' })).body.id;
    const add = await owner.member.post(`/v2/images/${priv}/members`, { member: friend.id });
    assert.equal(add.status, 403);
    assert.match(faultMessage(add), new RegExp(`Not allowed to create members for image ${priv}\\.`));
    const list = await owner.member.get(`/v2/images/${priv}/members`);
    assert.equal(list.status, 403);
    assert.match(faultMessage(list), /Only shared images have members\./);
    assert.equal((await owner.member.get(`/v2/images/${priv}/members/${friend.id}`)).status, 404);
    // Making a shared image private keeps its members but hides the image from them.
    assert.equal((await owner.member.patch(`/v2/images/${shared}`, [{ op: 'replace', path: '/visibility', value: 'private' }], PATCH)).status, 200);
    assert.equal((await friend.member.get(`/v2/images/${shared}`)).status, 404);
    assert.equal((await owner.member.patch(`/v2/images/${shared}`, [{ op: 'replace', path: '/visibility', value: 'shared' }], PATCH)).status, 200);
    assert.equal((await friend.member.get(`/v2/images/${shared}`)).status, 200);
  });

  it('makes community images visible to everyone and public ones only by admins', async () => {
    const comm = (await owner.member.post('/v2/images', { name: 'community', visibility: 'community' })).body.id;
    assert.equal((await stranger.member.get(`/v2/images/${comm}`)).status, 200);
    assert.equal((await stranger.member.get('/v2/images')).body.images.some((i: { id: string }) => i.id === comm), false);
    assert.ok((await stranger.member.get('/v2/images?visibility=community')).body.images.some((i: { id: string }) => i.id === comm));
    assert.equal((await stranger.member.patch(`/v2/images/${comm}`, [{ op: 'replace', path: '/name', value: 'mine' }], PATCH)).status, 403);
    const pub = await owner.member.patch(`/v2/images/${comm}`, [{ op: 'replace', path: '/visibility', value: 'public' }], PATCH);
    assert.equal(pub.status, 403);
    assert.equal((await g.admin.patch(`/v2/images/${comm}`, [{ op: 'replace', path: '/visibility', value: 'public' }], PATCH)).status, 200);
    assert.ok((await stranger.member.get('/v2/images')).body.images.some((i: { id: string }) => i.id === comm));
  });

  it('limits members per image (image_member_quota)', async () => {
    g.config.memberQuota = 2;
    try {
      const img = (await owner.member.post('/v2/images', { name: 'popular' })).body.id;
      assert.equal((await owner.member.post(`/v2/images/${img}/members`, { member: 'p1' })).status, 200);
      assert.equal((await owner.member.post(`/v2/images/${img}/members`, { member: 'p2' })).status, 200);
      const third = await owner.member.post(`/v2/images/${img}/members`, { member: 'p3' });
      assert.equal(third.status, 413);
      assert.match(faultMessage(third), /Attempted: 3, Maximum: 2/);
    } finally {
      g.config.memberQuota = 128;
    }
  });
});
