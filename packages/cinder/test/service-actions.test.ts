import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type CinderClient, type CinderFixture, type Project } from './fixture.ts';

const message = (body: Record<string, { message: string }>) => Object.values(body)[0]?.message;

describe('cinder workers cleanup (3.24), failover (3.26), log levels (3.32)', () => {
  let f: CinderFixture;
  let p: Project;
  let volumeHost: string;

  before(async () => {
    f = await startCinder();
    p = await f.project('operator');
    volumeHost = (await f.admin.get('/os-services?binary=cinder-volume')).body.services[0].host;
  });
  after(() => f?.close());

  const expectError = async (call: Promise<{ status: number; body: any }>, status: number, text: string | RegExp) => {
    const r = await call;
    assert.equal(r.status, status, JSON.stringify(r.body));
    if (typeof text === 'string') assert.equal(message(r.body), text);
    else assert.match(message(r.body), text);
  };

  test('cleanup: admins only; down services are unavailable; resources stuck on an up service are reset as upstream\'s do_cleanup', async () => {
    const admin = f.admin.at('3.24');
    await expectError(f.admin.at('3.23').post('/workers/cleanup', {}), 404, 'API version 3.23 is not supported on this method.');
    await expectError(p.member.at('3.24').post('/workers/cleanup', {}), 403, "Policy doesn't allow workers:cleanup to be performed.");
    await expectError(admin.post('/workers/cleanup', { resource_type: 'backup' }), 400, 'Invalid input received: Resource type Backup not valid, must be Volume or Snapshot');
    await expectError(admin.post('/workers/cleanup', { everything: true }), 400, /'everything' was unexpected/);
    await expectError(admin.post('/workers/cleanup', { binary: 'cinder-backup' }), 400, /is not one of/);
    const none = await admin.post('/workers/cleanup', {});
    assert.deepEqual([none.status, none.body], [202, { cleaning: [], unavailable: [] }], 'every service is up: nothing to clean');

    // A volume service that stopped reporting (a backend removed from the configuration).
    const now = Date.now();
    await f.database.db
      .insertInto('services')
      .values({ id: '00000000-0000-4000-8000-00000000dead', host: 'old-host@gone', binary: 'cinder-volume', topic: 'cinder-volume', availability_zone: 'nova', disabled: 0, disabled_reason: null, report_count: 1, frozen: 0, created_at: now - 3_600_000, updated_at: now - 3_600_000 })
      .execute();
    const down = await admin.post('/workers/cleanup', {});
    assert.deepEqual(down.body, { cleaning: [], unavailable: [{ id: '00000000-0000-4000-8000-00000000dead', host: 'old-host@gone', binary: 'cinder-volume', cluster_name: null }] });

    // What a dead worker leaves: transitional statuses nothing is working on.
    const mk = async () => {
      const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
      await f.waitFor(p.member, 'volumes', v.id, ['available']);
      return v.id as string;
    };
    const [creating, uploading, deleting, other] = [await mk(), await mk(), await mk(), await mk()];
    const snap = (await p.member.post('/snapshots', { snapshot: { volume_id: other } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', snap.id, ['available']);
    const setStatus = (table: 'volumes' | 'snapshots', id: string, status: string) => f.database.db.updateTable(table).set({ status }).where('id', '=', id).execute();
    await setStatus('volumes', creating, 'creating');
    await setStatus('volumes', uploading, 'uploading');
    await setStatus('volumes', deleting, 'deleting');
    await setStatus('snapshots', snap.id, 'creating');

    await expectError(admin.post('/workers/cleanup', { resource_id: other }), 400, `Invalid input received: There is no resource with UUID ${other} pending cleanup.`);
    const one = await admin.post('/workers/cleanup', { resource_id: deleting, is_up: true });
    assert.equal(one.status, 202);
    assert.deepEqual(one.body.cleaning.map((s: { host: string; binary: string }) => [s.host, s.binary]), [[volumeHost, 'cinder-volume']]);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/volumes/${deleting}`)).status, 404, 'the delete was resumed');
    assert.equal((await p.member.get(`/volumes/${creating}`)).body.volume.status, 'creating', 'only the named resource');

    const all = await admin.post('/workers/cleanup', { host: volumeHost.split('@')[0], is_up: 'true' });
    assert.equal(all.status, 202);
    assert.deepEqual(all.body.cleaning.map((s: { binary: string }) => s.binary).sort(), ['cinder-scheduler', 'cinder-volume']);
    assert.deepEqual(all.body.unavailable, []);
    assert.equal((await p.member.get(`/volumes/${creating}`)).body.volume.status, 'error');
    assert.equal((await p.member.get(`/volumes/${uploading}`)).body.volume.status, 'available');
    assert.equal((await p.member.get(`/snapshots/${snap.id}`)).body.snapshot.status, 'error');
    assert.equal((await p.member.get(`/volumes/${other}`)).body.volume.status, 'available');
    await f.database.db.deleteFrom('services').where('id', '=', '00000000-0000-4000-8000-00000000dead').execute();
  });

  test('failover_host and failover (3.26): upstream\'s answers for backends without replication', async () => {
    const at = (v: string): CinderClient => f.admin.at(v);
    await expectError(p.member.put('/os-services/failover_host', { host: volumeHost }), 403, "Policy doesn't allow volume_extension:services:update to be performed.");
    await expectError(at('3.0').put('/os-services/failover_host', {}), 400, 'Invalid input received: Host field is missing.');
    await expectError(at('3.0').put('/os-services/failover_host', { host: 'nowhere' }), 400, 'No service found with host=nowhere');
    const refused = `Invalid input received: No service could be changed: replication_status in ['${volumeHost}'] must be ['enabled', 'failed-over'] and must be up to failover.`;
    await expectError(at('3.0').put('/os-services/failover_host', { host: volumeHost, backend_id: 'secondary' }), 400, refused);
    await expectError(at('3.25').put('/os-services/failover', { host: volumeHost }), 400, 'Invalid input received: Unknown action');
    await expectError(at('3.26').put('/os-services/failover', {}), 400, 'Invalid input received: One and only one of cluster and host must be set.');
    await expectError(at('3.26').put('/os-services/failover', { cluster: 'c1' }), 400, 'No service found with cluster=c1');
    await expectError(at('3.26').put('/os-services/failover', { host: volumeHost }), 400, refused);
    await expectError(at('3.26').put('/os-services/failover', { host: volumeHost, extra: 1 }), 400, /'extra' was unexpected/);
  });

  test('set-log and get-log (3.32) change and report the levels of this process\'s loggers per binary', async () => {
    const admin = f.admin.at('3.32');
    await expectError(f.admin.at('3.31').put('/os-services/get-log', {}), 400, 'Invalid input received: Unknown action');
    await expectError(p.member.at('3.32').put('/os-services/set-log', { level: 'DEBUG' }), 403, "Policy doesn't allow volume_extension:services:update to be performed.");
    await expectError(admin.put('/os-services/set-log', { level: 'LOUD' }), 400, 'Invalid input received: LOUD is not a valid log level.');
    await expectError(admin.put('/os-services/set-log', { binary: 'nova-compute', level: 'INFO' }), 400, /is not one of/);

    assert.equal((await admin.put('/os-services/set-log', { level: 'warning' })).status, 202);
    const set = await admin.put('/os-services/set-log', { binary: 'cinder-volume', prefix: 'cinder.vol', level: 'debug' });
    assert.equal(set.status, 202);
    const got = (await admin.put('/os-services/get-log', {})).body.log_levels;
    assert.deepEqual(got, [
      { host: 'cinder-host', binary: 'cinder-api', levels: { 'cinder.api': 'WARNING' } },
      { host: 'cinder-host', binary: 'cinder-scheduler', levels: { 'cinder.scheduler': 'WARNING' } },
      { host: volumeHost, binary: 'cinder-volume', levels: { 'cinder.volume': 'DEBUG' } },
    ]);
    assert.deepEqual((await admin.put('/os-services/get-log', { binary: 'cinder-api', prefix: 'cinder.a' })).body.log_levels, [{ host: 'cinder-host', binary: 'cinder-api', levels: { 'cinder.api': 'WARNING' } }]);
    assert.deepEqual((await admin.put('/os-services/get-log', { server: volumeHost, prefix: 'sqlalchemy' })).body.log_levels, [{ host: volumeHost, binary: 'cinder-volume', levels: {} }]);
    assert.equal((await admin.put('/os-services/set-log', { level: 'info' })).status, 202);
  });
});
