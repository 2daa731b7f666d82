import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inflateSync } from 'node:zlib';
import pino from 'pino';
import { fixedToken, SwiftClient } from '@onestack/core/swift-client.ts';
import { onSqliteOnly } from '@onestack/testing/index.ts';
import type { KeystoneFixture } from '../../keystone/test/fixture.ts';
import { GiB } from '../src/drivers/volume-driver.ts';
import { startBackupCloud, type BackupCloud } from './backup-cloud.ts';
import type { CinderFixture, Project } from './fixture.ts';

/**
 * Backups with the Swift chunked driver against the real Swift proxy and three
 * storage nodes, and the file driver's qcow2 volumes: what goes into Swift is
 * upstream's layout, and restores are byte-identical.
 */
describe('cinder backups to swift', () => {
  let cloud: BackupCloud;
  let ks: KeystoneFixture;
  let f: CinderFixture;
  let p: Project;
  let swiftUrl: string;
  let writeVolume: BackupCloud['writeVolume'];
  let assertHolds: BackupCloud['assertHolds'];
  const events: { event_type: string; payload: any; publisher_id: string }[] = [];
  const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });

  before(async () => {
    cloud = await startBackupCloud(logger);
    ({ ks, f, swiftUrl, writeVolume, assertHolds } = cloud);
    p = await f.project('bk');
    await ks.bus.subscribe('notifications', `cinder-backup-test-${process.pid}`, async (n) => void events.push(n as never), { eventTypes: ['backup.*'] });
  });
  after(() => cloud?.close());

  const waitBackup = async (id: string, status: string) => {
    await f.volumes.drain();
    const b = (await p.member.get(`/backups/${id}`)).body.backup;
    assert.equal(b.status, status, JSON.stringify(b));
    return b;
  };

  test('full and incremental backups in swift as upstream lays them out, restores byte-identical after the volume file is gone, delete order, records', { skip: onSqliteOnly('GiB volumes through zlib and Swift') }, async () => {
    const vol = (await p.member.post('/volumes', { volume: { size: 1, name: 'data' } })).body.volume;
    await f.waitFor(p.member, 'volumes', vol.id, ['available']);
    const pieces: [number, Buffer][] = [[0, randomBytes(65536)], [100 * 1024 * 1024 + 5, randomBytes(40000)]];
    const first = await writeVolume(vol.id, pieces);

    assert.equal((await p.reader.post('/backups', { backup: { volume_id: vol.id } })).status, 403);
    const created = await p.member.post('/backups', { backup: { volume_id: vol.id, name: 'full' } });
    assert.equal(created.status, 202);
    assert.deepEqual(Object.keys(created.body.backup).sort(), ['id', 'links', 'name']);
    const full = await waitBackup(created.body.backup.id, 'available');
    assert.equal(full.container, 'volumebackups');
    assert.equal(full.is_incremental, false);
    assert.equal(full.size, 1);
    // 50 MiB objects (upstream's backup_swift_object_size): 21 for 1 GiB, and the metadata and sha256 files.
    assert.equal(full.object_count, 21 + 2);
    assert.equal((await f.waitFor(p.member, 'volumes', vol.id, ['available'])).status, 'available');
    for (let i = 0; i < 100 && !events.some((e) => e.event_type === 'backup.create.end'); i++) await new Promise((r) => setTimeout(r, 50));
    const end = events.find((e) => e.event_type === 'backup.create.end');
    assert.equal(end?.payload.backup_id, full.id);
    assert.match(end!.publisher_id, /^backup\./);

    // Swift holds upstream's objects in the member's own account.
    const store = new SwiftClient({ account: `${swiftUrl}/v1/AUTH_${p.id}`, auth: fixedToken(p.member.token!) });
    const names = await store.list('volumebackups', `volume_${vol.id}/`);
    assert.equal(names.length, 23);
    const prefix = names.find((n) => n.endsWith('_metadata'))!.replace(/_metadata$/, '');
    assert.match(prefix, new RegExp(`^volume_${vol.id}/\\d{14}/az_nova_backup_${full.id}$`));
    const meta = JSON.parse((await store.getBytes('volumebackups', `${prefix}_metadata`)).toString());
    assert.equal(meta.version, '1.0.0');
    assert.equal(meta.objects.length, 21);
    const [name0, obj0] = Object.entries(meta.objects[0])[0] as [string, any];
    assert.equal(name0, `${prefix}-00001`);
    assert.equal(obj0.compression, 'zlib');
    assert.equal(inflateSync(await store.getBytes('volumebackups', name0)).length, 52428800);
    const shas = JSON.parse((await store.getBytes('volumebackups', `${prefix}_sha256file`)).toString());
    assert.equal(shas.chunk_size, 32768);
    assert.equal(shas.sha256s.length, GiB / 32768);

    // Incremental: only the changed 32 KiB block goes to Swift.
    const second = await writeVolume(vol.id, [...pieces, [200 * 1024 * 1024, randomBytes(32768)]]);
    const inc = await waitBackup((await p.member.post('/backups', { backup: { volume_id: vol.id, name: 'inc', incremental: true } })).body.backup.id, 'available');
    assert.equal(inc.is_incremental, true);
    assert.equal(inc.object_count, 1 + 2);
    assert.equal((await p.member.get(`/backups/${full.id}`)).body.backup.has_dependent_backups, true);
    const refused = await p.member.delete(`/backups/${full.id}`);
    assert.equal(refused.status, 400);
    assert.match(refused.body.badRequest.message, /Incremental backups exist/);

    // The volume's file is lost: the backups are in Swift, not beside it.
    await rm(join(f.config.stateDir, 'volumes', `volume-${vol.id}.qcow2`));
    const restored = await p.member.post(`/backups/${inc.id}/restore`, { restore: { name: 'back' } });
    assert.equal(restored.status, 202);
    assert.equal(restored.body.restore.backup_id, inc.id);
    assert.equal(restored.body.restore.volume_name, 'back');
    await f.waitFor(p.member, 'volumes', restored.body.restore.volume_id, ['available']);
    await assertHolds(restored.body.restore.volume_id, second);
    await assert.rejects(assertHolds(restored.body.restore.volume_id, first));
    await waitBackup(inc.id, 'available');

    // Into an existing volume: the full backup alone.
    const target = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', target.id, ['available']);
    assert.equal((await p.member.post(`/backups/${full.id}/restore`, { restore: { volume_id: target.id } })).status, 202);
    await f.waitFor(p.member, 'volumes', target.id, ['available']);
    await assertHolds(target.id, first);

    // Records: admin only; a record of a backup still present is refused on import.
    assert.equal((await p.member.get(`/backups/${full.id}/export_record`)).status, 403);
    const rec = (await f.admin.get(`/v3/${p.id}/backups/${full.id}/export_record`)).body['backup-record'];
    assert.equal(rec.backup_service, 'cinder.backup.drivers.swift.SwiftBackupDriver');
    assert.equal(JSON.parse(Buffer.from(rec.backup_url, 'base64').toString()).service_metadata, prefix);
    assert.equal((await f.admin.post(`/v3/${p.id}/backups/import_record`, { 'backup-record': rec })).status, 400);

    const listed = (await p.member.get('/backups/detail')).body.backups;
    assert.deepEqual(listed.map((b: { name: string }) => b.name).sort(), ['full', 'inc']);
    assert.equal((await p.member.delete(`/backups/${inc.id}`)).status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.delete(`/backups/${full.id}`)).status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/backups/${full.id}`)).status, 404);
    assert.deepEqual(await store.list('volumebackups', `volume_${vol.id}/`), []);
  });

  test('incremental without a full backup and in-use without force are refused', async () => {
    const vol = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', vol.id, ['available']);
    const inc = await p.member.post('/backups', { backup: { volume_id: vol.id, incremental: true } });
    assert.equal(inc.status, 400);
    assert.equal(inc.body.badRequest.message, 'Invalid backup: No backups available to do an incremental backup.');
    await f.admin.post(`/v3/${p.id}/volumes/${vol.id}/action`, { 'os-reset_status': { status: 'in-use', attach_status: 'attached' } });
    const inUse = await p.member.post('/backups', { backup: { volume_id: vol.id } });
    assert.equal(inUse.status, 400);
    assert.equal(inUse.body.badRequest.message, 'Invalid volume: Backing up an in-use volume must use the force flag.');
  });
});
