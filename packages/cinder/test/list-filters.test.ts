import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackupRow } from '../src/db/schema.ts';
import { startCinder, type Project } from './fixture.ts';

/** Filters and sort keys of 3.28, 3.30-3.31, 3.34-3.35, 3.37 and 3.52, applied as upstream's lists apply them. */
describe('cinder list filters and sort keys', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let p: Project;
  const vols: string[] = [];

  before(async () => {
    f = await startCinder();
    p = await f.project('filters');
    for (const name of ['beta', 'alpha']) {
      const v = (await p.member.post('/volumes', { volume: { size: 1, name } })).body.volume;
      await f.waitFor(p.member, 'volumes', v.id, ['available']);
      vols.push(v.id);
    }
  });
  after(() => f?.close());

  const ids = (items: { id: string }[]) => items.map((x) => x.id);

  test('volumes: migration_status and consumes_quota are applied', async () => {
    await f.database.db.updateTable('volumes').set({ migration_status: `target:${vols[1]}` }).where('id', '=', vols[0]).execute();
    try {
      const at = p.member.at('3.60');
      assert.deepEqual(ids((await at.get(`/volumes?migration_status=target:${vols[1]}`)).body.volumes), [vols[0]]);
      assert.deepEqual(ids((await at.get('/volumes?consumes_quota=false')).body.volumes), [vols[0]]);
      assert.deepEqual(ids((await at.get('/volumes?consumes_quota=true')).body.volumes), [vols[1]]);
      assert.equal((await at.get('/volumes?consumes_quota=maybe')).status, 400);
    } finally {
      await f.database.db.updateTable('volumes').set({ migration_status: null }).where('id', '=', vols[0]).execute();
    }
  });

  test('snapshots: name sort from 3.30, name~ for admins from 3.34, consumes_quota and availability_zone', async () => {
    const snaps: string[] = [];
    for (const name of ['snap-b', 'snap-a']) {
      const s = (await p.member.post('/snapshots', { snapshot: { volume_id: vols[1], name } })).body.snapshot;
      await f.waitFor(p.member, 'snapshots', s.id, ['available']);
      snaps.push(s.id);
    }
    assert.equal((await p.member.at('3.29').get('/snapshots?sort=name:asc')).status, 400);
    assert.deepEqual(ids((await p.member.at('3.30').get('/snapshots?sort=name:asc')).body.snapshots), [snaps[1], snaps[0]]);
    const admin = f.admin.at('3.34');
    assert.deepEqual(ids((await admin.get(`/v3/${p.id}/snapshots?all_tenants=1&name~=-a`)).body.snapshots), [snaps[1]]);
    assert.equal((await p.member.at('3.34').get('/snapshots?name~=-a')).status, 400, 'not in the default resource_filters');
    assert.deepEqual(ids((await p.member.at('3.60').get('/snapshots?consumes_quota=false')).body.snapshots), []);
    assert.equal((await p.member.at('3.60').get(`/snapshots?availability_zone=${f.config.availabilityZone}`)).body.snapshots.length, 2);
    assert.deepEqual((await p.member.at('3.60').get('/snapshots?availability_zone=elsewhere')).body.snapshots, []);
  });

  test('backups: name sort from 3.37, filters checked from 3.31', async () => {
    const row = (id: string, name: string, at: number): BackupRow => ({
      id, volume_id: vols[1], snapshot_id: null, project_id: p.id, user_id: 'u', name, description: null, size: 1, object_count: 0, status: 'available',
      fail_reason: null, container: 'c', parent_id: null, service: null, availability_zone: 'nova', service_metadata: null, data_timestamp: at,
      num_dependent_backups: 0, metadata: null, created_at: at, updated_at: null, deleted: 0, deleted_at: null,
    });
    const b1 = '11111111-1111-4111-8111-111111111111';
    const b2 = '22222222-2222-4222-8222-222222222222';
    await f.database.db.insertInto('backups').values([row(b1, 'bk-z', 1000), row(b2, 'bk-y', 2000)]).execute();
    assert.deepEqual(ids((await p.member.get('/backups')).body.backups), [b2, b1], 'newest first by default');
    assert.deepEqual(ids((await p.member.get('/backups?sort_key=created_at&sort_dir=asc')).body.backups), [b1, b2]);
    assert.equal((await p.member.at('3.36').get('/backups?sort=name:asc')).status, 400);
    assert.deepEqual(ids((await p.member.at('3.37').get('/backups?sort=name:asc')).body.backups), [b2, b1]);
    assert.deepEqual(ids((await p.member.at('3.37').get('/backups?name=bk-z')).body.backups), [b1]);
    assert.equal((await p.member.at('3.31').get('/backups?size=1')).status, 400);
    assert.deepEqual(ids((await p.member.at('3.30').get('/backups?size=1')).body.backups), [b2, b1], 'dropped before 3.31');
    assert.deepEqual(ids((await f.admin.at('3.34').get(`/v3/${p.id}/backups?all_tenants=1&name~=y`)).body.backups), [b2]);
  });

  test('pools: filters from 3.28, volume_type from 3.35, only resource_filters from 3.31', async () => {
    const all = (await f.admin.get('/scheduler-stats/get_pools')).body.pools;
    const name = all[0].name;
    assert.equal((await f.admin.at('3.27').get('/scheduler-stats/get_pools?name=nothing')).body.pools.length, all.length);
    assert.deepEqual((await f.admin.at('3.28').get('/scheduler-stats/get_pools?name=nothing')).body.pools, []);
    assert.deepEqual((await f.admin.at('3.28').get(`/scheduler-stats/get_pools?name=${encodeURIComponent(name)}`)).body.pools, [{ name }]);
    assert.deepEqual((await f.admin.at('3.28').get('/scheduler-stats/get_pools?storage_protocol=nothing')).body.pools, []);
    assert.equal((await f.admin.at('3.31').get('/scheduler-stats/get_pools?storage_protocol=nothing')).status, 400);
    await f.admin.post('/types', { volume_type: { name: 'pool-elsewhere', extra_specs: { volume_backend_name: 'elsewhere' } } });
    assert.equal((await f.admin.at('3.34').get('/scheduler-stats/get_pools?volume_type=pool-elsewhere')).body.pools.length, all.length, 'ignored before 3.35');
    assert.deepEqual((await f.admin.at('3.35').get('/scheduler-stats/get_pools?volume_type=pool-elsewhere')).body.pools, []);
    assert.deepEqual((await f.admin.at('3.35').get('/scheduler-stats/get_pools?volume_type=__DEFAULT__')).body.pools.length, all.length);
  });

  test('volume types: extra_specs filter from 3.52 (user-visible keys for non-admins)', async () => {
    await f.admin.post('/types', { volume_type: { name: 'multi', extra_specs: { multiattach: '<is> True', secret_key: 'x' } } });
    const names = (r: { body: { volume_types: { name: string }[] } }) => r.body.volume_types.map((t) => t.name);
    assert.deepEqual(names(await p.member.at('3.52').get(`/types?extra_specs=${encodeURIComponent("{'multiattach': '<is> True'}")}`)), ['multi']);
    assert.deepEqual(names(await p.member.at('3.52').get(`/types?extra_specs=${encodeURIComponent("{'secret_key': 'x'}")}`)), []);
    assert.deepEqual(names(await f.admin.at('3.52').get(`/types?extra_specs=${encodeURIComponent("{'secret_key': 'x'}")}`)), ['multi']);
    assert.ok(names(await p.member.at('3.51').get(`/types?extra_specs=${encodeURIComponent("{'multiattach': '<is> True'}")}`)).length > 1, 'ignored for non-admins before 3.52');
  });

  test('attachments: volume_id and status filters; messages: event_id~ for admins', async () => {
    const a = (await p.member.at('3.27').post('/attachments', { attachment: { volume_uuid: vols[1], instance_uuid: '4f0e0b8a-6a54-4d2b-9a54-0c1f7a7c2f11' } })).body.attachment;
    const at = p.member.at('3.34');
    assert.deepEqual(ids((await at.get(`/attachments?volume_id=${vols[1]}`)).body.attachments), [a.id]);
    assert.deepEqual((await at.get(`/attachments?volume_id=${vols[0]}`)).body.attachments, []);
    assert.deepEqual(ids((await at.get('/attachments?attach_status=reserved')).body.attachments), [a.id]);
    assert.equal((await at.get('/attachments?mountpoint=x')).status, 400);
    f.fake!.failNext.add('extendVolume');
    await p.member.post(`/volumes/${vols[0]}/action`, { 'os-extend': { new_size: 2 } });
    await f.waitFor(p.member, 'volumes', vols[0], ['error_extending']);
    const mine = (await f.admin.at('3.34').get(`/v3/${p.id}/messages?event_id~=007_010`)).body.messages;
    assert.deepEqual(mine.map((m: { resource_uuid: string }) => m.resource_uuid), [vols[0]]);
  });
});
