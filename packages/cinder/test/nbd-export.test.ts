import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { FileVolumeDriver } from '../src/drivers/file-driver.ts';
import { hasExited } from '@onestack/core/exec/process-exit.ts';
import { NbdExports } from '../src/drivers/nbd-exports.ts';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

const logger = pino({ level: 'silent' });
const alive = async (pid: number) => !(await hasExited(pid));
const MiB = 1024 * 1024;

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });


/** qemu-io's report of reading 64 KiB of 0x5a at offset (it fails the command when a byte differs). */
async function pattern(source: string, format: string, offset: number): Promise<string> {
  const { stdout } = await runCommand('qemu-io', ['-f', format, '-r', '-c', `read -P 0x5a ${offset} 65536`, positional(source)], { logger, timeoutMs: 30_000 });
  return stdout;
}

/**
 * The file driver's NBD export for a connector of another host: a real
 * qemu-storage-daemon on loopback serving the qcow2 volume raw, one per attachment,
 * gone with the attachment and brought back by a service restart.
 */
describe('cinder NBD export (file driver, qemu-storage-daemon)', () => {
  let f: CinderFixture;
  let p: Project;
  let driver: FileVolumeDriver;
  let exports: NbdExports;

  before(async () => {
    f = await startCinder({
      driver: (state) => {
        exports = new NbdExports({ runDir: join(state, 'nbd'), listenAddress: '127.0.0.1', logger });
        return (driver = new FileVolumeDriver({ dir: join(state, 'volumes'), backendName: 'file', logger, host: 'cinder-host', nbd: { exports, mode: 'remote' } }));
      },
    });
    p = await f.project('nbd');
  });
  after(async () => {
    await exports?.stopAll();
    await f?.close();
  });

  test('remote connector: export served raw, same bytes; delete ends the daemon and closes the port; restart restores open ones', async () => {
    const m = p.member.at('3.44');
    const vol = (await m.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(m, 'volumes', vol.id, ['available']);
    const file = driver.volumePath(vol.id);
    await runCommand('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${3 * MiB} 65536`, positional(file)], { logger, timeoutMs: 30_000 });

    // A local connector opens the file itself.
    const local = await m.post('/attachments', { attachment: { volume_uuid: vol.id, instance_uuid: '11111111-1111-4111-8111-111111111111', connector: { host: 'cinder-host' } } });
    assert.equal(local.status, 200, local.text);
    assert.equal(local.body.attachment.connection_info.driver_volume_type, 'file');
    assert.equal((await m.delete(`/attachments/${local.body.attachment.id}`)).status, 200);

    const res = await m.post('/attachments', { attachment: { volume_uuid: vol.id, instance_uuid: '22222222-2222-4222-8222-222222222222', connector: { host: 'compute-2', ip: '127.0.0.1' } } });
    assert.equal(res.status, 200, res.text);
    const att = res.body.attachment;
    const ci = att.connection_info;
    assert.equal(ci.driver_volume_type, 'nbd');
    assert.equal(ci.host, '127.0.0.1');
    assert.equal(ci.format, 'raw');
    assert.equal(ci.access_mode, 'rw');
    assert.equal(ci.export_name, `volume-${vol.id}`);
    const url = `nbd://127.0.0.1:${ci.port}/${ci.export_name}`;
    assert.match(await pattern(url, 'raw', 3 * MiB), /read 65536\/65536 bytes/);
    // Byte for byte: the whole export against the qcow2's content.
    const cmp = await runCommand('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', '--', positional(url), positional(file)], { logger, timeoutMs: 120_000 });
    assert.match(cmp.stdout, /Images are identical/);

    const key = `attachment-${att.id}`;
    const pid = await exports.pid(key);
    assert.ok(pid && (await alive(pid)), 'daemon runs');

    // Service restart: the export is stopped with the service and served again on the same port.
    await driver.close();
    assert.equal(await alive(pid!), false);
    assert.equal(await portOpen(ci.port), false);
    await f.volumes.restoreConnections();
    const pid2 = await exports.pid(key);
    assert.ok(pid2 && pid2 !== pid);
    assert.match(await pattern(url, 'raw', 3 * MiB), /read 65536\/65536 bytes/);

    assert.equal((await m.delete(`/attachments/${att.id}`)).status, 200);
    assert.equal(await alive(pid2!), false, 'daemon gone after the attachment delete');
    assert.equal(await portOpen(ci.port), false, 'port closed');
    assert.deepEqual(await exports.keys(), []);
    assert.equal((await m.get(`/volumes/${vol.id}`)).body.volume.status, 'available');
  });

  test('multiattach: read-only exports share the volume; a second writer is refused and leaves nothing behind', async () => {
    const m = p.member.at('3.54');
    const vol = (await m.post('/volumes', { volume: { size: 1, multiattach: true } })).body.volume;
    await f.waitFor(m, 'volumes', vol.id, ['available']);
    const attach = (n: number, mode: string) =>
      m.post('/attachments', { attachment: { volume_uuid: vol.id, instance_uuid: `4444444${n}-4444-4444-8444-444444444444`, mode, connector: { host: `compute-${n}` } } });
    const w = await attach(1, 'rw');
    assert.equal(w.status, 200, w.text);
    await m.post(`/attachments/${w.body.attachment.id}/action`, { 'os-complete': null });
    const r1 = await attach(2, 'ro');
    const r2 = await attach(3, 'ro');
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r2.status, 200, r2.text);
    for (const r of [r1, r2]) {
      const ci = r.body.attachment.connection_info;
      assert.equal(ci.access_mode, 'ro');
      await runCommand('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0 0 4096', positional(`nbd://127.0.0.1:${ci.port}/${ci.export_name}`)], { logger, timeoutMs: 30_000 });
    }
    const keysBefore = (await exports.keys()).sort();
    const second = await attach(5, 'rw');
    assert.equal(second.status, 500, second.text);
    assert.deepEqual((await exports.keys()).sort(), keysBefore);
    const left = (await m.get('/attachments')).body.attachments.filter((a: { volume_id: string }) => a.volume_id === vol.id);
    assert.equal(left.length, 3);
    assert.equal((await m.get(`/volumes/${vol.id}`)).body.volume.status, 'in-use');
    for (const a of [w, r1, r2]) assert.equal((await m.delete(`/attachments/${a.body.attachment.id}`)).status, 200);
    assert.deepEqual(await exports.keys(), []);
  });

  test('a restart ends exports whose attachment is gone (a crash left them running)', async () => {
    const vol = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', vol.id, ['available']);
    const orphan = await exports.start('attachment-33333333-3333-4333-8333-333333333333', { path: driver.volumePath(vol.id), format: 'qcow2', readOnly: true, exportName: 'x' });
    const pid = await exports.pid('attachment-33333333-3333-4333-8333-333333333333');
    assert.ok(pid);
    await f.volumes.restoreConnections();
    assert.equal(await alive(pid!), false);
    assert.equal(await portOpen(orphan.port), false);
    assert.deepEqual(await exports.keys(), []);
  });
});
