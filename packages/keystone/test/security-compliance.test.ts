import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KeystoneConfig } from '../src/conf.ts';
import { ADMIN_PASSWORD, ManualClock, startKeystone, type KeystoneFixture } from './fixture.ts';

const DAY = 86_400_000;

/** How upstream renders a password expiry: to the second, with microseconds. */
const expiry = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('Z', '000Z');

/** A keystone with [security_compliance] options set, on a clock the test moves. */
function compliance(config: Partial<KeystoneConfig>) {
  const clock = new ManualClock();
  const ctx = { clock } as { clock: ManualClock; ks: KeystoneFixture };
  before(async () => {
    ctx.ks = await startKeystone({ config, clock });
  });
  after(() => ctx.ks.close());
  return ctx;
}

async function createUser(ks: KeystoneFixture, user: Record<string, unknown>) {
  const res = await ks.admin.post('/v3/users', { user });
  assert.equal(res.status, 201, res.text);
  return res.body.user as { id: string; password_expires_at: string | null };
}

/**
 * Password changes revoke the user's tokens as of now, and a token minted in
 * that same instant counts as revoked: the manual clock moves on first.
 */
function login(ks: KeystoneFixture, userId: string, password: string) {
  (ks.clock as ManualClock).advance(1);
  return ks.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { id: userId, password } } } } });
}

const changePassword = (ks: KeystoneFixture, userId: string, original: string, password: string) =>
  ks.client.post(`/v3/users/${userId}/password`, { user: { original_password: original, password } });

/** The admin's own password is subject to the rules too: exempt it so the test keeps its admin. */
async function exemptAdmin(ks: KeystoneFixture, options: Record<string, boolean>) {
  assert.equal((await ks.admin.patch(`/v3/users/${ks.boot.adminUserId}`, { user: { options } })).status, 200);
}

describe('security compliance: lockout', () => {
  const c = compliance({ lockoutFailureAttempts: 2, lockoutDuration: 2 });

  it('locks a user out after two bad passwords, for the lockout duration', async () => {
    const { ks, clock } = c;
    const u = await createUser(ks, { name: 'lock-me', password: 'right-pw' });
    for (let i = 0; i < 2; i++) assert.equal((await login(ks, u.id, 'wrong')).status, 401);
    const locked = await login(ks, u.id, 'right-pw');
    assert.equal(locked.status, 401);
    assert.deepEqual(locked.body.error, { code: 401, title: 'Unauthorized', message: `The account is locked for user: ${u.id}.` });
    // A locked user cannot change its password either.
    assert.equal((await changePassword(ks, u.id, 'right-pw', 'other-pw')).status, 401);
    clock.advance(2001);
    assert.equal((await login(ks, u.id, 'right-pw')).status, 201);
    // A success resets the count: one more failure does not lock.
    assert.equal((await login(ks, u.id, 'wrong')).status, 401);
    assert.equal((await login(ks, u.id, 'right-pw')).status, 201);
  });

  it('counts failed password changes, and an administrator unlocks by enabling', async () => {
    const { ks } = c;
    const u = await createUser(ks, { name: 'lock-me-too', password: 'right-pw' });
    for (let i = 0; i < 2; i++) assert.equal((await changePassword(ks, u.id, 'wrong', 'new-pw')).status, 401);
    assert.equal((await login(ks, u.id, 'right-pw')).status, 401);
    assert.equal((await ks.admin.patch(`/v3/users/${u.id}`, { user: { enabled: true } })).status, 200);
    assert.equal((await login(ks, u.id, 'right-pw')).status, 201);
  });

  it('never locks a user with ignore_lockout_failure_attempts', async () => {
    const { ks } = c;
    const u = await createUser(ks, { name: 'unlockable', password: 'right-pw', options: { ignore_lockout_failure_attempts: true } });
    for (let i = 0; i < 5; i++) assert.equal((await login(ks, u.id, 'wrong')).status, 401);
    assert.equal((await login(ks, u.id, 'right-pw')).status, 201);
  });
});

describe('security compliance: password history', () => {
  const c = compliance({ uniqueLastPasswordCount: 2 });

  it('refuses the last two passwords on a self-service change', async () => {
    const { ks } = c;
    const u = await createUser(ks, { name: 'history', password: 'pw-1' });
    assert.equal((await changePassword(ks, u.id, 'pw-1', 'pw-2')).status, 204);
    for (const reused of ['pw-1', 'pw-2']) {
      const res = await changePassword(ks, u.id, 'pw-2', reused);
      assert.equal(res.status, 400, reused);
      assert.equal(res.body.error.message, 'The new password cannot be identical to a previous password. The total number which includes the new password must be unique is 2.');
    }
    assert.equal((await changePassword(ks, u.id, 'pw-2', 'pw-3')).status, 204);
    // pw-1 has left the window of the last two.
    assert.equal((await changePassword(ks, u.id, 'pw-3', 'pw-1')).status, 204);
    assert.equal((await login(ks, u.id, 'pw-1')).status, 201);
    // An administrator's reset is not bound by the history.
    assert.equal((await ks.admin.patch(`/v3/users/${u.id}`, { user: { password: 'pw-1' } })).status, 200);
  });
});

