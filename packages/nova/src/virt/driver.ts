/**
 * The compute driver contract: what nova-compute asks of a hypervisor on its host.
 * Upstream's nova.virt.driver.ComputeDriver, cut to what onestack implements, with
 * the behaviour written down per method so that every implementation (QEMU, the fake)
 * can be held to it by one contract suite (driver-contract.ts).
 *
 * General rules, for every method:
 * - Instances are named by their uuid. A method on an unknown uuid throws
 *   InstanceNotFoundError, except destroy(), which is idempotent.
 * - A method called in a state where it makes no sense throws InvalidInstanceStateError
 *   and changes nothing (e.g. unpause on a running instance). Methods whose goal state
 *   already holds return quietly (powerOff on a stopped instance, powerOn on a running
 *   one), so the compute manager may retry after a crash without bookkeeping.
 * - The driver keeps no state that a restart loses: everything it needs to find,
 *   start, stop or destroy an instance lives on the host (instance directory, pidfile),
 *   so a new driver object sees the instances of the previous one (listInstances).
 * - A failure leaves the instance as it was before the call, unless a method says
 *   otherwise; a failed spawn leaves nothing at all behind.
 */
import { basename, dirname, join } from 'node:path';

/** Upstream's nova.compute.power_state codes, as the API's OS-EXT-STS:power_state shows them. */
export const PowerState = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
export type PowerStateCode = (typeof PowerState)[keyof typeof PowerState];

/**
 * What a driver can do, so the compute manager answers "not supported" before trying
 * (upstream's `capabilities` dict; upstream names in the comments).
 */
export interface DriverCapabilities {
  /** Hypervisor type as the hypervisors API reports it (`QEMU`, `fake`). */
  hypervisorType: string;
  /** has_imagecache: base images are kept per host and shared by overlays. */
  hasImageCache: boolean;
  /** supports_attach_interface */
  supportsAttachInterface: boolean;
  /** Volumes can be hot-plugged into a running instance. */
  supportsAttachVolume: boolean;
  /** Hot-plug slots per instance for volumes and NICs together (fixed at boot on q35). */
  hotplugSlots: number;
  /** snapshot() works on a running instance without pausing it. */
  supportsLiveSnapshot: boolean;
  /** suspend() saves the guest's memory and frees it; false: the guest is only stopped in place. */
  suspendFreesMemory: boolean;
  supportsRescue: boolean;
  supportsConfigDrive: boolean;
  /** resize() can grow the root disk (never shrink, as upstream). */
  supportsDiskGrow: boolean;
  /** migrateDisks() copies an instance's files to another host's instance directory. */
  supportsColdMigrate: boolean;
  consoles: { vnc: boolean; serial: boolean };
}

export interface HostInfo {
  vcpus: number;
  memoryMb: number;
  localGb: number;
  /** Used now, for the hypervisors API; placement uses the totals. */
  vcpusUsed: number;
  memoryMbUsed: number;
  localGbUsed: number;
  hypervisorType: string;
  /** Upstream encodes versions as integers: 7.2.22 → 7002022. */
  hypervisorVersion: number;
  hypervisorHostname: string;
  cpuInfo: { arch: string; model: string; vendor: string; topology: { sockets: number; cores: number; threads: number }; features: string[] };
  /** kvm or tcg: the accelerator a guest of this host runs under. */
  accelerator: string;
}

export interface FlavorSpec {
  name?: string;
  vcpus: number;
  memoryMb: number;
  rootGb: number;
  ephemeralGb: number;
  /** MiB, as the flavor's `swap`. */
  swapMb: number;
  extraSpecs: Record<string, string>;
}

export interface ImageSpec {
  id: string;
  /** The base image in the host's image cache (ImageCache.ensure), a standalone qcow2. */
  path: string;
  /** Glance properties; the hw_* ones are honoured where they make sense. */
  properties: Record<string, string>;
}

export interface NicSpec {
  portId: string;
  mac: string;
  /** A tap Neutron's L2 agent has created (or will wire) in the host namespace. */
  tapName: string;
  mtu?: number;
}

export interface NbdExport {
  host: string;
  port: number;
  exportName: string;
}

export interface BlockDeviceSpec {
  volumeId: string;
  /** A host path QEMU can open (a Cinder volume's file or device); either this or nbd. */
  path?: string;
  /** An NBD export the host reaches over TCP (Cinder's nbd connection info); the data is raw. */
  nbd?: NbdExport;
  format: 'qcow2' | 'raw';
  /** What the guest sees as the disk's serial (/sys/block/vdX/serial); the volume id by default. */
  serial?: string;
  readOnly?: boolean;
  /** 0 makes it the boot disk (boot from volume; then the spec needs no image). */
  bootIndex?: number;
}

