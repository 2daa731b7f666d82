import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone /v3/users', () => {
  let ks: KeystoneFixture;
  let d1: string;
  let d2: string;
  let projectA: string;
  let member: JsonClient;
  let memberId: string;
  let reader: JsonClient;
  let domainAdmin: JsonClient;
  let domainReader: JsonClient;
  let systemReader: JsonClient;

  const create = async (user: Record<string, unknown>, client = ks.admin) => {
    const res = await client.post('/v3/users', { user });
    assert.equal(res.status, 201, res.text);
    return res.body.user;
  };

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    const roles = ks.boot.roleIds;
    d1 = (await k.resource.createProject({ name: 'd1', isDomain: true })).id;
    d2 = (await k.resource.createProject({ name: 'd2', isDomain: true })).id;
    projectA = (await k.resource.createProject({ name: 'A', domainId: d1 })).id;
    const alice = await k.identity.createUser({ name: 'alice', domainId: d1, password: 'alice-pw' });
    memberId = alice.id;
    await k.assignment.grant({ userId: alice.id }, { projectId: projectA }, roles.member);
    member = await ks.loginById(alice.id, 'alice-pw', { project: { id: projectA } });
    const rita = await k.identity.createUser({ name: 'rita', domainId: d1, password: 'rita-pw' });
    await k.assignment.grant({ userId: rita.id }, { projectId: projectA }, roles.reader);
    reader = await ks.loginById(rita.id, 'rita-pw', { project: { id: projectA } });
    const dan = await k.identity.createUser({ name: 'dan', domainId: d1, password: 'dan-pw' });
    await k.assignment.grant({ userId: dan.id }, { domainId: d1 }, roles.admin);
    domainAdmin = await ks.loginById(dan.id, 'dan-pw', { domain: { id: d1 } });
    const dora = await k.identity.createUser({ name: 'dora', domainId: d1, password: 'dora-pw' });
    await k.assignment.grant({ userId: dora.id }, { domainId: d1 }, roles.reader);
    domainReader = await ks.loginById(dora.id, 'dora-pw', { domain: { id: d1 } });
    const auditor = await k.identity.createUser({ name: 'auditor', domainId: 'default', password: 'auditor-pw' });
    await k.assignment.grant({ userId: auditor.id }, { system: 'all' }, roles.reader);
    systemReader = await ks.loginById(auditor.id, 'auditor-pw', { system: { all: true } });
  });
  after(() => ks.close());

  it('creates, shows, updates and deletes a user as upstream renders it', async () => {
    const u = await create({ name: 'bob', domain_id: d2, password: 'bob-pw', default_project_id: projectA, email: 'bob@example.com', options: { ignore_password_expiry: true }, team: 'ops' });
    assert.match(u.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...u, links: undefined },
      {
        id: u.id,
        name: 'bob',
        domain_id: d2,
        enabled: true,
        default_project_id: projectA,
        email: 'bob@example.com',
        password_expires_at: null,
        options: { ignore_password_expiry: true },
        team: 'ops',
        links: undefined,
      },
    );
    assert.equal(u.links.self, `${ks.url}/v3/users/${u.id}`);
    assert.equal((await ks.admin.get(`/v3/users/${u.id}`)).body.user.name, 'bob');

    const patched = await ks.admin.patch(`/v3/users/${u.id}`, { user: { name: 'robert', enabled: false, options: { ignore_password_expiry: null, lock_password: true }, desk: 7 } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.user.name, 'robert');
    assert.equal(patched.body.user.enabled, false);
    assert.deepEqual(patched.body.user.options, { lock_password: true });
    assert.equal(patched.body.user.team, 'ops');
    assert.equal(patched.body.user.desk, 7);

    assert.equal((await ks.admin.delete(`/v3/users/${u.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/users/${u.id}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { error: { code: 404, title: 'Not Found', message: `Could not find user: ${u.id}.` } });
    assert.equal((await ks.admin.delete(`/v3/users/${u.id}`)).status, 404);
  });

  it('creates a user without password in the default domain', async () => {
    const u = await create({ name: 'nopass' });
    assert.equal(u.domain_id, 'default');
    assert.ok(!('default_project_id' in u));
    const login = await ks.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { id: u.id, password: '' } } } } });
    assert.equal(login.status, 401);
  });

  it('refuses bad input with the keystone error body and writes nothing', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ user: { name: 'x1' }, other: 1 }, 400, /'other' was unexpected/],
      [{ user: { domain_id: d2 } }, 400, /'name' is a required property/],
      [{ user: { name: 'x1', enabled: 'true' } }, 400, /is not of type 'boolean'/],
      [{ user: { name: 'x1', password: 42 } }, 400, /password/],
      [{ user: { name: '' } }, 400, /too short/],
      [{ user: { name: 'x1', options: { bogus: true } } }, 400, /Additional properties are not allowed \('bogus' was unexpected\)/],
      [{ user: { name: 'x1', options: { lock_password: 'yes' } } }, 400, /lock_password/],
      [{ user: { name: 'x1', options: { multi_factor_auth_rules: [['password', 'password']] } } }, 400, /multi_factor_auth_rules/],
      [{ user: { name: 'x1', options: { multi_factor_auth_rules: [[]] } } }, 400, /multi_factor_auth_rules/],
      [{ user: { name: 'x1', default_project_id: d2 } }, 400, new RegExp(`^User's default project ID cannot be a domain ID: ${d2}$`)],
      [{ user: { name: 'x1', domain_id: 'nowhere' } }, 404, /^Could not find domain: nowhere\.$/],
    ];
    for (const [body, status, message] of cases) {
      const res = await ks.admin.post('/v3/users', body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'title']);
      assert.equal(res.body.error.code, status);
      assert.match(res.body.error.message, message);
    }
    assert.equal((await ks.ks.identity.listUsers({ name: 'x1' })).length, 0);

    const ok = await create({ name: 'x1', options: { multi_factor_auth_rules: [['password', 'totp'], ['password']], multi_factor_auth_enabled: true } });
    assert.deepEqual(ok.options.multi_factor_auth_rules, [['password', 'totp'], ['password']]);
    const dup = await ks.admin.post('/v3/users', { user: { name: 'x1', password: 'whatever' } });
    assert.equal(dup.status, 409);
    assert.deepEqual(dup.body.error, { code: 409, title: 'Conflict', message: 'Conflict occurred attempting to store user - Duplicate entry found with name x1 at domain ID default.' });
    assert.equal((await ks.ks.identity.listUsers({ name: 'x1' })).length, 1);

    const patches: [unknown, number, string][] = [
      [{ user: { domain_id: d2 } }, 400, 'Cannot change Domain ID'],
      [{ user: { id: 'other' } }, 400, 'Cannot change ID'],
      [{ user: { name: 'alice' }, other: true }, 400, "Additional properties are not allowed ('other' was unexpected)"],
    ];
    for (const [body, status, message] of patches) {
      const res = await ks.admin.patch(`/v3/users/${ok.id}`, body);
      assert.equal(res.status, status, res.text);
      assert.equal(res.body.error.message, message);
    }
    assert.equal((await ks.admin.patch(`/v3/users/${ok.id}`, { user: { domain_id: 'default' } })).status, 200);
    assert.equal((await ks.admin.patch('/v3/users/missing', { user: { name: 'y' } })).status, 404);
    const renameDup = await ks.admin.patch(`/v3/users/${ok.id}`, { user: { name: 'auditor' } });
    assert.equal(renameDup.status, 409);
  });

  it('filters the user list', async () => {
    const ids = async (query: string) => ((await ks.admin.get(`/v3/users?${query}`)).body.users as { name: string }[]).map((u) => u.name).sort();
    assert.deepEqual(await ids(`domain_id=${d1}`), ['alice', 'dan', 'dora', 'rita']);
    assert.deepEqual(await ids(`domain_id=${d1}&name=dan`), ['dan']);
    await ks.ks.identity.updateUser(memberId, { enabled: false });
    assert.deepEqual(await ids(`domain_id=${d1}&enabled=false`), ['alice']);
    await ks.ks.identity.updateUser(memberId, { enabled: true });
    member = await ks.loginById(memberId, 'alice-pw', { project: { id: projectA } });
    assert.deepEqual(await ids('password_expires_at=lt:2999-01-01T00:00:00Z'), []);

    const badOp = await ks.admin.get('/v3/users?password_expires_at=xx:2016-12-08T22:02:00Z');
    assert.equal(badOp.status, 400);
    assert.equal(badOp.body.error.message, "The given operator xx is not valid. It must be one of the following: 'eq', 'neq', 'lt', 'lte', 'gt', or 'gte'.");
    const badTime = await ks.admin.get('/v3/users?password_expires_at=lt:yesterday');
    assert.equal(badTime.status, 400);
    assert.match(badTime.body.error.message, /^Timestamp not in expected format/);
  });

  it('lets a user change its own password, without a token, proving the old one', async () => {
    const u = await create({ name: 'carol', password: 'carol-old' });
    const carol = await ks.loginById(u.id, 'carol-old');
    const wrong = await ks.client.post(`/v3/users/${u.id}/password`, { user: { original_password: 'nope', password: 'carol-new' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.title, 'Unauthorized');
    const missing = await ks.client.post(`/v3/users/${u.id}/password`, { user: { password: 'carol-new' } });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /'original_password' is a required property/);
    const extra = await ks.client.post(`/v3/users/${u.id}/password`, { user: { original_password: 'carol-old', password: 'carol-new', x: 1 } });
    assert.equal(extra.status, 400);
    assert.equal((await ks.client.post('/v3/users/nobody/password', { user: { original_password: 'a', password: 'b' } })).status, 401);

    const changed = await ks.client.post(`/v3/users/${u.id}/password`, { user: { original_password: 'carol-old', password: 'carol-new' } });
    assert.equal(changed.status, 204, changed.text);
    // The change revokes the user's tokens.
    assert.equal((await carol.get(`/v3/users/${u.id}`)).status, 401);
    await ks.loginById(u.id, 'carol-new');
    assert.equal((await ks.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { id: u.id, password: 'carol-old' } } } } })).status, 401);
  });

  it('honours lock_password', async () => {
    const u = await create({ name: 'locked', password: 'locked-pw', options: { lock_password: true } });
    const res = await ks.client.post(`/v3/users/${u.id}/password`, { user: { original_password: 'locked-pw', password: 'other-pw' } });
    assert.equal(res.status, 400);
    assert.equal(
      res.body.error.message,
      'You cannot change your password at this time due to password policy disallowing password changes. Please contact your administrator to reset your password.',
    );
    // An administrator still can.
    assert.equal((await ks.admin.patch(`/v3/users/${u.id}`, { user: { password: 'reset-pw' } })).status, 200);
    await ks.loginById(u.id, 'reset-pw');
  });

  it("lists a user's groups to the user and to readers", async () => {
    const g = (await ks.admin.post('/v3/groups', { group: { name: 'devs', domain_id: d1 } })).body.group;
    const g2 = (await ks.admin.post('/v3/groups', { group: { name: 'ops', domain_id: d2 } })).body.group;
    await ks.ks.identity.addUserToGroup(memberId, g.id);
    await ks.ks.identity.addUserToGroup(memberId, g2.id);
    const own = await member.get(`/v3/users/${memberId}/groups`);
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(own.body.groups.map((x: { name: string }) => x.name), ['devs', 'ops']);
    assert.deepEqual((await member.get(`/v3/users/${memberId}/groups?name=ops`)).body.groups.map((x: { name: string }) => x.name), ['ops']);
    // A domain-scoped caller sees the groups of its domain only.
    assert.deepEqual((await domainReader.get(`/v3/users/${memberId}/groups`)).body.groups.map((x: { name: string }) => x.name), ['devs']);
    assert.equal((await reader.get(`/v3/users/${memberId}/groups`)).status, 403);
    assert.equal((await ks.admin.get('/v3/users/missing/groups')).status, 404);
  });

  it('lets a project member read itself only', async () => {
    const list = await member.get('/v3/users');
    assert.equal(list.status, 403);
    assert.deepEqual(list.body, { error: { code: 403, title: 'Forbidden', message: "Policy doesn't allow identity:list_users to be performed." } });
    assert.equal((await member.get(`/v3/users/${memberId}`)).status, 200);
    const others = (await ks.admin.get(`/v3/users?domain_id=${d1}&name=dan`)).body.users[0];
    assert.equal((await member.get(`/v3/users/${others.id}`)).status, 403);
    assert.equal((await member.get('/v3/users/missing')).status, 403);
    assert.equal((await member.patch(`/v3/users/${memberId}`, { user: { name: 'alice2' } })).status, 403);
    assert.equal((await member.post('/v3/users', { user: { name: 'new', domain_id: d1 } })).status, 403);
    assert.equal((await member.delete(`/v3/users/${others.id}`)).status, 403);
    assert.equal((await reader.get('/v3/users')).status, 403);
    assert.equal((await reader.post('/v3/users', { user: { name: 'new', domain_id: d1 } })).status, 403);
  });

  it('lets a domain admin manage the users of its domain only', async () => {
    const mine = await create({ name: 'hired', domain_id: d1, password: 'hired-pw' }, domainAdmin);
    assert.equal(mine.domain_id, d1);
    const elsewhere = await domainAdmin.post('/v3/users', { user: { name: 'hired', domain_id: d2 } });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.body.error.message, "Policy doesn't allow identity:create_user to be performed.");
    assert.equal((await ks.ks.identity.listUsers({ domainId: d2, name: 'hired' })).length, 0);

    const foreign = await create({ name: 'foreigner', domain_id: d2 });
    assert.equal((await domainAdmin.get(`/v3/users/${foreign.id}`)).status, 403);
    assert.equal((await domainAdmin.patch(`/v3/users/${foreign.id}`, { user: { enabled: false } })).status, 403);
    assert.equal((await domainAdmin.delete(`/v3/users/${foreign.id}`)).status, 403);
    assert.equal((await domainAdmin.patch(`/v3/users/${mine.id}`, { user: { enabled: false } })).status, 200);

    const listed = (await domainAdmin.get('/v3/users')).body.users as { domain_id: string }[];
    assert.ok(listed.length >= 5);
    assert.ok(listed.every((u) => u.domain_id === d1));
    assert.deepEqual((await domainAdmin.get(`/v3/users?domain_id=${d2}`)).body.users, []);

    assert.equal((await domainReader.get(`/v3/users/${mine.id}`)).status, 200);
    assert.equal((await domainReader.get(`/v3/users/${foreign.id}`)).status, 403);
    assert.equal((await domainReader.patch(`/v3/users/${mine.id}`, { user: { enabled: true } })).status, 403);
    assert.equal((await domainAdmin.delete(`/v3/users/${mine.id}`)).status, 204);

    const all = (await systemReader.get('/v3/users')).body.users as { domain_id: string }[];
    assert.ok(all.some((u) => u.domain_id === d2));
    assert.equal((await systemReader.get(`/v3/users/${foreign.id}`)).status, 200);
    assert.equal((await systemReader.post('/v3/users', { user: { name: 'nope' } })).status, 403);
  });
});
