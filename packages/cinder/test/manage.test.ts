import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { FileVolumeDriver } from '../src/drivers/file-driver.ts';
import { startCinder, type CinderClient, type CinderFixture, type Project } from './fixture.ts';

const logger = { info: () => undefined, warn: () => undefined };
const HOST = 'cinder-host@file';
const qemu = (tool: 'qemu-img' | 'qemu-io', args: Parameters<typeof runCommand>[1]) => runCommand(tool, args, { logger, timeoutMs: 60_000 });

/** The byte at 1 MiB of a qcow2 file, read back with qemu-io. */
async function byteAt1M(path: string): Promise<number> {
  const { stdout } = await qemu('qemu-io', ['-f', 'qcow2', '-r', '-c', `read -v ${1024 * 1024} 16`, positional(path)]);
  return parseInt(stdout.split('\n').find((l) => /^[0-9a-f]{8}:/.test(l))!.slice(10).trim().slice(0, 2), 16);
}

describe('cinder manage existing (3.8, 3.17) on the file driver', () => {
  let f: CinderFixture;
  let p: Project;
  let dir: string;
  let driver: FileVolumeDriver;
  let admin: CinderClient;

  before(async () => {
    f = await startCinder({
      driver: (state) => {
        dir = join(state, 'volumes');
        driver = new FileVolumeDriver({ dir, logger, host: 'cinder-host' });
        return driver;
      },
    });
    p = await f.project('manager');
    admin = f.admin.at('3.8');
    await driver.doSetup();
    await qemu('qemu-img', ['create', '-q', '-f', 'qcow2', positional(join(dir, 'legacy.qcow2')), String(1.5 * 1024 ** 3)]);
    await qemu('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5e ${1024 * 1024} 4096`, positional(join(dir, 'legacy.qcow2'))]);
    await qemu('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', positional(join(dir, 'evil.qcow2')), '1G']);
    await qemu('qemu-img', ['create', '-q', '-f', 'raw', positional(join(dir, 'plain.img')), '1G']);
  });
  after(() => f?.close());

  const detail = async (query: string) => {
    const r = await admin.get(`/manageable_volumes/detail?${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body['manageable-volumes'] as { reference: { 'source-name': string }; size: number; safe_to_manage: boolean; reason_not_safe: string | null; cinder_id: string | null; extra_info: null }[];
  };

  test('listing: backend files with safe_to_manage and the reason; sort, marker, limit; upstream\'s errors; admins only', async () => {
    const all = await detail(`host=${HOST}`);
    assert.deepEqual(all.map((e) => e.reference['source-name']), ['plain.img', 'legacy.qcow2', 'evil.qcow2'], 'reference, descending by default');
    const legacy = all.find((e) => e.reference['source-name'] === 'legacy.qcow2')!;
    assert.deepEqual(legacy, { reference: { 'source-name': 'legacy.qcow2' }, size: 2, safe_to_manage: true, reason_not_safe: null, cinder_id: null, extra_info: null });
    const evil = all.find((e) => e.reference['source-name'] === 'evil.qcow2')!;
    assert.equal(evil.safe_to_manage, false);
    assert.match(evil.reason_not_safe!, /backing/);
    assert.match(all.find((e) => e.reference['source-name'] === 'plain.img')!.reason_not_safe!, /declared qcow2 but the content is raw/);

    const summary = (await admin.get(`/manageable_volumes?host=${HOST}&sort=reference:asc&limit=1&marker=${encodeURIComponent(JSON.stringify({ 'source-name': 'evil.qcow2' }))}`)).body;
    assert.deepEqual(summary, { 'manageable-volumes': [{ reference: { 'source-name': 'legacy.qcow2' }, size: 2, safe_to_manage: true }] });
    assert.equal((await f.admin.get(`/os-volume-manage?host=${HOST}`)).body['manageable-volumes'].length, 3, 'the extension path at 3.0');

    const bad = async (path: string, status: number, message: string, client = admin) => {
      const r = await client.get(path);
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
      if (message) assert.equal(Object.values(r.body as Record<string, { message: string }>)[0].message, message, path);
    };
    await bad('/manageable_volumes', 400, 'Invalid input received: Host field is missing.');
    await bad(`/manageable_volumes?host=${HOST}&sort=name`, 400, 'Invalid sort keys passed: name');
    await bad(`/manageable_volumes?host=${HOST}&sort_dir=up`, 400, 'Invalid sort dirs passed: up');
    await bad(`/manageable_volumes?host=${HOST}&marker=nope`, 400, 'Invalid input received: marker nope can not be analysed, please use json like format');
    await bad('/manageable_volumes?host=elsewhere@file', 400, "Host 'elsewhere@file' not found");
    await bad(`/manageable_volumes?host=${HOST}&cluster=c1`, 400, 'Invalid input received: One and only one of cluster and host must be set.', f.admin.at('3.17'));
    await bad('/manageable_volumes?cluster=c1', 400, "Cluster 'c1' not found", f.admin.at('3.17'));
    await bad(`/manageable_volumes?host=${HOST}`, 404, 'API version 3.7 is not supported on this method.', f.admin.at('3.7'));
    await bad(`/manageable_volumes?host=${HOST}`, 403, 'Policy doesn\'t allow volume_extension:list_manageable to be performed.', p.member.at('3.8'));
    await bad(`/manageable_snapshots?host=${HOST}`, 403, 'Policy doesn\'t allow snapshot_extension:list_manageable to be performed.', p.member.at('3.8'));
  });

  test('manage: traversal, hostile and missing files are 400s leaving nothing; a good file becomes an available volume with its data and size', async () => {
    const manage = (body: unknown, client = admin) => client.post('/manageable_volumes', body);
    const before = (await f.admin.get('/volumes?all_tenants=1')).body.volumes.length;
    for (const [name, reason] of [
      ['../../../etc/passwd', 'source-name must name a file in the backend directory, not a path.'],
      ['.partial', 'source-name must name a file in the backend directory, not a path.'],
      ['nothing-here', 'no such file in the backend directory'],
    ]) {
      const r = await manage({ volume: { host: HOST, ref: { 'source-name': name } } });
      assert.equal(r.status, 400, name);
      assert.equal(r.body.badRequest.message, `Manage existing volume failed due to invalid backend reference {'source-name': '${name}'}: ${reason}`);
    }
    const evil = await manage({ volume: { host: HOST, ref: { 'source-name': 'evil.qcow2' } } });
    assert.equal(evil.status, 400);
    assert.match(evil.body.badRequest.message, /^Manage existing volume failed due to invalid backend reference \{'source-name': 'evil.qcow2'\}: not a safe qcow2 image: .*backing/);
    assert.ok(existsSync(join(dir, 'evil.qcow2')), 'a refused file stays where it was');
    assert.equal((await manage({ volume: { host: HOST } })).body.badRequest.message, "Invalid input for field/attribute volume. Value: {'host': 'cinder-host@file'}. 'ref' is a required property");
    assert.equal((await manage({ volume: { ref: { 'source-name': 'legacy.qcow2' } } })).body.badRequest.message, 'Invalid input received: Host field is missing.');
    assert.match((await manage({ volume: { host: HOST, cluster: 'c', ref: {} } })).body.badRequest.message, /'cluster' was unexpected/);
    assert.equal((await manage({ volume: { host: HOST, volume_type: 'nope', ref: { 'source-name': 'legacy.qcow2' } } })).body.badRequest.message, "Invalid volume type: Cannot find requested 'nope' volume type");
    assert.equal((await manage({ volume: { host: HOST, ref: { 'source-name': 'legacy.qcow2' } } }, p.member.at('3.8'))).status, 403);
    assert.equal((await f.admin.at('3.7').post('/manageable_volumes', { volume: { host: HOST, ref: { 'source-name': 'legacy.qcow2' } } })).status, 404);
    assert.equal((await f.admin.get('/volumes?all_tenants=1')).body.volumes.length, before, 'nothing recorded');

    // The extension path answers at every version.
    const r = await f.admin.post('/os-volume-manage', { volume: { host: `${HOST}#file`, ref: { 'source-name': 'legacy.qcow2' }, name: ' old disk ', bootable: true, metadata: { from: 'legacy' } } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.volume.status, 'managing');
    assert.equal(r.body.volume.size, 2);
    const v = await f.waitFor(f.admin, 'volumes', r.body.volume.id, ['available']);
    assert.deepEqual([v.name, v.bootable, v.metadata, v['os-vol-host-attr:host']], ['old disk', 'true', { from: 'legacy' }, `${HOST}#file`]);
    assert.equal(existsSync(join(dir, 'legacy.qcow2')), false);
    assert.equal(await byteAt1M(driver.volumePath(v.id)), 0x5e, 'the data is the volume\'s');
    const listed = (await detail(`host=${HOST}`)).find((e) => e.cinder_id === v.id)!;
    assert.deepEqual([listed.reference['source-name'], listed.safe_to_manage, listed.reason_not_safe], [`volume-${v.id}.qcow2`, false, 'already managed']);
    const twice = await manage({ volume: { host: HOST, ref: listed.reference } });
    assert.equal(twice.body.badRequest.message, 'Invalid volume: Unable to manage existing volume. The volume is already managed');

    // Unmanage: admins only, the volume leaves Cinder, the file stays and can be managed again.
    assert.equal((await p.member.post(`/volumes/${v.id}/action`, { 'os-unmanage': {} })).status, 404, 'another project\'s volume');
    const un = await f.admin.post(`/volumes/${v.id}/action`, { 'os-unmanage': {} });
    assert.equal(un.status, 202);
    await f.volumes.drain();
    assert.equal((await f.admin.get(`/volumes/${v.id}`)).status, 404);
    assert.ok(existsSync(driver.volumePath(v.id)));
    const free = (await detail(`host=${HOST}`)).find((e) => e.reference['source-name'] === `volume-${v.id}.qcow2`)!;
    assert.deepEqual([free.safe_to_manage, free.cinder_id], [true, null]);
    const again = await manage({ volume: { host: HOST, ref: free.reference } });
    assert.equal(again.status, 202);
    const back = await f.waitFor(f.admin, 'volumes', again.body.volume.id, ['available']);
    assert.equal(await byteAt1M(driver.volumePath(back.id)), 0x5e);
  });

  test('a member may not unmanage; unmanage refuses a volume with snapshots', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const r = await p.member.post(`/volumes/${v.id}/action`, { 'os-unmanage': {} });
    assert.equal(r.status, 403);
    const s = (await p.member.post('/snapshots', { snapshot: { volume_id: v.id } })).body.snapshot;
    await f.waitFor(p.member, 'snapshots', s.id, ['available']);
    const refused = await f.admin.post(`/volumes/${v.id}/action`, { 'os-unmanage': {} });
    assert.equal(refused.status, 400);
    assert.match(refused.body.badRequest.message, /^Invalid volume: Volume status must be available or error .* have snapshots/);
  });

  test('snapshots: listed with source_reference, unmanaged (file kept) and managed back into a snapshot volumes can be made from', async () => {
    const v = (await f.admin.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(f.admin, 'volumes', v.id, ['available']);
    await qemu('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x6f ${1024 * 1024} 4096`, positional(driver.volumePath(v.id))]);
    const s = (await f.admin.post('/snapshots', { snapshot: { volume_id: v.id } })).body.snapshot;
    await f.waitFor(f.admin, 'snapshots', s.id, ['available']);
    const list = async () => (await admin.get(`/manageable_snapshots/detail?host=${HOST}`)).body['manageable-snapshots'] as Record<string, unknown>[];
    assert.deepEqual((await list()).find((e) => e.cinder_id === s.id), { reference: { 'source-name': `snapshot-${s.id}.qcow2` }, size: 1, safe_to_manage: false, reason_not_safe: 'already managed', cinder_id: s.id, extra_info: null, source_reference: null });
    assert.equal((await p.member.post(`/snapshots/${s.id}/action`, { 'os-unmanage': {} })).status, 404);
    assert.equal((await f.admin.post(`/snapshots/${s.id}/action`, { 'os-unmanage': {} })).status, 202);
    await f.volumes.drain();
    assert.equal((await f.admin.get(`/snapshots/${s.id}`)).status, 404);
    assert.equal((await list()).find((e) => (e.reference as Record<string, string>)['source-name'] === `snapshot-${s.id}.qcow2`)?.safe_to_manage, true);

    const body = { snapshot: { volume_id: v.id, ref: { 'source-name': `snapshot-${s.id}.qcow2` }, name: 'adopted' } };
    assert.equal((await p.member.at('3.8').post('/manageable_snapshots', body)).status, 404, 'the member cannot see the admin\'s volume');
    assert.equal((await admin.post('/manageable_snapshots', { snapshot: { volume_id: v.id, ref: { 'source-name': '../x' } } })).status, 400);
    assert.match((await admin.post('/manageable_snapshots', { snapshot: { ref: {} } })).body.badRequest.message, /'volume_id' is a required property/);
    const m = await admin.post('/manageable_snapshots', body);
    assert.equal(m.status, 202, JSON.stringify(m.body));
    const snap = await f.waitFor(f.admin, 'snapshots', m.body.snapshot.id, ['available']);
    assert.deepEqual([snap.name, snap.size, snap.volume_id], ['adopted', 1, v.id]);
    const fromSnap = (await f.admin.post('/volumes', { volume: { snapshot_id: snap.id } })).body.volume;
    await f.waitFor(f.admin, 'volumes', fromSnap.id, ['available']);
    assert.equal(await byteAt1M(driver.volumePath(fromSnap.id)), 0x6f);
  });
});
