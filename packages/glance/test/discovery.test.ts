import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startGlance, type GlanceFixture, type Project } from './fixture.ts';

describe('glance discovery: versions, schemas, info', () => {
  let g: GlanceFixture;
  let p: Project;
  before(async () => {
    g = await startGlance();
    p = await g.project('disco');
  });
  after(() => g.close());

  it('lists the v2 versions unauthenticated: 300 at /, 200 at /versions', async () => {
    const root = await fetch(`${g.url}/`);
    assert.equal(root.status, 300);
    const body = await root.json();
    assert.deepEqual(
      body.versions.map((v: { id: string; status: string }) => `${v.id}:${v.status}`),
      ['v2.15:SUPPORTED', 'v2.13:SUPPORTED', 'v2.12:SUPPORTED', 'v2.11:SUPPORTED', 'v2.10:SUPPORTED', 'v2.9:SUPPORTED', 'v2.8:SUPPORTED', 'v2.17:CURRENT', 'v2.7:SUPPORTED', 'v2.6:SUPPORTED', 'v2.5:SUPPORTED', 'v2.4:SUPPORTED', 'v2.3:SUPPORTED', 'v2.2:SUPPORTED', 'v2.1:SUPPORTED', 'v2.0:SUPPORTED'],
    );
    assert.deepEqual(body.versions[0].links, [{ rel: 'self', href: `${g.url}/v2/` }]);
    const explicit = await fetch(`${g.url}/versions`);
    assert.equal(explicit.status, 200);
    assert.deepEqual(await explicit.json(), body);
  });

  it('serves the image, images, member and members schemas to any token', async () => {
    const image = await p.reader.get('/v2/schemas/image');
    assert.equal(image.status, 200);
    assert.equal(image.body.name, 'image');
    assert.deepEqual(image.body.additionalProperties, { type: 'string' });
    assert.deepEqual(image.body.properties.disk_format.enum, [null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']);
    assert.equal(image.body.properties.os_distro.is_base, false);
    assert.deepEqual(image.body.links, [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ]);
    const images = await p.reader.get('/v2/schemas/images');
    assert.equal(images.body.name, 'images');
    assert.deepEqual(images.body.properties.images.items, image.body);
    const member = await p.reader.get('/v2/schemas/member');
    assert.deepEqual(Object.keys(member.body.properties), ['member_id', 'image_id', 'created_at', 'updated_at', 'status', 'schema']);
    assert.equal((await p.reader.get('/v2/schemas/members')).body.name, 'members');
    assert.equal((await fetch(`${g.url}/v2/schemas/image`)).status, 401);
  });

  it('reports import methods and stores', async () => {
    const imp = await p.member.get('/v2/info/import');
    assert.deepEqual(imp.body, { 'import-methods': { description: 'Import methods available.', type: 'array', value: ['glance-direct', 'copy-image'] } });
    const stores = await p.member.get('/v2/info/stores');
    assert.deepEqual(stores.body, { stores: [{ id: 'file', default: 'true' }] });
    assert.equal((await p.member.get('/v2/info/stores/detail')).status, 403);
    const detail = await g.admin.get('/v2/info/stores/detail');
    assert.equal(detail.status, 200);
    assert.equal(detail.body.stores[0].type, 'file');
  });
});
