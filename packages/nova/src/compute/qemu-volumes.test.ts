/**
 * Volumes hot-plugged into a real QEMU guest through os-volume_attachments and a real
 * Cinder (file driver on the stack's Keystone): first as the volume's file on this host,
 * then as an NBD export a qemu-storage-daemon serves on a veth pair into the compute host's
 * namespace (the backend switched to export for every connector). The guest itself is asked over its serial console which
 * disks it has (/sys/block, with the volume id as serial); detaching removes the disk
 * and ends the export; deleting the server leaves the volumes available.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { startCinder, type CinderFixture } from '../../../cinder/test/fixture.ts';
import { FileVolumeDriver } from '../../../cinder/src/drivers/file-driver.ts';
import { NbdExports } from '../../../cinder/src/drivers/nbd-exports.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import type { QemuDriver } from '../virt/qemu-driver.ts';
import { BOOT_TIMEOUT_MS, bootGuest, runOnSerialConsole, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);
/** A /30 of the test's own between the root namespace (Cinder) and the compute host's (QEMU). */
const VETH = 'nvst0';
const VETH_NS = 'nvst1';
const STORAGE_IP = '10.199.71.1';
const HOST_IP = '10.199.71.2';

describe('volumes hot-plugged into a real QEMU guest', { timeout: 900_000 }, () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let cinder: CinderFixture;
  let driver: QemuDriver;
  let exports: NbdExports;
  /** The backend's NBD setting, which the NBD test switches to `always`. */
  let nbd: { exports: NbdExports; mode: 'remote' | 'always' };
  let server: string;

  before(async () => {
    h = await startQemuTestHost('nv', {
      services: async (stack, cleanups) => {
        const logger = pino({ level: 'silent' });
        // QEMU runs in the compute host's namespace, the export daemon in the root one: a veth pair joins them.
        const ns = stack.hosts[0].ns.name;
        cleanups.push(async () => void (await ip('link', 'del', VETH).catch(() => undefined)));
        await ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', VETH_NS, 'netns', ns);
        await ip('addr', 'add', `${STORAGE_IP}/30`, 'dev', VETH);
        await ip('link', 'set', VETH, 'up');
        await ip('-n', ns, 'addr', 'add', `${HOST_IP}/30`, 'dev', VETH_NS);
        await ip('-n', ns, 'link', 'set', VETH_NS, 'up');
        cinder = await startCinder({
          ks: stack.fx.ks,
          driver: (state) => {
            exports = new NbdExports({ runDir: join(state, 'nbd'), listenAddress: STORAGE_IP, logger });
            nbd = { exports, mode: 'remote' };
            // Cinder on the compute host itself: its own connector gets the file, until the test asks for exports.
            return new FileVolumeDriver({ dir: join(state, 'volumes'), backendName: 'file', logger, host: stack.hosts[0].name, nbd });
          },
        });
        cleanups.push(async () => {
          await exports?.stopAll();
          await cinder.close();
        });
        return { cinder_url: cinder.url };
      },
    });
    ({ fx, driver } = h);
    server = await bootGuest(h, 'nv-guest');
  });
  after(() => h?.close());

  const newVolume = async (name: string) => {
    const r = await cinder.admin.at('3.44').post('/volumes', { volume: { name, size: 1 } });
    assert.equal(r.status, 202, r.text);
    return (await cinder.waitFor(cinder.admin, 'volumes', r.body.volume.id, ['available'])).id as string;
  };
  const volume = async (id: string) => (await cinder.admin.at('3.44').get(`/volumes/${id}`)).body.volume;

  /** The guest's virtio disks as it lists them itself: name → serial, over its serial console (the image's console user). */
  const guestDisks = async (): Promise<Record<string, string>> => {
    const command = 'echo "DISKS $(for d in /sys/block/vd*; do echo -n "${d##*/}=$(cat $d/serial 2>/dev/null),"; done) END"';
    const m = await runOnSerialConsole(driver, server, command, /DISKS (\S*) END/);
    return Object.fromEntries(m[1].split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  };
  /** What the QEMU driver recorded for the instance's next start. */
  const definition = async () => JSON.parse(await readFile(join(h.instancesDir, server, 'instance.json'), 'utf8'));
  const serials = async () => Object.values(await guestDisks());
  const attach = async (volumeId: string) => {
    const r = await fx.admin.post(`/v2.1/servers/${server}/os-volume_attachments`, { volumeAttachment: { volumeId } });
    assert.equal(r.status, 200, r.text);
    return r.body.volumeAttachment;
  };
  const detach = async (volumeId: string) => assert.equal((await fx.admin.delete(`/v2.1/servers/${server}/os-volume_attachments/${volumeId}`)).status, 202);

  it('hot-plugs a volume file: the guest sees the disk with the volume id as serial, and loses it on detach', async (t) => {
    const v = await newVolume('nv-file');
    const t0 = Date.now();
    const a = await attach(v);
    t.diagnostic(`attach: ${Date.now() - t0} ms, device ${a.device}`);
    assert.equal((await volume(v)).status, 'in-use');
    const qemuSees = await definition();
    assert.ok(qemuSees.volumes[0].path.endsWith(`volume-${v}.qcow2`), qemuSees.volumes[0].path);
    await until('the guest sees the volume', serials, (s) => s.includes(v.slice(0, 20)), 60_000);
    await detach(v);
    assert.equal((await volume(v)).status, 'available');
    await until('the guest lost the volume', serials, (s) => !s.includes(v.slice(0, 20)), 60_000);
  });

  it('hot-plugs a volume over NBD (qemu-storage-daemon beside the host namespace) and ends the export on detach', async () => {
    nbd.mode = 'always';
    try {
      const v = await newVolume('nv-nbd');
      await attach(v);
      const def = await definition();
      const plugged = def.volumes.find((x: { volumeId: string }) => x.volumeId === v);
      assert.equal(plugged.nbd.host, STORAGE_IP);
      assert.equal(plugged.format, 'raw');
      assert.equal(plugged.path, undefined);
      const port = plugged.nbd.port as number;
      await until('the guest sees the NBD volume', serials, (s) => s.includes(v.slice(0, 20)), 60_000);
      await detach(v);
      await until('the guest lost the NBD volume', serials, (s) => !s.includes(v.slice(0, 20)), 60_000);
      assert.equal((await volume(v)).status, 'available');
      const open = await new Promise<boolean>((res) => {
        const s = connect({ host: STORAGE_IP, port }, () => (s.destroy(), res(true)));
        s.on('error', () => res(false));
      });
      assert.equal(open, false, 'the export ended with the attachment');
    } finally {
      nbd.mode = 'remote';
    }
  });

  it('deleting the server leaves its volumes available', async () => {
    const v = await newVolume('nv-kept');
    await attach(v);
    assert.equal((await fx.admin.delete(`/v2.1/servers/${server}`)).status, 204);
    await fx.waitFor(fx.admin, server, (s) => s.status === 'DELETED', BOOT_TIMEOUT_MS);
    assert.equal((await volume(v)).status, 'available');
    assert.deepEqual((await volume(v)).attachments, []);
  });
});
