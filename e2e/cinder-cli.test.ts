import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { ADMIN_PASSWORD } from '../packages/keystone/test/fixture.ts';
import { startGlance, type GlanceFixture } from '../packages/glance/test/fixture.ts';
import { startCinder, type CinderFixture } from '../packages/cinder/test/fixture.ts';
import { openstack } from './openstack-cli.ts';

/** The unmodified openstack CLI against Cinder (fake driver), found through the catalog as block-storage. */
describe('openstack CLI on cinder', () => {
  let f: CinderFixture;
  let g: GlanceFixture;
  const home = tempDir('onestack-cinder-cli-');
  const os = async (...args: string[]) => osRaw(...args, '-f', 'json').then((out) => JSON.parse(out));
  const osRaw = async (...args: string[]) => {
    // Only these variables, so no clouds.yaml or OS_* of the caller's leaks in.
    const env = { PATH: process.env.PATH, HOME: home.path, OS_AUTH_URL: `${f.ks.url}/v3`, OS_IDENTITY_API_VERSION: '3', OS_USERNAME: 'admin', OS_USER_DOMAIN_NAME: 'Default', OS_PASSWORD: ADMIN_PASSWORD, OS_PROJECT_NAME: 'admin', OS_PROJECT_DOMAIN_ID: 'default' };
    return (await openstack(args, { env })).stdout;
  };

  before(async () => {
    // `volume create` builds an image client even without --image: a real Glance on the same Keystone.
    g = await startGlance();
    f = await startCinder({ ks: g.ks });
    await ensureEndpoints(f.ks.ks, { type: 'block-storage', name: 'cinder', regionId: 'RegionOne', urls: { public: `${f.url}/v3/%(project_id)s` } });
  });
  after(async () => {
    await f?.close();
    await g?.close();
    home.remove();
  });

  test('volume create/list/show/set, snapshot create/list/delete, volume from snapshot, type create (Debian\'s CLI has no `volume backend pool list`; get_pools is covered in volumes.test.ts)', async () => {
    const v = await os('volume', 'create', '--size', '1', '--property', 'k=v', 'cli-vol');
    assert.equal(v.size, 1);
    await f.volumes.drain();
    const shown = await os('volume', 'show', 'cli-vol');
    assert.equal(shown.status, 'available');
    assert.match(JSON.stringify(shown.properties), /k/);
    await osRaw('volume', 'set', '--name', 'cli-renamed', '--size', '2', v.id);
    await f.volumes.drain();
    const after1 = await os('volume', 'show', v.id);
    assert.equal(after1.name, 'cli-renamed');
    assert.equal(after1.size, 2);
    const list = await os('volume', 'list', '--long');
    assert.deepEqual(list.map((r: { ID: string }) => r.ID), [v.id]);
    const snap = await os('volume', 'snapshot', 'create', '--volume', v.id, 'cli-snap');
    await f.volumes.drain();
    assert.equal((await os('volume', 'snapshot', 'list')).length, 1);
    const fromSnap = await os('volume', 'create', '--snapshot', snap.id, '--size', '2', 'from-snap');
    await f.volumes.drain();
    assert.equal((await os('volume', 'show', fromSnap.id)).status, 'available');
    const t = await os('volume', 'type', 'create', '--property', 'volume_backend_name=file', 'silver');
    assert.equal(t.name, 'silver');
    await osRaw('volume', 'snapshot', 'delete', snap.id);
    await f.volumes.drain();
    assert.equal((await os('volume', 'snapshot', 'list')).length, 0);
  });
  test('volume transfer request create/list/show/accept/delete', async () => {
    const v = await os('volume', 'create', '--size', '1', 'gift');
    await f.volumes.drain();
    const t = await os('volume', 'transfer', 'request', 'create', '--name', 'to-me', v.id);
    assert.equal(t.auth_key.length, 16);
    assert.equal((await os('volume', 'show', v.id)).status, 'awaiting-transfer');
    assert.deepEqual((await os('volume', 'transfer', 'request', 'list')).map((r: { ID: string }) => r.ID), [t.id]);
    assert.equal((await os('volume', 'transfer', 'request', 'show', t.id)).name, 'to-me');
    const accepted = await os('volume', 'transfer', 'request', 'accept', '--auth-key', t.auth_key, t.id);
    assert.equal(accepted.volume_id, v.id);
    assert.equal((await os('volume', 'show', v.id)).status, 'available');
    const again = await os('volume', 'transfer', 'request', 'create', v.id);
    await osRaw('volume', 'transfer', 'request', 'delete', again.id);
    assert.deepEqual(await os('volume', 'transfer', 'request', 'list'), []);
    assert.equal((await os('volume', 'show', v.id)).status, 'available');
  });
});
