/**
 * The QEMU compute driver: one daemonized `qemu-system-x86_64` per instance, started
 * inside the host's network namespace (so its taps are the ones Neutron's L2 agent
 * wires there), controlled over QMP.
 *
 * Everything about an instance lives in <instancesDir>/<uuid>/: the definition
 * (instance.json, from which every start rebuilds the command line), disks, config
 * drive, console log, QMP and serial sockets, pidfile. A process is ours when the
 * pidfile's pid runs a qemu-system whose command line names this directory's QMP
 * socket; so a restarted driver finds its guests, and a recycled pid is not mistaken
 * for one.
 *
 * Choices where the contract leaves room (see driver.ts):
 * - suspend is QMP `stop` plus a flag in the definition: the guest's memory stays in
 *   the QEMU process (capabilities.suspendFreesMemory = false). Saving it to disk needs
 *   a migration stream to a file, which QEMU 7.2 only writes through `exec:` (a shell)
 *   or an fd passed over the socket; not done.
 * - snapshot of a running guest is QMP `drive-backup` with sync=full into a new qcow2,
 *   which has no backing file and is consistent at the instant the job starts, without
 *   pausing the guest; of a stopped one `qemu-img convert`.
 * - hard reboot and start rebuild the command line from the definition (as upstream's
 *   hard reboot regenerates the domain), so a resize or a hot-plug made while stopped
 *   takes effect there.
 * - QEMU's QMP socket serves one client at a time: calls on one instance are
 *   serialized by a per-instance lock in this object.
 */
import { cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { positional, runCommand, type Arg, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import {
  DriverError,
  InstanceExistsError,
  InstanceNotFoundError,
  InvalidInstanceStateError,
  VolumeNotAttachedError,
  NoFreeSlotError,
  PowerState,
  UUID_RE,
  bootVolumeOf,
  checkUuid,
  volumeSnapshotPath,
  type BlockDeviceSpec,
  type ComputeDriver,
  type ConsoleEndpoint,
  type DeviceAddresses,
  type DriverCapabilities,
  type FlavorSpec,
  type HostInfo,
  type ImageSpec,
  type InstanceInfo,
  type InstanceSpec,
  type MigrationTarget,
  type NicSpec,
  type PowerStateCode,
  type SnapshotResult,
} from './driver.ts';
import { buildConfigDrive } from './config-drive.ts';
import { qemuImg, type ImageCache } from './image-cache.ts';
import { QmpClient, QmpError } from './qmp-client.ts';
import {
  FILES,
  buildQemuArgs,
  nicDeviceProps,
  nicId,
  slotPlacement,
  deviceAddresses,
  volumeBlockdev,
  volumeDeviceProps,
  nodeOf,
  volumeNode,
  volumeSource,
  vncPorts,
  type Accelerator,
  type InstanceDefinition,
  type MachineType,
} from './qemu-command.ts';
import { pickAccelerator } from './accel-probe.ts';

export interface QemuDriverOptions {
  /** This host's instance directory. Paths may hold no commas or spaces (QEMU option syntax). */
  instancesDir: string;
  imageCache: ImageCache;
  logger: ExecLogger;
  /** Host name reported to placement and the hypervisors API. */
  hostname: string;
  /** The network namespace QEMU runs in (the host's, where the taps are); absent: the caller's. */
  netns?: string;
  /** 'auto' probes once whether a guest runs under KVM. */
  accel?: Accelerator | 'auto';
  /** Spare hot-plug slots per instance, besides one per NIC and volume of the spawn request. */
  hotplugSlots?: number;
  /** VNC on 127.0.0.1:5900+N with a websocket on 5700+N (inside netns), or a unix socket in the instance dir. */
  vnc?: 'tcp' | 'unix';
  /** How long an ACPI shutdown may take before the guest is killed. */
  shutdownTimeoutSec?: number;
  /** How long a guest may take to release a hot-unplugged device. */
  unplugTimeoutMs?: number;
  /** How long copying a volume's data for a swap may take. */
  swapTimeoutMs?: number;
}

const SAFE_DIR = /^\/[A-Za-z0-9_./-]+$/;
/** sun_path holds 108 bytes. */
const MAX_SOCKET_PATH = 107;
const QEMU = 'qemu-system-x86_64';
/** The instance's own disks: what a migration copies and a revert brings back. */
const DISK_FILES = [FILES.disk, FILES.ephemeral, FILES.swap];

export class QemuDriver implements ComputeDriver {
  readonly capabilities: DriverCapabilities;
  readonly instancesDir: string;
  private readonly opts: Required<Omit<QemuDriverOptions, 'netns'>> & { netns?: string };
  private accel: Promise<Accelerator> | undefined;
  private readonly locks = new Map<string, Promise<unknown>>();
  private launchLock: Promise<unknown> = Promise.resolve();
  private qemuVersion: Promise<number> | undefined;

  constructor(opts: QemuDriverOptions) {
    if (!SAFE_DIR.test(opts.instancesDir)) throw new DriverError(`instances directory ${JSON.stringify(opts.instancesDir)} has characters QEMU options cannot carry`);
    if (join(opts.instancesDir, '00000000-0000-0000-0000-000000000000', FILES.serial).length > MAX_SOCKET_PATH) {
      throw new DriverError(`instances directory ${opts.instancesDir} is too long for unix socket paths`);
    }
    this.instancesDir = opts.instancesDir;
    this.opts = { accel: 'auto', hotplugSlots: 4, vnc: 'tcp', shutdownTimeoutSec: 60, unplugTimeoutMs: 30_000, swapTimeoutMs: 3_600_000, ...opts };
    mkdirSync(this.instancesDir, { recursive: true, mode: 0o700 });
    this.capabilities = {
      hypervisorType: 'QEMU',
      hasImageCache: true,
      supportsAttachInterface: true,
      supportsAttachVolume: true,
      hotplugSlots: this.opts.hotplugSlots,
      supportsLiveSnapshot: true,
      suspendFreesMemory: false,
      supportsRescue: true,
      supportsConfigDrive: true,
      supportsDiskGrow: true,
      supportsColdMigrate: true,
      consoles: { vnc: true, serial: true },
    };
  }

  accelerator(): Promise<Accelerator> {
    const a = this.opts.accel;
    this.accel ??= a === 'auto' ? pickAccelerator({ logger: this.opts.logger }) : Promise.resolve(a);
    return this.accel;
  }

  // ---- host -------------------------------------------------------------

  async getHostInfo(): Promise<HostInfo> {
    let vcpusUsed = 0;
    let memoryMbUsed = 0;
    let localGbUsed = 0;
    for (const uuid of await this.listInstances()) {
      const def = await this.readDefinition(uuid).catch(() => undefined);
      if (!def) continue;
      vcpusUsed += def.flavor.vcpus;
      memoryMbUsed += def.flavor.memoryMb;
      localGbUsed += def.flavor.rootGb + def.flavor.ephemeralGb;
    }
    const fs = await statfs(this.instancesDir);
    const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
    const n = cpus().length;
    return {
      vcpus: n,
      memoryMb: Math.floor(totalmem() / 1024 / 1024),
      localGb: Math.floor((fs.blocks * fs.bsize) / 1024 ** 3),
      vcpusUsed,
      memoryMbUsed,
      localGbUsed,
      hypervisorType: 'QEMU',
      hypervisorVersion: await this.version(),
      hypervisorHostname: this.opts.hostname,
      cpuInfo: {
        arch: 'x86_64',
        model: field('model name'),
        vendor: field('vendor_id'),
        topology: { sockets: 1, cores: n, threads: 1 },
        features: field('flags').split(/\s+/).filter(Boolean),
      },
      accelerator: await this.accelerator(),
    };
  }

  private version(): Promise<number> {
    this.qemuVersion ??= runCommand(QEMU, ['--version'], { logger: this.opts.logger, timeoutMs: 10_000 }).then((r) => {
      const m = /version (\d+)\.(\d+)\.(\d+)/.exec(r.stdout);
      return m ? Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3]) : 1;
    });
    return this.qemuVersion;
  }

  // ---- create and destroy --------------------------------------------------

  async spawn(spec: InstanceSpec): Promise<void> {
    const uuid = checkUuid(spec.uuid);
    const dir = this.dir(uuid);
    return this.locked(uuid, async () => {
      if (existsSync(dir)) throw new InstanceExistsError(uuid);
      const rootVolume = bootVolumeOf(spec);
      if (!spec.image && !rootVolume) throw new DriverError(`instance ${uuid} has neither an image nor a boot volume`);
      await mkdir(dir, { mode: 0o700 });
      try {
        const def = this.definitionFor(spec, rootVolume);
        if (!rootVolume) await this.opts.imageCache.createOverlay(spec.image!.path, this.file(uuid, FILES.disk), spec.flavor.rootGb);
        if (def.ephemeral) await this.blankDisk(this.file(uuid, FILES.ephemeral), `${spec.flavor.ephemeralGb}G`);
        if (def.swap) await this.blankDisk(this.file(uuid, FILES.swap), `${spec.flavor.swapMb}M`);
        if (spec.configDrive) await buildConfigDrive(spec.configDrive, this.file(uuid, FILES.configDrive), { logger: this.opts.logger, tmpDir: dir });
        await this.writeDefinition(def);
        await this.launch(def);
      } catch (err) {
        await this.killProcess(uuid).catch(() => {});
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    });
  }

  private definitionFor(spec: InstanceSpec, rootVolume: BlockDeviceSpec | undefined): InstanceDefinition {
    const props = spec.image?.properties ?? {};
    const extra = spec.flavor.extraSpecs;
    const others = spec.blockDevices.filter((b) => b !== rootVolume);
    let slot = 0;
    const model = props.hw_vif_model ?? 'virtio';
    return {
      version: 1,
      uuid: spec.uuid,
      name: spec.name,
      hostname: spec.hostname,
      flavor: { ...spec.flavor },
      machine: machineType(extra['hw:machine_type'] ?? props.hw_machine_type),
      nicModel: model === 'e1000' || model === 'rtl8139' ? model : 'virtio',
      imageId: spec.image?.id,
      rootVolume,
      ephemeral: spec.flavor.ephemeralGb > 0,
      swap: spec.flavor.swapMb > 0,
      configDrive: spec.configDrive !== undefined,
      rng: props.hw_rng_model === 'virtio',
      slots: spec.nics.length + others.length + this.opts.hotplugSlots,
      nics: spec.nics.map((n) => ({ ...n, slot: slot++ })),
      volumes: others.map((v) => ({ ...v, slot: slot++ })),
    };
  }

  plannedDeviceAddresses(spec: InstanceSpec): DeviceAddresses {
    return deviceAddresses(this.definitionFor(spec, bootVolumeOf(spec)));
  }

  async deviceAddresses(uuid: string): Promise<DeviceAddresses> {
    return deviceAddresses(await this.readDefinition(uuid));
  }

  private async blankDisk(path: string, size: string): Promise<void> {
    await qemuImg(['create', '-q', '-f', 'qcow2', positional(path), size], this.opts.logger, 60_000);
  }

  async destroy(uuid: string): Promise<void> {
    if (!UUID_RE.test(uuid)) return;
    return this.locked(uuid, async () => {
      await this.killProcess(uuid);
      await rm(this.dir(uuid), { recursive: true, force: true });
      await this.removeKept(uuid);
    });
  }

  // ---- power -------------------------------------------------------------

  async powerOff(uuid: string, opts: { timeoutSec?: number } = {}): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      await this.stop(uuid, opts.timeoutSec ?? this.opts.shutdownTimeoutSec);
      if (def.suspended) await this.writeDefinition({ ...def, suspended: false });
    });
  }

  async powerOn(uuid: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const state = await this.powerState(uuid, def);
      if (state === PowerState.RUNNING) return;
      if (state !== PowerState.SHUTDOWN && state !== PowerState.CRASHED) throw new InvalidInstanceStateError(uuid, 'power on', state);
      await this.killProcess(uuid);
      await this.launch(def);
    });
  }

  async reboot(uuid: string, type: 'SOFT' | 'HARD', opts: { timeoutSec?: number } = {}): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const state = await this.powerState(uuid, def);
      const soft = type === 'SOFT' && state === PowerState.RUNNING;
      await this.stop(uuid, soft ? (opts.timeoutSec ?? this.opts.shutdownTimeoutSec) : 0);
      const next = { ...def, suspended: false };
      await this.writeDefinition(next);
      await this.launch(next);
    });
  }

  async pause(uuid: string): Promise<void> {
    await this.vcpuTransition(uuid, 'pause', PowerState.RUNNING, 'stop');
  }

  async unpause(uuid: string): Promise<void> {
    await this.vcpuTransition(uuid, 'unpause', PowerState.PAUSED, 'cont');
  }

  async suspend(uuid: string): Promise<void> {
    await this.vcpuTransition(uuid, 'suspend', PowerState.RUNNING, 'stop', true);
  }

  async resume(uuid: string): Promise<void> {
    await this.vcpuTransition(uuid, 'resume', PowerState.SUSPENDED, 'cont', false);
  }

  private vcpuTransition(uuid: string, action: string, from: PowerStateCode, command: 'stop' | 'cont', suspended?: boolean) {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const state = await this.powerState(uuid, def);
      if (state !== from) throw new InvalidInstanceStateError(uuid, action, state);
      await this.qmp(uuid, (q) => q.execute(command));
      if (suspended !== undefined) await this.writeDefinition({ ...def, suspended });
    });
  }

  async getInfo(uuid: string): Promise<InstanceInfo> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const powerState = await this.powerState(uuid, def);
      const pid = await this.pidOf(uuid);
      return { uuid, powerState, memoryMb: def.flavor.memoryMb, vcpus: def.flavor.vcpus, ...(pid ? { pid } : {}) };
    });
  }

  async injectNmi(uuid: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const state = await this.powerState(uuid, def);
      if (state !== PowerState.RUNNING && state !== PowerState.PAUSED) throw new InvalidInstanceStateError(uuid, 'inject an NMI into', state);
      await this.qmp(uuid, (q) => q.execute('inject-nmi'));
    });
  }

  async listInstances(): Promise<string[]> {
    const names = await readdir(this.instancesDir).catch(() => [] as string[]);
    return names.filter((n) => UUID_RE.test(n) && existsSync(join(this.instancesDir, n, FILES.definition)));
  }

  // ---- consoles ----------------------------------------------------------

  async getConsoleOutput(uuid: string, opts: { maxBytes?: number } = {}): Promise<string> {
    await this.readDefinition(uuid);
    const max = opts.maxBytes ?? 65536;
    const fh = await open(this.file(uuid, FILES.console), 'r').catch(() => undefined);
    if (!fh) return '';
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - max);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  }

  async getVncConsole(uuid: string): Promise<ConsoleEndpoint> {
    await this.requireProcess(uuid, 'get the VNC console of');
    if (this.opts.vnc === 'unix') return { kind: 'unix', path: this.file(uuid, FILES.vnc) };
    const display = Number(await readFile(this.file(uuid, 'vnc.display'), 'utf8'));
    return { kind: 'tcp', host: '127.0.0.1', ...vncPorts(display), ...(this.opts.netns ? { netns: this.opts.netns } : {}) };
  }

  async getSerialConsole(uuid: string): Promise<ConsoleEndpoint> {
    await this.requireProcess(uuid, 'get the serial console of');
    return { kind: 'unix', path: this.file(uuid, FILES.serial) };
  }

  private async requireProcess(uuid: string, action: string): Promise<void> {
    const def = await this.readDefinition(uuid);
    if (!(await this.pidOf(uuid))) throw new InvalidInstanceStateError(uuid, action, await this.powerState(uuid, def));
  }

  // ---- hot-plug ----------------------------------------------------------

  async attachVolume(uuid: string, device: BlockDeviceSpec): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (def.rootVolume?.volumeId === device.volumeId || def.volumes.some((v) => v.volumeId === device.volumeId)) return;
      const slot = freeSlot(def);
      if (await this.pidOf(uuid)) {
        const node = volumeNode(device.volumeId);
        await this.qmp(uuid, async (q) => {
          await q.execute('blockdev-add', volumeBlockdev(device));
          try {
            await q.execute('device_add', { driver: 'virtio-blk-pci', ...defined(volumeDeviceProps({ ...device, bootIndex: undefined }, slotPlacement(def.machine, slot))) });
          } catch (err) {
            await q.execute('blockdev-del', { 'node-name': node }).catch(() => {});
            throw err;
          }
        });
      }
      await this.writeDefinition({ ...def, volumes: [...def.volumes, { ...device, bootIndex: undefined, slot }] });
    });
  }

  async detachVolume(uuid: string, volumeId: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const v = def.volumes.find((x) => x.volumeId === volumeId);
      if (!v) return;
      if (await this.pidOf(uuid)) {
        await this.unplug(uuid, `${volumeNode(volumeId)}-dev`, (q) => q.execute('blockdev-del', { 'node-name': nodeOf(v) }));
      }
      await this.writeDefinition({ ...def, volumes: def.volumes.filter((x) => x !== v) });
    });
  }

  async extendVolume(uuid: string, volumeId: string, newSizeBytes: number): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const v = def.rootVolume?.volumeId === volumeId ? def.rootVolume : def.volumes.find((x) => x.volumeId === volumeId);
      if (!v) throw new VolumeNotAttachedError(uuid, volumeId);
      // QEMU reads a disk's size only when it opens it: block_resize makes a running guest see the growth.
      if (await this.pidOf(uuid)) await this.qmp(uuid, (q) => q.execute('block_resize', { 'node-name': nodeOf(v), size: newSizeBytes }));
    });
  }

  /**
   * libvirt's blockRebase copy and pivot in QMP: the new storage as a block node of its own
   * (named after the new volume), blockdev-mirror of the disk's node onto it (sync full; the
   * guest's writes go to both from then on), BLOCK_JOB_READY once both are the same, then
   * job-complete switches the device to the new node and the old node is deleted. Before the
   * switch a failure cancels the job and deletes the new node: the old storage stays in use.
   */
  async swapVolume(uuid: string, volumeId: string, to: BlockDeviceSpec): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const root = def.rootVolume?.volumeId === volumeId;
      const old = root ? def.rootVolume : def.volumes.find((x) => x.volumeId === volumeId);
      if (!old) throw new VolumeNotAttachedError(uuid, volumeId);
      if (!(await this.pidOf(uuid))) throw new InvalidInstanceStateError(uuid, 'swap a volume of', await this.powerState(uuid, def));
      const placed = { ...to, volumeId, serial: old.serial ?? volumeId, bootIndex: old.bootIndex, readOnly: old.readOnly, node: volumeNode(to.volumeId) };
      const jobId = `swap-${randomBytes(4).toString('hex')}`;
      await this.qmp(uuid, async (q) => {
        await q.execute('blockdev-add', volumeBlockdev(placed));
        const ended = q.waitForEvent('BLOCK_JOB_COMPLETED', { match: (e) => e.data?.device === jobId, timeoutMs: this.opts.swapTimeoutMs });
        ended.catch(() => {});
        let started = false;
        try {
          const ready = q.waitForEvent('BLOCK_JOB_READY', { match: (e) => e.data?.device === jobId, timeoutMs: this.opts.swapTimeoutMs });
          ready.catch(() => {});
          await q.execute('blockdev-mirror', { 'job-id': jobId, device: nodeOf(old), target: placed.node, sync: 'full' });
          started = true;
          await Promise.race([ready, ended.then((e) => Promise.reject(new DriverError(`copy of volume ${volumeId} of ${uuid} ended before it was ready: ${String(e.data?.error ?? 'no error given')}`)))]);
        } catch (err) {
          if (started) {
            // A cancelled mirror ends with BLOCK_JOB_CANCELLED; the new node is in use until then.
            const gone = q.waitForEvent('BLOCK_JOB_CANCELLED', { match: (e) => e.data?.device === jobId, timeoutMs: 60_000 });
            gone.catch(() => {});
            await q.execute('block-job-cancel', { device: jobId, force: true }).catch(() => {});
            await Promise.race([gone, ended]).catch(() => {});
          }
          await q.execute('blockdev-del', { 'node-name': placed.node }).catch(() => {});
          throw err;
        }
        await q.execute('job-complete', { id: jobId });
        const done = await ended;
        if (done.data?.error) throw new DriverError(`switching volume ${volumeId} of ${uuid} to its new storage failed: ${String(done.data.error)}`);
        await q.execute('blockdev-del', { 'node-name': nodeOf(old) });
      });
      await this.writeDefinition(root ? { ...def, rootVolume: placed } : { ...def, volumes: def.volumes.map((x) => (x === old ? { ...placed, bootIndex: undefined, slot: x.slot } : x)) });
    });
  }

  async attachInterface(uuid: string, nic: NicSpec): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (def.nics.some((n) => n.portId === nic.portId)) return;
      const slot = freeSlot(def);
      if (await this.pidOf(uuid)) {
        const id = nicId(nic.portId);
        await this.qmp(uuid, async (q) => {
          await q.execute('netdev_add', { type: 'tap', id: `${id}-net`, ifname: nic.tapName, script: 'no', downscript: 'no' });
          try {
            await q.execute('device_add', defined(nicDeviceProps(nic, def.nicModel, slotPlacement(def.machine, slot))));
          } catch (err) {
            await q.execute('netdev_del', { id: `${id}-net` }).catch(() => {});
            throw err;
          }
        });
      }
      await this.writeDefinition({ ...def, nics: [...def.nics, { ...nic, slot }] });
    });
  }

  async detachInterface(uuid: string, portId: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const n = def.nics.find((x) => x.portId === portId);
      if (!n) return;
      if (await this.pidOf(uuid)) {
        const id = nicId(portId);
        await this.unplug(uuid, id, (q) => q.execute('netdev_del', { id: `${id}-net` }));
      }
      await this.writeDefinition({ ...def, nics: def.nics.filter((x) => x !== n) });
    });
  }

  /** device_del, then the guest's acknowledgement (DEVICE_DELETED), then the backend. */
  private async unplug(uuid: string, deviceId: string, removeBackend: (q: QmpClient) => Promise<unknown>): Promise<void> {
    await this.qmp(uuid, async (q) => {
      const deleted = q.waitForEvent('DEVICE_DELETED', { match: (e) => e.data?.device === deviceId, timeoutMs: this.opts.unplugTimeoutMs });
      deleted.catch(() => {});
      try {
        await q.execute('device_del', { id: deviceId });
      } catch (err) {
        // Gone already (an earlier detach whose bookkeeping did not finish): only the backend is left.
        if (!(err instanceof QmpError && err.errorClass === 'DeviceNotFound')) throw err;
      }
      await deleted.catch(async (err) => {
        const present = await q.execute<Array<{ name: string }>>('qom-list', { path: '/machine/peripheral' });
        if (present.some((p) => p.name === deviceId)) throw new DriverError(`guest did not release device ${deviceId} of ${uuid}`, { cause: err });
      });
      await removeBackend(q);
    });
  }

  // ---- disks -------------------------------------------------------------

  async snapshot(uuid: string, outDir: string): Promise<SnapshotResult> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const out = join(outDir, `${uuid}-${randomBytes(4).toString('hex')}.qcow2`);
      const disk = def.rootVolume
        ? { node: nodeOf(def.rootVolume), src: volumeSource(def.rootVolume), format: def.rootVolume.format }
        : { node: 'disk0', src: this.file(uuid, FILES.disk), format: 'qcow2' as const };
      const live = await this.copyDisk(uuid, disk, out);
      return { path: out, format: 'qcow2' as const, live };
    });
  }

  /**
   * Cinder's assisted snapshot of an attached volume (upstream's volume_snapshot_create, here a
   * full copy rather than libvirt's overlay: our Cinder's snapshots are standalone files). The
   * running guest's QEMU holds the volume file's write lock, so only it can read a consistent
   * image: the same point-in-time copy an image snapshot of a running guest makes.
   */
  async volumeSnapshotCreate(uuid: string, volumeId: string, newFile: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const v = def.rootVolume?.volumeId === volumeId ? def.rootVolume : def.volumes.find((x) => x.volumeId === volumeId);
      if (!v) throw new VolumeNotAttachedError(uuid, volumeId);
      const out = volumeSnapshotPath(v, newFile);
      await this.copyDisk(uuid, { node: nodeOf(v), src: volumeSource(v), format: v.format }, out);
    });
  }

  /**
   * A standalone qcow2 copy of one disk at `out`: of a running guest by QMP drive-backup (sync
   * full: the data as it was when the job started, while the guest goes on writing), else by
   * qemu-img from the disk's source. Answers whether the copy was live; a failure removes `out`.
   */
  private async copyDisk(uuid: string, disk: { node: string; src: string; format: 'qcow2' | 'raw' }, out: string): Promise<boolean> {
    try {
      if (await this.pidOf(uuid)) {
        const jobId = `snap-${randomBytes(4).toString('hex')}`;
        await this.qmp(uuid, async (q) => {
          const done = q.waitForEvent('BLOCK_JOB_COMPLETED', { match: (e) => e.data?.device === jobId, timeoutMs: 600_000 });
          done.catch(() => {});
          await q.execute('drive-backup', { 'job-id': jobId, device: disk.node, target: out, format: 'qcow2', sync: 'full', mode: 'absolute-paths' });
          const e = await done;
          if (e.data?.error) throw new DriverError(`snapshot of ${uuid} failed: ${String(e.data.error)}`);
        });
        return true;
      }
      await qemuImg(['convert', '-q', '-f', disk.format, '-O', 'qcow2', positional(disk.src), positional(out)], this.opts.logger, 600_000);
      return false;
    } catch (err) {
      await rm(out, { force: true });
      throw err;
    }
  }

  async resize(uuid: string, flavor: FlavorSpec): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (await this.pidOf(uuid)) throw new InvalidInstanceStateError(uuid, 'resize', await this.powerState(uuid, def));
      if (flavor.rootGb < def.flavor.rootGb) throw new DriverError(`cannot shrink the root disk of ${uuid} from ${def.flavor.rootGb} to ${flavor.rootGb} GB`);
      if (!def.rootVolume && flavor.rootGb > def.flavor.rootGb) {
        const disk = this.file(uuid, FILES.disk);
        const info = await this.opts.imageCache.qemuImgInfo(disk, 'qcow2');
        if (flavor.rootGb * 1024 ** 3 > info['virtual-size']) {
          await qemuImg(['resize', '-q', '-f', 'qcow2', positional(disk), `${flavor.rootGb}G`], this.opts.logger, 60_000);
        }
      }
      await this.writeDefinition({ ...def, flavor: { ...flavor } });
    });
  }

  async migrateDisks(uuid: string, target: MigrationTarget): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (await this.pidOf(uuid)) throw new InvalidInstanceStateError(uuid, 'migrate', await this.powerState(uuid, def));
      if (def.rescueImageId) throw new InvalidInstanceStateError(uuid, 'migrate (in rescue)', PowerState.SHUTDOWN);
      const dest = join(target.instancesDir, uuid);
      if (existsSync(dest)) throw new InstanceExistsError(uuid);
      await mkdir(dest, { recursive: true, mode: 0o700 });
      try {
        // The definition last: the destination lists the instance only once its disks are there.
        await this.copyFiles(uuid, [...DISK_FILES, FILES.configDrive, FILES.console], dest);
        if (target.imagePath && existsSync(join(dest, FILES.disk))) {
          await qemuImg(['rebase', '-u', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', positional(target.imagePath), positional(join(dest, FILES.disk))], this.opts.logger, 60_000);
        }
        await writeFile(join(dest, `${FILES.definition}.tmp`), JSON.stringify({ ...def, suspended: false }, null, 2));
        await rename(join(dest, `${FILES.definition}.tmp`), join(dest, FILES.definition));
      } catch (err) {
        await rm(dest, { recursive: true, force: true });
        throw err;
      }
    });
  }

  async keepForRevert(uuid: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (await this.pidOf(uuid)) throw new InvalidInstanceStateError(uuid, 'keep the disks for a revert of', await this.powerState(uuid, def));
      const kept = this.keptDir(uuid);
      const part = `${kept}.part`;
      await rm(part, { recursive: true, force: true });
      await mkdir(part, { mode: 0o700 });
      try {
        // Copied aside and renamed into place once whole: the instance's own directory is never half-moved.
        await this.copyFiles(uuid, [...DISK_FILES, FILES.definition], part);
        await rm(kept, { recursive: true, force: true });
        await rename(part, kept);
      } catch (err) {
        await rm(part, { recursive: true, force: true });
        throw err;
      }
    });
  }

  async revertToKept(uuid: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      const kept = this.keptDir(uuid);
      if (!existsSync(kept)) return;
      if (await this.pidOf(uuid)) throw new InvalidInstanceStateError(uuid, 'revert', await this.powerState(uuid, def));
      const old = JSON.parse(await readFile(join(kept, FILES.definition), 'utf8')) as InstanceDefinition;
      for (const f of DISK_FILES) {
        if (existsSync(join(kept, f))) await rename(join(kept, f), this.file(uuid, f));
        else await rm(this.file(uuid, f), { force: true });
      }
      // The devices are today's (a volume attached while resized stays); the flavor and disks are the kept ones.
      await this.writeDefinition({ ...def, flavor: old.flavor, ephemeral: old.ephemeral, swap: old.swap });
      await rm(kept, { recursive: true, force: true });
    });
  }

  async dropKept(uuid: string): Promise<void> {
    return this.locked(uuid, () => this.removeKept(uuid));
  }

  async rescue(uuid: string, rescueImage: ImageSpec): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (def.rescueImageId) throw new InvalidInstanceStateError(uuid, 'rescue (already in rescue)', await this.powerState(uuid, def));
      await this.stop(uuid, 0);
      const rescueDisk = this.file(uuid, FILES.rescue);
      await rm(rescueDisk, { force: true });
      await this.opts.imageCache.createOverlay(rescueImage.path, rescueDisk, 0);
      const next = { ...def, rescueImageId: rescueImage.id, suspended: false };
      await this.writeDefinition(next);
      await this.launch(next);
    });
  }

  async unrescue(uuid: string): Promise<void> {
    return this.locked(uuid, async () => {
      const def = await this.readDefinition(uuid);
      if (!def.rescueImageId) throw new InvalidInstanceStateError(uuid, 'unrescue (not in rescue)', await this.powerState(uuid, def));
      await this.stop(uuid, 0);
      await rm(this.file(uuid, FILES.rescue), { force: true });
      const next = { ...def, rescueImageId: undefined, suspended: false };
      await this.writeDefinition(next);
      await this.launch(next);
    });
  }

  // ---- QMP, for the driver's own tests and diagnostics ----------------------

  /** Runs QMP commands on a running instance (one connection, closed afterwards). */
  async qmp<T>(uuid: string, fn: (q: QmpClient) => Promise<T>): Promise<T> {
    const q = await QmpClient.connect(this.file(uuid, FILES.qmp), { timeoutMs: 10_000 });
    try {
      return await fn(q);
    } finally {
      q.close();
    }
  }

  // ---- internals -----------------------------------------------------------

  private dir(uuid: string): string {
    return join(this.instancesDir, checkUuid(uuid));
  }

  private file(uuid: string, name: string): string {
    return join(this.dir(uuid), name);
  }

  /** Where keepForRevert() keeps an instance's files: upstream's `<instance dir>_resize` (not a uuid, so never listed). */
  private keptDir(uuid: string): string {
    return `${this.dir(uuid)}_resize`;
  }

  private async removeKept(uuid: string): Promise<void> {
    await rm(`${this.keptDir(uuid)}.part`, { recursive: true, force: true });
    await rm(this.keptDir(uuid), { recursive: true, force: true });
  }

  /** The instance's files of these names that exist, copied into dest. */
  private async copyFiles(uuid: string, names: string[], dest: string): Promise<void> {
    for (const f of names) if (existsSync(this.file(uuid, f))) await copyFile(this.file(uuid, f), join(dest, f));
  }

  private async readDefinition(uuid: string): Promise<InstanceDefinition> {
    try {
      return JSON.parse(await readFile(this.file(uuid, FILES.definition), 'utf8')) as InstanceDefinition;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InstanceNotFoundError(uuid);
      throw err;
    }
  }

  private async writeDefinition(def: InstanceDefinition): Promise<void> {
    const tmp = this.file(def.uuid, `${FILES.definition}.tmp`);
    await writeFile(tmp, JSON.stringify(def, null, 2), { mode: 0o600 });
    await rename(tmp, this.file(def.uuid, FILES.definition));
  }

  /** The pid of this instance's QEMU, if one runs: pidfile, then /proc/<pid>/cmdline must name our QMP socket. */
  private async pidOf(uuid: string): Promise<number | undefined> {
    const pid = Number((await readFile(this.file(uuid, FILES.pid), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const argv = cmdline.split('\0');
    if (!argv[0]?.includes('qemu-system') || !argv.includes(`unix:${this.file(uuid, FILES.qmp)},server=on,wait=off`)) return undefined;
    return pid;
  }

  private async powerState(uuid: string, def: InstanceDefinition): Promise<PowerStateCode> {
    if (!(await this.pidOf(uuid))) return PowerState.SHUTDOWN;
    const status = await this.qmp(uuid, (q) => q.execute<{ status: string }>('query-status')).catch(() => undefined);
    if (!status) return PowerState.NOSTATE;
    switch (status.status) {
      case 'running':
        return PowerState.RUNNING;
      case 'paused':
        return def.suspended ? PowerState.SUSPENDED : PowerState.PAUSED;
      case 'guest-panicked':
      case 'internal-error':
      case 'io-error':
        return PowerState.CRASHED;
      case 'shutdown':
        return PowerState.SHUTDOWN;
      default:
        return PowerState.NOSTATE;
    }
  }

  /** ACPI shutdown for up to timeoutSec (0: none), then QMP quit, then SIGKILL. */
  private async stop(uuid: string, timeoutSec: number): Promise<void> {
    const pid = await this.pidOf(uuid);
    if (!pid) return;
    if (timeoutSec > 0) {
      const sent = await this.qmp(uuid, (q) => q.execute('system_powerdown')).then(
        () => true,
        () => false,
      );
      if (sent && (await this.waitGone(uuid, pid, timeoutSec * 1000))) return;
    }
    await this.killProcess(uuid);
  }

  /** Ends the process at once, whatever the guest does; no-op without one. */
  private async killProcess(uuid: string): Promise<void> {
    const pid = await this.pidOf(uuid);
    if (!pid) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
    if (!(await this.waitGone(uuid, pid, 10_000))) throw new DriverError(`QEMU ${pid} of ${uuid} survived SIGKILL`);
    await rm(this.file(uuid, FILES.pid), { force: true });
  }

  /**
   * Waits until QEMU has exited and closed its files. Its cmdline empties when the kernel
   * frees its memory, before it closes its files: in between, the disk's image lock is still
   * held, so a qemu-img right after would fail. Only a zombie (or no process) has let go.
   */
  private async waitGone(uuid: string, pid: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    // `pid` comes from before the signal: once the kernel tears the process down, pidOf() no longer recognises it.
    while ((await this.pidOf(uuid)) || !(await hasExited(pid))) {
      if (Date.now() > deadline) return false;
      await sleep(50);
    }
    return true;
  }

  /** Starts QEMU for a definition; resolves once QEMU has daemonized (its sockets listen). */
  private async launch(def: InstanceDefinition): Promise<void> {
    const uuid = def.uuid;
    const accel = await this.accelerator();
    const run = async () => {
      for (const f of [FILES.qmp, FILES.serial, FILES.vnc, FILES.pid]) await rm(this.file(uuid, f), { force: true });
      let vnc: { display: number } | 'unix' = 'unix';
      if (this.opts.vnc === 'tcp') {
        vnc = { display: await this.freeVncDisplay() };
        await writeFile(this.file(uuid, 'vnc.display'), String(vnc.display));
      }
      const args: Arg[] = buildQemuArgs(def, { dir: this.dir(uuid), accel, vnc });
      const [program, argv]: [string, Arg[]] = this.opts.netns
        ? ['ip', ['netns', 'exec', positional(this.opts.netns), QEMU, ...args]]
        : [QEMU, args];
      await runCommand(program, argv, { logger: this.opts.logger, timeoutMs: 60_000 });
    };
    if (this.opts.vnc === 'tcp') {
      // Display numbers are chosen from the running instances: one TCP-display launch at a time.
      const p = this.launchLock.then(run, run);
      this.launchLock = p.catch(() => {});
      await p;
    } else {
      await run();
    }
    if (!(await this.pidOf(uuid))) throw new DriverError(`QEMU of ${uuid} exited right after starting`);
  }

  private async freeVncDisplay(): Promise<number> {
    const used = new Set<number>();
    for (const uuid of await this.listInstances()) {
      if (!(await this.pidOf(uuid))) continue;
      const d = Number(await readFile(this.file(uuid, 'vnc.display'), 'utf8').catch(() => 'NaN'));
      if (Number.isInteger(d)) used.add(d);
    }
    // Displays 0–99: ports 5900–5999 and websockets 5700–5799 inside the host namespace.
    for (let d = 0; d < 100; d++) if (!used.has(d)) return d;
    throw new DriverError('no free VNC display on this host');
  }

  /** Per-instance serialization (QMP takes one client at a time; state changes must not interleave). */
  private locked<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    checkUuid(uuid);
    const prev = this.locks.get(uuid) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => {});
    this.locks.set(uuid, tail);
    void tail.then(() => {
      if (this.locks.get(uuid) === tail) this.locks.delete(uuid);
    });
    return p;
  }
}

function machineType(value: string | undefined): MachineType {
  if (!value) return 'q35';
  if (value === 'pc' || value.startsWith('pc-i440fx')) return 'pc';
  return 'q35';
}

function freeSlot(def: InstanceDefinition): number {
  const used = new Set([...def.volumes, ...def.nics].map((d) => d.slot));
  for (let s = 0; s < def.slots; s++) if (!used.has(s)) return s;
  throw new NoFreeSlotError(`instance ${def.uuid} has no free hot-plug slot (${def.slots} in all)`);
}

function defined(o: Record<string, string | number | undefined>): Record<string, string | number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Record<string, string | number>;
}

/**
 * Whether `pid` is gone or has finished exiting: every thread of it a zombie (state Z or X in
 * /proc/<pid>/task/<tid>/stat). A killed QEMU's main thread can be a zombie while its other
 * threads still run their exit and hold its files.
 */
async function hasExited(pid: number): Promise<boolean> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => undefined);
  if (tids === undefined) return true;
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'Z' && state !== 'X') return false;
  }
  return true;
}
