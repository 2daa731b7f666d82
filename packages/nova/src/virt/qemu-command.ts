/**
 * The QEMU command line of an instance, built from its persisted definition. Pure: no
 * I/O, so every choice is unit-tested and a start after a restart, a resize or a
 * migration rebuilds exactly what the definition says.
 *
 * Defaults are the ones measured on these machines (shared/notes/vms-and-networks.md):
 * q35, `-cpu max`, TCG with a 64 MiB translation cache, virtio disks and NICs,
 * `-nodefaults` (no stray IDE CD-ROM), spare pcie-root-ports for hot-plug (q35 cannot
 * hot-plug on pcie.0), a serial chardev socket that also logs to a file, VGA + VNC.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { BlockDeviceSpec, DeviceAddress, DeviceAddresses, FlavorSpec, NicSpec } from './driver.ts';

export type MachineType = 'q35' | 'pc';
export type Accelerator = 'tcg' | 'kvm';

/** A device hot-plugged (or to be plugged at next start) into a spare root port. */
/** A volume as the instance has it: its block node is volumeNode(volumeId) unless a swap gave it another (`node`). */
export interface PlacedVolume extends BlockDeviceSpec {
  node?: string;
}
export interface SlottedVolume extends PlacedVolume {
  slot: number;
}
export interface SlottedNic extends NicSpec {
  slot: number;
}

/** Everything needed to (re)start an instance: written to <instance dir>/instance.json. */
export interface InstanceDefinition {
  version: 1;
  uuid: string;
  name: string;
  hostname: string;
  flavor: FlavorSpec;
  machine: MachineType;
  nicModel: 'virtio' | 'e1000' | 'rtl8139';
  imageId?: string;
  /** Root disk: the overlay file `disk` in the instance dir, or a volume. */
  rootVolume?: PlacedVolume;
  ephemeral: boolean;
  swap: boolean;
  configDrive: boolean;
  rng: boolean;
  /**
   * Root ports (q35) fixed at spawn: one per NIC and extra volume of the request plus
   * the spare hot-plug slots, so every NIC and volume, also those of the request, can
   * be unplugged later (a device on pcie.0 cannot).
   */
  slots: number;
  volumes: SlottedVolume[];
  nics: SlottedNic[];
  /** Set while rescued: the overlay `disk.rescue` boots, the own disk is the second. */
  rescueImageId?: string;
  /** Set while suspended (see QemuDriver.suspend). */
  suspended?: boolean;
}

export interface LaunchOptions {
  dir: string;
  accel: Accelerator;
  /** TCP VNC display (port 5900+N, websocket 5700+N), or a unix socket in the instance dir. */
  vnc: { display: number } | 'unix';
  tbSizeMb?: number;
}

/** File names inside an instance directory. */
export const FILES = {
  definition: 'instance.json',
  disk: 'disk',
  rescue: 'disk.rescue',
  ephemeral: 'disk.eph0',
  swap: 'disk.swap',
  configDrive: 'disk.config',
  console: 'console.log',
  serial: 'serial.sock',
  qmp: 'qmp.sock',
  vnc: 'vnc.sock',
  pid: 'qemu.pid',
} as const;

/** QEMU node names are limited to 31 characters: derive short, stable ids from the volume/port id. */
export function volumeNode(volumeId: string): string {
  return `vol${createHash('sha256').update(volumeId).digest('hex').slice(0, 16)}`;
}
/** The block node the guest's disk of the volume reads and writes through. */
export function nodeOf(v: PlacedVolume): string {
  return v.node ?? volumeNode(v.volumeId);
}
export function nicId(portId: string): string {
  return `nic${createHash('sha256').update(portId).digest('hex').slice(0, 16)}`;
}

/** virtio-blk carries 20 bytes of serial; upstream's guests see the volume id's first 20 characters too. */
export function diskSerial(b: BlockDeviceSpec): string {
  return (b.serial ?? b.volumeId).slice(0, 20);
}

/** QEMU's -blockdev in JSON form, so that no path needs comma escaping. */
function blockdev(node: string, path: string, format: 'qcow2' | 'raw', readOnly = false): string[] {
  return ['-blockdev', JSON.stringify(fileBlockdev(node, path, format, readOnly))];
}

function fileBlockdev(node: string, path: string, format: 'qcow2' | 'raw', readOnly: boolean): Record<string, unknown> {
  return { driver: format, 'node-name': node, 'read-only': readOnly, file: { driver: 'file', filename: path, 'read-only': readOnly } };
}

