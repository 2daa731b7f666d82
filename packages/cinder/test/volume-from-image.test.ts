import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { GlanceClient, startGlance, type GlanceFixture } from '../../glance/test/fixture.ts';
import { FileVolumeDriver } from '../src/drivers/file-driver.ts';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const GUEST_DIR = process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image');

/**
 * A volume from the project's guest image, through real Glance (downloaded with
 * the user's token) and the file driver on real qcow2: bootable, carrying the
 * image's metadata, and byte-equal to the image (`qemu-img compare`).
 */
describe('cinder volume from the guest image (Glance + file driver)', () => {
  let g: GlanceFixture;
  let f: CinderFixture;
  let p: Project;
  let driver: FileVolumeDriver;
  let image: string;

  before(async () => {
    // Reuses the cached build when its inputs are unchanged (about a second).
    await run(join(ROOT, 'images', 'build.sh'), ['--reuse', GUEST_DIR], { timeout: 900_000, maxBuffer: 8 * 1024 * 1024 });
    image = join(GUEST_DIR, 'onestack-guest.qcow2');
    assert.ok(existsSync(image));
    g = await startGlance();
    f = await startCinder({
      ks: g.ks,
      config: { glance_api_servers: g.url },
      driver: (state) => (driver = new FileVolumeDriver({ dir: join(state, 'cinder', 'volumes'), logger: pino({ level: 'silent' }) })),
    });
    p = await f.project('img');
  });
  after(async () => {
    await f?.close();
    await g?.close();
  });

  test('is bootable, carries volume_image_metadata and holds exactly the image', async () => {
    const glance = new GlanceClient(g.url, p.member.token);
    const created = await glance.post('/v2/images', { name: 'onestack-guest', disk_format: 'qcow2', container_format: 'bare', min_disk: 1 });
    assert.equal(created.status, 201, created.text);
    const id = created.body.id;
    const up = await glance.upload(id, Readable.toWeb(createReadStream(image)) as ReadableStream, { 'content-length': String(statSync(image).size) });
    assert.equal(up.status, 204, await up.text());
    const unknownImage = await p.member.post('/volumes', { volume: { size: 1, imageRef: '00000000-0000-4000-8000-000000000000' } });
    assert.equal(unknownImage.status, 404);
    assert.equal(unknownImage.body.itemNotFound.message, 'Image 00000000-0000-4000-8000-000000000000 could not be found.');
    const res = await p.member.post('/volumes', { volume: { size: 1, imageRef: id, name: 'boot' } });
    assert.equal(res.status, 202, res.text);
    const v = await f.waitFor(p.member, 'volumes', res.body.volume.id, ['available']);
    assert.equal(v.bootable, 'true');
    assert.equal(v.volume_image_metadata.image_id, id);
    assert.equal(v.volume_image_metadata.disk_format, 'qcow2');
    const path = driver.volumePath(v.id);
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', image, path]);
    const other = await f.project('img-other');
    const hidden = await other.member.post('/volumes', { volume: { size: 1, imageRef: id } });
    assert.equal(hidden.status, 404, 'a private image of another project is not found with that caller\'s token');
    assert.deepEqual(await import('node:fs/promises').then((fs) => fs.readdir(join(f.config.stateDir, 'cinder', 'conversion'))), [], 'the download is removed');

    // And back: os-volume_upload_image makes a bootable image of the volume's bytes.
    const up2 = await p.member.at('3.1').post(`/volumes/${v.id}/action`, { 'os-volume_upload_image': { image_name: 'from-volume', disk_format: 'qcow2' } });
    assert.equal(up2.status, 202, up2.text);
    const u = up2.body['os-volume_upload_image'];
    assert.equal(u.status, 'uploading');
    assert.equal(u.visibility, 'private');
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const made = await glance.get(`/v2/images/${u.image_id}`);
    assert.equal(made.body.status, 'active');
    assert.equal(made.body.disk_format, 'qcow2');
    assert.equal(made.body.min_disk, 1);
    const data = await glance.raw('GET', `/v2/images/${u.image_id}/file`);
    const copy = join(f.config.stateDir, 'from-volume.qcow2');
    await import('node:fs/promises').then(async (fs) => fs.writeFile(copy, Buffer.from(await data.arrayBuffer())));
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', image, copy]);
    assert.equal((await p.reader.post(`/volumes/${v.id}/action`, { 'os-volume_upload_image': { image_name: 'x' } })).status, 403);
  });
});
