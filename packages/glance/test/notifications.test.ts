import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Notification } from '@onestack/core/bus/index.ts';
import { startGlance, type GlanceFixture, type Project } from './fixture.ts';

describe('glance notifications', () => {
  let g: GlanceFixture;
  let p: Project;
  before(async () => {
    g = await startGlance();
    p = await g.project('notified');
  });
  after(() => g.close());

  it('sends image.create, update, prepare, upload, activate and delete with upstream payloads', async () => {
    const seen: Notification[] = [];
    const sub = await g.ks.bus.subscribe('notifications', `glance-test-${process.pid}`, async (n) => void seen.push(n), { eventTypes: ['image.*'] });
    try {
      const { body: img } = await p.member.post('/v2/images', { name: 'n', disk_format: 'raw', container_format: 'bare', os_distro: 'x' });
      await p.member.patch(`/v2/images/${img.id}`, [{ op: 'replace', path: '/name', value: 'renamed' }], { 'content-type': 'application/openstack-images-v2.1-json-patch' });
      await p.member.upload(img.id, 'data');
      await p.member.delete(`/v2/images/${img.id}`);
      const types = () => seen.map((n) => n.event_type);
      await g.eventually(async () => types(), (t) => t.includes('image.delete'));
      assert.deepEqual(types(), ['image.create', 'image.update', 'image.prepare', 'image.upload', 'image.activate', 'image.delete']);
      const created = seen[0];
      assert.equal(created.priority, 'INFO');
      assert.match(created.publisher_id, /^image\./);
      assert.deepEqual(Object.keys(created.payload as object), [
        'id',
        'name',
        'status',
        'created_at',
        'updated_at',
        'min_disk',
        'min_ram',
        'protected',
        'checksum',
        'owner',
        'disk_format',
        'container_format',
        'size',
        'virtual_size',
        'is_public',
        'visibility',
        'properties',
        'tags',
        'deleted',
        'deleted_at',
      ]);
      assert.deepEqual((created.payload as { properties: object }).properties, { os_distro: 'x' });
      assert.equal((seen[1].payload as { name: string }).name, 'renamed');
      const upload = seen[3].payload as Record<string, unknown>;
      assert.equal(upload.status, 'active');
      assert.equal(upload.size, 4);
      assert.deepEqual(upload.os_glance_importing_to_stores, []);
      const deleted = seen[5].payload as Record<string, unknown>;
      assert.equal(deleted.deleted, true);
      assert.match(String(deleted.deleted_at), /Z$/);
      assert.equal(deleted.status, 'deleted');
    } finally {
      await sub.stop();
    }
  });
});
