import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { sharedCloud, type Cloud } from './cloud.ts';

/**
 * Compute microversions through the unmodified openstack CLI against `onestack up` where the
 * CLI speaks them (its SDK stops at 2.73 for servers and 2.61 for flavors): 2.81's image
 * pre-cache fills the real host's image cache, the one QEMU boots from.
 */
describe('openstack CLI: compute microversions', () => {
  let c: Cloud;
  const dir = tempDir('onestack-e2e-novamv-');
  /** `openstack --os-compute-api-version V ARGS -f json` as the cloud admin. */
  const os = (version: string, ...args: string[]) => c.os('onestack', '--os-compute-api-version', version, ...args);
  const osRaw = (version: string, ...args: string[]) => c.osRaw('onestack', '--os-compute-api-version', version, ...args);

  before(async () => {
    c = await sharedCloud('nova-microversions');
  });
  after(async () => {
    await c?.stop();
    dir.remove();
  });

  it('2.81: aggregate cache image puts the image into the image cache of the aggregate\'s host', async () => {
    const raw = join(dir.path, 'tiny.raw');
    writeFileSync(raw, Buffer.alloc(1024 * 1024));
    const image = await c.os('onestack', 'image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', raw, 'e2e-precache');
    const host = (await c.os('onestack', 'compute', 'service', 'list', '--service', 'nova-compute'))[0].Host as string;
    const agg = await os('2.81', 'aggregate', 'create', 'e2e-precache');
    try {
      await os('2.81', 'aggregate', 'add', 'host', String(agg.id), host);
      const cached = join(c.stateDir, 'nova', 'image-cache', image.id);
      assert.ok(!existsSync(cached));
      await osRaw('2.81', 'aggregate', 'cache', 'image', String(agg.id), image.id);
      for (let i = 0; i < 100 && !existsSync(cached); i++) await new Promise((r) => setTimeout(r, 200));
      assert.ok(existsSync(cached), `${cached} after the pre-cache`);
    } finally {
      await osRaw('2.81', 'aggregate', 'remove', 'host', String(agg.id), host).catch(() => undefined);
      await osRaw('2.81', 'aggregate', 'delete', String(agg.id));
      await c.osRaw('onestack', 'image', 'delete', image.id);
    }
  });
});
