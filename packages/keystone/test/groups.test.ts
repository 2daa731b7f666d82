import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone /v3/groups', () => {
  let ks: KeystoneFixture;
  let d1: string;
  let d2: string;
  let member: JsonClient;
  let memberId: string;
  let domainAdmin: JsonClient;
  let domainReader: JsonClient;
  let u1: string;
  let u2: string;

  const create = async (group: Record<string, unknown>, client = ks.admin) => {
    const res = await client.post('/v3/groups', { group });
    assert.equal(res.status, 201, res.text);
    return res.body.group;
  };

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    const roles = ks.boot.roleIds;
    d1 = (await k.resource.createProject({ name: 'd1', isDomain: true })).id;
    d2 = (await k.resource.createProject({ name: 'd2', isDomain: true })).id;
    const project = (await k.resource.createProject({ name: 'A', domainId: d1 })).id;
    const alice = await k.identity.createUser({ name: 'alice', domainId: d1, password: 'alice-pw' });
    memberId = alice.id;
    await k.assignment.grant({ userId: alice.id }, { projectId: project }, roles.member);
    member = await ks.loginById(alice.id, 'alice-pw', { project: { id: project } });
    const dan = await k.identity.createUser({ name: 'dan', domainId: d1, password: 'dan-pw' });
    await k.assignment.grant({ userId: dan.id }, { domainId: d1 }, roles.admin);
    domainAdmin = await ks.loginById(dan.id, 'dan-pw', { domain: { id: d1 } });
    const dora = await k.identity.createUser({ name: 'dora', domainId: d1, password: 'dora-pw' });
    await k.assignment.grant({ userId: dora.id }, { domainId: d1 }, roles.reader);
    domainReader = await ks.loginById(dora.id, 'dora-pw', { domain: { id: d1 } });
    u1 = (await k.identity.createUser({ name: 'u1', domainId: d1 })).id;
    u2 = (await k.identity.createUser({ name: 'u2', domainId: d2 })).id;
  });
  after(() => ks.close());

  it('creates, shows, lists, updates and deletes a group', async () => {
    const g = await create({ name: 'admins', domain_id: d2, description: 'The admins', color: 'blue' });
    assert.match(g.id, /^[0-9a-f]{32}$/);
    assert.deepEqual({ ...g, links: undefined }, { id: g.id, name: 'admins', domain_id: d2, description: 'The admins', color: 'blue', links: undefined });
    assert.equal(g.links.self, `${ks.url}/v3/groups/${g.id}`);
    assert.equal((await ks.admin.get(`/v3/groups/${g.id}`)).body.group.name, 'admins');
    assert.deepEqual((await ks.admin.get(`/v3/groups?domain_id=${d2}&name=admins`)).body.groups.map((x: { id: string }) => x.id), [g.id]);
    assert.equal((await create({ name: 'plain' })).domain_id, 'default');

    const patched = await ks.admin.patch(`/v3/groups/${g.id}`, { group: { name: 'root', description: null } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.group.name, 'root');
    assert.equal(patched.body.group.color, 'blue');

    assert.equal((await ks.admin.delete(`/v3/groups/${g.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/groups/${g.id}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { error: { code: 404, title: 'Not Found', message: `Could not find group: ${g.id}.` } });
  });

  it('refuses bad input with the keystone error body', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/v3/groups', { group: { name: 'g' }, other: 1 }, 400, /'other' was unexpected/],
      ['POST', '/v3/groups', { group: {} }, 400, /'name' is a required property/],
      ['POST', '/v3/groups', { group: { name: 7 } }, 400, /is not of type 'string'/],
      ['POST', '/v3/groups', { group: { name: 'g', domain_id: 'nowhere' } }, 404, /Could not find domain: nowhere\./],
      ['PATCH', '/v3/groups/missing', { group: { name: 'g' } }, 404, /Could not find group: missing\./],
      ['PATCH', '/v3/groups/missing', { group: {} }, 400, /fewer than 1 properties/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await ks.admin.request(method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.error.code, status);
      assert.match(res.body.error.message, message);
    }
    await create({ name: 'twice', domain_id: d1 });
    const dup = await ks.admin.post('/v3/groups', { group: { name: 'twice', domain_id: d1 } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.message, `Conflict occurred attempting to store group - Duplicate entry found with name twice at domain ID ${d1}.`);
    const g = await create({ name: 'mover', domain_id: d1 });
    const move = await ks.admin.patch(`/v3/groups/${g.id}`, { group: { domain_id: d2 } });
    assert.equal(move.status, 400);
    assert.equal(move.body.error.message, 'Cannot change Domain ID');
  });

  it('adds, checks, lists and removes members', async () => {
    const g = await create({ name: 'team', domain_id: d1 });
    const member1 = `/v3/groups/${g.id}/users/${u1}`;
    assert.equal((await ks.admin.head(member1)).status, 404);
    const notIn = await ks.admin.get(member1);
    assert.equal(notIn.body.error.message, `User '${u1}' not found in group '${g.id}'`);
    assert.equal((await ks.admin.put(member1)).status, 204);
    assert.equal((await ks.admin.put(member1)).status, 204);
    assert.equal((await ks.admin.head(member1)).status, 204);
    assert.equal((await ks.admin.put(`/v3/groups/${g.id}/users/${u2}`)).status, 204);

    const users = await ks.admin.get(`/v3/groups/${g.id}/users`);
    assert.equal(users.status, 200);
    assert.deepEqual(users.body.users.map((u: { name: string }) => u.name), ['u1', 'u2']);
    assert.ok('password_expires_at' in users.body.users[0]);
    assert.deepEqual((await ks.admin.get(`/v3/groups/${g.id}/users?name=u2`)).body.users.map((u: { name: string }) => u.name), ['u2']);
    assert.deepEqual((await ks.admin.get(`/v3/users/${u1}/groups`)).body.groups.map((x: { id: string }) => x.id), [g.id]);

    assert.equal((await ks.admin.delete(member1)).status, 204);
    assert.equal((await ks.admin.delete(member1)).status, 404);
    const missingUser = await ks.admin.put(`/v3/groups/${g.id}/users/nobody`);
    assert.equal(missingUser.status, 404);
    assert.equal(missingUser.body.error.message, 'Could not find user: nobody.');
    assert.equal((await ks.admin.put(`/v3/groups/nogroup/users/${u1}`)).status, 404);
    assert.equal((await ks.admin.get('/v3/groups/nogroup/users')).status, 404);
  });

  it('keeps project members out and domain personas in their domain', async () => {
    const mine = await create({ name: 'd1-team', domain_id: d1 }, domainAdmin);
    const theirs = await create({ name: 'd2-team', domain_id: d2 });
    assert.equal((await domainAdmin.post('/v3/groups', { group: { name: 'x', domain_id: d2 } })).status, 403);
    assert.equal((await domainAdmin.patch(`/v3/groups/${theirs.id}`, { group: { name: 'y' } })).status, 403);
    assert.equal((await domainAdmin.delete(`/v3/groups/${theirs.id}`)).status, 403);
    assert.equal((await domainAdmin.put(`/v3/groups/${mine.id}/users/${u1}`)).status, 204);
    // Both the group and the user must be in the domain admin's domain.
    assert.equal((await domainAdmin.put(`/v3/groups/${mine.id}/users/${u2}`)).status, 403);
    assert.equal((await domainAdmin.put(`/v3/groups/${theirs.id}/users/${u1}`)).status, 403);

    const listed = (await domainReader.get('/v3/groups')).body.groups as { domain_id: string }[];
    assert.ok(listed.length >= 1);
    assert.ok(listed.every((g) => g.domain_id === d1));
    assert.equal((await domainReader.get(`/v3/groups/${mine.id}`)).status, 200);
    assert.equal((await domainReader.get(`/v3/groups/${theirs.id}`)).status, 403);
    assert.equal((await domainReader.head(`/v3/groups/${mine.id}/users/${u1}`)).status, 204);
    assert.equal((await domainReader.get(`/v3/groups/${mine.id}/users`)).status, 200);
    assert.equal((await domainReader.put(`/v3/groups/${mine.id}/users/${memberId}`)).status, 403);
    assert.equal((await domainReader.patch(`/v3/groups/${mine.id}`, { group: { name: 'z' } })).status, 403);

    const list = await member.get('/v3/groups');
    assert.equal(list.status, 403);
    assert.equal(list.body.error.message, "Policy doesn't allow identity:list_groups to be performed.");
    assert.equal((await member.get(`/v3/groups/${mine.id}`)).status, 403);
    assert.equal((await member.get(`/v3/groups/${mine.id}/users`)).status, 403);
    assert.equal((await member.put(`/v3/groups/${mine.id}/users/${memberId}`)).status, 403);
    assert.equal((await member.post('/v3/groups', { group: { name: 'mine', domain_id: d1 } })).status, 403);
    assert.equal((await member.get(`/v3/users/${memberId}/groups`)).status, 200);
    assert.equal((await domainAdmin.delete(`/v3/groups/${mine.id}`)).status, 204);
  });
});
