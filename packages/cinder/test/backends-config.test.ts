import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

/** The backends `[cinder] enabled_backends` names, made as `onestack serve cinder` makes them. */
describe('cinder configured backends (enabled_backends, nbd_export)', () => {
  let f: CinderFixture;
  let p: Project;

  before(async () => {
    f = await startCinder({ configuredDrivers: true, config: { enabled_backends: 'fast:qcow2, bulk:raw', nbd_export: 'always' } });
    p = await f.project('cfg');
  });
  after(() => f?.close());

  test('one cinder-volume service per backend, volumes in <volumes_dir>/<name> in its format, connections as NBD exports', async () => {
    const services = (await f.admin.get('/os-services')).body.services.filter((s: { binary: string }) => s.binary === 'cinder-volume');
    assert.deepEqual(services.map((s: { host: string }) => s.host).sort(), ['cinder-host@bulk', 'cinder-host@fast']);
    assert.equal((await f.admin.post('/types', { volume_type: { name: 'bulk-type', extra_specs: { volume_backend_name: 'bulk' } } })).status, 200);
    const v = (await p.member.post('/volumes', { volume: { size: 1, volume_type: 'bulk-type' } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const file = join(f.config.stateDir, 'cinder', 'volumes', 'bulk', `volume-${v.id}.raw`);
    assert.ok(existsSync(file), file);
    const m = p.member.at('3.44');
    const a = await m.post('/attachments', { attachment: { volume_uuid: v.id, connector: { host: 'cinder-host' } } });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.body.attachment.connection_info.driver_volume_type, 'nbd');
    assert.equal((await m.delete(`/attachments/${a.body.attachment.id}`)).status, 200);
    assert.equal((await p.member.delete(`/volumes/${v.id}`)).status, 202);
    await f.volumes.drain();
    assert.equal(existsSync(file), false);
  });

  test('a malformed enabled_backends stops the service at start', async () => {
    await assert.rejects(startCinder({ ks: f.ks, configuredDrivers: true, config: { enabled_backends: 'a:vmdk' } }), /backend a has format vmdk, not qcow2 or raw/);
  });
});