export interface InstanceSpec {
  uuid: string;
  name: string;
  hostname: string;
  flavor: FlavorSpec;
  /** Absent when booting from a volume (a block device with bootIndex 0). */
  image?: ImageSpec;
  nics: NicSpec[];
  blockDevices: BlockDeviceSpec[];
  /** Files of the config drive by path (`openstack/latest/meta_data.json` …); absent: no drive. */
  configDrive?: Record<string, string | Uint8Array>;
  /** Kept for drivers that inject it; the QEMU driver reads it only through the config drive. */
  userData?: string;
}

export interface InstanceInfo {
  uuid: string;
  powerState: PowerStateCode;
  /** Guest memory and vCPUs it runs (or will next run) with. */
  memoryMb: number;
  vcpus: number;
  /** Host process, when one runs. */
  pid?: number;
}

export type ConsoleEndpoint =
  | { kind: 'tcp'; host: string; port: number; websocketPort?: number; netns?: string }
  | { kind: 'unix'; path: string };

export interface SnapshotResult {
  /** A standalone qcow2 (no backing file) the caller uploads to Glance, then removes. */
  path: string;
  format: 'qcow2';
  /** Whether the guest kept running throughout. */
  live: boolean;
}

/** Where the guest finds a device: upstream's device metadata bus and address (PCI `domain:bus:slot.function`). */
export interface DeviceAddress {
  bus: 'pci';
  address: string;
}

/** An instance's disks and NICs by where the guest finds them. */
export interface DeviceAddresses {
  /** The instance's own root disk; absent when it boots from a volume (then among `volumes`). */
  rootDisk?: DeviceAddress;
  /** Attached volumes, a boot volume too, by volume id. */
  volumes: Record<string, DeviceAddress>;
  /** NICs by port id. */
  nics: Record<string, DeviceAddress>;
}

export interface MigrationTarget {
  /** The destination host's instance directory (its driver's instancesDir). */
  instancesDir: string;
  /** The same image's base in the destination host's cache, which the copied overlay is rebased onto. */
  imagePath?: string;
}

export interface ComputeDriver {
  readonly capabilities: DriverCapabilities;
  /** What another host's migrateDisks() is given as MigrationTarget.instancesDir to copy here. */
  readonly instancesDir: string;

  /** Totals and use of this host for placement's inventory and the hypervisors API. Cheap; no side effects. */
  getHostInfo(): Promise<HostInfo>;

  /**
   * Creates the instance and starts it: disks (an overlay on spec.image.path, blank
   * ephemeral and swap disks), config drive, then the guest. Resolves once the
   * hypervisor runs the guest (not once the guest has booted).
   * Not idempotent: a uuid that exists throws InstanceExistsError and leaves that
   * instance alone. On any failure everything this call made (process, disks, files,
   * sockets) is removed before the error is thrown.
   */
  spawn(spec: InstanceSpec): Promise<void>;

  /**
   * Stops the guest at once (no ACPI) and removes everything of the instance on this
   * host: process, disks, config drive, logs, sockets, pidfile, directory, what
   * keepForRevert() kept. Attached
   * volumes' own files are left alone. Idempotent: an unknown uuid is a no-op.
   */
  destroy(uuid: string): Promise<void>;

  /**
   * ACPI power button, then waits up to timeoutSec for the guest to shut down, then
   * kills it. Afterwards getInfo says SHUTDOWN and the disks are kept. timeoutSec 0:
   * kill at once (upstream's `clean_shutdown=False`). No-op when already off.
   */
  powerOff(uuid: string, opts?: { timeoutSec?: number }): Promise<void>;

  /** Starts a stopped instance from its disks (with its current flavor and devices). No-op when running. */
  powerOn(uuid: string): Promise<void>;

  /**
   * soft: ACPI shutdown (falling back to a kill after timeoutSec) and start again;
   * hard: kill and start again. Either way the instance runs afterwards, also when it was
   * stopped, paused or suspended before (upstream's hard reboot "fixes" those states).
   */
  reboot(uuid: string, type: 'SOFT' | 'HARD', opts?: { timeoutSec?: number }): Promise<void>;

  /** Freezes the vCPUs; memory stays in place. Only from RUNNING; PAUSED afterwards. */
  pause(uuid: string): Promise<void>;
  /** Only from PAUSED. */
  unpause(uuid: string): Promise<void>;
  /**
   * Only from RUNNING; SUSPENDED afterwards. See capabilities.suspendFreesMemory for
   * whether the guest's memory is saved to disk and freed or the guest only stopped.
   */
  suspend(uuid: string): Promise<void>;
  /** Only from SUSPENDED; RUNNING afterwards. */
  resume(uuid: string): Promise<void>;

