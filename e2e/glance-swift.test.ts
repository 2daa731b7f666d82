import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { addCloud, startCloud, stateFiles, type Cloud } from './cloud.ts';

const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/**
 * `onestack up` with `[glance] default_store = swift`: `up` registers the guest
 * image into Swift, and the unmodified openstack CLI uploads and downloads images
 * that live there, in the Glance service user's account; deleting one leaves
 * nothing of it.
 */
describe('onestack up with Glance images in Swift', () => {
  let c: Cloud;
  const files = tempDir('onestack-glance-swift-e2e-');
  const file = (name: string) => join(files.path, name);
  const bytes = randomBytes(3 * MiB + 321);

  before(async () => {
    c = await startCloud({
      ONESTACK_GLANCE__DEFAULT_STORE: 'swift',
      // Small segments, so that this image is a static large object of four.
      ONESTACK_GLANCE__SWIFT_STORE_LARGE_OBJECT_SIZE: '2',
      ONESTACK_GLANCE__SWIFT_STORE_LARGE_OBJECT_CHUNK_SIZE: '1',
    });
    writeFileSync(file('disk.raw'), bytes);
    const secrets = JSON.parse(readFileSync(join(c.stateDir, 'secrets.json'), 'utf8')) as { service_passwords: Record<string, string> };
    addCloud(c, 'e2e-glance', { username: 'glance', password: secrets.service_passwords.glance, project_name: 'service' });
  });
  after(async () => {
    await c?.stop();
    files.remove();
  });

  it('has the guest image that up registered in Swift', async () => {
    const guest = await c.os('onestack', 'image', 'show', 'onestack-guest');
    assert.equal(guest.status, 'active');
    assert.equal(guest.stores ?? guest.properties?.stores, 'swift', JSON.stringify(guest));
  });

  it('uploads into Swift, downloads byte-identical, deletes leaving nothing', async () => {
    assert.deepEqual(
      ((await c.osRaw('onestack-demo', 'image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', file('disk.raw'), 'in-swift', '-f', 'value', '-c', 'id')) as string).trim().length,
      36,
    );
    const img = await c.os('onestack-demo', 'image', 'show', 'in-swift');
    assert.equal(img.status, 'active');
    // The CLI files fields it does not know under properties.
    assert.equal(img.stores ?? img.properties?.stores, 'swift', JSON.stringify(img));
    assert.equal(img.checksum, md5(bytes));
    await c.osRaw('onestack-demo', 'image', 'save', '--file', file('back.raw'), 'in-swift');
    assert.ok(readFileSync(file('back.raw')).equals(bytes), 'downloaded byte-identical');

    assert.deepEqual(stateFiles(c, 'glance', 'images'), [], 'nothing in the file store');
    // In the service project's account: the manifest named by the image id and its four segments.
    const ofImage = async () => ((await c.os('e2e-glance', 'object', 'list', 'glance', '--prefix', img.id)) as { Name: string }[]).map((o) => o.Name);
    const objects = await ofImage();
    assert.equal(objects.length, 5, JSON.stringify(objects));
    assert.ok(objects.includes(img.id));

    await c.osRaw('onestack-demo', 'image', 'delete', 'in-swift');
    assert.deepEqual(await ofImage(), []);
  });
});
