/**
 * The QEMU driver with real QEMU (TCG) in a network namespace this test creates, on the
 * project's guest image (images/build.sh, reused from ~/.cache/onestack/guest-image as
 * the e2e tests do). Three guests boot to their READY line in all: the contract
 * suite's, one that goes through the driver's own checks, and one from its snapshot.
 * Root needed.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NetnsLab, requireRoot, tempDir, type Netns } from '@onestack/testing/index.ts';
import { computeDriverContract } from './driver-contract.ts';
import { InstanceNotFoundError, PowerState, type InstanceSpec } from './driver.ts';
import { ImageCache } from './image-cache.ts';
import { QemuDriver } from './qemu-driver.ts';
import { nicId, volumeNode } from './qemu-command.ts';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const IMAGE_DIR = process.env.ONESTACK_ONESTACK__GUEST_IMAGE_DIR || join(homedir(), '.cache', 'onestack', 'guest-image');
const BOOT_TIMEOUT_MS = 120_000;
const logger = { info: () => {}, warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

requireRoot('the QEMU driver test');
const scratch = tempDir('nv-');
let lab: NetnsLab;
let host: Netns;
let cache: ImageCache;
let baseImage: string;
let taps = 0;

/** The guest image, built once per machine and reused (the build's --reuse check is 0.5 s). */
async function guestImage(): Promise<string> {
  await run(join(ROOT, 'images', 'build.sh'), ['--reuse', IMAGE_DIR], { timeout: 600_000, maxBuffer: 8 * 1024 * 1024 });
  return join(IMAGE_DIR, 'onestack-guest.qcow2');
}

async function setupHost(): Promise<void> {
  if (lab) return;
  lab = NetnsLab.create();
  host = await lab.addNamespace('host');
  await host.addBridge('br0');
  cache = new ImageCache({ dir: join(scratch.path, 'cache'), logger });
  const src = await guestImage();
  baseImage = await cache.ensure('onestack-guest', 'qcow2', async (dest) => copyFileSync(src, dest));
}

after(async () => {
  await lab?.cleanup();
  scratch.remove();
});

function driverAt(dir: string): QemuDriver {
  return new QemuDriver({ instancesDir: dir, imageCache: cache, logger, hostname: 'test-host', netns: host.name, accel: 'tcg', hotplugSlots: 2 });
}

function specFor(opts: { configDrive?: Record<string, string>; image?: string } = {}): InstanceSpec {
  const uuid = randomUUID();
  return {
    uuid,
    name: `vm-${uuid.slice(0, 4)}`,
    hostname: `vm-${uuid.slice(0, 4)}.novalocal`,
    flavor: { vcpus: 1, memoryMb: 128, rootGb: 1, ephemeralGb: 0, swapMb: 0, extraSpecs: {} },
    // The image registers hw_machine_type=pc; the driver's own default (q35, root ports) is what these tests exercise.
    image: { id: 'onestack-guest', path: opts.image ?? baseImage, properties: { hw_disk_bus: 'virtio', hw_vif_model: 'virtio' } },
    nics: [],
    blockDevices: [],
    configDrive: opts.configDrive,
  };
}

async function waitReady(d: QemuDriver, uuid: string, t0 = Date.now()): Promise<{ line: string; seconds: number }> {
  for (;;) {
    const text = await d.getConsoleOutput(uuid);
    const m = /^=== ONESTACK GUEST READY .* ===\r?$/m.exec(text);
    if (m) return { line: m[0].trim(), seconds: (Date.now() - t0) / 1000 };
    if (Date.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`no READY line after ${BOOT_TIMEOUT_MS / 1000} s:\n${text.slice(-2000)}`);
    await sleep(250);
  }
}

/** Processes whose command line names the instance, and files left in its directory. */
function leftoversIn(dir: string, uuid: string): string[] {
  const left: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const cmd = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (cmd.includes(uuid) && cmd.includes('qemu-system')) left.push(`process ${pid}`);
  }
  for (const d of [uuid, `${uuid}_resize`, `${uuid}_resize.part`]) {
    if (existsSync(join(dir, d))) left.push(...readdirSync(join(dir, d)).map((f) => `file ${d}/${f}`), `dir ${d}`);
  }
  return left;
}