  getInfo(uuid: string): Promise<InstanceInfo>;

  /**
   * A non-maskable interrupt into the guest (upstream's trigger_crash_dump, libvirt's
   * inject_nmi): a guest set up for it (kdump, panic on NMI) crashes and dumps its memory,
   * others log it and go on. Power states are left alone. Only when RUNNING or PAUSED;
   * otherwise InvalidInstanceStateError (upstream's InstanceNotRunning).
   */
  injectNmi(uuid: string): Promise<void>;

  /**
   * Instances this driver has on the host, running or not, found from the host alone
   * (for the compute manager to reconcile after a restart).
   */
  listInstances(): Promise<string[]>;

  /** The tail of the serial console log (at most maxBytes, default 64 KiB); '' before the guest wrote anything. */
  getConsoleOutput(uuid: string, opts?: { maxBytes?: number }): Promise<string>;

  /** Where a VNC proxy connects to; the instance must be running. */
  getVncConsole(uuid: string): Promise<ConsoleEndpoint>;
  /** Where a serial console proxy connects to (the guest's ttyS0); the instance must be running. */
  getSerialConsole(uuid: string): Promise<ConsoleEndpoint>;

  /**
   * Where spawn(spec) will put the guest's disks and NICs, known before the guest exists, so that
   * the config drive can carry the device metadata (upstream builds it once the domain is defined,
   * before it runs). Pure: no host access.
   */
  plannedDeviceAddresses(spec: InstanceSpec): DeviceAddresses;
  /**
   * Where the instance's disks and NICs are now, hot-plugged ones too, running or not. An address
   * stays a device's for as long as it is attached, across stop/start, resize and migration.
   */
  deviceAddresses(uuid: string): Promise<DeviceAddresses>;

  /**
   * Hot-plugs a volume into a running instance (or records it for the next start when
   * stopped), visible to the guest with the volume's serial. Attaching a volume that is
   * attached already is a no-op. NoFreeSlotError when the hot-plug slots are used up.
   */
  attachVolume(uuid: string, device: BlockDeviceSpec): Promise<void>;
  /** Unplugs it and waits until the guest let go; detaching what is not attached is a no-op. */
  detachVolume(uuid: string, volumeId: string): Promise<void>;
  /**
   * Tells a running guest that an attached volume grew on its backend to newSizeBytes (upstream's
   * extend_volume after Cinder's online extend); a stopped instance sees the new size at its next
   * start. VolumeNotAttachedError when the volume is not attached to the instance.
   */
  extendVolume(uuid: string, volumeId: string, newSizeBytes: number): Promise<void>;
  /**
   * upstream's volume_snapshot_create (Cinder's assisted snapshots of file volumes): writes a
   * point-in-time full copy of the attached volume's disk, as qcow2 without a backing file,
   * to `newFile` in the directory of the volume's file (a file name, never a path). A running
   * guest keeps running and keeps writing to its volume; the copy holds the data of the moment
   * the copy started. VolumeNotAttachedError when not attached; DriverError for a volume the
   * host reaches other than by its file (NBD) or a bad name. A failure leaves no `newFile`.
   */
  volumeSnapshotCreate(uuid: string, volumeId: string, newFile: string): Promise<void>;
  /**
   * Moves an attached volume's disk of a running instance onto other storage (upstream's
   * swap_volume, for Cinder's migration of an in-use volume): the guest's data is copied to
   * `to` while the guest runs and writes, then the disk reads and writes `to` alone. The disk
   * keeps the volume id and serial it had, so the guest sees the same disk and later calls
   * name it by `volumeId`; `to.volumeId` (the new volume's) only names the new storage. The
   * old storage is let go and may be deleted afterwards. Not running: InvalidInstanceStateError;
   * not attached: VolumeNotAttachedError. A failure cancels the copy and the disk stays on the
   * old storage.
   */
  swapVolume(uuid: string, volumeId: string, to: BlockDeviceSpec): Promise<void>;
  /** As attachVolume, for a NIC on a tap that exists in the host namespace. */
  attachInterface(uuid: string, nic: NicSpec): Promise<void>;
  detachInterface(uuid: string, portId: string): Promise<void>;

  /**
   * A standalone copy of the root disk as it is now, in outDir (which must exist). The
   * instance is left in the power state it had. On failure no partial file is left.
   */
  snapshot(uuid: string, outDir: string): Promise<SnapshotResult>;

