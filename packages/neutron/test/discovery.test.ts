import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture } from './fixture.ts';

describe('neutron discovery', () => {
  let n: NeutronFixture;
  before(async () => {
    n = await startNeutron();
  });
  after(() => n?.close());

  it('answers GET / without a token with the v2.0 version', async () => {
    const res = await n.admin.withToken(undefined).get('/');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.versions.map((v: { id: string; status: string }) => [v.id, v.status]), [['v2.0', 'CURRENT']]);
    assert.equal(res.body.versions[0].links[0].href, `${n.url}/v2.0/`);
  });

  it('needs a token for /v2.0 and lists resources with links', async () => {
    assert.equal((await n.admin.withToken(undefined).get('/v2.0')).status, 401);
    const res = await n.admin.get('/v2.0/');
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body.resources));
  });

  it('lists extensions and shows one by alias, 404 NeutronError for an unknown alias', async () => {
    const res = await n.admin.get('/v2.0/extensions');
    assert.equal(res.status, 200);
    const aliases = res.body.extensions.map((e: { alias: string }) => e.alias);
    assert.ok(aliases.includes('filter-validation'));
    const one = await n.admin.get('/v2.0/extensions/filter-validation');
    assert.equal(one.body.extension.alias, 'filter-validation');
    const missing = await n.admin.get('/v2.0/extensions/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.NeutronError.message, 'Extension with alias nope does not exist');
  });

  it('renders an unknown path as a NeutronError 404', async () => {
    const res = await n.admin.get('/v2.0/nothing-here');
    assert.equal(res.status, 404);
    assert.ok(res.body.NeutronError);
  });
});
