import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { FileVolumeDriver } from '../src/drivers/file-driver.ts';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

const logger = pino({ level: 'silent' });
const MiB = 1024 * 1024;

/**
 * Migration between two real file-driver backends in one process: `fast` keeps
 * qcow2 files, `bulk` raw ones, so a move converts the data, and the bytes are
 * compared in full before and after.
 */
describe('cinder migration between backends (file driver, qcow2 and raw)', () => {
  let f: CinderFixture;
  let p: Project;
  let fast: FileVolumeDriver;
  let bulk: FileVolumeDriver;
  const scratch = mkdtempSync(join(tmpdir(), 'onestack-cinder-migration-'));
  const backend = (name: string) => (name === 'fast' ? fast : bulk);
  /** What Nova does when Cinder asks it to swap a server's volume (each test that moves an attached volume sets it). */
  let novaSwap: (server: string, oldId: string, newId: string) => Promise<void> = () => Promise.reject(new Error('no swap expected'));

  before(async () => {
    f = await startCinder({
      compute: { extendVolume: async () => true, swapVolume: (server, oldId, newId) => novaSwap(server, oldId, newId) },
      drivers: (state) => [
        (fast = new FileVolumeDriver({ dir: join(state, 'fast'), backendName: 'fast', format: 'qcow2', logger })),
        (bulk = new FileVolumeDriver({ dir: join(state, 'bulk'), backendName: 'bulk', format: 'raw', logger })),
      ],
    });
    p = await f.project('mig');
    for (const name of ['fast', 'bulk']) {
      const t = await f.admin.post('/types', { volume_type: { name: `${name}-type`, extra_specs: { volume_backend_name: name } } });
      assert.equal(t.status, 200, t.text);
    }
  });
  after(async () => {
    await f?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const show = async (id: string) => (await f.admin.get(`/v3/${p.id}/volumes/${id}`)).body.volume;
  const backendOf = (v: any) => String(v['os-vol-host-attr:host']).split('@')[1].split('#')[0];
  const dataName = (v: any) => v['os-vol-mig-status-attr:name_id'] ?? v.id;
  const action = (id: string, body: unknown, client = f.admin) => client.post(`/v3/${p.id}/volumes/${id}/action`, body);

  /** A volume of the type with a pattern at a few offsets, and a raw dump of its content to compare with later. */
  async function volumeWithData(type: string): Promise<{ id: string; dump: string }> {
    const v = (await p.member.post('/volumes', { volume: { size: 1, volume_type: type } })).body.volume;
    const shown = await f.waitFor(p.member, 'volumes', v.id, ['available']);
    assert.ok(shown);
    const vol = await show(v.id);
    const d = backend(backendOf(vol));
    for (const [i, off] of [0, 5 * MiB, 700 * MiB].entries()) {
      await runCommand('qemu-io', ['-f', d.format, '-c', `write -P ${0x41 + i} ${off} 131072`, positional(d.volumePath(v.id))], { logger, timeoutMs: 30_000 });
    }
    const dump = join(scratch, `${v.id}.raw`);
    await runCommand('qemu-img', ['convert', '-f', d.format, '-O', 'raw', '--', positional(d.volumePath(v.id)), positional(dump)], { logger, timeoutMs: 120_000 });
    return { id: v.id, dump };
  }

  async function assertSameData(vol: any, dump: string): Promise<void> {
    const d = backend(backendOf(vol));
    const cmp = await runCommand('qemu-img', ['compare', '-f', 'raw', '-F', d.format, '--', positional(dump), positional(d.volumePath(dataName(vol)))], { logger, timeoutMs: 120_000 });
    assert.match(cmp.stdout, /Images are identical/);
  }

  test('os-migrate_volume: the volume moves to the other backend with its data; the temporary volume and old data are gone', async () => {
    const { id, dump } = await volumeWithData('__DEFAULT__');
    const before = await show(id);
    const from = backendOf(before);
    const to = from === 'fast' ? 'bulk' : 'fast';
    assert.equal(before['os-vol-mig-status-attr:migstat'], null);

    assert.equal((await action(id, { 'os-migrate_volume': { host: `cinder-host@${to}#${to}` } }, p.member)).status, 403);
    const bad = await action(id, { 'os-migrate_volume': { host: 'cinder-host@nowhere#nowhere' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.badRequest.message, "Invalid host: No available service named 'cinder-host@nowhere#nowhere'");
    const same = await action(id, { 'os-migrate_volume': { host: before['os-vol-host-attr:host'] } });
    assert.equal(same.status, 400);
    assert.match(same.body.badRequest.message, /^Invalid volume: Volume .* destination host\/cluster must be different than the current one$/);

    const res = await action(id, { 'os-migrate_volume': { host: `cinder-host@${to}#${to}`, force_host_copy: true, lock_volume: true } });
    assert.equal(res.status, 202, res.text);
    await f.volumes.drain();
    const after = await show(id);
    assert.equal(after.status, 'available');
    assert.equal(after['os-vol-mig-status-attr:migstat'], 'success');
    assert.equal(after['os-vol-host-attr:host'], `cinder-host@${to}#${to}`);
    assert.notEqual(after['os-vol-mig-status-attr:name_id'], null);
    assert.notEqual(after['os-vol-mig-status-attr:name_id'], id);
    assert.equal(after.volume_type, '__DEFAULT__');
    assert.equal(existsSync(backend(from).volumePath(id)), false, 'source data deleted');
    await assertSameData(after, dump);
    const temp = await f.database.db.selectFrom('volumes').selectAll().where('id', '=', after['os-vol-mig-status-attr:name_id']).executeTakeFirstOrThrow();
    assert.deepEqual([temp.deleted, temp.name_id, temp.status, temp.migration_status], [1, id, 'deleted', 'deleting'], 'the temporary volume took the old data with it');
    assert.deepEqual((await p.member.get('/volumes')).body.volumes.map((v: { id: string }) => v.id), [id]);

    // The moved volume works on its new backend: snapshots (which then block migration), delete.
    const snap = (await p.member.post('/snapshots', { snapshot: { volume_id: id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', snap.id, ['available']);
    const blocked = await action(id, { 'os-migrate_volume': { host: `cinder-host@${from}#${from}` } });
    assert.equal(blocked.status, 400);
    assert.equal(blocked.body.badRequest.message, `Invalid volume: Volume ${id} status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host/cluster must be different than the current one`);
    assert.equal((await p.member.delete(`/snapshots/${snap.id}`)).status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.delete(`/volumes/${id}`)).status, 202);
    await f.volumes.drain();
    assert.equal(existsSync(backend(to).volumePath(after['os-vol-mig-status-attr:name_id'])), false, 'migrated data deleted with the volume');
  });

  test('os-retype to a type of the other backend: never keeps the type, on-demand migrates; snapshots block it', async () => {
    const { id, dump } = await volumeWithData('fast-type');
    assert.equal(backendOf(await show(id)), 'fast');
    const retype = (policy: string) => action(id, { 'os-retype': { new_type: 'bulk-type', migration_policy: policy } }, p.member);

    assert.equal((await retype('never')).status, 202);
    await f.volumes.drain();
    let v = await show(id);
    assert.deepEqual([v.status, v.volume_type, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['available', 'fast-type', 'fast', null]);

    const snap = (await p.member.post('/snapshots', { snapshot: { volume_id: id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', snap.id, ['available']);
    assert.equal((await retype('on-demand')).status, 202);
    await f.volumes.drain();
    v = await show(id);
    assert.deepEqual([v.status, v.volume_type, backendOf(v)], ['available', 'fast-type', 'fast']);
    await p.member.delete(`/snapshots/${snap.id}`);
    await f.volumes.drain();

    assert.equal((await retype('on-demand')).status, 202);
    await f.volumes.drain();
    v = await show(id);
    assert.deepEqual([v.status, v.volume_type, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['available', 'bulk-type', 'bulk', 'success']);
    await assertSameData(v, dump);
    assert.equal(existsSync(fast.volumePath(id)), false);
    // An attachment of no server cannot be swapped by Nova: the volume stays, migration_status error.
    const att = await p.member.at('3.27').post('/attachments', { attachment: { volume_uuid: id, connector: { host: 'cinder-host' } } });
    assert.equal(att.status, 200, att.text);
    await p.member.at('3.44').post(`/attachments/${att.body.attachment.id}/action`, { 'os-complete': null });
    assert.equal((await action(id, { 'os-retype': { new_type: 'fast-type', migration_policy: 'on-demand' } }, p.member)).status, 202);
    await f.volumes.drain();
    v = await show(id);
    assert.deepEqual([v.status, v.volume_type, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['in-use', 'bulk-type', 'bulk', 'error']);
    await p.member.at('3.27').delete(`/attachments/${att.body.attachment.id}`);
    await p.member.delete(`/volumes/${id}`);
    await f.volumes.drain();
  });

  test('a restart during a migration deletes the temporary volume and its data and puts the volume back', async () => {
    const { id } = await volumeWithData('fast-type');
    const db = f.database.db;
    const src = await db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const tmpId = '55555555-5555-4555-8555-555555555555';
    await db.insertInto('volumes').values({ ...src, id: tmpId, host: 'cinder-host@bulk#bulk', status: 'creating', migration_status: `target:${id}` }).execute();
    await bulk.createVolume({ id: tmpId, size: 1 });
    await db.updateTable('volumes').set({ status: 'maintenance', previous_status: 'available', migration_status: 'migrating' }).where('id', '=', id).execute();
    await f.migrations.recoverInterrupted();
    const v = await show(id);
    assert.deepEqual([v.status, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['available', 'fast', 'error']);
    const tmp = await db.selectFrom('volumes').selectAll().where('id', '=', tmpId).executeTakeFirstOrThrow();
    assert.deepEqual([tmp.deleted, tmp.status], [1, 'deleted']);
    assert.equal(existsSync(bulk.volumePath(tmpId)), false);
    assert.ok(existsSync(fast.volumePath(id)));
    await p.member.delete(`/volumes/${id}`);
    await f.volumes.drain();
  });

  test('os-migrate_volume_completion: checks as upstream, then swaps the two volumes', async () => {
    const a = await volumeWithData('fast-type');
    const b = await volumeWithData('bulk-type');
    const complete = (body: Record<string, unknown>, client = f.admin) => action(a.id, { 'os-migrate_volume_completion': body }, client);
    const reset = (id: string, migration_status: string | null) => action(id, { 'os-reset_status': { migration_status } });

    assert.equal((await complete({ new_volume: b.id }, p.member)).status, 403);
    const idle = await complete({ new_volume: b.id });
    assert.equal(idle.status, 200);
    assert.deepEqual(idle.body, { save_volume_id: b.id });
    await reset(a.id, 'migrating');
    const noDest = await complete({ new_volume: b.id });
    assert.equal(noDest.status, 400);
    assert.equal(noDest.body.badRequest.message, 'Invalid volume: Destination volume not mid-migration.');
    // upstream's reset_status admits only VolumeMigrationStatus values (not target:<id>, nor nothing at all).
    assert.equal((await reset(b.id, 'target:someone-else')).status, 400);
    assert.equal((await reset(a.id, null)).status, 400);
    const migstat = (id: string, s: string | null) => f.database.db.updateTable('volumes').set({ migration_status: s }).where('id', '=', id).execute();
    await migstat(b.id, 'target:someone-else');
    const wrong = await complete({ new_volume: b.id });
    assert.equal(wrong.body.badRequest.message, `Invalid volume: Destination has migration_status target:someone-else, expected target:${a.id}.`);
    await migstat(a.id, null);
    assert.equal((await complete({ new_volume: b.id })).body.badRequest.message, 'Invalid volume: Source volume not mid-migration.');

    await reset(a.id, 'migrating');
    await migstat(b.id, `target:${a.id}`);
    const done = await complete({ new_volume: b.id, error: false });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(done.body, { save_volume_id: a.id });
    const v = await show(a.id);
    assert.deepEqual([v.status, backendOf(v), v['os-vol-mig-status-attr:name_id'], v['os-vol-mig-status-attr:migstat'], v.volume_type], ['available', 'bulk', b.id, 'success', 'bulk-type']);
    await assertSameData(v, b.dump);
    assert.equal((await f.admin.get(`/v3/${p.id}/volumes/${b.id}`)).status, 404, 'the temporary volume is deleted');
    assert.equal(existsSync(fast.volumePath(a.id)), false, "the source's old data is deleted");
    await p.member.delete(`/volumes/${a.id}`);
    await f.volumes.drain();
    assert.equal(existsSync(bulk.volumePath(b.id)), false);
  });

  /** An attachment of the volume to a server on a host, completed (in-use), as Nova makes it. */
  async function attach(volumeId: string, server: string): Promise<string> {
    const att = await f.admin.at('3.27').post(`/v3/${p.id}/attachments`, { attachment: { volume_uuid: volumeId, instance_uuid: server, connector: { host: 'compute-1', mountpoint: '/dev/vdb' } } });
    assert.equal(att.status, 200, att.text);
    assert.equal((await f.admin.at('3.44').post(`/v3/${p.id}/attachments/${att.body.attachment.id}/action`, { 'os-complete': null })).status, 204);
    return att.body.attachment.id;
  }

  const SERVER = '3b7e1f3a-3c1d-4e55-9a0b-6c1d2e3f4a5b';
  const attachmentsOf = (v: any) => v.attachments.map((a: { attachment_id: string; server_id: string }) => [a.attachment_id, a.server_id]);

  test('an in-use volume migrates through Nova: the swap gets the empty target, completion moves Nova\'s attachment and deletes the old data', async () => {
    const { id, dump } = await volumeWithData('__DEFAULT__');
    const from = backendOf(await show(id));
    const to = from === 'fast' ? 'bulk' : 'fast';
    const oldAttachment = await attach(id, SERVER);
    const asked: string[][] = [];
    novaSwap = async (...args) => void asked.push(args);
    const res = await action(id, { 'os-migrate_volume': { host: `cinder-host@${to}#${to}` } });
    assert.equal(res.status, 202, res.text);
    await f.volumes.drain();
    assert.equal(asked.length, 1);
    const [server, oldId, tmpId] = asked[0]!;
    assert.deepEqual([server, oldId], [SERVER, id]);
    let v = await show(id);
    assert.deepEqual([v.status, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['in-use', from, 'migrating'], 'the volume stays in use on its backend while Nova copies');
    const tmp = (await show(tmpId!)) as any;
    assert.deepEqual([tmp.status, tmp.size, backendOf(tmp), tmp['os-vol-mig-status-attr:migstat']], ['available', 1, to, `target:${id}`]);
    assert.ok(existsSync(backend(to).volumePath(tmpId!)), 'the target exists empty on the destination');

    // Nova's part: an attachment of the target for the server, the guest's data copied to it (here by qemu-img), then completion.
    const newAttachment = await attach(tmpId!, SERVER);
    await runCommand('qemu-img', ['convert', '-n', '-f', 'raw', '-O', backend(to).format, '--', positional(dump), positional(backend(to).volumePath(tmpId!))], { logger, timeoutMs: 120_000 });
    assert.equal((await action(id, { 'os-migrate_volume_completion': { new_volume: tmpId } }, p.member)).status, 403);
    const done = await action(id, { 'os-migrate_volume_completion': { new_volume: tmpId } });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(done.body, { save_volume_id: id });
    v = await show(id);
    assert.deepEqual([v.status, backendOf(v), v['os-vol-mig-status-attr:name_id'], v['os-vol-mig-status-attr:migstat']], ['in-use', to, tmpId, 'success']);
    assert.deepEqual(attachmentsOf(v), [[newAttachment, SERVER]], "Nova's new attachment is the volume's");
    assert.equal((await f.admin.at('3.27').get(`/v3/${p.id}/attachments/${oldAttachment}`)).status, 404, 'the old attachment ended with the old data');
    assert.equal((await f.admin.at('3.27').delete(`/v3/${p.id}/attachments/${oldAttachment}`)).status, 404, "Nova's delete of the old attachment finds nothing to do");
    assert.equal((await f.admin.get(`/v3/${p.id}/volumes/${tmpId}`)).status, 404);
    assert.equal(existsSync(backend(from).volumePath(id)), false, 'the old backend file is deleted');
    await assertSameData(v, dump);

    assert.equal((await f.admin.at('3.27').delete(`/v3/${p.id}/attachments/${newAttachment}`)).status, 200);
    assert.equal((await show(id)).status, 'available');
    await p.member.delete(`/volumes/${id}`);
    await f.volumes.drain();
    assert.equal(existsSync(backend(to).volumePath(tmpId!)), false);
  });

  test('an in-use retype (on-demand) that Nova refuses, or completes with error, leaves the volume in use where it was', async () => {
    const { id } = await volumeWithData('fast-type');
    const attachment = await attach(id, SERVER);
    const retype = () => action(id, { 'os-retype': { new_type: 'bulk-type', migration_policy: 'on-demand' } }, p.member);
    const untouched = async (why: string) => {
      const v = await show(id);
      assert.deepEqual([v.status, v.volume_type, backendOf(v), v['os-vol-mig-status-attr:name_id'], v['os-vol-mig-status-attr:migstat']], ['in-use', 'fast-type', 'fast', null, 'error'], why);
      assert.deepEqual(attachmentsOf(v), [[attachment, SERVER]], why);
      assert.ok(existsSync(fast.volumePath(id)), why);
      const temps = await f.database.db.selectFrom('volumes').select(['id', 'deleted']).where('migration_status', '=', `target:${id}`).execute();
      assert.ok(temps.length > 0 && temps.every((t) => t.deleted === 1 && !existsSync(bulk.volumePath(t.id))), `${why}: the target is deleted with its data`);
    };

    novaSwap = () => Promise.reject(new Error('Nova answered 400'));
    assert.equal((await retype()).status, 202);
    await f.volumes.drain();
    await untouched('Nova refused the swap');

    let target = '';
    novaSwap = async (_s, _o, newId) => void (target = newId);
    assert.equal((await retype()).status, 202);
    await f.volumes.drain();
    assert.equal((await show(id)).status, 'retyping');
    const failed = await action(id, { 'os-migrate_volume_completion': { new_volume: target, error: true } });
    assert.deepEqual([failed.status, failed.body], [200, { save_volume_id: id }]);
    await untouched('Nova failed the copy');

    // And the retype that works: the type changes with the backend.
    novaSwap = async (_s, _o, newId) => void (target = newId);
    assert.equal((await retype()).status, 202);
    await f.volumes.drain();
    const next = await attach(target, SERVER);
    assert.equal((await action(id, { 'os-migrate_volume_completion': { new_volume: target } })).status, 200);
    const v = await show(id);
    assert.deepEqual([v.status, v.volume_type, backendOf(v), v['os-vol-mig-status-attr:migstat']], ['in-use', 'bulk-type', 'bulk', 'success']);
    assert.deepEqual(attachmentsOf(v), [[next, SERVER]]);
    await f.admin.at('3.27').delete(`/v3/${p.id}/attachments/${next}`);
    await p.member.delete(`/volumes/${id}`);
    await f.volumes.drain();
  });
});
