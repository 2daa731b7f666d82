import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Notification } from '@onestack/core/bus/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('identity notifications', () => {
  let ks: KeystoneFixture;
  before(async () => {
    ks = await startKeystone();
  });
  after(() => ks.close());

  it('publishes identity.<resource>.<operation> with the resource id, as upstream', async () => {
    const seen: Notification[] = [];
    const sub = await ks.bus.subscribe('notifications', `test-${process.pid}`, async (n) => void seen.push(n), { eventTypes: ['identity.*'] });
    try {
      const project = await ks.ks.resource.createProject({ name: 'notified', domainId: 'default' });
      await ks.ks.resource.updateProject(project.id, { description: 'x' }, false);
      for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      const created = seen.find((n) => n.event_type === 'identity.project.created');
      assert.ok(created, `got ${seen.map((n) => n.event_type).join(', ')}`);
      assert.deepEqual(created.payload, { resource_info: project.id });
      assert.match(created.publisher_id, /^identity\./);
      assert.equal(created.priority, 'INFO');
      assert.ok(seen.some((n) => n.event_type === 'identity.project.updated'));
    } finally {
      await sub.stop();
    }
  });
});
