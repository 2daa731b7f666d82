import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Notification } from '@onestack/core/bus/bus.ts';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

describe('cinder volumes API (fake driver)', () => {
  let f: CinderFixture & { fake?: import('../src/drivers/fake-driver.ts').FakeVolumeDriver };
  let p: Project;
  let other: Project;
  const events: Notification[] = [];
  /** Notifications arrive asynchronously (through RabbitMQ with ONESTACK_TEST_BUS=amqp). */
  const sawEvent = async (type: string) => {
    for (let i = 0; i < 100 && !events.some((e) => e.event_type === type); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(events.some((e) => e.event_type === type), `${type} in ${events.map((e) => e.event_type).join(',')}`);
  };

  before(async () => {
    f = await startCinder({ config: { quota_volumes: 5, quota_gigabytes: 20 } });
    p = await f.project('alpha');
    other = await f.project('beta');
    await f.ks.bus.subscribe('notifications', `cinder-test-${process.pid}`, async (n) => void events.push(n), { eventTypes: ['volume.*', 'snapshot.*'] });
  });
  after(() => f?.close());

  test('version documents and microversion negotiation', async () => {
    const root = await p.member.get('/');
    assert.equal(root.status, 300);
    assert.equal(root.body.versions[0].id, 'v3.0');
    assert.equal(root.body.versions[0].min_version, '3.0');
    assert.equal(root.body.versions[0].version, '3.60');
    const latest = await p.member.at('latest').get('/volumes');
    assert.equal(latest.headers.get('openstack-api-version'), 'volume 3.60');
    const tooNew = await p.member.at('3.99').get('/volumes');
    assert.equal(tooNew.status, 406);
    // cinderclient probes the root with its own maximum: the versions document still answers.
    assert.equal((await p.member.at('3.99').get('/')).status, 300);
  });

  test('create, show, list, update, delete a blank volume; notifications', async () => {
    const res = await p.member.post('/volumes', { volume: { size: 1, name: 'v1', metadata: { a: 'b' } } });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.volume.status, 'creating');
    assert.equal(res.body.volume.volume_type, '__DEFAULT__');
    assert.equal(res.body.volume.bootable, 'false');
    const id = res.body.volume.id;
    const v = await f.waitFor(p.member, 'volumes', id, ['available']);
    assert.deepEqual(v.metadata, { a: 'b' });
    assert.equal(v['os-vol-host-attr:host'], undefined, 'host is admin-only');
    const asAdmin = await f.admin.get(`/v3/${p.id}/volumes/${id}`);
    assert.equal(asAdmin.body.volume['os-vol-host-attr:host'], 'cinder-host@file#file');
    assert.ok(f.fake!.has(id));
    const list = await p.reader.get('/volumes');
    assert.deepEqual(list.body.volumes.map((x: { id: string }) => x.id), [id]);
    assert.equal((await other.member.get('/volumes')).body.volumes.length, 0);
    const up = await p.member.put(`/volumes/${id}`, { volume: { name: 'renamed', description: 'd' } });
    assert.equal(up.status, 200);
    assert.equal(up.body.volume.name, 'renamed');
    assert.equal((await p.reader.put(`/volumes/${id}`, { volume: { name: 'x' } })).status, 403);
    const del = await p.member.delete(`/volumes/${id}`);
    assert.equal(del.status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/volumes/${id}`)).status, 404);
    assert.equal(f.fake!.has(id), false);
    await sawEvent('volume.create.start');
    await sawEvent('volume.create.end');
  });

  test('bad sizes, unknown type, over quota answer upstream codes and bodies', async () => {
    for (const size of [0, -1, 'x', 1.5]) {
      const r = await p.member.post('/volumes', { volume: { size } });
      assert.equal(r.status, 400, `size ${size}: ${r.text}`);
      assert.equal(r.body.badRequest.code, 400);
    }
    const t = await p.member.post('/volumes', { volume: { size: 1, volume_type: 'nope' } });
    assert.equal(t.status, 404);
    assert.equal(t.body.itemNotFound.message, 'Volume type nope could not be found.');
    const q = await p.member.post('/volumes', { volume: { size: 21 } });
    assert.equal(q.status, 413);
    assert.match(q.body.overLimit.message, /gigabytes quota/);
    const noBody = await p.member.post('/volumes', { nothing: 1 });
    assert.equal(noBody.status, 400);
  });

  test('snapshots: create, volume from snapshot, another project sees 404, delete with snapshots 400, cascade', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    f.fake!.write(v.id, 3, Buffer.from('snapshot me'));
    const s = await p.member.post('/snapshots', { snapshot: { volume_id: v.id, name: 's1' } });
    assert.equal(s.status, 202, s.text);
    const snap = await f.waitFor(p.member, 'snapshots', s.body.snapshot.id, ['available']);
    assert.equal(snap.size, 1);
    await sawEvent('snapshot.create.end');
    assert.equal((await other.member.get(`/snapshots/${snap.id}`)).status, 404);
    const stolen = await other.member.post('/volumes', { volume: { snapshot_id: snap.id } });
    assert.equal(stolen.status, 404);
    assert.equal(stolen.body.itemNotFound.message, `Snapshot ${snap.id} could not be found.`);
    const small = await p.member.post('/volumes', { volume: { snapshot_id: snap.id, size: 1 } });
    assert.equal(small.status, 202);
    const fromSnap = await f.waitFor(p.member, 'volumes', small.body.volume.id, ['available']);
    assert.equal(fromSnap.snapshot_id, snap.id);
    assert.equal(f.fake!.read(fromSnap.id, 3)?.toString(), 'snapshot me');
    const del = await p.member.delete(`/volumes/${v.id}`);
    assert.equal(del.status, 400);
    assert.match(del.body.badRequest.message, /have snapshots/);
    assert.equal((await p.member.delete(`/volumes/${v.id}?cascade=true`)).status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/snapshots/${snap.id}`)).status, 404);
    await p.member.delete(`/volumes/${fromSnap.id}`);
    await f.volumes.drain();
  });

  test('clone, extend (smaller is 400), set_bootable, readonly, reset_status is admin-only', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const clone = await p.member.post('/volumes', { volume: { source_volid: v.id, size: 2 } });
    assert.equal(clone.status, 202);
    await f.waitFor(p.member, 'volumes', clone.body.volume.id, ['available']);
    const smaller = await p.member.post(`/volumes/${v.id}/action`, { 'os-extend': { new_size: 1 } });
    assert.equal(smaller.status, 400);
    assert.match(smaller.body.badRequest.message, /must be greater than current size/);
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-extend': { new_size: 3 } })).status, 202);
    assert.equal((await f.waitFor(p.member, 'volumes', v.id, ['available'])).size, 3);
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-set_bootable': { bootable: true } })).status, 200);
    assert.equal((await p.member.get(`/volumes/${v.id}`)).body.volume.bootable, 'true');
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-update_readonly_flag': { readonly: true } })).status, 202);
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-reset_status': { status: 'error' } })).status, 403);
    assert.equal((await f.admin.post(`/v3/${p.id}/volumes/${v.id}/action`, { 'os-reset_status': { status: 'error' } })).status, 202);
    assert.equal((await p.member.get(`/volumes/${v.id}`)).body.volume.status, 'error');
    assert.equal((await f.admin.post(`/v3/${p.id}/volumes/${v.id}/action`, { 'os-force_delete': {} })).status, 202);
    await p.member.delete(`/volumes/${clone.body.volume.id}`);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/volumes/${v.id}`)).status, 404);
  });

  test('attachments: reserve, connect, complete → in-use; second attach of non-multiattach 400; delete while attached 400; detach → available', async () => {
    const c = p.member.at('3.44');
    const v = (await c.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(c, 'volumes', v.id, ['available']);
    assert.equal((await p.member.post('/attachments', { attachment: { volume_uuid: v.id } })).status, 404, 'needs 3.27');
    const a = await c.post('/attachments', { attachment: { volume_uuid: v.id, instance_uuid: '11111111-1111-4111-8111-111111111111' } });
    assert.equal(a.status, 200, a.text);
    assert.equal((await c.get(`/volumes/${v.id}`)).body.volume.status, 'reserved');
    const u = await c.put(`/attachments/${a.body.attachment.id}`, { attachment: { connector: { host: 'compute-1', mountpoint: '/dev/vdb' } } });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.body.attachment.connection_info.driver_volume_type, 'file');
    assert.equal((await c.post(`/attachments/${a.body.attachment.id}/action`, { 'os-complete': {} })).status, 204);
    const inUse = (await c.get(`/volumes/${v.id}`)).body.volume;
    assert.equal(inUse.status, 'in-use');
    assert.equal(inUse.attachments[0].host_name, 'compute-1');
    await sawEvent('volume.attach.end');
    const twice = await c.post('/attachments', { attachment: { volume_uuid: v.id, instance_uuid: '22222222-2222-4222-8222-222222222222' } });
    assert.equal(twice.status, 400);
    const del = await c.delete(`/volumes/${v.id}`);
    assert.equal(del.status, 400);
    assert.equal((await c.delete(`/attachments/${a.body.attachment.id}`)).status, 200);
    assert.equal((await c.get(`/volumes/${v.id}`)).body.volume.status, 'available');
    await c.delete(`/volumes/${v.id}`);
    await f.volumes.drain();
  });

  test('paging with limit/marker/offset and sort', async () => {
    const ids: string[] = [];
    const q = await f.project('gamma');
    for (const name of ['c', 'a', 'b']) ids.push((await q.member.post('/volumes', { volume: { size: 1, name } })).body.volume.id);
    await f.volumes.drain();
    const byName = await q.member.get('/volumes/detail?sort=name:asc');
    assert.deepEqual(byName.body.volumes.map((v: { name: string }) => v.name), ['a', 'b', 'c']);
    const page1 = await q.member.get('/volumes?sort=name:asc&limit=2');
    assert.equal(page1.body.volumes.length, 2);
    assert.ok(page1.body.volumes_links[0].href.includes('marker='));
    const page2 = await q.member.get(`/volumes?sort=name:asc&limit=2&marker=${page1.body.volumes[1].id}`);
    assert.deepEqual(page2.body.volumes.map((v: { name: string }) => v.name), ['c']);
    assert.deepEqual((await q.member.get('/volumes?sort=name:asc&offset=1')).body.volumes.map((v: { name: string }) => v.name), ['b', 'c']);
    assert.deepEqual((await q.member.get('/volumes?name=b')).body.volumes.map((v: { id: string }) => v.id), [ids[2]]);
    assert.equal((await q.member.get('/volumes?sort=bogus')).status, 400);
    assert.equal((await q.member.get('/volumes?marker=nope')).status, 400);
  });

  test('types with extra specs, quotas with usage, limits, pools and services for admins', async () => {
    const t = await f.admin.post(`/v3/${f.adminProjectId}/types`, { volume_type: { name: 'gold', extra_specs: { volume_backend_name: 'elsewhere' } } });
    assert.equal(t.status, 200, t.text);
    assert.equal((await p.member.post('/types', { volume_type: { name: 'x' } })).status, 403);
    const v = await p.member.post('/volumes', { volume: { size: 1, volume_type: 'gold' } });
    assert.equal(v.status, 202);
    const failed = await f.waitFor(p.member, 'volumes', v.body.volume.id, ['error']);
    const err = await f.volumes.db.selectFrom('volumes').select('error').where('id', '=', failed.id).executeTakeFirstOrThrow();
    assert.match(err.error!, /No valid backend was found.*volume_backend_name file does not match elsewhere/);
    await p.member.delete(`/volumes/${failed.id}`);
    await f.volumes.drain();
    const quota = await p.reader.get(`/os-quota-sets/${p.id}?usage=true`);
    assert.equal(quota.status, 200);
    assert.equal(quota.body.quota_set.volumes.limit, 5);
    assert.equal((await f.admin.put(`/v3/${f.adminProjectId}/os-quota-sets/${p.id}`, { quota_set: { volumes: 0 } })).status, 200);
    const over = await p.member.post('/volumes', { volume: { size: 1 } });
    assert.equal(over.status, 413);
    assert.match(over.body.overLimit.message, /Maximum number of volumes allowed \(0\)/);
    await f.admin.delete(`/v3/${f.adminProjectId}/os-quota-sets/${p.id}`);
    const limits = await p.member.get('/limits');
    assert.equal(limits.body.limits.absolute.maxTotalVolumes, 5);
    const pools = await f.admin.get(`/v3/${f.adminProjectId}/scheduler-stats/get_pools?detail=true`);
    assert.equal(pools.body.pools[0].name, 'cinder-host@file#file');
    assert.ok(pools.body.pools[0].capabilities.total_capacity_gb > 0);
    assert.equal((await p.member.get('/scheduler-stats/get_pools')).status, 403);
    const svcs = await f.admin.get(`/v3/${f.adminProjectId}/os-services`);
    assert.deepEqual(svcs.body.services.map((s: { binary: string; state: string }) => `${s.binary}:${s.state}`).sort(), ['cinder-scheduler:up', 'cinder-volume:up']);
    const az = await p.member.get('/os-availability-zone');
    assert.equal(az.body.availabilityZoneInfo[0].zoneName, 'nova');
  });
});

describe('cinder volume manager: races and restarts', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let p: Project;
  before(async () => {
    f = await startCinder();
    p = await f.project('race');
  });
  after(() => f?.close());

  test('two deletes of one volume race: one is accepted, the other refused (compare-and-swap on status)', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    // Both callers read the volume as available before either writes: only the status CAS can tell them apart.
    const caller = { projectId: p.id, userId: 'u', isAdmin: false };
    const seen = await f.volumes.get(v.id, caller);
    const results = await Promise.allSettled([f.volumes.delete(seen, { cascade: false, force: false }, caller), f.volumes.delete(seen, { cascade: false, force: false }, caller)]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.equal(refused.reason.status, 400);
    await f.volumes.drain();
    assert.equal(f.fake!.has(v.id), false);
  });

  test('a restart settles half-done work: creating ends in error with the reason, deleting is finished', async () => {
    const a = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    const b = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.volumes.drain();
    // As a crash leaves them: the rows say creating / deleting, the process that ran them is gone.
    await f.volumes.db.updateTable('volumes').set({ status: 'creating' }).where('id', '=', a.id).execute();
    await f.volumes.db.updateTable('volumes').set({ status: 'deleting' }).where('id', '=', b.id).execute();
    await f.volumes.recoverInterrupted();
    const row = await f.volumes.db.selectFrom('volumes').select(['status', 'error']).where('id', '=', a.id).executeTakeFirstOrThrow();
    assert.deepEqual(row, { status: 'error', error: 'The volume service restarted while this operation ran.' });
    assert.equal(f.fake!.has(a.id), false, 'the half-made volume is removed from the backend');
    assert.equal((await p.member.get(`/volumes/${b.id}`)).status, 404);
    assert.equal(f.fake!.has(b.id), false);
  });
});

describe('cinder legacy attach actions (os-reserve … os-detach)', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let p: Project;
  before(async () => {
    f = await startCinder();
    p = await f.project('legacy');
  });
  after(() => f?.close());

  test('reserve → initialize_connection → attach → in-use; reserve again 400; begin/roll detaching; detach → available', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const act = (body: unknown) => p.member.post(`/volumes/${v.id}/action`, body);
    assert.equal((await act({ 'os-reserve': {} })).status, 202);
    assert.equal((await p.member.get(`/volumes/${v.id}`)).body.volume.status, 'attaching');
    const conn = await act({ 'os-initialize_connection': { connector: { host: 'compute-1' } } });
    assert.equal(conn.status, 200, conn.text);
    assert.equal(conn.body.connection_info.driver_volume_type, 'file');
    assert.equal(conn.body.connection_info.data.access_mode, 'rw');
    assert.equal((await act({ 'os-attach': { instance_uuid: '33333333-3333-4333-8333-333333333333', mountpoint: '/dev/vdb', mode: 'rw' } })).status, 202);
    const inUse = (await p.member.get(`/volumes/${v.id}`)).body.volume;
    assert.equal(inUse.status, 'in-use');
    assert.equal(inUse.attachments[0].device, '/dev/vdb');
    assert.equal((await act({ 'os-reserve': {} })).status, 400);
    assert.equal((await act({ 'os-begin_detaching': {} })).status, 202);
    assert.equal((await p.member.get(`/volumes/${v.id}`)).body.volume.status, 'detaching');
    assert.equal((await act({ 'os-roll_detaching': {} })).status, 202);
    assert.equal((await p.member.get(`/volumes/${v.id}`)).body.volume.status, 'in-use');
    assert.equal((await act({ 'os-terminate_connection': { connector: { host: 'compute-1' } } })).status, 202);
    assert.equal((await act({ 'os-detach': { attachment_id: inUse.attachments[0].attachment_id } })).status, 202);
    const after1 = (await p.member.get(`/volumes/${v.id}`)).body.volume;
    assert.equal(after1.status, 'available');
    assert.deepEqual(after1.attachments, []);
    assert.equal((await act({ 'os-bogus': {} })).status, 400);
  });
  test('revert to the latest snapshot (3.40): data back, older snapshot or none refused, policy', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const revert = (snapshotId: string | undefined, mv = '3.40', client = p.member) => client.at(mv).post(`/volumes/${v.id}/action`, { revert: { snapshot_id: snapshotId } });
    assert.match((await revert(undefined)).body.badRequest.message, /doesn't have any snapshots/);
    f.fake!.write(v.id, 7, Buffer.from('first'));
    const s1 = (await p.member.post('/snapshots', { snapshot: { volume_id: v.id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', s1.id, ['available']);
    f.fake!.write(v.id, 7, Buffer.from('second'));
    const s2 = (await p.member.post('/snapshots', { snapshot: { volume_id: v.id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', s2.id, ['available']);
    f.fake!.write(v.id, 7, Buffer.from('third'));
    assert.equal((await revert(s2.id, '3.39')).status, 400);
    const older = await revert(s1.id);
    assert.equal(older.status, 400);
    assert.equal(older.body.badRequest.message, `Specified snapshot ${s1.id} is None or not the latest one of volume ${v.id}.`);
    assert.equal((await revert(s2.id, '3.40', p.reader)).status, 403);
    assert.equal((await revert(s2.id)).status, 202);
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    await f.waitFor(p.member, 'snapshots', s2.id, ['available']);
    assert.equal(f.fake!.read(v.id, 7)?.toString(), 'second');
  });
  test('retype: same backend changes the type; a type no backend serves leaves the volume as it was; policy', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    await f.admin.post('/types', { volume_type: { name: 'retype-gold', extra_specs: { volume_backend_name: f.config.backendName } } });
    await f.admin.post('/types', { volume_type: { name: 'retype-nowhere', extra_specs: { volume_backend_name: 'elsewhere' } } });
    const retype = (type: string, client = p.member) => client.post(`/volumes/${v.id}/action`, { 'os-retype': { new_type: type, migration_policy: 'on-demand' } });
    assert.equal((await retype('retype-gold', p.reader)).status, 403);
    assert.equal((await retype('no-such-type')).status, 404);
    assert.equal((await retype('retype-gold')).status, 202);
    assert.equal((await f.waitFor(p.member, 'volumes', v.id, ['available'])).volume_type, 'retype-gold');
    const same = await retype('retype-gold');
    assert.equal(same.status, 400);
    assert.equal(same.body.badRequest.message, 'Invalid input received: New volume_type same as original: retype-gold.');
    assert.equal((await retype('retype-nowhere')).status, 202);
    assert.equal((await f.waitFor(p.member, 'volumes', v.id, ['available'])).volume_type, 'retype-gold');
  });
});