/** A volume's blockdev options, as -blockdev (JSON) and QMP's blockdev-add take them alike: a file, or an NBD export over TCP. */
export function volumeBlockdev(v: PlacedVolume): Record<string, unknown> {
  const node = nodeOf(v);
  const readOnly = v.readOnly ?? false;
  if (v.nbd) {
    const file = { driver: 'nbd', server: { type: 'inet', host: v.nbd.host, port: String(v.nbd.port) }, export: v.nbd.exportName, 'read-only': readOnly };
    return { driver: v.format, 'node-name': node, 'read-only': readOnly, file };
  }
  if (!v.path) throw new Error(`volume ${v.volumeId} has neither a path nor an NBD export`);
  return fileBlockdev(node, v.path, v.format, readOnly);
}

/** What qemu-img opens for a volume: its path, or the NBD export's URI. */
export function volumeSource(v: BlockDeviceSpec): string {
  if (v.nbd) return `nbd://${v.nbd.host.includes(':') ? `[${v.nbd.host}]` : v.nbd.host}:${v.nbd.port}/${encodeURIComponent(v.nbd.exportName)}`;
  if (!v.path) throw new Error(`volume ${v.volumeId} has neither a path nor an NBD export`);
  return v.path;
}

function device(driver: string, props: Record<string, string | number | undefined>): string[] {
  const parts = [driver];
  for (const [k, v] of Object.entries(props)) if (v !== undefined) parts.push(`${k}=${v}`);
  return ['-device', parts.join(',')];
}

/** Where a slotted device goes: its own root port (q35), or a fixed slot of the root bus (pc). */
export type SlotPlacement = { bus?: string; addr?: string };

/** What QMP's device_add/blockdev-add take for a volume (hot-plug) or what -device says at start. */
export function volumeDeviceProps(v: PlacedVolume, at: SlotPlacement = {}): Record<string, string | number | undefined> {
  return { drive: nodeOf(v), id: `${volumeNode(v.volumeId)}-dev`, serial: diskSerial(v), ...at, bootindex: v.bootIndex === 0 ? 1 : undefined };
}

export function nicDeviceProps(nic: NicSpec, model: InstanceDefinition['nicModel'], at: SlotPlacement = {}): Record<string, string | number | undefined> {
  const id = nicId(nic.portId);
  const driver = model === 'virtio' ? 'virtio-net-pci' : model;
  return { driver, netdev: `${id}-net`, id, mac: nic.mac, ...at, host_mtu: model === 'virtio' ? nic.mtu : undefined };
}

export function rootPortId(slot: number): string {
  return `rp${slot}`;
}

function nicArgs(nic: NicSpec, model: InstanceDefinition['nicModel'], at: SlotPlacement): string[] {
  const { driver, ...props } = nicDeviceProps(nic, model, at);
  return ['-netdev', `tap,id=${nicId(nic.portId)}-net,ifname=${nic.tapName},script=no,downscript=no`, ...device(String(driver), props)];
}

/**
 * The first root-bus slot of a pc machine's slotted devices: below it QEMU places the host bridge
 * (0), PIIX3 (1) and, in command-line order, the rescue, root, ephemeral and swap disks, the RNG
 * and VGA (2–7 at most). A fixed slot keeps a device's address across restarts, as libvirt does.
 */
const PC_FIRST_SLOT = 0x08;

export function slotPlacement(machine: MachineType, slot: number): SlotPlacement {
  return machine === 'q35' ? { bus: rootPortId(slot) } : { addr: `0x${(PC_FIRST_SLOT + slot).toString(16)}` };
}

const pci = (bus: number, slot: number): DeviceAddress => ({ bus: 'pci', address: `0000:${hex2(bus)}:${hex2(slot)}.0` });
const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/**
 * Where the guest finds each disk and NIC of a definition, without asking QEMU: the root device is
 * the first one QEMU places on the root bus (after the host bridge on q35, after PIIX3 on pc), the
 * second when a rescue disk boots first. On q35 the root ports are the only bridges, created in slot
 * order, so the firmware numbers root port N's bus N+1 and its device sits at slot 0 there; on pc a
 * slotted device sits at its fixed slot of bus 0. (qemu-driver.test.ts checks these against
 * QMP's query-pci of running guests.)
 */
export function deviceAddresses(def: InstanceDefinition): DeviceAddresses {
  const root = pci(0, (def.machine === 'q35' ? 1 : 2) + (def.rescueImageId ? 1 : 0));
  const slotted = (slot: number) => (def.machine === 'q35' ? pci(slot + 1, 0) : pci(0, PC_FIRST_SLOT + slot));
  const volumes: Record<string, DeviceAddress> = Object.fromEntries(def.volumes.map((v) => [v.volumeId, slotted(v.slot)]));
  if (def.rootVolume) volumes[def.rootVolume.volumeId] = root;
  return { ...(def.rootVolume ? {} : { rootDisk: root }), volumes, nics: Object.fromEntries(def.nics.map((n) => [n.portId, slotted(n.slot)])) };
}

