import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { startCloud, type Cloud } from './cloud.ts';

interface Manifest {
  files: { qcow2: { size: number; sha256: string } };
  glance: { disk_format: string; container_format: string; min_disk: number; min_ram: number; properties: Record<string, string> };
}

/** `onestack up` builds the guest image (images/build.sh) and registers it once, through the Image API. */
describe('onestack up registers the guest image', () => {
  let c: Cloud;
  let manifest: Manifest;
  const guests = async (cloud = 'onestack-demo') => (await c.os(cloud, 'image', 'list', '--long')).filter((r: { Name: string }) => r.Name === 'onestack-guest');

  before(async () => {
    c = await startCloud();
    manifest = JSON.parse(readFileSync(join(c.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR!, 'onestack-guest.json'), 'utf8')) as Manifest;
  });
  after(() => c?.stop());

  it('lists onestack-guest as public and active to the demo project, as the manifest describes it', async () => {
    const [row, ...more] = await guests();
    assert.equal(more.length, 0);
    assert.equal(row.Visibility, 'public');
    assert.equal(row.Status, 'active');
    const shown = await c.os('onestack-demo', 'image', 'show', 'onestack-guest');
    assert.equal(shown.disk_format, manifest.glance.disk_format);
    assert.equal(shown.container_format, manifest.glance.container_format);
    assert.equal(shown.min_disk, manifest.glance.min_disk);
    assert.equal(shown.min_ram, manifest.glance.min_ram);
    assert.equal(shown.size, manifest.files.qcow2.size);
    for (const [k, v] of Object.entries(manifest.glance.properties)) assert.equal(shown.properties[k], v, k);
    assert.equal(shown.properties.onestack_guest_sha256, manifest.files.qcow2.sha256);
    assert.equal(shown.owner, (await c.os('onestack', 'project', 'show', 'admin')).id);
  });

  it('registers it once across restarts, and replaces an older build', async (t) => {
    const [first] = await guests();
    await c.onestack('down');
    let { stdout } = await c.onestack('up', '--detach');
    t.diagnostic(stdout.split('\n')[0]!);
    assert.match(stdout, new RegExp(`already registered \\(id ${first.ID}`));
    assert.deepEqual((await guests()).map((r: { ID: string }) => r.ID), [first.ID]);

    // What a rebuilt image (another checksum) looks like to the next up.
    await c.osRaw('onestack', 'image', 'set', '--property', `onestack_guest_sha256=${'0'.repeat(64)}`, first.ID);
    await c.onestack('down');
    ({ stdout } = await c.onestack('up', '--detach'));
    assert.match(stdout, new RegExp(`registered, replacing ${first.ID}`));
    const [second, ...more] = await guests();
    assert.equal(more.length, 0);
    assert.notEqual(second.ID, first.ID);
    assert.equal(second.Status, 'active');
    assert.equal((await c.os('onestack', 'image', 'show', second.ID)).properties.onestack_guest_sha256, manifest.files.qcow2.sha256);
  });

  it('comes up without it, warning, when the build fails', async () => {
    const scratch = tempDir('onestack-guest-fail-');
    // An empty output directory and a download cache that cannot be created: build.sh stops at once.
    const broken = await startCloud({ ONESTACK_ONESTACK__GUEST_IMAGE_DIR: join(scratch.path, 'out'), ONESTACK_IMAGE_CACHE: '/dev/null/cache' });
    try {
      assert.deepEqual(await broken.os('onestack', 'image', 'list'), []);
      assert.match(readFileSync(join(broken.stateDir, 'log', 'onestack.log'), 'utf8'), /warning: the guest image could not be built/);
    } finally {
      await broken.stop();
      scratch.remove();
    }
  });
});
