import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bootSector } from './accel-probe.ts';
import { buildQemuArgs, deviceAddresses, diskSerial, slotPlacement, volumeBlockdev, volumeNode, volumeSource, type InstanceDefinition } from './qemu-command.ts';

const uuid = '6f1c2a1e-9d4b-4c5e-8f7a-0123456789ab';
const def = (over: Partial<InstanceDefinition> = {}): InstanceDefinition => ({
  version: 1,
  uuid,
  name: 'vm',
  hostname: 'vm.novalocal',
  flavor: { vcpus: 2, memoryMb: 256, rootGb: 1, ephemeralGb: 0, swapMb: 0, extraSpecs: {} },
  machine: 'q35',
  nicModel: 'virtio',
  ephemeral: false,
  swap: false,
  configDrive: true,
  rng: false,
  slots: 3,
  nics: [{ portId: 'p1', mac: 'fa:16:3e:00:00:01', tapName: 'tap1', mtu: 1450, slot: 0 }],
  volumes: [],
  ...over,
});
const opt = (args: string[], name: string) => args.filter((_, i) => args[i - 1] === name);

describe('buildQemuArgs', () => {
  it('uses the measured defaults: q35, TCG with a 64 MiB cache, -cpu max, no default devices, smbios with the uuid', () => {
    const a = buildQemuArgs(def(), { dir: '/i/x', accel: 'tcg', vnc: { display: 3 } });
    assert.deepEqual(opt(a, '-machine'), ['q35']);
    assert.deepEqual(opt(a, '-accel'), ['tcg,tb-size=64']);
    assert.deepEqual(opt(a, '-cpu'), ['max']);
    assert.deepEqual([opt(a, '-smp'), opt(a, '-m')], [['2'], ['256']]);
    assert.ok(a.includes('-nodefaults') && a.includes('-no-user-config') && a.includes('-daemonize'));
    assert.match(opt(a, '-smbios')[0], new RegExp(`product=OpenStack Nova,.*uuid=${uuid}`));
    assert.deepEqual(opt(a, '-vnc'), ['127.0.0.1:3,websocket=on']);
    assert.deepEqual(opt(a, '-qmp'), ['unix:/i/x/qmp.sock,server=on,wait=off']);
    assert.deepEqual(opt(a, '-pidfile'), ['/i/x/qemu.pid']);
    assert.match(opt(a, '-chardev')[0], /path=\/i\/x\/serial\.sock,server=on,wait=off,logfile=\/i\/x\/console\.log/);
    const root = JSON.parse(opt(a, '-blockdev')[0]);
    assert.deepEqual(root, { driver: 'qcow2', 'node-name': 'disk0', 'read-only': false, file: { driver: 'file', filename: '/i/x/disk', 'read-only': false } });
    assert.ok(opt(a, '-device').includes('virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=1'));
  });

  it('puts NICs on pre-created root ports (q35 cannot unplug from pcie.0), the config drive on virtio-blk', () => {
    const a = buildQemuArgs(def(), { dir: '/i/x', accel: 'tcg', vnc: 'unix' });
    const devices = opt(a, '-device');
    assert.deepEqual(devices.filter((d) => d.startsWith('pcie-root-port')), [
      'pcie-root-port,id=rp0,bus=pcie.0,chassis=1',
      'pcie-root-port,id=rp1,bus=pcie.0,chassis=2',
      'pcie-root-port,id=rp2,bus=pcie.0,chassis=3',
    ]);
    assert.ok(devices.some((d) => /^virtio-net-pci,netdev=nic[0-9a-f]{16}-net,id=nic[0-9a-f]{16},mac=fa:16:3e:00:00:01,bus=rp0,host_mtu=1450$/.test(d)), devices.join('\n'));
    assert.match(opt(a, '-netdev')[0], /^tap,id=nic[0-9a-f]{16}-net,ifname=tap1,script=no,downscript=no$/);
    assert.ok(devices.includes('virtio-blk-pci,drive=config0,id=configdrive,serial=config-2'));
    assert.deepEqual(opt(a, '-vnc'), ['unix:/i/x/vnc.sock']);
  });

  it('on pc: no root ports, config drive as an IDE CD-ROM; KVM with the host CPU', () => {
    const a = buildQemuArgs(def({ machine: 'pc' }), { dir: '/i/x', accel: 'kvm', vnc: { display: 0 } });
    const devices = opt(a, '-device');
    assert.ok(!devices.some((d) => d.startsWith('pcie-root-port')));
    assert.ok(devices.includes('ide-cd,drive=config0,id=configdrive'));
    assert.deepEqual([opt(a, '-accel'), opt(a, '-cpu')], [['kvm'], ['host']]);
  });

  it('on pc: slotted devices at fixed slots of the root bus from 08, so they keep their addresses', () => {
    const vol = { volumeId: 'v1', path: '/v/1', format: 'raw' as const, slot: 1 };
    const devices = opt(buildQemuArgs(def({ machine: 'pc', volumes: [vol] }), { dir: '/i/x', accel: 'tcg', vnc: 'unix' }), '-device');
    assert.ok(devices.some((d) => d.startsWith('virtio-net-pci,') && d.includes(',addr=0x8,')), devices.join('\n'));
    assert.ok(devices.includes(`virtio-blk-pci,drive=${volumeNode('v1')},id=${volumeNode('v1')}-dev,serial=v1,addr=0x9`), devices.join('\n'));
    assert.deepEqual(slotPlacement('pc', 23), { addr: '0x1f' });
    assert.deepEqual(slotPlacement('q35', 2), { bus: 'rp2' });
  });

  it('knows where the guest finds each device: root on the root bus, slotted ones behind their root port (q35) or at their slot (pc)', () => {
    const vol = { volumeId: 'v1', path: '/v/1', format: 'raw' as const, slot: 2 };
    const pci = (address: string) => ({ bus: 'pci', address });
    assert.deepEqual(deviceAddresses(def({ volumes: [vol] })), { rootDisk: pci('0000:00:01.0'), volumes: { v1: pci('0000:03:00.0') }, nics: { p1: pci('0000:01:00.0') } });
    assert.deepEqual(deviceAddresses(def({ machine: 'pc', volumes: [vol] })), { rootDisk: pci('0000:00:02.0'), volumes: { v1: pci('0000:00:0a.0') }, nics: { p1: pci('0000:00:08.0') } });
    assert.deepEqual(deviceAddresses(def({ rescueImageId: 'img' })).rootDisk, pci('0000:00:02.0'), 'behind the rescue disk');
    const boot = { volumeId: 'b1', path: '/v/b', format: 'raw' as const, bootIndex: 0 };
    assert.deepEqual(deviceAddresses(def({ rootVolume: boot })), { volumes: { b1: pci('0000:00:01.0') }, nics: { p1: pci('0000:01:00.0') } });
  });

  it('boots the rescue disk first with the own disk second, and a boot volume instead of the overlay', () => {
    const rescued = opt(buildQemuArgs(def({ rescueImageId: 'img' }), { dir: '/i/x', accel: 'tcg', vnc: 'unix' }), '-device');
    assert.ok(rescued.includes('virtio-blk-pci,drive=rescue0,id=virtio-rescue0,bootindex=1'));
    assert.ok(rescued.includes('virtio-blk-pci,drive=disk0,id=virtio-disk0'));
    const vol = { volumeId: 'a-very-long-volume-id-0123456789', path: '/v/1', format: 'raw' as const, bootIndex: 0 };
    const a = buildQemuArgs(def({ rootVolume: vol }), { dir: '/i/x', accel: 'tcg', vnc: 'unix' });
    const node = volumeNode(vol.volumeId);
    assert.ok(node.length <= 31, 'QEMU node names are at most 31 characters');
    assert.equal(JSON.parse(opt(a, '-blockdev')[0]).file.filename, '/v/1');
    assert.ok(opt(a, '-device').includes(`virtio-blk-pci,drive=${node},id=${node}-dev,serial=${diskSerial(vol)},bootindex=1`));
    assert.equal(diskSerial(vol), 'a-very-long-volume-i');
  });

  it('opens a volume on an NBD export over TCP, as a boot volume, a hot-plug slot and for qemu-img', () => {
    const vol = { volumeId: 'vol-nbd', nbd: { host: '127.0.0.1', port: 10809, exportName: 'volume-1' }, format: 'raw' as const };
    const expected = {
      driver: 'raw',
      'node-name': volumeNode('vol-nbd'),
      'read-only': false,
      file: { driver: 'nbd', server: { type: 'inet', host: '127.0.0.1', port: '10809' }, export: 'volume-1', 'read-only': false },
    };
    assert.deepEqual(volumeBlockdev(vol), expected);
    const boot = buildQemuArgs(def({ rootVolume: { ...vol, bootIndex: 0 } }), { dir: '/i/x', accel: 'tcg', vnc: 'unix' });
    assert.deepEqual(JSON.parse(opt(boot, '-blockdev')[0]), expected);
    const plugged = buildQemuArgs(def({ volumes: [{ ...vol, readOnly: true, slot: 1 }] }), { dir: '/i/x', accel: 'tcg', vnc: 'unix' });
    const bd = opt(plugged, '-blockdev').map((j) => JSON.parse(j)).find((b) => b['node-name'] === volumeNode('vol-nbd'));
    assert.equal(bd.file['read-only'], true);
    assert.ok(opt(plugged, '-device').includes(`virtio-blk-pci,drive=${volumeNode('vol-nbd')},id=${volumeNode('vol-nbd')}-dev,serial=vol-nbd,bus=rp1`));
    assert.equal(volumeSource(vol), 'nbd://127.0.0.1:10809/volume-1');
    assert.equal(volumeSource({ ...vol, nbd: { host: '::1', port: 1, exportName: 'a b' } }), 'nbd://[::1]:1/a%20b');
    assert.throws(() => volumeBlockdev({ volumeId: 'x', format: 'raw' }), /neither a path nor an NBD export/);
  });

  it('the KVM probe boot sector is a bootable MBR', () => {
    const b = bootSector();
    assert.deepEqual([b[510], b[511]], [0x55, 0xaa]);
  });
});
