/**
 * Cinder migrating an in-use volume under a running QEMU guest: the volume (qcow2 file on
 * Cinder's `fast` backend) holds data the guest wrote; a retype to a type of the `bulk`
 * backend (raw files) with migration_policy on-demand makes Cinder ask Nova to swap; nova-compute
 * mirrors the guest's disk onto the new volume (QMP blockdev-mirror, job-complete) while the
 * guest runs, Cinder completes the migration and deletes the old file. The guest still reads
 * its data and writes more, which lands in the new raw file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startCinder, type CinderFixture } from '../../../cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../../cinder/src/drivers/file-driver.ts';
import type { ComputeApi } from '../../../cinder/src/domain/nova.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import type { QemuDriver } from '../virt/qemu-driver.ts';
import { bootGuest, novaAsCinder, runOnSerialConsole, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

const MiB = 1024 * 1024;
/**
 * The console user cannot open block devices and there is no root login without a network:
 * user data (run as root at boot) lets it write the hot-plugged volumes.
 */
const USER_DATA = '#!/bin/sh\n(while :; do chmod 666 /dev/vd[b-z] 2>/dev/null; sleep 1; done) </dev/null >/dev/null 2>&1 &\n';

describe('an in-use volume migrates between backends under a running QEMU guest', { timeout: 900_000 }, () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let cinder: CinderFixture;
  let driver: QemuDriver;
  let fast: FileVolumeDriver;
  let bulk: FileVolumeDriver;
  let server: string;
  /** Cinder starts before Nova: its Nova client is made once Nova listens. */
  let nova: ComputeApi | undefined;

  before(async () => {
    h = await startQemuTestHost('nsw', {
      services: async (stack, cleanups) => {
        const logger = pino({ level: 'silent' });
        const host = stack.hosts[0].name;
        cinder = await startCinder({
          ks: stack.fx.ks,
          drivers: (state) => [
            (fast = new FileVolumeDriver({ dir: join(state, 'fast'), backendName: 'fast', format: 'qcow2', logger, host })),
            (bulk = new FileVolumeDriver({ dir: join(state, 'bulk'), backendName: 'bulk', format: 'raw', logger, host })),
          ],
          compute: { extendVolume: async () => true, swapVolume: (s, o, n) => nova!.swapVolume!(s, o, n) },
        });
        cleanups.push(() => cinder.close());
        return { cinder_url: cinder.url };
      },
    });
    ({ fx, driver } = h);
    // Cinder's service user as upstream's [nova] privileged user: admin and service.
    nova = await novaAsCinder(fx, ['admin', 'service']);
    for (const name of ['fast', 'bulk']) {
      const t = await cinder.admin.post('/types', { volume_type: { name: `${name}-type`, extra_specs: { volume_backend_name: name } } });
      assert.equal(t.status, 200, t.text);
    }
    server = await bootGuest(h, 'nsw-guest', { config_drive: true, user_data: Buffer.from(USER_DATA).toString('base64') });
  });
  after(() => h?.close());

  /** In the guest: the disk whose serial is the volume's, as a shell variable `d`. */
  const disk = (serial: string) => `d=; for s in /sys/block/vd*; do [ "$(cat $s/serial 2>/dev/null)" = "${serial}" ] && d=/dev/\${s##*/}; done`;
  /** The md5 of 1 MiB at `mib` MiB of the volume as the guest reads it from the disk (O_DIRECT: not its page cache). */
  const guestMd5 = async (serial: string, mib: number) =>
    (await runOnSerialConsole(driver, server, `${disk(serial)}; echo "MD5 $(dd if=$d iflag=direct bs=1M skip=${mib} count=1 2>/dev/null | md5sum | cut -c1-32) END"`, /MD5 ([0-9a-f]{32}) END/))[1]!;
  /** In the guest: 1 MiB of fresh random data at `mib` MiB, written through to the disk; answers its md5. */
  const guestWrite = async (serial: string, mib: number) =>
    (await runOnSerialConsole(driver, server, `${disk(serial)}; dd if=/dev/urandom of=/tmp/w bs=1M count=1 2>/dev/null && dd if=/tmp/w of=$d oflag=direct conv=notrunc bs=1M seek=${mib} 2>/dev/null && echo "WROTE $(md5sum </tmp/w | cut -c1-32) END"`, /WROTE ([0-9a-f]{32}) END/))[1]!;
  /** The md5 of 1 MiB at `mib` MiB of a raw file, read on the host. */
  const hostMd5 = async (file: string, mib: number) => {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(MiB);
      await fh.read(buf, 0, MiB, mib * MiB);
      return createHash('md5').update(buf).digest('hex');
    } finally {
      await fh.close();
    }
  };

  it('retype on-demand of the attached volume: mirrored while the guest runs, the guest keeps its data and writes more, the old file is gone', async (t) => {
    const r = await cinder.admin.at('3.44').post('/volumes', { volume: { name: 'nsw-vol', size: 1, volume_type: 'fast-type' } });
    assert.equal(r.status, 202, r.text);
    const v = (await cinder.waitFor(cinder.admin, 'volumes', r.body.volume.id, ['available'])).id as string;
    const a = await fx.admin.post(`/v2.1/servers/${server}/os-volume_attachments`, { volumeAttachment: { volumeId: v } });
    assert.equal(a.status, 200, a.text);
    const serial = v.slice(0, 20);
    await until('the guest can write the volume', () => runOnSerialConsole(driver, server, `${disk(serial)}; echo "W $([ -w "$d" ] && echo yes) END"`, /W (\w*) END/).then((m) => m[1]), (w) => w === 'yes', 60_000);
    const before = [await guestWrite(serial, 3), await guestWrite(serial, 700)];
    assert.ok(existsSync(fast.volumePath(v)));

    const t0 = Date.now();
    const retype = await cinder.admin.post(`/volumes/${v}/action`, { 'os-retype': { new_type: 'bulk-type', migration_policy: 'on-demand' } });
    assert.equal(retype.status, 202, retype.text);
    const moved = await until('the migration to end', () => cinder.admin.get(`/volumes/${v}`).then((x) => x.body.volume), (x) => ['success', 'error'].includes(x['os-vol-mig-status-attr:migstat']), 300_000);
    t.diagnostic(`retype with live mirror: ${Date.now() - t0} ms`);
    assert.deepEqual([moved.status, moved.volume_type, moved['os-vol-mig-status-attr:migstat']], ['in-use', 'bulk-type', 'success'], JSON.stringify(moved));
    assert.match(moved['os-vol-host-attr:host'], /@bulk#bulk$/);
    const file = bulk.volumePath(moved['os-vol-mig-status-attr:name_id']);
    assert.equal(existsSync(fast.volumePath(v)), false, 'the old qcow2 file is deleted');
    assert.deepEqual([await hostMd5(file, 3), await hostMd5(file, 700)], before, "the guest's data is in the new raw file");

    // The guest still has its disk (same serial), reads the data from it and writes more, into the new file.
    assert.deepEqual([await guestMd5(serial, 3), await guestMd5(serial, 700)], before);
    const more = await guestWrite(serial, 5);
    assert.equal(await hostMd5(file, 5), more);

    const actions = (await fx.admin.get(`/v2.1/servers/${server}/os-instance-actions`)).body.instanceActions as { action: string; request_id: string }[];
    const swap = actions.find((x) => x.action === 'swap_volume');
    assert.ok(swap, JSON.stringify(actions));
    const detail = await fx.admin.at('2.51').get(`/v2.1/servers/${server}/os-instance-actions/${swap.request_id}`);
    assert.deepEqual(detail.body.instanceAction.events.map((e: { event: string; result: string }) => [e.event, e.result]), [['compute_swap_volume', 'Success']]);

    // Detach and delete as any volume: the new file goes too.
    assert.equal((await fx.admin.delete(`/v2.1/servers/${server}/os-volume_attachments/${v}`)).status, 202);
    assert.equal((await cinder.admin.delete(`/volumes/${v}`)).status, 202);
    await until('the volume file to go', async () => existsSync(file), (x) => !x, 60_000);
  });
});
