import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { ADMIN_PASSWORD } from '../packages/keystone/test/fixture.ts';
import { startCinder, type CinderFixture } from '../packages/cinder/test/fixture.ts';
import { FileVolumeDriver } from '../packages/cinder/src/drivers/file-driver.ts';

const CINDER = '/usr/bin/cinder';
const HOST = 'cinder-host@file';
const logger = { info: () => undefined, warn: () => undefined };

/**
 * The unmodified python-cinderclient (Debian's openstackclient 6.0 has no command for
 * these: no `volume create --remote-source`, no log level or cleanup commands) against
 * Cinder on the file driver: manageable-list, manage, unmanage, work-cleanup,
 * service-set-log/get-log and failover-host.
 */
describe('cinder CLI: manage existing, workers cleanup, log levels, failover', () => {
  let f: CinderFixture;
  let dir: string;
  const home = tempDir('onestack-cinder-manage-cli-');
  const cinder = async (version: string, ...args: string[]) => {
    // Only these variables, so no clouds.yaml or OS_* of the caller's leaks in.
    const env = { PATH: process.env.PATH, HOME: home.path, OS_AUTH_URL: `${f.ks.url}/v3`, OS_USERNAME: 'admin', OS_USER_DOMAIN_NAME: 'Default', OS_PASSWORD: ADMIN_PASSWORD, OS_PROJECT_NAME: 'admin', OS_PROJECT_DOMAIN_ID: 'default' };
    return (await promisify(execFile)(CINDER, ['--os-volume-api-version', version, ...args], { env, timeout: 60_000 })).stdout;
  };
  /** cinderclient's failures: the exit status and what it printed. */
  const cinderFails = async (version: string, ...args: string[]) => cinder(version, ...args).then(
    (out) => assert.fail(`expected a failure, got ${out}`),
    (e: { stderr: string }) => e.stderr,
  );

  before(async () => {
    f = await startCinder({
      driver: (state) => {
        dir = join(state, 'volumes');
        return new FileVolumeDriver({ dir, logger, host: 'cinder-host' });
      },
    });
    for (const type of ['block-storage', 'volumev3']) await ensureEndpoints(f.ks.ks, { type, name: type === 'volumev3' ? 'cinderv3' : 'cinder', regionId: 'RegionOne', urls: { public: `${f.url}/v3/%(project_id)s` } });
    await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', positional(join(dir, 'found.qcow2')), '1G'], { logger, timeoutMs: 30_000 });
    await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', positional(join(dir, 'hostile.qcow2')), '1G'], { logger, timeoutMs: 30_000 });
  });
  after(async () => {
    await f?.close();
    home.remove();
  });

  test('manageable-list, manage, unmanage', async () => {
    const listed = await cinder('3.8', 'manageable-list', '--detailed', 'True', HOST);
    assert.match(listed, /found\.qcow2.*\|\s*1\s*\|\s*True/);
    assert.match(listed, /hostile\.qcow2.*\|\s*1\s*\|\s*False\s*\|\s*not a safe qcow2 image/);
    assert.match(await cinderFails('3.8', 'manage', HOST, 'hostile.qcow2'), /Manage existing volume failed due to invalid backend reference .*hostile\.qcow2.*backing.*\(HTTP 400\)/);
    assert.match(await cinderFails('3.8', 'manage', HOST, '../../etc/passwd'), /not a path.*\(HTTP 400\)/);
    const managed = await cinder('3.8', 'manage', '--name', 'adopted', HOST, 'found.qcow2');
    const id = /\|\s*id\s*\|\s*([0-9a-f-]{36})/.exec(managed)![1];
    await f.waitFor(f.admin, 'volumes', id, ['available']);
    assert.match(await cinder('3.8', 'manageable-list', HOST), new RegExp(`volume-${id}\\.qcow2.*\\|\\s*False`));
    await cinder('3.8', 'unmanage', id);
    await f.volumes.drain();
    assert.equal((await f.admin.get(`/volumes/${id}`)).status, 404);
    assert.ok(existsSync(join(dir, `volume-${id}.qcow2`)), 'the data stays on the backend');
  });

  test('work-cleanup, service-set-log/get-log, failover-host', async () => {
    const cleanup = await cinder('3.24', 'work-cleanup', '--host', 'cinder-host', '--is-up', 'true', '--binary', 'cinder-volume');
    assert.match(cleanup, /Following services will be cleaned/);
    assert.match(cleanup, new RegExp(`${HOST}\\s*\\|\\s*cinder-volume`));
    await cinder('3.32', 'service-set-log', '--binary', 'cinder-volume', '--prefix', 'cinder', 'debug');
    const levels = await cinder('3.32', 'service-get-log', '--binary', 'cinder-volume');
    assert.match(levels, new RegExp(`cinder-volume\\s*\\|\\s*${HOST}\\s*\\|\\s*cinder.volume\\s*\\|\\s*DEBUG`));
    assert.match(await cinderFails('3.32', 'failover-host', HOST), /replication_status in \['cinder-host@file'\] must be \['enabled', 'failed-over'\].*\(HTTP 400\)/);
  });
});
