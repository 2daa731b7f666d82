import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { positional, runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { ADMIN_PASSWORD } from '../packages/keystone/test/fixture.ts';
import { startGlance, type GlanceFixture } from '../packages/glance/test/fixture.ts';
import { startCinder, type CinderFixture } from '../packages/cinder/test/fixture.ts';
import { FileVolumeDriver } from '../packages/cinder/src/drivers/file-driver.ts';
import { openstack } from './openstack-cli.ts';

const logger = pino({ level: 'silent' });

/**
 * The unmodified openstack CLI moving volumes between two real file backends of
 * one Cinder (qcow2 `fast`, raw `bulk`): `volume migrate` and `volume set --type
 * --retype-policy`, the data checked with qemu-img after each move.
 */
describe('openstack CLI: volume migrate and retype between backends', () => {
  let f: CinderFixture;
  let g: GlanceFixture;
  let fast: FileVolumeDriver;
  let bulk: FileVolumeDriver;
  const home = tempDir('onestack-cinder-migcli-');
  const osRaw = async (...args: string[]) => {
    const env = { PATH: process.env.PATH, HOME: home.path, OS_AUTH_URL: `${f.ks.url}/v3`, OS_IDENTITY_API_VERSION: '3', OS_USERNAME: 'admin', OS_USER_DOMAIN_NAME: 'Default', OS_PASSWORD: ADMIN_PASSWORD, OS_PROJECT_NAME: 'admin', OS_PROJECT_DOMAIN_ID: 'default' };
    return (await openstack(args, { env })).stdout;
  };
  const os = async (...args: string[]) => JSON.parse(await osRaw(...args, '-f', 'json'));
  const backendOf = (v: Record<string, string>) => v['os-vol-host-attr:host'].split('@')[1].split('#')[0];
  const driverOf = (name: string) => (name === 'fast' ? fast : bulk);

  before(async () => {
    g = await startGlance();
    f = await startCinder({
      ks: g.ks,
      drivers: (state) => [
        (fast = new FileVolumeDriver({ dir: join(state, 'fast'), backendName: 'fast', format: 'qcow2', logger })),
        (bulk = new FileVolumeDriver({ dir: join(state, 'bulk'), backendName: 'bulk', format: 'raw', logger })),
      ],
    });
    await ensureEndpoints(f.ks.ks, { type: 'block-storage', name: 'cinder', regionId: 'RegionOne', urls: { public: `${f.url}/v3/%(project_id)s` } });
  });
  after(async () => {
    await f?.close();
    await g?.close();
    home.remove();
  });

  /** Reads 64 KiB at 7 MiB of the volume's data where it now lives; qemu-io fails the command on another pattern. */
  const checkPattern = async (v: Record<string, string>) => {
    const d = driverOf(backendOf(v));
    const name = v['os-vol-mig-status-attr:name_id'] ?? v.id;
    await runCommand('qemu-io', ['-f', d.format, '-r', '-c', 'read -P 0x6b 7M 64k', positional(d.volumePath(name))], { logger, timeoutMs: 30_000 });
  };

  test('volume migrate --host, then volume set --type with --retype-policy never and on-demand', async () => {
    await os('volume', 'type', 'create', '--property', 'volume_backend_name=fast', 'fast-type');
    await os('volume', 'type', 'create', '--property', 'volume_backend_name=bulk', 'bulk-type');
    const v = await os('volume', 'create', '--size', '1', '--type', 'fast-type', 'mig-vol');
    await f.volumes.drain();
    let shown = await os('volume', 'show', v.id);
    assert.equal(backendOf(shown), 'fast');
    await runCommand('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x6b 7M 64k', positional(fast.volumePath(v.id))], { logger, timeoutMs: 30_000 });

    // The volume's type asks for fast: the scheduler refuses bulk, the volume stays (migstat error).
    await osRaw('volume', 'migrate', '--host', 'cinder-host@bulk#bulk', v.id);
    await f.volumes.drain();
    shown = await os('volume', 'show', v.id);
    assert.deepEqual([shown.status, backendOf(shown), shown['os-vol-mig-status-attr:migstat']], ['available', 'fast', 'error']);

    await osRaw('volume', 'set', '--type', 'bulk-type', '--retype-policy', 'never', v.id);
    await f.volumes.drain();
    shown = await os('volume', 'show', v.id);
    assert.deepEqual([shown.status, shown.type, backendOf(shown)], ['available', 'fast-type', 'fast']);

    await osRaw('volume', 'set', '--type', 'bulk-type', '--retype-policy', 'on-demand', v.id);
    await f.volumes.drain();
    shown = await os('volume', 'show', v.id);
    assert.deepEqual([shown.status, shown.type, backendOf(shown), shown['os-vol-mig-status-attr:migstat']], ['available', 'bulk-type', 'bulk', 'success']);
    await checkPattern(shown);
    assert.equal(existsSync(fast.volumePath(v.id)), false);

    // A type naming no backend lets the admin move it anywhere: back to fast.
    await os('volume', 'type', 'create', 'any-type');
    await osRaw('volume', 'set', '--type', 'any-type', v.id);
    await f.volumes.drain();
    assert.equal((await os('volume', 'show', v.id)).type, 'any-type');
    await osRaw('volume', 'migrate', '--host', 'cinder-host@fast#fast', '--force-host-copy', '--lock-volume', v.id);
    await f.volumes.drain();
    shown = await os('volume', 'show', v.id);
    assert.deepEqual([shown.status, backendOf(shown), shown['os-vol-mig-status-attr:migstat']], ['available', 'fast', 'success']);
    await checkPattern(shown);

    // Snapshots block a migration with upstream's message.
    const snap = await os('volume', 'snapshot', 'create', '--volume', v.id, 'mig-snap');
    await f.volumes.drain();
    await assert.rejects(osRaw('volume', 'migrate', '--host', 'cinder-host@bulk#bulk', v.id), /must not be migrating, have snapshots/);
    await osRaw('volume', 'snapshot', 'delete', snap.id);
    await f.volumes.drain();
    await osRaw('volume', 'delete', v.id);
    await f.volumes.drain();
    assert.equal(existsSync(fast.volumePath(shown['os-vol-mig-status-attr:name_id'])), false);
  });
});