function volumeArgs(v: PlacedVolume, at: SlotPlacement): string[] {
  return ['-blockdev', JSON.stringify(volumeBlockdev(v)), ...device('virtio-blk-pci', volumeDeviceProps(v, at))];
}

export function buildQemuArgs(def: InstanceDefinition, opts: LaunchOptions): string[] {
  const f = (name: string) => join(opts.dir, name);
  const accel = opts.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${opts.tbSizeMb ?? 64}`, '-cpu', 'max'];
  const args = [
    '-name', `guest=instance-${def.uuid},debug-threads=on`,
    '-uuid', def.uuid,
    '-machine', def.machine,
    ...accel,
    '-smp', String(def.flavor.vcpus),
    '-m', String(def.flavor.memoryMb),
    '-nodefaults',
    '-no-user-config',
    // What a guest reads in /sys/class/dmi/id, as upstream's libvirt driver sets it.
    '-smbios', `type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,version=onestack,serial=${def.uuid},uuid=${def.uuid},family=Virtual Machine`,
  ];

  // Root disk (or the rescue disk, with the own disk second), then ephemeral, swap, config drive.
  const rootBoot = def.rescueImageId ? undefined : 1;
  if (def.rescueImageId) args.push(...blockdev('rescue0', f(FILES.rescue), 'qcow2'), ...device('virtio-blk-pci', { drive: 'rescue0', id: 'virtio-rescue0', bootindex: 1 }));
  if (def.rootVolume) {
    args.push('-blockdev', JSON.stringify(volumeBlockdev(def.rootVolume)));
    args.push(...device('virtio-blk-pci', { ...volumeDeviceProps(def.rootVolume), bootindex: rootBoot }));
  } else {
    args.push(...blockdev('disk0', f(FILES.disk), 'qcow2'), ...device('virtio-blk-pci', { drive: 'disk0', id: 'virtio-disk0', bootindex: rootBoot }));
  }
  if (def.ephemeral) args.push(...blockdev('eph0', f(FILES.ephemeral), 'qcow2'), ...device('virtio-blk-pci', { drive: 'eph0', id: 'virtio-eph0' }));
  if (def.swap) args.push(...blockdev('swap0', f(FILES.swap), 'qcow2'), ...device('virtio-blk-pci', { drive: 'swap0', id: 'virtio-swap0' }));
  if (def.configDrive) {
    args.push(...blockdev('config0', f(FILES.configDrive), 'raw', true));
    // The guest kernel has no AHCI: on q35 the drive is virtio-blk; on pc an IDE CD-ROM (piix), as upstream.
    args.push(...(def.machine === 'q35' ? device('virtio-blk-pci', { drive: 'config0', id: 'configdrive', serial: 'config-2' }) : device('ide-cd', { drive: 'config0', id: 'configdrive' })));
  }
  if (def.rng) args.push(...device('virtio-rng-pci', { id: 'rng0' }));

  // Hot-plug: q35 needs a root port per device, fixed at start; pc hot-plugs on its root bus.
  if (def.machine === 'q35') {
    for (let slot = 0; slot < def.slots; slot++) args.push(...device('pcie-root-port', { id: rootPortId(slot), bus: 'pcie.0', chassis: slot + 1 }));
  }
  for (const v of def.volumes) args.push(...volumeArgs(v, slotPlacement(def.machine, v.slot)));
  for (const n of def.nics) args.push(...nicArgs(n, def.nicModel, slotPlacement(def.machine, n.slot)));

  args.push(
    '-chardev', `socket,id=charserial0,path=${f(FILES.serial)},server=on,wait=off,logfile=${f(FILES.console)},logappend=on`,
    '-serial', 'chardev:charserial0',
    '-device', 'VGA',
    '-vnc', opts.vnc === 'unix' ? `unix:${f(FILES.vnc)}` : `127.0.0.1:${opts.vnc.display},websocket=on`,
    '-qmp', `unix:${f(FILES.qmp)},server=on,wait=off`,
    '-pidfile', f(FILES.pid),
    '-daemonize',
  );
  return args;
}

/** With `websocket=on` QEMU listens for websockets on 5700 + display. */
export function vncPorts(display: number): { port: number; websocketPort: number } {
  return { port: 5900 + display, websocketPort: 5700 + display };
}
