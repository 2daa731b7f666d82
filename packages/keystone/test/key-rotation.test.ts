import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rotate } from '../src/tokens/fernet-keys.ts';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from './fixture.ts';

const settle = () => new Promise((r) => setTimeout(r, 1100)); // key repositories are re-read at most once a second

describe('fernet key rotation', () => {
  let ks: KeystoneFixture;
  before(async () => {
    ks = await startKeystone({ config: { maxActiveKeys: 3 } });
  });
  after(() => ks.close());

  it('keeps live tokens valid across a rotation, until their key is pruned', async () => {
    const scope = { project: { name: 'admin', domain: { id: 'default' } } };
    const old = await ks.login('admin', ADMIN_PASSWORD, scope);
    const validate = (subject: string) => ks.admin.get('/v3/auth/tokens', { 'x-subject-token': subject });
    assert.equal((await validate(old.token!)).status, 200);

    rotate(ks.ks.config.keyRepository, 3);
    await settle();
    assert.equal((await validate(old.token!)).status, 200, 'a token of the previous primary key still validates');
    const fresh = await ks.login('admin', ADMIN_PASSWORD, scope);
    assert.equal((await fresh.get('/v3/auth/tokens', { 'x-subject-token': fresh.token! })).status, 200);

    rotate(ks.ks.config.keyRepository, 3);
    rotate(ks.ks.config.keyRepository, 3);
    await settle();
    const caller = await ks.login('admin', ADMIN_PASSWORD, scope);
    const gone = await caller.get('/v3/auth/tokens', { 'x-subject-token': old.token! });
    assert.equal(gone.status, 404, 'its key was pruned: even a cached validation must not survive');
  });
});
