import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { CinderClient as VolumeApi, startCinder } from '../../cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../cinder/src/drivers/file-driver.ts';
import type { NovaHttp } from '../../cinder/src/domain/nova.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { NovaClient, NovaFixture, Project } from './fixture.ts';
import { availableVolume, bootNetless, cinderServiceUser, novaBesideCinder } from './with-cinder.ts';

/**
 * Snapshots of in-use file volumes through Nova (os-assisted-volume-snapshots), both services
 * real: Cinder's file driver asks Nova as Cinder's service user, nova-compute (fake driver:
 * a byte copy of the volume's file) writes the copy beside the volume and reports with
 * os-update_snapshot_status, Cinder's driver takes the file and the snapshot is available.
 * Also both APIs' refusals, a failed copy and a Nova that never reports (timeout): the
 * snapshot in error and no file left.
 */
describe('assisted volume snapshots (Cinder file driver, nova-compute on the fake driver)', () => {
  let ks: KeystoneFixture;
  let cinder: Awaited<ReturnType<typeof startCinder>>;
  let f: NovaFixture;
  let p: Project;
  let vol: VolumeApi;
  let driver: FakeDriver;
  let files: FileVolumeDriver;
  let server: string;
  let cinderService: NovaClient;
  let novaForCinder: NovaHttp | undefined;
  /** A Nova that takes the request and never reports (the timeout case). */
  let novaSilent = false;

  const newVolume = () => availableVolume(cinder, vol);
  const attached = async () => {
    const v = await newVolume();
    const r = await p.member.post(`/v2.1/servers/${server}/os-volume_attachments`, { volumeAttachment: { volumeId: v } });
    assert.equal(r.status, 200, r.text);
    await cinder.waitFor(vol, 'volumes', v, ['in-use']);
    return v;
  };
  const snapshot = async (volumeId: string) => {
    const r = await vol.post('/snapshots', { snapshot: { volume_id: volumeId, force: true, name: 'live' } });
    assert.equal(r.status, 202, r.text);
    return r.body.snapshot.id as string;
  };
  /** Files Nova was writing that nobody took (the driver's `.nova` names). */
  const leftovers = () => readdirSync(files.volumePath('x').replace(/\/[^/]*$/, '')).filter((n) => n.endsWith('.nova'));

  before(async () => {
    ks = await startKeystone();
    cinder = await startCinder({
      ks,
      driver: (dir) => (files = new FileVolumeDriver({ dir: join(dir, 'volumes'), backendName: 'file', logger: pino({ level: 'silent' }) })),
      config: { assisted_snapshot_timeout: 2 },
      compute: {
        extendVolume: async () => true,
        createVolumeSnapshot: async (v, info) => (novaSilent ? undefined : novaForCinder!.createVolumeSnapshot(v, info)),
      },
    });
    driver = new FakeDriver({ hostname: 'avs-h1' });
    ({ f, p, vol } = await novaBesideCinder(ks, cinder.url, driver, 'avs'));
    ({ nova: novaForCinder, client: cinderService } = await cinderServiceUser(ks, f.url));
    server = await bootNetless(f, p, 'avs1');
  });
  after(async () => {
    await f?.close();
    await cinder?.close();
    await ks?.close();
  });

  it('POST os-assisted-volume-snapshots: the service role only (403), upstream schema and mapping refusals (400)', async () => {
    const v = await attached();
    const body = (volume_id: string, create_info: Record<string, unknown> = { snapshot_id: 'snap-1', type: 'qcow2', new_file: 'snapshot-x.qcow2.nova' }) => ({ snapshot: { volume_id, create_info } });
    const post = (c: NovaClient, b: unknown) => c.post('/v2.1/os-assisted-volume-snapshots', b);
    assert.equal((await post(p.member, body(v))).status, 403);
    assert.equal((await post(f.admin.at('2.1'), body(v))).status, 403, 'admin without the service role');
    const raw = await post(cinderService, body(v, { snapshot_id: 's', type: 'raw', new_file: 'n' }));
    assert.equal(raw.status, 400, raw.text);
    assert.match(raw.body.badRequest.message, /'raw' is not one of \['qcow2'\]/);
    const missing = await post(cinderService, body(v, { snapshot_id: 's', type: 'qcow2' }));
    assert.equal(missing.status, 400);
    assert.equal(missing.body.badRequest.message, "'new_file' is a required property");
    const extra = await post(cinderService, { snapshot: { volume_id: v, create_info: { snapshot_id: 's', type: 'qcow2', new_file: 'n' }, other: 1 } });
    assert.equal(extra.status, 400);
    const unknown = await post(cinderService, body('0c5e6a1c-59b8-4e6a-9d6e-7c3a2a7f0f00'));
    assert.equal(unknown.status, 400, unknown.text);
    assert.equal(unknown.body.badRequest.message, 'No volume Block Device Mapping with id 0c5e6a1c-59b8-4e6a-9d6e-7c3a2a7f0f00.');
    assert.equal(driver.volumeSnapshots.length, 0, 'nothing reached the host');
    assert.equal((await p.member.delete(`/v2.1/servers/${server}/os-volume_attachments/${v}`)).status, 202);
  });

  it("os-update_snapshot_status: upstream's policy (admin or the project's member; a reader 403), status map and progress checks (400)", async () => {
    const v = await newVolume();
    const s = await snapshot(v);
    await cinder.waitFor(vol, 'snapshots', s, ['available']);
    const reader = new VolumeApi(cinder.url, (await ks.login('avs-reader', 'avs-pw', { project: { id: p.id } })).token, p.id, '3.44');
    const update = (c: VolumeApi, b: Record<string, unknown>) => c.post(`/snapshots/${s}/action`, { 'os-update_snapshot_status': b });
    assert.equal((await update(reader, { status: 'creating', progress: '90%' })).status, 403);
    const settled = await update(vol, { status: 'error' });
    assert.equal(settled.status, 400);
    assert.equal(settled.body.badRequest.message, 'Snapshot status available not allowed for update_snapshot_status');
    assert.equal((await cinder.admin.post(`/v3/${p.id}/snapshots/${s}/action`, { 'os-reset_status': { status: 'creating' } })).status, 202);
    const wrong = await update(vol, { status: 'deleting' });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.badRequest.message, 'Provided snapshot status deleting not allowed for snapshot with status creating.');
    const percentages: [string, string][] = [['x%', 'progress must be an integer percentage'], ['90', 'progress must be an integer percentage between 0 and 100'], ['101%', 'progress must be an integer percentage between 0 and 100']];
    for (const [progress, why] of percentages) {
      const bad = await update(vol, { status: 'creating', progress });
      assert.equal(bad.status, 400, progress);
      assert.equal(bad.body.badRequest.message, `Invalid input received: ${why}`);
    }
    const ok = await update(vol, { status: 'creating', progress: '42%' });
    assert.equal(ok.status, 202, ok.text);
    const shown = (await vol.get(`/snapshots/${s}`)).body.snapshot;
    assert.deepEqual([shown.status, shown['os-extended-snapshot-attributes:progress']], ['creating', '42%']);
    assert.equal((await cinder.admin.post(`/v3/${p.id}/snapshots/${s}/action`, { 'os-update_snapshot_status': { status: 'available' } })).status, 202, 'admin (Nova\'s service user is one)');
  });

  it('a snapshot of an in-use volume: Nova copies the running disk, the snapshot is available, a volume of it too', async () => {
    const v = await attached();
    driver.volumeSnapshots.length = 0;
    const s = await snapshot(v);
    const done = await cinder.waitFor(vol, 'snapshots', s, ['available']);
    assert.equal(done['os-extended-snapshot-attributes:progress'], '100%');
    assert.deepEqual(driver.volumeSnapshots, [{ uuid: server, volumeId: v, newFile: `snapshot-${s}.qcow2.nova` }]);
    assert.ok(existsSync(files.snapshotPath(s)), 'the copy Nova wrote is the snapshot file');
    assert.deepEqual(leftovers(), []);
    const r = await vol.post('/volumes', { volume: { size: 1, snapshot_id: s } });
    assert.equal(r.status, 202, r.text);
    await cinder.waitFor(vol, 'volumes', r.body.volume.id, ['available']);
    // Not in use: no Nova (qemu-img copies as before).
    const idle = await snapshot(r.body.volume.id);
    await cinder.waitFor(vol, 'snapshots', idle, ['available']);
    assert.equal(driver.volumeSnapshots.length, 1);
    assert.equal((await p.member.delete(`/v2.1/servers/${server}/os-volume_attachments/${v}`)).status, 202);
  });

  it('a copy that fails on the host, or a Nova that never reports: snapshot in error, no file left', async () => {
    const v = await attached();
    driver.volumeSnapshotFailure = 'the disk went away';
    const failed = await snapshot(v);
    await cinder.waitFor(vol, 'snapshots', failed, ['error']);
    assert.ok(!existsSync(files.snapshotPath(failed)));
    assert.deepEqual(leftovers(), []);
    novaSilent = true;
    try {
      const silent = await snapshot(v);
      await cinder.waitFor(vol, 'snapshots', silent, ['error']);
      assert.ok(!existsSync(files.snapshotPath(silent)));
    } finally {
      novaSilent = false;
    }
    assert.deepEqual(leftovers(), []);
    const messages = (await vol.at('3.5').get(`/messages?resource_uuid=${failed}`)).body.messages;
    assert.equal(messages[0]?.event_id, 'VOLUME_VOLUME_SNAPSHOT_009_013');
    // The volume is still usable: the next snapshot works.
    const again = await snapshot(v);
    await cinder.waitFor(vol, 'snapshots', again, ['available']);
    assert.equal((await p.member.delete(`/v2.1/servers/${server}/os-volume_attachments/${v}`)).status, 202);
  });
});
