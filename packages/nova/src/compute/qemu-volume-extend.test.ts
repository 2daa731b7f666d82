/**
 * Online extend of an attached volume reaching a real QEMU guest: Cinder (file driver, on the
 * stack's Keystone) extends an in-use volume at 3.42 and tells Nova with volume-extended as its
 * own service user (role service only); nova-compute resizes the disk in the running guest
 * (QMP block_resize) and the guest's /sys/block/vdX/size, read over its serial console, grows.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startCinder, type CinderFixture } from '../../../cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../../cinder/src/drivers/file-driver.ts';
import type { ComputeApi } from '../../../cinder/src/domain/nova.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import type { QemuDriver } from '../virt/qemu-driver.ts';
import { bootGuest, novaAsCinder, runOnSerialConsole, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

const GiB = 1024 ** 3;

describe('online volume extend reaches a real QEMU guest', { timeout: 900_000 }, () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let cinder: CinderFixture;
  let driver: QemuDriver;
  let server: string;
  /** Cinder starts before Nova: its Nova client is made once Nova listens. */
  let nova: ComputeApi | undefined;

  before(async () => {
    h = await startQemuTestHost('nx', {
      services: async (stack, cleanups) => {
        const logger = pino({ level: 'silent' });
        cinder = await startCinder({
          ks: stack.fx.ks,
          driver: (state) => new FileVolumeDriver({ dir: join(state, 'volumes'), backendName: 'file', logger, host: stack.hosts[0].name }),
          compute: { extendVolume: (servers, volumeId) => nova!.extendVolume(servers, volumeId) },
        });
        cleanups.push(() => cinder.close());
        return { cinder_url: cinder.url };
      },
    });
    ({ fx, driver } = h);
    // Cinder's own service user: the service role os-server-external-events asks for, nothing more.
    nova = await novaAsCinder(fx, ['service']);

    server = await bootGuest(h, 'nx-guest');
  });
  after(() => h?.close());

  /** The guest's virtio disks as it sizes them itself: serial → bytes (/sys/block/vdX/size counts 512-byte sectors). */
  const guestDiskSizes = async (): Promise<Record<string, number>> => {
    const command = 'echo "SIZES $(for d in /sys/block/vd*; do echo -n "$(cat $d/serial 2>/dev/null)=$(cat $d/size),"; done) END"';
    const m = await runOnSerialConsole(driver, server, command, /SIZES (\S*) END/);
    return Object.fromEntries(m[1].split(',').filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v) * 512]));
  };

  it('extending an in-use volume (3.42) grows the disk the running guest sees and records extend_volume', async (t) => {
    const c = cinder.admin.at('3.44');
    const r = await c.post('/volumes', { volume: { name: 'nx-vol', size: 1 } });
    assert.equal(r.status, 202, r.text);
    const v = (await cinder.waitFor(cinder.admin, 'volumes', r.body.volume.id, ['available'])).id as string;
    const a = await fx.admin.post(`/v2.1/servers/${server}/os-volume_attachments`, { volumeAttachment: { volumeId: v } });
    assert.equal(a.status, 200, a.text);
    const serial = v.slice(0, 20);
    await until('the guest sees the 1 GiB volume', guestDiskSizes, (s) => s[serial] === GiB, 60_000);

    assert.equal((await cinder.admin.at('3.41').post(`/volumes/${v}/action`, { 'os-extend': { new_size: 2 } })).status, 400, 'in-use needs 3.42');
    const t0 = Date.now();
    const ext = await cinder.admin.at('3.42').post(`/volumes/${v}/action`, { 'os-extend': { new_size: 2 } });
    assert.equal(ext.status, 202, ext.text);
    const after = await cinder.waitFor(cinder.admin, 'volumes', v, ['in-use', 'error_extending']);
    assert.equal(after.status, 'in-use', JSON.stringify(after));
    assert.equal(after.size, 2);
    await until('the guest sees the 2 GiB volume', guestDiskSizes, (s) => s[serial] === 2 * GiB, 60_000);
    t.diagnostic(`extend to guest: ${Date.now() - t0} ms`);

    const actions = (await fx.admin.get(`/v2.1/servers/${server}/os-instance-actions`)).body.instanceActions as { action: string; request_id: string }[];
    const action = actions.find((x) => x.action === 'extend_volume');
    assert.ok(action, JSON.stringify(actions));
    const detail = await fx.admin.at('2.51').get(`/v2.1/servers/${server}/os-instance-actions/${action.request_id}`);
    const events = detail.body.instanceAction.events as { event: string; result: string }[];
    assert.deepEqual(events.map((e) => [e.event, e.result]), [['compute_extend_volume', 'Success']]);
  });
});