describe('security compliance: minimum password age', () => {
  const c = compliance({ minimumPasswordAge: 1 });

  it('keeps a self-chosen password for a day', async () => {
    const { ks, clock } = c;
    const u = await createUser(ks, { name: 'aging', password: 'pw-admin' });
    // A password an administrator set may be replaced at once.
    assert.equal((await changePassword(ks, u.id, 'pw-admin', 'pw-mine')).status, 204);
    clock.advance(60_000);
    const early = await changePassword(ks, u.id, 'pw-mine', 'pw-next');
    assert.equal(early.status, 400);
    assert.equal(
      early.body.error.message,
      'You cannot change your password at this time due to the minimum password age. Once you change your password, it must be used for 1 day(s) before it can be changed. Please try again in 0 day(s) or contact your administrator to reset your password.',
    );
    clock.advance(DAY);
    assert.equal((await changePassword(ks, u.id, 'pw-mine', 'pw-next')).status, 204);
    assert.equal((await login(ks, u.id, 'pw-next')).status, 201);
  });
});

describe('security compliance: password expiry', () => {
  const c = compliance({ passwordExpiresDays: 30 });

  it('shows password_expires_at, filters on it and refuses an expired password', async () => {
    const { ks, clock } = c;
    await exemptAdmin(ks, { ignore_password_expiry: true });
    const created = clock.now();
    const u = await createUser(ks, { name: 'expiring', password: 'pw-1' });
    const expiresAt = expiry(created + 30 * DAY);
    assert.equal(u.password_expires_at, expiresAt);
    assert.equal((await ks.admin.get(`/v3/users/${u.id}`)).body.user.password_expires_at, expiresAt);
    const exempt = await createUser(ks, { name: 'exempt', password: 'pw-1', options: { ignore_password_expiry: true } });
    assert.equal(exempt.password_expires_at, null);

    const names = async (q: string) => ((await ks.admin.get(`/v3/users?password_expires_at=${q}`)).body.users as { name: string }[]).map((x) => x.name);
    const at = new Date(created + 30 * DAY).toISOString().replace(/\.\d+Z$/, 'Z');
    assert.ok((await names(`lte:${at}`)).includes('expiring'));
    assert.ok((await names(at)).includes('expiring'));
    assert.ok(!(await names(`lt:${at}`)).includes('expiring'));
    assert.ok(!(await names(`gt:${at}`)).includes('exempt'));

    clock.advance(31 * DAY);
    const expired = await login(ks, u.id, 'pw-1');
    assert.equal(expired.status, 401);
    assert.equal(expired.body.error.message, `The password is expired and needs to be changed for user: ${u.id}.`);
    assert.equal((await login(ks, exempt.id, 'pw-1')).status, 201);

    // An expired password still proves who the user is, to replace it.
    assert.equal((await changePassword(ks, u.id, 'pw-1', 'pw-2')).status, 204);
    assert.equal((await login(ks, u.id, 'pw-2')).status, 201);
    const admin = await ks.login('admin', ADMIN_PASSWORD, { project: { name: 'admin', domain: { id: 'default' } } });
    const renewed = (await admin.get(`/v3/users/${u.id}`)).body.user.password_expires_at;
    assert.equal(renewed, expiry(clock.now() + 30 * DAY));
  });
});

describe('security compliance: change password upon first use', () => {
  const c = compliance({});

  before(async () => {
    // Turned on after bootstrap: the bootstrap admin's password would be a first-use password too, as upstream.
    c.ks.ks.config.changePasswordUponFirstUse = true;
  });

  it('makes a user replace the password an administrator set', async () => {
    const { ks, clock } = c;
    const u = await createUser(ks, { name: 'newcomer', password: 'given-pw' });
    assert.equal(u.password_expires_at, new Date(clock.now()).toISOString().replace('Z', '000Z'));
    const first = await login(ks, u.id, 'given-pw');
    assert.equal(first.status, 401);
    assert.equal(first.body.error.message, `The password is expired and needs to be changed for user: ${u.id}.`);
    assert.equal((await changePassword(ks, u.id, 'given-pw', 'chosen-pw')).status, 204);
    assert.equal((await login(ks, u.id, 'chosen-pw')).status, 201);

    // An administrator's reset starts over.
    assert.equal((await ks.admin.patch(`/v3/users/${u.id}`, { user: { password: 'reset-pw' } })).status, 200);
    assert.equal((await login(ks, u.id, 'reset-pw')).status, 401);
  });

  it('exempts a user with ignore_change_password_upon_first_use', async () => {
    const { ks } = c;
    const u = await createUser(ks, { name: 'service-account', password: 'given-pw', options: { ignore_change_password_upon_first_use: true } });
    assert.equal(u.password_expires_at, null);
    assert.equal((await login(ks, u.id, 'given-pw')).status, 201);
  });
});

describe('security compliance: password regex', () => {
  const c = compliance({ passwordRegex: '.{8,}', passwordRegexDescription: 'at least 8 characters' });

  it('refuses weak passwords everywhere a password is set, and writes nothing', async () => {
    const { ks } = c;
    const message = 'The password does not match the requirements: at least 8 characters.';
    const weak = await ks.admin.post('/v3/users', { user: { name: 'weakling', password: 'short' } });
    assert.equal(weak.status, 400);
    assert.deepEqual(weak.body.error, { code: 400, title: 'Bad Request', message });
    assert.equal((await ks.admin.get('/v3/users?name=weakling')).body.users.length, 0);

    const u = await createUser(ks, { name: 'strong', password: 'long-enough' });
    const patch = await ks.admin.patch(`/v3/users/${u.id}`, { user: { password: 'short' } });
    assert.equal(patch.status, 400);
    assert.equal(patch.body.error.message, message);
    const change = await changePassword(ks, u.id, 'long-enough', 'tiny');
    assert.equal(change.status, 400);
    assert.equal(change.body.error.message, message);
    assert.equal((await login(ks, u.id, 'long-enough')).status, 201);
  });
});
