import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { buildConfigDrive } from './config-drive.ts';

const scratch = tempDir('onestack-configdrive-test-');
after(() => scratch.remove());
const logger = { info: () => {}, warn: () => {} };

describe('buildConfigDrive', () => {
  it('writes an ISO 9660 labelled config-2 whose files read back as given', async () => {
    const out = join(scratch.path, 'cd.iso');
    const md = JSON.stringify({ uuid: 'u', hostname: 'vm.novalocal' });
    await buildConfigDrive({ 'openstack/latest/meta_data.json': md, 'openstack/latest/user_data': Buffer.from('#!/bin/sh\necho hi\n') }, out, { logger });
    const pvd = execFileSync('isoinfo', ['-d', '-i', out], { encoding: 'utf8' });
    assert.match(pvd, /Volume id: config-2/);
    assert.match(pvd, /Rock Ridge/);
    assert.equal(execFileSync('isoinfo', ['-R', '-i', out, '-x', '/openstack/latest/meta_data.json'], { encoding: 'utf8' }), md);
    assert.equal(execFileSync('isoinfo', ['-R', '-i', out, '-x', '/openstack/latest/user_data'], { encoding: 'utf8' }), '#!/bin/sh\necho hi\n');
  });

  it('refuses paths that leave the drive, and leaves no image behind', async () => {
    const out = join(scratch.path, 'bad.iso');
    for (const p of ['../etc/passwd', '/abs', 'openstack/../../x', 'a//b', 'ok/-dash/../x']) {
      await assert.rejects(buildConfigDrive({ [p]: 'x' }, out, { logger }), /invalid config drive path/);
    }
    assert.equal(existsSync(out), false);
  });
});