async function newVolume(): Promise<{ volumeId: string; path: string; format: 'qcow2' }> {
  const volumeId = randomUUID();
  const path = join(scratch.path, `vol-${volumeId}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, '16M']);
  return { volumeId, path, format: 'qcow2' };
}

computeDriverContract(
  'QemuDriver',
  async () => {
    await setupHost();
    const dir = join(scratch.path, 'a');
    const driver = driverAt(dir);
    return {
      driver,
      spec: () => specFor(),
      // Fails in QEMU itself (a volume file that is not there), after disks and files were made.
      failingSpec: () => ({ ...specFor({ configDrive: { 'openstack/latest/meta_data.json': '{}' } }), blockDevices: [{ volumeId: randomUUID(), path: join(scratch.path, 'missing.qcow2'), format: 'qcow2' }] }),
      volume: newVolume,
      nic: async () => {
        const tapName = `tapc${++taps}`;
        await host.addTap(tapName, { master: 'br0' });
        return { portId: randomUUID(), mac: `fa:16:3e:00:01:${taps.toString(16).padStart(2, '0')}`, tapName };
      },
      attachedVolumes: async (uuid) => {
        const blocks = await driver.qmp(uuid, (q) => q.execute<Array<{ inserted?: { 'node-name': string } }>>('query-block'));
        const nodes = new Set(blocks.map((b) => b.inserted?.['node-name']));
        return [...nodes].filter(Boolean).length ? (await allVolumeIds()).filter((v) => nodes.has(volumeNode(v))) : [];
      },
      rootDiskBytes: async (uuid) => JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', join(dir, uuid, 'disk')], { encoding: 'utf8' }))['virtual-size'],
      leftovers: async (uuid) => leftoversIn(dir, uuid),
      reopen: () => driverAt(dir),
      otherHost: async () => {
        const other = join(scratch.path, 'b');
        return { driver: driverAt(other), target: { instancesDir: other, imagePath: baseImage }, leftovers: async (uuid) => leftoversIn(other, uuid) };
      },
      rescueImage: () => ({ id: 'onestack-guest', path: baseImage, properties: {} }),
      beforeHotplug: async (uuid) => void (await waitReady(driver, uuid)),
      scratchDir: scratch.path,
    };
  },
  { timeout: 300_000 },
);

interface PciDevice {
  bus: number;
  slot: number;
  function: number;
  qdev_id: string;
  pci_bridge?: { devices?: PciDevice[] };
}

/** Every PCI device of a running guest by its QEMU id, at the address the guest sees (QMP query-pci, bridges walked). */
async function pciAddresses(driver: QemuDriver, uuid: string): Promise<Record<string, string>> {
  const buses = await driver.qmp(uuid, (q) => q.execute<Array<{ devices: PciDevice[] }>>('query-pci'));
  const out: Record<string, string> = {};
  const walk = (devices: PciDevice[]) => {
    for (const d of devices) {
      if (d.qdev_id) out[d.qdev_id] = `0000:${d.bus.toString(16).padStart(2, '0')}:${d.slot.toString(16).padStart(2, '0')}.${d.function}`;
      walk(d.pci_bridge?.devices ?? []);
    }
  };
  for (const b of buses) walk(b.devices);
  return out;
}

/** Volume ids the test created (their files are named after them). */
async function allVolumeIds(): Promise<string[]> {
  return readdirSync(scratch.path)
    .filter((f) => f.startsWith('vol-'))
    .map((f) => f.slice(4, -'.qcow2'.length));
}

describe('QemuDriver with a booted guest', { timeout: 400_000 }, () => {
  let driver: QemuDriver;
  const dir = join(scratch.path, 'c');
  const token = randomBytes(6).toString('hex');
  let spec: InstanceSpec;
  let snapshot: string;

  before(async () => {
    await setupHost();
    driver = driverAt(dir);
    const md = (s: InstanceSpec) => JSON.stringify({ uuid: s.uuid, hostname: s.hostname, name: s.name, public_keys: { k: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBn8l1x3pP1l0Uv0w5kY6j2qVv9b7dW7oZ0s4cV9l5tQ test' } });
    spec = specFor();
    spec.configDrive = {
      'openstack/latest/meta_data.json': md(spec),
      'openstack/latest/user_data': `#!/bin/sh\necho "USER-DATA-RAN token=${token} host=$(hostname)"\n`,
    };
  });

  it('boots from an overlay with a config drive: READY with the hostname, uuid and user data from the drive', async (t) => {
    const t0 = Date.now();
    await driver.spawn(spec);
    t.diagnostic(`spawn returned after ${Date.now() - t0} ms`);
    const { line, seconds } = await waitReady(driver, spec.uuid, t0);
    t.diagnostic(`READY after ${seconds.toFixed(1)} s: ${line}`);
    assert.match(line, new RegExp(`hostname=${spec.hostname} `));
    assert.match(line, new RegExp(`uuid=${spec.uuid} `));
    assert.match(line, /metadata=config-drive/);
    assert.ok((await driver.getConsoleOutput(spec.uuid)).includes(`USER-DATA-RAN token=${token} host=${spec.hostname}`));
    const files = readdirSync(join(dir, spec.uuid)).sort();
    for (const f of ['console.log', 'disk', 'disk.config', 'instance.json', 'qemu.pid', 'qmp.sock', 'serial.sock']) assert.ok(files.includes(f), `${f} in ${files}`);
    const overlay = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', join(dir, spec.uuid, 'disk')], { encoding: 'utf8' }));
    assert.equal(overlay['backing-filename'], baseImage);
    // The VNC server listens inside the host namespace, with its websocket.
    const vnc = await driver.getVncConsole(spec.uuid);
    assert.equal(vnc.kind, 'tcp');
    const ss = (await host.exec('ss', ['-ltnH'])).stdout;
    if (vnc.kind === 'tcp') {
      assert.ok(ss.includes(`127.0.0.1:${vnc.port}`) && ss.includes(`127.0.0.1:${vnc.websocketPort}`), ss);
      assert.equal(vnc.netns, host.name);
    }
  });

  it('hot-plugs a qcow2 volume the guest sees (query-block) and unplugs it once the guest lets go', async () => {
    const vol = await newVolume();
    await driver.attachVolume(spec.uuid, { ...vol, serial: 'vol-test-serial' });
    const blocks = await driver.qmp(spec.uuid, (q) => q.execute<Array<{ qdev?: string; inserted?: { 'node-name': string; file: string } }>>('query-block'));
    const b = blocks.find((x) => x.inserted?.['node-name'] === volumeNode(vol.volumeId));
    assert.ok(b, JSON.stringify(blocks));
    assert.equal(b.inserted!.file, vol.path);
    assert.match(b.qdev ?? '', /vol[0-9a-f]{16}-dev/);
    const t0 = Date.now();
    await driver.detachVolume(spec.uuid, vol.volumeId);
    assert.ok(Date.now() - t0 < 15_000);
    const after = await driver.qmp(spec.uuid, (q) => q.execute<Array<{ inserted?: { 'node-name': string } }>>('query-block'));
    assert.ok(!after.some((x) => x.inserted?.['node-name'] === volumeNode(vol.volumeId)));
  });

  it('hot-plugs a virtio NIC on a tap of the host namespace, and unplugs it', async () => {
    await host.addTap('tapnic1', { master: 'br0' });
    // A persistent tap has carrier only while a process holds it open.
    const carrier = async () => !(await host.ip('link', 'show', 'tapnic1')).includes('NO-CARRIER');
    assert.equal(await carrier(), false);
    const portId = randomUUID();
    await driver.attachInterface(spec.uuid, { portId, mac: 'fa:16:3e:aa:bb:01', tapName: 'tapnic1' });
    const nics = await driver.qmp(spec.uuid, (q) => q.execute<Array<{ name: string; 'main-mac'?: string }>>('query-rx-filter'));
    assert.deepEqual(nics.map((n) => n['main-mac']), ['fa:16:3e:aa:bb:01']);
    assert.equal(await carrier(), true, 'QEMU holds the tap of the host namespace');
    await driver.detachInterface(spec.uuid, portId);
    assert.deepEqual(await driver.qmp(spec.uuid, (q) => q.execute('query-rx-filter')), []);
    assert.equal(await carrier(), false, 'the tap is released');
  });

  it('injects an NMI (QMP inject-nmi) that the guest kernel reports on its console, and keeps running', async () => {
    const before = (await driver.getConsoleOutput(spec.uuid)).length;
    await driver.injectNmi(spec.uuid);
    const t0 = Date.now();
    // Linux's unknown_nmi_error: "Uhhuh. NMI received for unknown reason … on CPU 0."
    while (!/NMI received/.test((await driver.getConsoleOutput(spec.uuid)).slice(before))) {
      if (Date.now() - t0 > 30_000) throw new Error(`no NMI line on the console:\n${(await driver.getConsoleOutput(spec.uuid)).slice(before)}`);
      await sleep(250);
    }
    assert.equal((await driver.getInfo(spec.uuid)).powerState, PowerState.RUNNING);
  });

  it('puts disks and NICs where deviceAddresses says, as query-pci shows them: q35 root ports, pc fixed slots', async () => {
    const tap = async (name: string) => {
      await host.addTap(name, { master: 'br0' });
      return { portId: randomUUID(), mac: `fa:16:3e:aa:bc:${name.slice(-2)}`, tapName: name };
    };
    const check = async (uuid: string, vols: string[], nics: string[]) => {
      const at = await driver.deviceAddresses(uuid);
      const seen = await pciAddresses(driver, uuid);
      assert.equal(at.rootDisk?.address, seen['virtio-disk0'], JSON.stringify(seen));
      for (const v of vols) assert.equal(at.volumes[v]?.address, seen[`${volumeNode(v)}-dev`], JSON.stringify(seen));
      for (const p of nics) assert.equal(at.nics[p]?.address, seen[nicId(p)], JSON.stringify(seen));
    };
    // q35 (the booted guest, whose firmware numbered the root ports' buses): hot-plugged devices.
    const vol = await newVolume();
    const nic = await tap('tapad01');
    await driver.attachVolume(spec.uuid, vol);
    await driver.attachInterface(spec.uuid, nic);
    await check(spec.uuid, [vol.volumeId], [nic.portId]);
    await driver.detachInterface(spec.uuid, nic.portId);
    await driver.detachVolume(spec.uuid, vol.volumeId);
    // pc (what the guest image asks for): devices of the spawn and a hot-plugged one.
    const pc = specFor();
    pc.image!.properties.hw_machine_type = 'pc';
    const [bootVol, plugged] = [await newVolume(), await newVolume()];
    Object.assign(pc, { nics: [await tap('tapad02')], blockDevices: [bootVol] });
    assert.deepEqual(driver.plannedDeviceAddresses(pc).volumes[bootVol.volumeId], { bus: 'pci', address: '0000:00:09.0' });
    await driver.spawn(pc);
    try {
      await driver.attachVolume(pc.uuid, plugged);
      await check(pc.uuid, [bootVol.volumeId, plugged.volumeId], [pc.nics[0].portId]);
    } finally {
      await driver.destroy(pc.uuid);
    }
  });

  it('pauses and unpauses through QMP, and a new driver object finds the running guest', async () => {
    await driver.pause(spec.uuid);
    const st = await driver.qmp(spec.uuid, (q) => q.execute<{ status: string }>('query-status'));
    assert.equal(st.status, 'paused');
    await driver.unpause(spec.uuid);
    const restarted = driverAt(dir);
    assert.deepEqual(await restarted.listInstances(), [spec.uuid]);
    const info = await restarted.getInfo(spec.uuid);
    assert.equal(info.powerState, PowerState.RUNNING);
    assert.ok(info.pid && existsSync(`/proc/${info.pid}`));
  });

  it('snapshots the running guest into a standalone qcow2', async () => {
    const snap = await driver.snapshot(spec.uuid, scratch.path);
    assert.equal(snap.live, true);
    const i = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', snap.path], { encoding: 'utf8' }));
    assert.equal(i.format, 'qcow2');
    assert.equal(i['backing-filename'], undefined);
    assert.equal(i['virtual-size'], 1024 ** 3);
    snapshot = snap.path;
  });

  it('powers off through ACPI: the guest shuts down by itself well before the timeout', async (t) => {
    const pid = (await driver.getInfo(spec.uuid)).pid!;
    const t0 = Date.now();
    await driver.powerOff(spec.uuid, { timeoutSec: 60 });
    const s = (Date.now() - t0) / 1000;
    t.diagnostic(`ACPI shutdown took ${s.toFixed(1)} s`);
    assert.ok(s < 30, `took ${s} s: killed after the timeout rather than shut down`);
    assert.equal(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z', false);
    assert.equal((await driver.getInfo(spec.uuid)).powerState, PowerState.SHUTDOWN);
  });

  it('destroy leaves no process, socket, overlay or pidfile', async () => {
    await driver.destroy(spec.uuid);
    assert.deepEqual(leftoversIn(dir, spec.uuid), []);
    await assert.rejects(driver.getInfo(spec.uuid), InstanceNotFoundError);
  });

  it('boots a new instance from the snapshot', async (t) => {
    const imageId = `snap-${randomBytes(4).toString('hex')}`;
    const base = await cache.ensure(imageId, 'qcow2', async (dest) => copyFileSync(snapshot, dest));
    const s2 = specFor({ image: base });
    s2.configDrive = { 'openstack/latest/meta_data.json': JSON.stringify({ uuid: s2.uuid, hostname: s2.hostname }) };
    const t0 = Date.now();
    await driver.spawn(s2);
    try {
      const { line, seconds } = await waitReady(driver, s2.uuid, t0);
      t.diagnostic(`snapshot guest READY after ${seconds.toFixed(1)} s`);
      assert.match(line, new RegExp(`hostname=${s2.hostname} `));
      assert.match(line, new RegExp(`uuid=${s2.uuid} `));
    } finally {
      await driver.destroy(s2.uuid);
    }
    assert.deepEqual(leftoversIn(dir, s2.uuid), []);
  });
});

