import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { faultMessage, startGlance, type GlanceFixture, type Project } from './fixture.ts';

const PATCH = { 'content-type': 'application/openstack-images-v2.1-json-patch' };

describe('glance images: create, show, update, delete', () => {
  let g: GlanceFixture;
  let a: Project;
  let b: Project;
  before(async () => {
    g = await startGlance();
    a = await g.project('alpha');
    b = await g.project('beta');
  });
  after(() => g.close());

  it('creates an image with every attribute and free-form properties', async () => {
    const id = '7d0e7a62-2b8f-4d3e-9a11-6c3f4f7a0b01';
    const res = await a.member.post('/v2/images', {
      id,
      name: 'cirros',
      disk_format: 'qcow2',
      container_format: 'bare',
      visibility: 'private',
      min_disk: 1,
      min_ram: 64,
      protected: false,
      os_hidden: false,
      tags: ['t1', 't2', 't1'],
      os_distro: 'cirros',
      hw_disk_bus: 'virtio',
    });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers.get('location'), `${g.url}/v2/images/${id}`);
    assert.equal(res.headers.get('openstack-image-import-methods'), 'glance-direct,copy-image');
    assert.equal(res.headers.get('openstack-image-store-ids'), 'file');
    const img = res.body;
    // Properties first (in storage order), then upstream's attribute order.
    assert.deepEqual(Object.keys(img).slice(0, 2).sort(), ['hw_disk_bus', 'os_distro']);
    assert.deepEqual(Object.keys(img).slice(2), [
      'name',
      'disk_format',
      'container_format',
      'visibility',
      'size',
      'virtual_size',
      'status',
      'checksum',
      'protected',
      'min_ram',
      'min_disk',
      'owner',
      'os_hidden',
      'os_hash_algo',
      'os_hash_value',
      'id',
      'created_at',
      'updated_at',
      'tags',
      'self',
      'file',
      'schema',
    ]);
    assert.equal(img.status, 'queued');
    assert.equal(img.owner, a.id);
    assert.equal(img.size, null);
    assert.deepEqual(img.tags.sort(), ['t1', 't2']);
    assert.equal(img.self, `/v2/images/${id}`);
    assert.equal(img.file, `/v2/images/${id}/file`);
    assert.equal(img.schema, '/v2/schemas/image');
    assert.match(img.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const shown = await a.reader.get(`/v2/images/${id}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body, img);
    const dup = await a.member.post('/v2/images', { id, name: 'again' });
    assert.equal(dup.status, 409);
    assert.match(faultMessage(dup), new RegExp(`Image with identifier ${id} already exists!`));
  });

  it('defaults to shared visibility, the caller as owner, and nulls', async () => {
    const res = await a.member.post('/v2/images', {});
    assert.equal(res.status, 201);
    assert.equal(res.body.visibility, 'shared');
    assert.equal(res.body.name, null);
    assert.equal(res.body.disk_format, null);
    assert.equal(res.body.min_disk, 0);
    assert.equal(res.body.protected, false);
  });

  it('refuses bad create bodies with upstream statuses and messages', async () => {
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{ disk_format: 'qcow3' }, 400, /Provided object does not match schema 'image': 'qcow3' is not one of \[None, 'ami'/],
      [{ name: 5 }, 400, /5 is not of type 'null', 'string'/],
      [{ foo: 1 }, 400, /1 is not of type 'string'/],
      [{ id: 'not-a-uuid' }, 400, /does not match/],
      [{ min_ram: -1 }, 400, /Invalid value '-1' for parameter 'min_ram': Cannot be a negative value/],
      [{ size: 5 }, 403, /Attribute 'size' is read-only\./],
      [{ status: 'active' }, 403, /Attribute 'status' is read-only\./],
      [{ checksum: 'abc' }, 403, /Attribute 'checksum' is read-only\./],
      [{ self: '/x' }, 403, /Attribute 'self' is read-only\./],
      [{ direct_url: 'x' }, 403, /Attribute 'direct_url' is read-only\./],
      [{ locations: [] }, 403, /Attribute 'locations' is reserved\./],
      [{ deleted: 'x' }, 403, /Attribute 'deleted' is reserved\./],
      [{ os_glance_import_task: 'x' }, 403, /Attribute 'os_glance_import_task' is reserved\./],
      [{ ['k'.repeat(256)]: 'v' }, 400, /Custom property should not be greater than 255 characters\./],
      [{ owner: b.id }, 403, new RegExp(`You are not permitted to create images owned by '${b.id}'`)],
      [{ visibility: 'public' }, 403, /You are not authorized to complete publicize_image action\./],
    ];
    for (const [body, status, message] of cases) {
      const res = await a.member.post('/v2/images', body);
      assert.equal(res.status, status, `${JSON.stringify(body).slice(0, 60)}: ${res.text}`);
      assert.match(faultMessage(res), message);
    }
    assert.equal((await a.reader.post('/v2/images', { name: 'x' })).status, 403);
    const community = await a.member.post('/v2/images', { visibility: 'community' });
    assert.equal(community.status, 201);
    const pub = await g.admin.post('/v2/images', { visibility: 'public', owner: b.id });
    assert.equal(pub.status, 201);
    assert.equal(pub.body.owner, b.id);
  });

  it('hides images from other projects as 404', async () => {
    const res = await a.member.post('/v2/images', { name: 'mine', visibility: 'private' });
    const other = await b.member.get(`/v2/images/${res.body.id}`);
    assert.equal(other.status, 404);
    assert.match(faultMessage(other), new RegExp(`No image found with ID ${res.body.id}`));
    assert.equal((await b.member.delete(`/v2/images/${res.body.id}`)).status, 404);
    assert.equal((await g.admin.get(`/v2/images/${res.body.id}`)).status, 200);
  });

  it('updates with JSON Patch: core attributes, properties, tags', async () => {
    const { body: img } = await a.member.post('/v2/images', { name: 'patchme', os_distro: 'debian' });
    const res = await a.member.patch(
      `/v2/images/${img.id}`,
      [
        { op: 'replace', path: '/name', value: 'patched' },
        { op: 'add', path: '/hw_scsi_model', value: 'virtio-scsi' },
        { op: 'replace', path: '/os_distro', value: 'ubuntu' },
        { op: 'add', path: '/min_ram', value: 512 },
        { op: 'replace', path: '/tags', value: ['x', 'y'] },
        { op: 'add', path: '/protected', value: true },
        { op: 'replace', path: '/visibility', value: 'private' },
        { op: 'replace', path: '/disk_format', value: 'raw' },
      ],
      PATCH,
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.name, 'patched');
    assert.equal(res.body.hw_scsi_model, 'virtio-scsi');
    assert.equal(res.body.os_distro, 'ubuntu');
    assert.equal(res.body.min_ram, 512);
    assert.deepEqual(res.body.tags.sort(), ['x', 'y']);
    assert.equal(res.body.protected, true);
    assert.equal(res.body.visibility, 'private');
    assert.equal(res.body.disk_format, 'raw');
    const removed = await a.member.patch(`/v2/images/${img.id}`, [{ op: 'remove', path: '/hw_scsi_model' }, { op: 'replace', path: '/protected', value: false }], PATCH);
    assert.equal(removed.status, 200);
    assert.equal('hw_scsi_model' in removed.body, false);
    assert.equal(removed.body.protected, false);
    // v2.0 patch (draft 4) objects name the operation as a key.
    const d4 = await a.member.patch(`/v2/images/${img.id}`, [{ replace: '/name', value: 'draft4' }], { 'content-type': 'application/openstack-images-v2.0-json-patch' });
    assert.equal(d4.status, 200, d4.text);
    assert.equal(d4.body.name, 'draft4');
    const d4dup = await a.member.patch(`/v2/images/${img.id}`, [{ add: '/name', value: 'x' }], { 'content-type': 'application/openstack-images-v2.0-json-patch' });
    assert.equal(d4dup.status, 409);
  });

  it('refuses bad patches with upstream statuses', async () => {
    const { body: img } = await a.member.post('/v2/images', { name: 'strict', disk_format: 'raw', container_format: 'bare' });
    const cases: [unknown, number, RegExp][] = [
      [[{ op: 'replace', path: '/status', value: 'active' }], 403, /Attribute 'status' is read-only\./],
      [[{ op: 'replace', path: '/id', value: 'x' }], 403, /Attribute 'id' is read-only\./],
      [[{ op: 'add', path: '/checksum', value: 'x' }], 403, /Attribute 'checksum' is read-only\./],
      [[{ op: 'replace', path: '/size', value: 1 }], 403, /Attribute 'size' is read-only\./],
      [[{ op: 'replace', path: '/created_at', value: 'x' }], 403, /Attribute 'created_at' is read-only\./],
      [[{ op: 'add', path: '/deleted', value: 'x' }], 403, /Attribute 'deleted' is reserved\./],
      [[{ op: 'add', path: '/os_glance_foo', value: 'x' }], 403, /Attribute 'os_glance_foo' is reserved\./],
      [[{ op: 'replace', path: '/nope', value: 'x' }], 409, /Property nope does not exist\./],
      [[{ op: 'remove', path: '/nope' }], 409, /Property nope does not exist\./],
      [[{ op: 'remove', path: '/name' }], 403, /Property name may not be removed\./],
      [[{ op: 'replace', path: '/owner', value: b.id }], 403, /Owner can't be updated by non admin\./],
      [[{ op: 'replace', path: '/visibility', value: 'public' }], 403, /You are not authorized to complete publicize_image action\./],
      [[{ op: 'replace', path: '/visibility', value: 'secret' }], 400, /'secret' is not one of/],
      [[{ op: 'replace', path: '/min_disk', value: -5 }], 400, /Cannot be a negative value/],
      [[{ op: 'add', path: '/prop', value: 7 }], 400, /7 is not of type 'string'/],
      [[{ op: 'move', path: '/name' }], 400, /Invalid operation: `move`/],
      [[{ path: '/name', value: 'x' }], 400, /Unable to find `op` in JSON Schema change/],
      [[{ op: 'add', value: 'x' }], 400, /Unable to find 'path' in JSON Schema change/],
      [[{ op: 'add', path: '/name' }], 400, /Operation "add" requires a member named "value"\./],
      [[{ op: 'add', path: 'name', value: 'x' }], 400, /does not start with "\/"/],
      [[{ op: 'add', path: '/tags/-', value: 'x' }], 400, /Invalid JSON pointer for this resource: '\/tags\/-'/],
      [[{ op: 'replace', path: '/locations', value: [] }], 403, /Cannot set locations to empty list\./],
      [[{ op: 'add', path: '/locations/-', value: { url: 'http://x', metadata: {} } }], 403, /not allowed to add locations if locations are invisible/],
      [{ op: 'add' }, 400, /Request body must be a JSON array of operation objects\./],
      [['x'], 400, /Operations must be JSON objects\./],
    ];
    for (const [ops, status, message] of cases) {
      const res = await a.member.patch(`/v2/images/${img.id}`, ops, PATCH);
      assert.equal(res.status, status, `${JSON.stringify(ops)}: ${res.text}`);
      assert.match(faultMessage(res), message);
    }
    const wrongType = await a.member.patch(`/v2/images/${img.id}`, [], { 'content-type': 'application/json' });
    assert.equal(wrongType.status, 415);
    assert.equal(wrongType.headers.get('accept-patch'), 'application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch');
    assert.equal((await a.reader.patch(`/v2/images/${img.id}`, [{ op: 'replace', path: '/name', value: 'r' }], PATCH)).status, 403);
    assert.equal((await b.member.patch(`/v2/images/${img.id}`, [{ op: 'replace', path: '/name', value: 'r' }], PATCH)).status, 404);
    const unchanged = await a.member.get(`/v2/images/${img.id}`);
    assert.equal(unchanged.body.name, 'strict');
    const owner = await g.admin.patch(`/v2/images/${img.id}`, [{ op: 'replace', path: '/owner', value: b.id }], PATCH);
    assert.equal(owner.status, 200);
    assert.equal(owner.body.owner, b.id);
  });

  it('answers 405 with Allow to a method a path does not take', async () => {
    const res = await a.member.put('/v2/images', {});
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST, GET');
    assert.match(faultMessage(res), /The method PUT is not allowed for this resource\./);
    assert.equal((await a.member.post('/v2/schemas/image', {})).status, 405);
  });

  it('adds and removes tags', async () => {
    const { body: img } = await a.member.post('/v2/images', { name: 'tagged' });
    assert.equal((await a.member.put(`/v2/images/${img.id}/tags/blue`)).status, 204);
    assert.equal((await a.member.put(`/v2/images/${img.id}/tags/blue`)).status, 204);
    assert.equal((await a.member.put(`/v2/images/${img.id}/tags/green`)).status, 204);
    assert.deepEqual((await a.member.get(`/v2/images/${img.id}`)).body.tags.sort(), ['blue', 'green']);
    assert.equal((await a.member.delete(`/v2/images/${img.id}/tags/blue`)).status, 204);
    assert.equal((await a.member.delete(`/v2/images/${img.id}/tags/blue`)).status, 404);
    assert.deepEqual((await a.member.get(`/v2/images/${img.id}`)).body.tags, ['green']);
    assert.equal((await a.member.put(`/v2/images/${img.id}/tags/${'t'.repeat(256)}`)).status, 400);
    assert.equal((await a.reader.put(`/v2/images/${img.id}/tags/red`)).status, 403);
  });

  it('refuses to delete protected images, deletes others for good', async () => {
    const { body: img } = await a.member.post('/v2/images', { name: 'guarded', protected: true });
    const refused = await a.member.delete(`/v2/images/${img.id}`);
    assert.equal(refused.status, 403);
    assert.match(faultMessage(refused), new RegExp(`Image ${img.id} is protected and cannot be deleted\\.`));
    assert.equal((await a.reader.delete(`/v2/images/${img.id}`)).status, 403);
    await a.member.patch(`/v2/images/${img.id}`, [{ op: 'replace', path: '/protected', value: false }], PATCH);
    assert.equal((await a.member.delete(`/v2/images/${img.id}`)).status, 204);
    assert.equal((await a.member.get(`/v2/images/${img.id}`)).status, 404);
    assert.equal((await a.member.delete(`/v2/images/${img.id}`)).status, 404);
    const reuse = await a.member.post('/v2/images', { id: img.id });
    assert.equal(reuse.status, 409);
  });

  it('deactivates and reactivates only active images', async () => {
    const { body: img } = await a.member.post('/v2/images', { name: 'toggle', disk_format: 'raw', container_format: 'bare' });
    const notActive = await a.member.post(`/v2/images/${img.id}/actions/deactivate`);
    assert.equal(notActive.status, 403);
    assert.match(faultMessage(notActive), /Not allowed to deactivate image in status 'queued'/);
    assert.equal((await a.member.upload(img.id, 'some bytes')).status, 204);
    assert.equal((await a.reader.post(`/v2/images/${img.id}/actions/deactivate`)).status, 403);
    assert.equal((await a.member.post(`/v2/images/${img.id}/actions/deactivate`)).status, 204);
    assert.equal((await a.member.get(`/v2/images/${img.id}`)).body.status, 'deactivated');
    assert.equal((await a.member.post(`/v2/images/${img.id}/actions/deactivate`)).status, 204);
    assert.equal((await a.member.get(`/v2/images/${img.id}/file`)).status, 403);
    assert.equal((await g.admin.get(`/v2/images/${img.id}/file`)).status, 200);
    assert.equal((await a.member.post(`/v2/images/${img.id}/actions/reactivate`)).status, 204);
    assert.equal((await a.member.get(`/v2/images/${img.id}`)).body.status, 'active');
    assert.equal((await a.member.get(`/v2/images/${img.id}/file`)).status, 200);
  });
});
