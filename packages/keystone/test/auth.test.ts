import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone /v3/auth/tokens', () => {
  let ks: KeystoneFixture;
  before(async () => {
    ks = await startKeystone();
  });
  after(() => ks.close());

  it('serves version documents', async () => {
    const root = await ks.client.get('/');
    assert.equal(root.status, 300);
    assert.equal(root.body.versions.values[0].id, 'v3.14');
    const v3 = await ks.client.get('/v3');
    assert.equal(v3.status, 200);
    assert.equal(v3.body.version.status, 'stable');
    assert.match(root.headers.get('x-openstack-request-id')!, /^req-[0-9a-f-]{36}$/);
  });

  it('issues a project-scoped token with roles and catalog', async () => {
    const res = await ks.client.post('/v3/auth/tokens', {
      auth: {
        identity: { methods: ['password'], password: { user: { name: 'admin', domain: { name: 'Default' }, password: ADMIN_PASSWORD } } },
        scope: { project: { name: 'admin', domain: { id: 'default' } } },
      },
    });
    assert.equal(res.status, 201, res.text);
    const t = res.body.token;
    assert.ok(res.headers.get('x-subject-token'));
    assert.deepEqual(t.methods, ['password']);
    assert.equal(t.user.name, 'admin');
    assert.equal(t.project.name, 'admin');
    assert.equal(t.is_admin_project, true);
    assert.deepEqual(t.roles.map((r: { name: string }) => r.name).sort(), ['admin', 'member', 'reader']);
    assert.equal(t.catalog[0].type, 'identity');
    assert.match(t.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('refuses a wrong password with 401 and the keystone error body', async () => {
    const res = await ks.client.post('/v3/auth/tokens', {
      auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: 'nope' } } } },
    });
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'title']);
    assert.equal(res.body.error.title, 'Unauthorized');
  });

  it('validates, checks and revokes a token', async () => {
    const user = await ks.login('admin', ADMIN_PASSWORD, { project: { name: 'admin', domain: { id: 'default' } } });
    const subject = user.token!;
    const get = await ks.admin.get('/v3/auth/tokens', { 'x-subject-token': subject });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.headers.get('x-subject-token'), subject);
    assert.equal((await ks.admin.head('/v3/auth/tokens', { 'x-subject-token': subject })).status, 200);
    assert.equal((await ks.admin.delete('/v3/auth/tokens', { 'x-subject-token': subject })).status, 204);
    const gone = await ks.admin.get('/v3/auth/tokens', { 'x-subject-token': subject });
    assert.equal(gone.status, 404);
    assert.equal((await user.get('/v3/auth/projects')).status, 401);
  });

  it('answers garbage tokens with 401 and WWW-Authenticate', async () => {
    const res = await ks.client.withToken('garbage').get('/v3/auth/projects');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate')!, /^Keystone uri=/);
  });

  it('rescopes with the token method, keeping the audit chain', async () => {
    const unscoped = await ks.client.post('/v3/auth/tokens', {
      auth: { identity: { methods: ['password'], password: { user: { id: ks.boot.adminUserId, password: ADMIN_PASSWORD } } } },
    });
    assert.equal(unscoped.status, 201);
    const parentAudit = unscoped.body.token.audit_ids[0];
    const res = await ks.client.post('/v3/auth/tokens', {
      auth: { identity: { methods: ['token'], token: { id: unscoped.headers.get('x-subject-token') } }, scope: { system: { all: true } } },
    });
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.body.token.system, { all: true });
    assert.equal(res.body.token.audit_ids[1], parentAudit);
  });

  it('rejects malformed JSON with 400', async () => {
    const res = await ks.client.request('POST', '/v3/auth/tokens', '{not json', { 'content-type': 'application/json' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 400);
  });

  it('answers bad authentication requests with upstream statuses', async () => {
    const post = (body: unknown) => ks.client.post('/v3/auth/tokens', body);
    assert.equal((await post({})).status, 400);
    assert.equal((await post({ auth: { identity: { methods: 'password' } } })).status, 400);
    assert.equal((await post({ auth: { identity: { methods: ['totp'], totp: {} } } })).status, 401);
    const noUser = await post({ auth: { identity: { methods: ['password'], password: { user: { name: 'nobody', domain: { id: 'default' }, password: 'x' } } } } });
    assert.equal(noUser.status, 401, 'an unknown user looks like a wrong password');
    const badScope = await post({
      auth: {
        identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: ADMIN_PASSWORD } } },
        scope: { project: { id: 'does-not-exist' } },
      },
    });
    assert.equal(badScope.status, 401);
    const big = await ks.client.request('POST', '/v3/auth/tokens', JSON.stringify({ auth: { pad: 'x'.repeat(200_000) } }));
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 413);
  });

  it('refuses a catalog to an unscoped token with 403', async () => {
    await ks.ks.identity.createUser({ name: 'no-project', domainId: 'default', password: 'no-project-pw' });
    const unscoped = await ks.login('no-project', 'no-project-pw');
    const res = await unscoped.get('/v3/auth/catalog');
    assert.equal(res.status, 403);
    assert.match(res.body.error.message, /project-scoped token is required/);
  });
});