  /**
   * Changes the flavor of a stopped instance (InvalidInstanceStateError otherwise):
   * memory and vCPUs apply at the next start, the root disk grows now (a smaller
   * root_gb than the disk throws and changes nothing; upstream refuses shrinking too).
   */
  resize(uuid: string, flavor: FlavorSpec): Promise<void>;

  /**
   * Copies a stopped instance's files (disks, config drive, definition) into another
   * host's instance directory, where that host's driver then sees and starts it. The
   * source copy stays until destroy() (so a revert can go back). A failure removes the
   * partial copy.
   */
  migrateDisks(uuid: string, target: MigrationTarget): Promise<void>;

  /**
   * Before a resize on this host: keeps the stopped instance's disks and flavor as they are
   * now, so that revertToKept() can bring them back after resize() grew them (upstream's
   * migrate_disk_and_power_off keeps the instance directory as `<dir>_resize`, for the same
   * host too). Replaces what an earlier call kept. Running: InvalidInstanceStateError. A
   * failure keeps nothing and leaves the instance as it was.
   */
  keepForRevert(uuid: string): Promise<void>;
  /**
   * Upstream's finish_revert_migration: the stopped instance's disks and flavor go back to
   * what keepForRevert() kept, and the kept copy is used up; volumes and NICs attached
   * meanwhile stay attached. Nothing kept (the revert of a move between hosts, whose source
   * copy never changed): a no-op. Running: InvalidInstanceStateError.
   */
  revertToKept(uuid: string): Promise<void>;
  /** Upstream's confirm_migration on the same host: what keepForRevert() kept goes. No-op without it. destroy() drops it too. */
  dropKept(uuid: string): Promise<void>;

  /**
   * Boots the instance from a fresh overlay of the rescue image, with its own root disk
   * attached as the second disk; the instance must not be running in rescue already.
   * unrescue() starts it again from its own disk and removes the rescue disk.
   */
  rescue(uuid: string, rescueImage: ImageSpec): Promise<void>;
  unrescue(uuid: string): Promise<void>;
}

export class DriverError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = new.target.name;
  }
}
export class InstanceNotFoundError extends DriverError {
  constructor(readonly uuid: string) {
    super(`Instance ${uuid} could not be found on this host.`);
  }
}
export class InstanceExistsError extends DriverError {
  constructor(readonly uuid: string) {
    super(`Instance ${uuid} already exists on this host.`);
  }
}
export class InvalidInstanceStateError extends DriverError {
  constructor(
    readonly uuid: string,
    readonly action: string,
    readonly powerState: PowerStateCode,
  ) {
    super(`Cannot ${action} instance ${uuid} while its power state is ${powerStateName(powerState)}.`);
  }
}
export class NoFreeSlotError extends DriverError {}
/** upstream's DiskNotFound: the instance has no disk of that volume. */
export class VolumeNotAttachedError extends DriverError {
  constructor(uuid: string, volumeId: string) {
    super(`Volume ${volumeId} is not attached to instance ${uuid}.`);
  }
}
/** The image cannot be used: unsafe (backing or data file), unreadable, or of a format we refuse. */
export class ImageUnacceptableError extends DriverError {}

export function powerStateName(code: number): string {
  return Object.entries(PowerState).find(([, v]) => v === code)?.[0] ?? String(code);
}

/** The volume a spec boots from, if it boots from one. */
export const bootVolumeOf = (spec: InstanceSpec): BlockDeviceSpec | undefined => spec.blockDevices.find((b) => b.bootIndex === 0);

/** Instance uuids become directory and process names: only canonical uuids are accepted. */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export function checkUuid(uuid: string): string {
  if (!UUID_RE.test(uuid)) throw new DriverError(`invalid instance uuid ${JSON.stringify(uuid)}`);
  return uuid;
}

/**
 * Where volumeSnapshotCreate writes `newFile`: beside the volume's file, as upstream's libvirt
 * driver puts Cinder's new_file next to the disk it snapshots. The name comes over the API
 * (from Cinder's service user) and the host writes it as the hypervisor's user, so a name with
 * a directory in it, or one naming the volume's own file, is refused.
 */
export function volumeSnapshotPath(device: BlockDeviceSpec, newFile: string): string {
  if (!device.path) throw new DriverError(`volume ${device.volumeId} is not a file on this host: its snapshot cannot be written beside it`);
  if (!newFile || newFile !== basename(newFile) || newFile === '.' || newFile === '..' || newFile === basename(device.path)) {
    throw new DriverError(`invalid new_file ${JSON.stringify(newFile)} for a snapshot of volume ${device.volumeId}`);
  }
  return join(dirname(device.path), newFile);
}
