/**
 * FakeDriver: upstream's nova.virt.fake idea. Instances are entries in memory that
 * change state at once; nothing runs and nothing touches the host. It exists for tests
 * and benchmarks of the control plane at scale (a thousand fake hosts in one process),
 * never for a cloud that should run guests. It still keeps the contract of driver.ts,
 * which driver-contract.ts checks, so the control plane cannot come to rely on
 * behaviour the real driver lacks.
 *
 * Its "host" is a name; fake hosts created in one process can migrate instances to each
 * other through MigrationTarget.instancesDir = `fake://<hostname>`.
 */
import {
  InstanceExistsError,
  InstanceNotFoundError,
  InvalidInstanceStateError,
  VolumeNotAttachedError,
  NoFreeSlotError,
  PowerState,
  DriverError,
  bootVolumeOf,
  checkUuid,
  volumeSnapshotPath,
  type BlockDeviceSpec,
  type ComputeDriver,
  type ConsoleEndpoint,
  type DeviceAddress,
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
import { existsSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface FakeHostResources {
  vcpus: number;
  memoryMb: number;
  localGb: number;
}

export interface FakeDriverOptions {
  hostname: string;
  resources?: Partial<FakeHostResources>;
  hotplugSlots?: number;
}

interface FakeInstance {
  spec: InstanceSpec;
  flavor: FlavorSpec;
  power: PowerStateCode;
  volumes: Map<string, BlockDeviceSpec>;
  /** Sizes extendVolume gave attached volumes, by volume id. */
  volumeSizes: Map<string, number>;
  nics: Map<string, NicSpec>;
  rescue?: ImageSpec;
  console: string;
  /** NMIs injected (what a test sees of trigger_crash_dump). */
  nmis: number;
  /** The slot of each attached NIC (`nic:<port>`) and volume (`vol:<volume>`) but a boot volume. */
  slots: Map<string, number>;
}

/** The fake's PCI layout, q35's: the root device at 00:01.0, slot N's device on bus N+1. */
const ROOT_DEVICE: DeviceAddress = { bus: 'pci', address: '0000:00:01.0' };
const slotAddress = (slot: number): DeviceAddress => ({ bus: 'pci', address: `0000:${(slot + 1).toString(16).padStart(2, '0')}:00.0` });

/** Slots as spawn gives them: NICs first, then the volumes, in the spec's order. */
function plannedSlots(spec: InstanceSpec): Map<string, number> {
  const keys = [...spec.nics.map((n) => `nic:${n.portId}`), ...spec.blockDevices.filter((b) => b !== bootVolumeOf(spec)).map((b) => `vol:${b.volumeId}`)];
  return new Map(keys.map((k, slot) => [k, slot]));
}

function addressesOf(bootVolume: BlockDeviceSpec | undefined, slots: Map<string, number>): DeviceAddresses {
  const out: DeviceAddresses = { ...(bootVolume ? {} : { rootDisk: ROOT_DEVICE }), volumes: {}, nics: {} };
  if (bootVolume) out.volumes[bootVolume.volumeId] = ROOT_DEVICE;
  for (const [key, slot] of slots) {
    const [kind, id] = [key.slice(0, 3), key.slice(4)];
    (kind === 'nic' ? out.nics : out.volumes)[id] = slotAddress(slot);
  }
  return out;
}

const hosts = new Map<string, FakeDriver>();

export class FakeDriver implements ComputeDriver {
  readonly capabilities: DriverCapabilities;
  readonly hostname: string;
  private readonly resources: FakeHostResources;
  private readonly instances = new Map<string, FakeInstance>();
  /** What keepForRevert() kept, by instance: the flavor (the fake's disks are its flavor's sizes). */
  private readonly kept = new Map<string, FlavorSpec>();

  constructor(opts: FakeDriverOptions) {
    this.hostname = opts.hostname;
    this.resources = { vcpus: 8, memoryMb: 16384, localGb: 200, ...opts.resources };
    this.capabilities = {
      hypervisorType: 'fake',
      hasImageCache: false,
      supportsAttachInterface: true,
      supportsAttachVolume: true,
      hotplugSlots: opts.hotplugSlots ?? 8,
      supportsLiveSnapshot: true,
      suspendFreesMemory: true,
      supportsRescue: true,
      supportsConfigDrive: true,
      supportsDiskGrow: true,
      supportsColdMigrate: true,
      consoles: { vnc: true, serial: true },
    };
    hosts.set(this.instancesDir, this);
  }

  /** What a MigrationTarget names this host by. */
  get instancesDir(): string {
    return `fake://${this.hostname}`;
  }

  async getHostInfo(): Promise<HostInfo> {
    let vcpusUsed = 0;
    let memoryMbUsed = 0;
    let localGbUsed = 0;
    for (const i of this.instances.values()) {
      vcpusUsed += i.flavor.vcpus;
      memoryMbUsed += i.flavor.memoryMb;
      localGbUsed += i.flavor.rootGb + i.flavor.ephemeralGb;
    }
    return {
      ...this.resources,
      vcpusUsed,
      memoryMbUsed,
      localGbUsed,
      hypervisorType: 'fake',
      hypervisorVersion: 1000,
      hypervisorHostname: this.hostname,
      cpuInfo: { arch: 'x86_64', model: 'fake', vendor: 'fake', topology: { sockets: 1, cores: this.resources.vcpus, threads: 1 }, features: [] },
      accelerator: 'fake',
    };
  }

  async spawn(spec: InstanceSpec): Promise<void> {
    checkUuid(spec.uuid);
    if (this.instances.has(spec.uuid)) throw new InstanceExistsError(spec.uuid);
    if (!spec.image && !bootVolumeOf(spec)) {
      throw new DriverError(`instance ${spec.uuid} has neither an image nor a boot volume`);
    }
    // The one failure a fake hypervisor can have: not enough memory to start the guest.
    const host = await this.getHostInfo();
    if (host.memoryMbUsed + spec.flavor.memoryMb > this.resources.memoryMb) {
      throw new DriverError(`fake host ${this.hostname}: not enough memory for ${spec.flavor.memoryMb} MiB`);
    }
    this.instances.set(spec.uuid, {
      spec: structuredClone(spec),
      flavor: { ...spec.flavor },
      power: PowerState.RUNNING,
      volumes: new Map(spec.blockDevices.map((b) => [b.volumeId, b])),
      volumeSizes: new Map(),
      nics: new Map(spec.nics.map((n) => [n.portId, n])),
      console: `fake console of ${spec.hostname}\n`,
      nmis: 0,
      slots: plannedSlots(spec),
    });
  }

  async destroy(uuid: string): Promise<void> {
    this.instances.delete(uuid);
    this.kept.delete(uuid);
  }

  async powerOff(uuid: string): Promise<void> {
    this.get(uuid).power = PowerState.SHUTDOWN;
  }

  async powerOn(uuid: string): Promise<void> {
    const i = this.get(uuid);
    if (i.power === PowerState.SHUTDOWN || i.power === PowerState.CRASHED || i.power === PowerState.NOSTATE) i.power = PowerState.RUNNING;
    else if (i.power !== PowerState.RUNNING) throw new InvalidInstanceStateError(uuid, 'power on', i.power);
  }

  async reboot(uuid: string): Promise<void> {
    this.get(uuid).power = PowerState.RUNNING;
  }

  async pause(uuid: string): Promise<void> {
    this.transition(uuid, 'pause', PowerState.RUNNING, PowerState.PAUSED);
  }

  async unpause(uuid: string): Promise<void> {
    this.transition(uuid, 'unpause', PowerState.PAUSED, PowerState.RUNNING);
  }

  async suspend(uuid: string): Promise<void> {
    this.transition(uuid, 'suspend', PowerState.RUNNING, PowerState.SUSPENDED);
  }

  async resume(uuid: string): Promise<void> {
    this.transition(uuid, 'resume', PowerState.SUSPENDED, PowerState.RUNNING);
  }

  async getInfo(uuid: string): Promise<InstanceInfo> {
    const i = this.get(uuid);
    return { uuid, powerState: i.power, memoryMb: i.flavor.memoryMb, vcpus: i.flavor.vcpus };
  }

  async injectNmi(uuid: string): Promise<void> {
    const i = this.get(uuid);
    if (i.power !== PowerState.RUNNING && i.power !== PowerState.PAUSED) throw new InvalidInstanceStateError(uuid, 'inject an NMI into', i.power);
    i.nmis++;
  }

  /** How many NMIs the instance got (injectNmi). */
  nmiCount(uuid: string): number {
    return this.get(uuid).nmis;
  }

  async listInstances(): Promise<string[]> {
    return [...this.instances.keys()];
  }

  async getConsoleOutput(uuid: string, opts: { maxBytes?: number } = {}): Promise<string> {
    const text = this.get(uuid).console;
    return text.slice(-(opts.maxBytes ?? 65536));
  }

  async getVncConsole(uuid: string): Promise<ConsoleEndpoint> {
    this.running(uuid, 'get the VNC console of');
    return { kind: 'tcp', host: '127.0.0.1', port: 5900, websocketPort: 5700 };
  }

  async getSerialConsole(uuid: string): Promise<ConsoleEndpoint> {
    this.running(uuid, 'get the serial console of');
    return { kind: 'tcp', host: '127.0.0.1', port: 10000 };
  }

  plannedDeviceAddresses(spec: InstanceSpec): DeviceAddresses {
    return addressesOf(bootVolumeOf(spec), plannedSlots(spec));
  }

  async deviceAddresses(uuid: string): Promise<DeviceAddresses> {
    const i = this.get(uuid);
    return addressesOf(bootVolumeOf(i.spec), i.slots);
  }

  async attachVolume(uuid: string, device: BlockDeviceSpec): Promise<void> {
    const i = this.get(uuid);
    if (i.volumes.has(device.volumeId)) return;
    this.takeSlot(i, `vol:${device.volumeId}`);
    i.volumes.set(device.volumeId, { ...device });
  }

  async detachVolume(uuid: string, volumeId: string): Promise<void> {
    this.get(uuid).volumes.delete(volumeId);
    this.get(uuid).volumeSizes.delete(volumeId);
    this.get(uuid).slots.delete(`vol:${volumeId}`);
  }

  async extendVolume(uuid: string, volumeId: string, newSizeBytes: number): Promise<void> {
    const i = this.get(uuid);
    if (!i.volumes.has(volumeId)) throw new VolumeNotAttachedError(uuid, volumeId);
    i.volumeSizes.set(volumeId, newSizeBytes);
  }

  /** Bookkeeping only: the disk of volumeId now names `to`'s storage; no data moves. */
  async swapVolume(uuid: string, volumeId: string, to: BlockDeviceSpec): Promise<void> {
    const i = this.get(uuid);
    const old = i.volumes.get(volumeId);
    if (!old) throw new VolumeNotAttachedError(uuid, volumeId);
    if (i.power === PowerState.SHUTDOWN) throw new InvalidInstanceStateError(uuid, 'swap a volume of', i.power);
    i.volumes.set(volumeId, { ...to, volumeId, serial: old.serial ?? volumeId, bootIndex: old.bootIndex });
  }

  /** What volumeSnapshotCreate was asked, in order (tests read it). */
  readonly volumeSnapshots: { uuid: string; volumeId: string; newFile: string }[] = [];
  /** Set by a test: the next volumeSnapshotCreate fails with this message. */
  volumeSnapshotFailure?: string;

  /**
   * Recorded; a volume that is a file here (a real Cinder's file driver beside a fake host) is
   * copied byte for byte, which keeps its format: qcow2 when Cinder's volumes are qcow2.
   */
  async volumeSnapshotCreate(uuid: string, volumeId: string, newFile: string): Promise<void> {
    const v = this.get(uuid).volumes.get(volumeId);
    if (!v) throw new VolumeNotAttachedError(uuid, volumeId);
    const out = volumeSnapshotPath(v, newFile);
    this.volumeSnapshots.push({ uuid, volumeId, newFile });
    const failure = this.volumeSnapshotFailure;
    this.volumeSnapshotFailure = undefined;
    if (failure) throw new DriverError(failure);
    if (v.path && existsSync(v.path)) await copyFile(v.path, out);
  }

  /** The storage the instance's disk of the volume uses (what swapVolume changed). */
  volumeDevice(uuid: string, volumeId: string): BlockDeviceSpec | undefined {
    return this.get(uuid).volumes.get(volumeId);
  }

  /** The size extendVolume last gave the volume of this instance (what a guest would see). */
  extendedSize(uuid: string, volumeId: string): number | undefined {
    return this.get(uuid).volumeSizes.get(volumeId);
  }

  async attachInterface(uuid: string, nic: NicSpec): Promise<void> {
    const i = this.get(uuid);
    if (i.nics.has(nic.portId)) return;
    this.takeSlot(i, `nic:${nic.portId}`);
    i.nics.set(nic.portId, { ...nic });
  }

  async detachInterface(uuid: string, portId: string): Promise<void> {
    this.get(uuid).nics.delete(portId);
    this.get(uuid).slots.delete(`nic:${portId}`);
  }

  /**
   * The fake writes an empty qcow2 of the root disk's size, so callers' upload-and-clean-up
   * paths run for real and Glance's format checks (its inspector, qemu-img info) accept it.
   */
  async snapshot(uuid: string, outDir: string): Promise<SnapshotResult> {
    const i = this.get(uuid);
    const path = join(outDir, `${uuid}-snapshot.qcow2`);
    await writeFile(path, emptyQcow2(Math.max(i.flavor.rootGb, 1) * 1024 ** 3));
    return { path, format: 'qcow2', live: true };
  }

  async resize(uuid: string, flavor: FlavorSpec): Promise<void> {
    const i = this.get(uuid);
    if (i.power !== PowerState.SHUTDOWN) throw new InvalidInstanceStateError(uuid, 'resize', i.power);
    if (flavor.rootGb < i.flavor.rootGb) throw new DriverError(`cannot shrink the root disk of ${uuid} from ${i.flavor.rootGb} to ${flavor.rootGb} GB`);
    i.flavor = { ...flavor };
  }

  /**
   * Attached volumes and NICs only: volumes hot-plugged while running are kept as
   * they would be on the real driver's next start.
   */
  async migrateDisks(uuid: string, target: MigrationTarget): Promise<void> {
    const i = this.get(uuid);
    if (i.power !== PowerState.SHUTDOWN) throw new InvalidInstanceStateError(uuid, 'migrate', i.power);
    const dest = hosts.get(target.instancesDir);
    if (!dest) throw new DriverError(`no fake host at ${target.instancesDir}`);
    if (dest.instances.has(uuid)) throw new InstanceExistsError(uuid);
    dest.instances.set(uuid, {
      ...i,
      spec: structuredClone(i.spec),
      flavor: { ...i.flavor },
      volumes: new Map(i.volumes),
      volumeSizes: new Map(i.volumeSizes),
      nics: new Map(i.nics),
      slots: new Map(i.slots),
    });
  }

  async keepForRevert(uuid: string): Promise<void> {
    const i = this.get(uuid);
    if (i.power !== PowerState.SHUTDOWN) throw new InvalidInstanceStateError(uuid, 'keep the disks for a revert of', i.power);
    this.kept.set(uuid, { ...i.flavor });
  }

  async revertToKept(uuid: string): Promise<void> {
    const i = this.get(uuid);
    const flavor = this.kept.get(uuid);
    if (!flavor) return;
    if (i.power !== PowerState.SHUTDOWN) throw new InvalidInstanceStateError(uuid, 'revert', i.power);
    i.flavor = flavor;
    this.kept.delete(uuid);
  }

  async dropKept(uuid: string): Promise<void> {
    this.kept.delete(uuid);
  }

  /** Whether keepForRevert() kept something of the instance that is still there. */
  hasKept(uuid: string): boolean {
    return this.kept.has(uuid);
  }

  /** The root disk's size as the guest would see it (the fake's disks are its flavor's sizes). */
  rootDiskBytes(uuid: string): number {
    return this.get(uuid).flavor.rootGb * 1024 ** 3;
  }

  async rescue(uuid: string, rescueImage: ImageSpec): Promise<void> {
    const i = this.get(uuid);
    if (i.rescue) throw new InvalidInstanceStateError(uuid, 'rescue (already in rescue)', i.power);
    i.rescue = rescueImage;
    i.power = PowerState.RUNNING;
  }

  async unrescue(uuid: string): Promise<void> {
    const i = this.get(uuid);
    if (!i.rescue) throw new InvalidInstanceStateError(uuid, 'unrescue (not in rescue)', i.power);
    i.rescue = undefined;
    i.power = PowerState.RUNNING;
  }

  /** What the instance was spawned from (its config drive files among it), for tests. */
  spawnedSpec(uuid: string): InstanceSpec {
    return this.get(uuid).spec;
  }

  /** What the fake hypervisor has attached, for tests (the QEMU driver's equivalent is query-block). */
  attachedVolumes(uuid: string): string[] {
    return [...this.get(uuid).volumes.keys()];
  }

  attachedPorts(uuid: string): string[] {
    return [...this.get(uuid).nics.keys()];
  }

  private get(uuid: string): FakeInstance {
    const i = this.instances.get(uuid);
    if (!i) throw new InstanceNotFoundError(uuid);
    return i;
  }

  private running(uuid: string, action: string): FakeInstance {
    const i = this.get(uuid);
    if (i.power !== PowerState.RUNNING) throw new InvalidInstanceStateError(uuid, action, i.power);
    return i;
  }

  private transition(uuid: string, action: string, from: PowerStateCode, to: PowerStateCode): void {
    const i = this.get(uuid);
    if (i.power !== from) throw new InvalidInstanceStateError(uuid, action, i.power);
    i.power = to;
  }

  /** The first free slot for a hot-plugged device, as the QEMU driver's root ports. */
  private takeSlot(i: FakeInstance, key: string): void {
    const bootDevices = i.spec.blockDevices.length + i.spec.nics.length;
    if (i.volumes.size + i.nics.size - bootDevices >= this.capabilities.hotplugSlots) {
      throw new NoFreeSlotError(`instance ${i.spec.uuid} has no free hot-plug slot`);
    }
    const used = new Set(i.slots.values());
    let slot = 0;
    while (used.has(slot)) slot++;
    i.slots.set(key, slot);
  }
}

/**
 * What `qemu-img create -f qcow2 -o compat=0.10` makes: 64 KiB clusters; header, refcount
 * table, one refcount block (clusters 0-3 in use) and an all-zero L1 table, one cluster each.
 */
function emptyQcow2(virtualSize: number): Buffer {
  const cluster = 0x10000;
  const l1Size = Math.ceil(virtualSize / (cluster * (cluster / 8)));
  const b = Buffer.alloc(3 * cluster + 8 * l1Size);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(2, 4);
  b.writeUInt32BE(16, 20);
  b.writeBigUInt64BE(BigInt(virtualSize), 24);
  b.writeUInt32BE(l1Size, 36);
  b.writeBigUInt64BE(BigInt(3 * cluster), 40);
  b.writeBigUInt64BE(BigInt(cluster), 48);
  b.writeUInt32BE(1, 56);
  b.writeBigUInt64BE(BigInt(2 * cluster), cluster);
  for (let c = 0; c < 4; c++) b.writeUInt16BE(1, 2 * cluster + 2 * c);
  return b;
}
