import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

const PW = 'user-password-1';
type Named = { id: string; name: string };
const names = (roles: Named[]) => roles.map((r) => r.name).sort();

describe('keystone application credentials and access rules', () => {
  let fx: KeystoneFixture;
  let projectId: string;
  let alice: { id: string; client: JsonClient };
  let bob: { id: string; client: JsonClient };

  /** A user with the member role on the test project, logged in there. */
  async function member(name: string) {
    const user = await fx.ks.identity.createUser({ name, domainId: 'default', password: PW });
    await fx.ks.assignment.grant({ userId: user.id }, { projectId }, fx.boot.roleIds.member);
    return { id: user.id, client: await fx.login(name, PW, { project: { id: projectId } }) };
  }

  const create = (client: JsonClient, userId: string, body: Record<string, unknown>) =>
    client.post(`/v3/users/${userId}/application_credentials`, { application_credential: body });

  /** Authenticates with an application credential; returns the response and a client carrying the token. */
  async function appCredLogin(credential: Record<string, unknown>) {
    const res = await fx.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['application_credential'], application_credential: credential } } });
    return { res, client: fx.client.withToken(res.headers.get('x-subject-token') ?? undefined) };
  }

  before(async () => {
    fx = await startKeystone();
    projectId = (await fx.ks.resource.createProject({ name: 'apps', domainId: 'default' })).id;
    alice = await member('alice');
    bob = await member('bob');
  });
  after(() => fx.close());

  it('creates one with the token’s roles and a generated secret, shown once and stored hashed', async () => {
    const res = await create(alice.client, alice.id, { name: 'monitoring', description: 'for the monitor' });
    assert.equal(res.status, 201, res.text);
    const ac = res.body.application_credential;
    assert.match(ac.secret, /^[A-Za-z0-9_-]{86}$/);
    assert.equal(ac.name, 'monitoring');
    assert.equal(ac.description, 'for the monitor');
    assert.equal(ac.user_id, alice.id);
    assert.equal(ac.project_id, projectId);
    assert.equal(ac.expires_at, null);
    assert.equal(ac.unrestricted, false);
    assert.equal(ac.access_rules, undefined);
    assert.deepEqual(names(ac.roles), ['member', 'reader']);
    assert.equal(ac.links.self, `${fx.url}/v3/users/${alice.id}/application_credentials/${ac.id}`);

    const row = await fx.database.db.selectFrom('application_credential').selectAll().where('id', '=', ac.id).executeTakeFirstOrThrow();
    assert.match(row.secret_hash, /^\$2b\$/);
    assert.ok(!row.secret_hash.includes(ac.secret));

    const shown = await alice.client.get(`/v3/users/${alice.id}/application_credentials/${ac.id}`);
    assert.equal(shown.status, 200);
    const { secret: _shownOnce, ...withoutSecret } = ac;
    assert.deepEqual(shown.body.application_credential, withoutSecret);

    const listed = await alice.client.get(`/v3/users/${alice.id}/application_credentials?name=monitoring`);
    assert.deepEqual(listed.body.application_credentials.map((a: Named) => a.id), [ac.id]);
    assert.deepEqual((await alice.client.get(`/v3/users/${alice.id}/application_credentials?name=other`)).body.application_credentials, []);

    const dup = await create(alice.client, alice.id, { name: 'monitoring' });
    assert.equal(dup.status, 409);
    assert.match(dup.body.error.message, /^Conflict occurred attempting to store application_credential/);
  });

  it('authenticates by id or by name and user, into a project token holding only its roles', async () => {
    const made = await create(alice.client, alice.id, { name: 'reader-only', secret: 'my-own-secret', roles: [{ name: 'reader' }] });
    assert.equal(made.status, 201, made.text);
    const ac = made.body.application_credential;
    assert.equal(ac.secret, 'my-own-secret');
    assert.deepEqual(names(ac.roles), ['reader']);

    const byId = await appCredLogin({ id: ac.id, secret: 'my-own-secret' });
    assert.equal(byId.res.status, 201, byId.res.text);
    const t = byId.res.body.token;
    assert.deepEqual(t.methods, ['application_credential']);
    assert.equal(t.user.id, alice.id);
    assert.equal(t.project.id, projectId);
    assert.deepEqual(names(t.roles), ['reader']);
    assert.deepEqual(t.application_credential, { id: ac.id, name: 'reader-only', restricted: true });

    const byName = await appCredLogin({ name: 'reader-only', secret: 'my-own-secret', user: { name: 'alice', domain: { id: 'default' } } });
    assert.equal(byName.res.status, 201, byName.res.text);
    assert.equal(byName.res.body.token.application_credential.id, ac.id);

    assert.equal((await appCredLogin({ id: ac.id, secret: 'wrong' })).res.status, 401);
    assert.equal((await appCredLogin({ id: 'no-such-credential', secret: 'x' })).res.status, 401);
  });

  it('takes roles by id with the roles they imply, and refuses roles the token lacks', async () => {
    const byId = await create(alice.client, alice.id, { name: 'by-id', roles: [{ id: fx.boot.roleIds.member }] });
    assert.equal(byId.status, 201, byId.text);
    assert.deepEqual(names(byId.body.application_credential.roles), ['member', 'reader']);

    const unheld = await create(alice.client, alice.id, { name: 'escalate', roles: [{ name: 'admin' }] });
    assert.equal(unheld.status, 400);
    assert.equal(unheld.body.error.message, 'Invalid application credential: Cannot create an application credential with unassigned role');
    assert.equal((await create(alice.client, alice.id, { name: 'ghost-id', roles: [{ id: 'deadbeef' }] })).status, 400);
    assert.equal((await create(alice.client, alice.id, { name: 'ghost-name', roles: [{ name: 'no-such-role' }] })).status, 404);
    assert.equal((await create(alice.client, alice.id, { name: 'both', roles: [{ id: 'a', name: 'b' }] })).status, 400);
  });

  it('validates the body and expires_at', async () => {
    assert.equal((await create(alice.client, alice.id, { description: 'no name' })).status, 400);
    assert.equal((await create(alice.client, alice.id, { name: 'x', colour: 'blue' })).status, 400);
    assert.equal((await create(alice.client, alice.id, { name: ' ' })).status, 400);
    const bad = await create(alice.client, alice.id, { name: 'bad-time', expires_at: 'next tuesday' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^Timestamp not in expected format/);
    const past = await create(alice.client, alice.id, { name: 'past', expires_at: '2001-01-01T00:00:00' });
    assert.equal(past.status, 400);
    assert.match(past.body.error.message, /^The 'expires_at' must not be before now/);
    assert.equal((await create(alice.client, alice.id, { name: 'bad-rule', access_rules: [{ service: 'compute', path: 'no-slash', method: 'GET' }] })).status, 400);
    assert.equal((await create(alice.client, alice.id, { name: 'bad-method', access_rules: [{ service: 'compute', path: '/x', method: 'FETCH' }] })).status, 400);
  });

  it('caps the token at expires_at and refuses an expired credential', async () => {
    const expires = new Date(Date.now() + 600_000).toISOString().replace('Z', '');
    const res = await create(alice.client, alice.id, { name: 'short-lived', expires_at: expires, secret: 's3cret' });
    assert.equal(res.status, 201, res.text);
    const ac = res.body.application_credential;
    assert.equal(ac.expires_at, `${expires}000`);
    const login = await appCredLogin({ id: ac.id, secret: 's3cret' });
    assert.equal(login.res.status, 201);
    assert.ok(Date.parse(login.res.body.token.expires_at) <= Date.parse(`${expires}Z`));

    await fx.database.db.updateTable('application_credential').set({ expires_at: Date.now() - 1000 }).where('id', '=', ac.id).execute();
    assert.equal((await appCredLogin({ id: ac.id, secret: 's3cret' })).res.status, 401);
  });

  it('lets a restricted credential create neither application credentials nor ec2 credentials; an unrestricted one may', async () => {
    const restricted = await create(alice.client, alice.id, { name: 'restricted', secret: 'r' });
    const fromRestricted = await appCredLogin({ id: restricted.body.application_credential.id, secret: 'r' });
    const refused = await create(fromRestricted.client, alice.id, { name: 'child' });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /Using method 'application_credential' is not allowed for managing additional application credentials/);
    assert.equal((await fromRestricted.client.post(`/v3/users/${alice.id}/credentials/OS-EC2`, { tenant_id: projectId })).status, 403);
    assert.equal((await fromRestricted.client.delete(`/v3/users/${alice.id}/application_credentials/${restricted.body.application_credential.id}`)).status, 403);

    const unrestricted = await create(alice.client, alice.id, { name: 'unrestricted', secret: 'u', unrestricted: true });
    assert.equal(unrestricted.body.application_credential.unrestricted, true);
    const fromUnrestricted = await appCredLogin({ id: unrestricted.body.application_credential.id, secret: 'u' });
    assert.equal(fromUnrestricted.res.body.token.application_credential.restricted, false);
    const child = await create(fromUnrestricted.client, alice.id, { name: 'child' });
    assert.equal(child.status, 201, child.text);
    assert.equal(child.body.application_credential.project_id, projectId);
  });

  it('refuses creation for another user and without a project scope', async () => {
    assert.equal((await create(alice.client, bob.id, { name: 'for-bob' })).status, 403);
    assert.equal((await create(fx.admin, alice.id, { name: 'by-admin' })).status, 403);
    const system = await fx.login('admin', 'secret-admin-pw', { system: { all: true } });
    assert.equal((await create(system, fx.boot.adminUserId, { name: 'system' })).status, 403);
  });

  it('records access rules, reuses identical ones and refuses deleting one in use', async () => {
    const rule = { service: 'compute', path: '/v2.1/servers', method: 'GET' };
    const first = await create(alice.client, alice.id, { name: 'ruled', secret: 'a', access_rules: [rule] });
    assert.equal(first.status, 201, first.text);
    const [recorded] = first.body.application_credential.access_rules;
    assert.deepEqual({ ...recorded, id: 0 }, { ...rule, id: 0 });
    const second = await create(alice.client, alice.id, { name: 'ruled-too', access_rules: [rule, { id: recorded.id }] });
    assert.equal(second.status, 201, second.text);
    assert.deepEqual(second.body.application_credential.access_rules, [recorded]);

    const token = (await appCredLogin({ id: first.body.application_credential.id, secret: 'a' })).res.body.token;
    assert.deepEqual(token.application_credential.access_rules, [recorded]);

    const rules = `/v3/users/${alice.id}/access_rules`;
    const listed = await alice.client.get(rules);
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.access_rules, [{ ...recorded, links: { self: `${fx.url}${rules}/${recorded.id}` } }]);
    assert.deepEqual((await alice.client.get(`${rules}?method=POST`)).body.access_rules, []);
    assert.equal((await alice.client.get(`${rules}/${recorded.id}`)).body.access_rule.path, '/v2.1/servers');

    const inUse = await alice.client.delete(`${rules}/${recorded.id}`);
    assert.equal(inUse.status, 403);
    assert.equal(inUse.body.error.message, 'May not delete access rule in use');
    for (const made of [first, second]) {
      assert.equal((await alice.client.delete(`/v3/users/${alice.id}/application_credentials/${made.body.application_credential.id}`)).status, 204);
    }
    assert.equal((await alice.client.delete(`${rules}/${recorded.id}`)).status, 204);
    assert.equal((await alice.client.get(`${rules}/${recorded.id}`)).status, 404);
  });

  it('keeps users out of each other’s credentials and rules', async () => {
    const ac = (await create(alice.client, alice.id, { name: 'private', access_rules: [{ service: 'image', path: '/v2/images', method: 'GET' }] })).body.application_credential;
    const ruleId = ac.access_rules[0].id;
    assert.equal((await bob.client.get(`/v3/users/${alice.id}/application_credentials`)).status, 403);
    assert.equal((await bob.client.get(`/v3/users/${alice.id}/application_credentials/${ac.id}`)).status, 403);
    // The owner checked is the credential's, not the one named in the path.
    assert.equal((await bob.client.get(`/v3/users/${bob.id}/application_credentials/${ac.id}`)).status, 403);
    assert.equal((await bob.client.delete(`/v3/users/${bob.id}/application_credentials/${ac.id}`)).status, 403);
    assert.equal((await bob.client.get(`/v3/users/${alice.id}/access_rules`)).status, 403);
    assert.equal((await bob.client.get(`/v3/users/${bob.id}/access_rules/${ruleId}`)).status, 404);
    assert.equal((await bob.client.delete(`/v3/users/${bob.id}/access_rules/${ruleId}`)).status, 404);
    assert.equal((await bob.client.get(`/v3/users/${bob.id}/application_credentials/no-such-id`)).status, 404);

    // The cloud admin reads and deletes anyone's.
    assert.equal((await fx.admin.get(`/v3/users/${alice.id}/application_credentials/${ac.id}`)).status, 200);
    assert.ok((await fx.admin.get(`/v3/users/${alice.id}/application_credentials`)).body.application_credentials.length > 0);
    assert.equal((await fx.admin.delete(`/v3/users/${alice.id}/application_credentials/${ac.id}`)).status, 204);
  });

  it('invalidates tokens of a deleted credential, and goes away with its user', async () => {
    const ac = (await create(alice.client, alice.id, { name: 'doomed', secret: 'd' })).body.application_credential;
    const login = await appCredLogin({ id: ac.id, secret: 'd' });
    assert.equal((await login.client.get('/v3/auth/projects')).status, 200);
    assert.equal((await alice.client.delete(`/v3/users/${alice.id}/application_credentials/${ac.id}`)).status, 204);
    assert.equal((await login.client.get('/v3/auth/projects')).status, 401);
    assert.equal((await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': login.client.token! })).status, 404);
    assert.equal((await appCredLogin({ id: ac.id, secret: 'd' })).res.status, 401);
    assert.equal((await alice.client.get(`/v3/users/${alice.id}/application_credentials/${ac.id}`)).status, 404);

    const dave = await member('dave');
    const daves = (await create(dave.client, dave.id, { name: 'daves', access_rules: [{ service: 'image', path: '/v2/images', method: 'GET' }] })).body.application_credential;
    await fx.ks.identity.deleteUser(dave.id);
    assert.equal(await fx.ks.appCreds.find(daves.id), undefined);
    assert.deepEqual(await fx.ks.appCreds.listAccessRules(dave.id), []);
  });

  it('dies with the role on its project, with its disabled user, and with its project', async () => {
    const count = async (where: { userId?: string; projectId?: string }) => {
      let q = fx.database.db.selectFrom('application_credential').select('id');
      if (where.userId) q = q.where('user_id', '=', where.userId);
      if (where.projectId) q = q.where('project_id', '=', where.projectId);
      return (await q.execute()).length;
    };
    const carol = await member('carol');
    assert.equal((await create(carol.client, carol.id, { name: 'a' })).status, 201);
    await fx.ks.assignment.revoke({ userId: carol.id }, { projectId }, fx.boot.roleIds.member);
    assert.equal(await count({ userId: carol.id }), 0, 'role removed');

    const dave = await member('dave');
    assert.equal((await create(dave.client, dave.id, { name: 'b' })).status, 201);
    await fx.ks.identity.updateUser(dave.id, { enabled: false });
    assert.equal(await count({ userId: dave.id }), 0, 'user disabled');

    const other = await fx.ks.resource.createProject({ name: 'doomed', domainId: 'default' });
    const erin = await fx.ks.identity.createUser({ name: 'erin', domainId: 'default', password: PW });
    await fx.ks.assignment.grant({ userId: erin.id }, { projectId: other.id }, fx.boot.roleIds.member);
    const erinClient = await fx.login('erin', PW, { project: { id: other.id } });
    assert.equal((await create(erinClient, erin.id, { name: 'c' })).status, 201);
    await fx.ks.resource.deleteProject(other.id, false);
    assert.equal(await count({ projectId: other.id }), 0, 'project deleted');
  });
});
