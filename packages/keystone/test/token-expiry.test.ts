import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, ManualClock, startKeystone, type KeystoneFixture } from './fixture.ts';

describe('token expiry', () => {
  const clock = new ManualClock(Date.now());
  let ks: KeystoneFixture;
  before(async () => {
    ks = await startKeystone({ clock, config: { tokenExpiration: 600, allowExpiredWindow: 3600 } });
  });
  after(() => ks.close());

  it('refuses an expired token as a caller (401) and as a subject (404), unless allow_expired', async () => {
    const scope = { project: { name: 'admin', domain: { id: 'default' } } };
    const old = await ks.login('admin', ADMIN_PASSWORD, scope);
    const issued = await ks.admin.get('/v3/auth/tokens', { 'x-subject-token': old.token! });
    assert.equal(issued.status, 200);
    const expiresAt = Date.parse(issued.body.token.expires_at);
    assert.ok(Math.abs(expiresAt - (clock.now() + 600_000)) < 1000, 'expires after token_expiration');

    clock.advance(601_000);
    const fresh = await ks.login('admin', ADMIN_PASSWORD, scope);
    assert.equal((await old.get('/v3/auth/projects')).status, 401);
    const subject = await fresh.get('/v3/auth/tokens', { 'x-subject-token': old.token! });
    assert.equal(subject.status, 404);
    assert.equal(subject.body.error.code, 404);
    const allowed = await fresh.get('/v3/auth/tokens?allow_expired=1', { 'x-subject-token': old.token! });
    assert.equal(allowed.status, 200);

    clock.advance(3600_000);
    const fresher = await ks.login('admin', ADMIN_PASSWORD, scope);
    assert.equal((await fresher.get('/v3/auth/tokens?allow_expired=1', { 'x-subject-token': old.token! })).status, 404, 'beyond the window');
  });

  it('does not let a rescoped token outlive its parent', async () => {
    const parent = await ks.login('admin', ADMIN_PASSWORD);
    clock.advance(300_000);
    const res = await ks.client.post('/v3/auth/tokens', {
      auth: { identity: { methods: ['token'], token: { id: parent.token } }, scope: { project: { name: 'admin', domain: { id: 'default' } } } },
    });
    assert.equal(res.status, 201, res.text);
    const child = ks.client.withToken(res.headers.get('x-subject-token')!);
    const parentBody = await child.get('/v3/auth/tokens', { 'x-subject-token': parent.token! });
    assert.equal(res.body.token.expires_at, parentBody.body.token.expires_at);
  });
});
