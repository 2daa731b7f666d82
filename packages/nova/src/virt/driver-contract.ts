/**
 * The behaviour every ComputeDriver shares (the contract written in driver.ts), as
 * node:test tests. fake-driver.test.ts runs it against the fake in milliseconds;
 * qemu-driver.test.ts runs it against real QEMU processes. The suite never waits for
 * a guest to boot (that is the QEMU driver's own tests' job), so against QEMU it costs
 * a handful of process starts, not boots.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it, after } from 'node:test';
import {
  DriverError,
  InstanceExistsError,
  InstanceNotFoundError,
  InvalidInstanceStateError,
  PowerState,
  type BlockDeviceSpec,
  type ComputeDriver,
  type ImageSpec,
  type InstanceSpec,
  type MigrationTarget,
  type NicSpec,
  VolumeNotAttachedError,
} from './driver.ts';

export interface DriverSubject {
  driver: ComputeDriver;
  /** A spec this driver can spawn, with a fresh uuid on every call. */
  spec(): InstanceSpec;
  /** A spec whose spawn fails inside the hypervisor step (not in argument checks). */
  failingSpec(): InstanceSpec;
  /** A new volume the driver can attach. */
  volume(): Promise<BlockDeviceSpec>;
  /** A new NIC whose tap exists. */
  nic(): Promise<NicSpec>;
  /** Volume ids the hypervisor itself has attached to the instance right now. */
  attachedVolumes(uuid: string): Promise<string[]>;
  /** The size of the instance's own root disk, as the hypervisor would give it to the guest. */
  rootDiskBytes(uuid: string): Promise<number>;
  /** Anything of the instance still on the host (files, processes, sockets, what keepForRevert kept), described. */
  leftovers(uuid: string): Promise<string[]>;
  /** A second driver object on the same host, as after a restart of nova-compute. */
  reopen(): ComputeDriver;
  /** Another host to migrate to, and its driver. */
  otherHost(): Promise<{ driver: ComputeDriver; target: MigrationTarget; leftovers(uuid: string): Promise<string[]> }>;
  rescueImage(): ImageSpec;
  /** Called before hot-plug: a real guest must have booted to acknowledge an unplug. */
  beforeHotplug?(uuid: string): Promise<void>;
  /** A directory for snapshots. */
  scratchDir: string;
  teardown?(): Promise<void>;
}

const { RUNNING, PAUSED, SHUTDOWN, SUSPENDED } = PowerState;
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export function computeDriverContract(name: string, setup: () => Promise<DriverSubject>, opts: { timeout?: number } = {}): void {
  describe(`ComputeDriver contract: ${name}`, { timeout: opts.timeout ?? 60_000 }, () => {
    let s: DriverSubject;
    const spawned = new Set<string>();
    const spawn = async (spec: InstanceSpec) => {
      spawned.add(spec.uuid);
      await s.driver.spawn(spec);
      return spec.uuid;
    };

    after(async () => {
      if (!s) return;
      for (const uuid of spawned) await s.driver.destroy(uuid).catch(() => {});
      await s.teardown?.();
    });

    it('reports host resources and capabilities', async () => {
      s = await setup();
      const host = await s.driver.getHostInfo();
      assert.ok(host.vcpus >= 1 && host.memoryMb >= 128 && host.localGb >= 1, JSON.stringify(host));
      assert.ok(host.hypervisorType.length > 0 && host.hypervisorVersion > 0);
      assert.equal(host.hypervisorType, s.driver.capabilities.hypervisorType);
      assert.ok(host.hypervisorHostname);
      assert.ok(s.driver.capabilities.hotplugSlots >= 1);
    });

    it('answers InstanceNotFound for an unknown uuid, and destroy of one is a no-op', async () => {
      const uuid = '00000000-0000-4000-8000-000000000000';
      await assert.rejects(s.driver.getInfo(uuid), InstanceNotFoundError);
      await assert.rejects(s.driver.powerOn(uuid), InstanceNotFoundError);
      await assert.rejects(s.driver.pause(uuid), InstanceNotFoundError);
      await assert.rejects(s.driver.injectNmi(uuid), InstanceNotFoundError);
      await assert.rejects(s.driver.getConsoleOutput(uuid), InstanceNotFoundError);
      await s.driver.destroy(uuid);
      await s.driver.destroy(uuid);
    });

    it('leaves nothing behind when spawn fails', async () => {
      const spec = s.failingSpec();
      await assert.rejects(s.driver.spawn(spec));
      assert.ok(!(await s.driver.listInstances()).includes(spec.uuid));
      await assert.rejects(s.driver.getInfo(spec.uuid), InstanceNotFoundError);
      assert.deepEqual(await s.leftovers(spec.uuid), []);
    });

    it('runs an instance through its power states, refusing transitions that make no sense', async () => {
      const spec = s.spec();
      const uuid = await spawn(spec);
      await assert.rejects(s.driver.spawn(spec), InstanceExistsError);
      const info = await s.driver.getInfo(uuid);
      assert.equal(info.powerState, RUNNING);
      const planned = s.driver.plannedDeviceAddresses(spec);
      assert.match(planned.rootDisk?.address ?? '', PCI_ADDRESS);
      assert.deepEqual(await s.driver.deviceAddresses(uuid), planned, 'spawn puts the devices where it said it would');
      assert.equal(info.memoryMb, spec.flavor.memoryMb);
      assert.equal(info.vcpus, spec.flavor.vcpus);
      assert.ok((await s.driver.listInstances()).includes(uuid));
      assert.equal(typeof (await s.driver.getConsoleOutput(uuid)), 'string');
      assert.ok(await s.driver.getVncConsole(uuid));
      assert.ok(await s.driver.getSerialConsole(uuid));

      await assert.rejects(s.driver.unpause(uuid), InvalidInstanceStateError);
      await assert.rejects(s.driver.resume(uuid), InvalidInstanceStateError);
      await s.driver.injectNmi(uuid);
      await s.driver.pause(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, PAUSED);
      await s.driver.injectNmi(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, PAUSED, 'an NMI leaves the power state alone');
      await assert.rejects(s.driver.pause(uuid), InvalidInstanceStateError);
      await assert.rejects(s.driver.suspend(uuid), InvalidInstanceStateError);
      await s.driver.unpause(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);

      await s.driver.suspend(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, SUSPENDED);
      await s.driver.resume(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);

      // Restarted nova-compute: a new driver object finds the instance and its state.
      const again = s.reopen();
      assert.ok((await again.listInstances()).includes(uuid));
      assert.equal((await again.getInfo(uuid)).powerState, RUNNING);

      await s.driver.powerOff(uuid, { timeoutSec: 0 });
      assert.equal((await s.driver.getInfo(uuid)).powerState, SHUTDOWN);
      await s.driver.powerOff(uuid, { timeoutSec: 0 });
      await assert.rejects(s.driver.pause(uuid), InvalidInstanceStateError);
      await assert.rejects(s.driver.injectNmi(uuid), InvalidInstanceStateError);
      await assert.rejects(s.driver.getVncConsole(uuid), InvalidInstanceStateError);
      assert.ok((await s.driver.listInstances()).includes(uuid), 'a stopped instance is still listed');

      await s.driver.powerOn(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);
      await s.driver.powerOn(uuid);
      await s.driver.pause(uuid);
      await s.driver.reboot(uuid, 'HARD');
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING, 'a hard reboot runs a paused instance again');
    });

    it('hot-plugs volumes and NICs, idempotently', async () => {
      const uuid = [...spawned].at(-1)!;
      await s.beforeHotplug?.(uuid);
      const vol = await s.volume();
      await s.driver.attachVolume(uuid, vol);
      await s.driver.attachVolume(uuid, vol);
      assert.deepEqual((await s.attachedVolumes(uuid)).filter((v) => v === vol.volumeId), [vol.volumeId]);
      const at = await s.driver.deviceAddresses(uuid);
      const volAt = at.volumes[vol.volumeId];
      assert.match(volAt?.address ?? '', PCI_ADDRESS);
      assert.notEqual(volAt.address, at.rootDisk?.address);
      // Cinder migrates the attached volume: the disk moves onto another volume's storage and keeps its volume id.
      const other = await s.volume();
      await s.driver.swapVolume(uuid, vol.volumeId, other);
      assert.deepEqual((await s.driver.deviceAddresses(uuid)).volumes[vol.volumeId], volAt, 'the swapped disk stays where the guest had it');
      await assert.rejects(s.driver.swapVolume(uuid, other.volumeId, vol), VolumeNotAttachedError);
      // Cinder grew the volume on its backend (the subjects' volumes are smaller than 32 MiB); the guest is told.
      await s.driver.extendVolume(uuid, vol.volumeId, 32 * 1024 * 1024);
      // Cinder's assisted snapshot: a standalone copy beside the disk's file (now `other`'s, after the swap).
      const copyName = `snapshot-${randomUUID()}.qcow2`;
      await s.driver.volumeSnapshotCreate(uuid, vol.volumeId, copyName);
      const copy = join(dirname(other.path ?? '/'), copyName);
      if (other.path && existsSync(other.path)) assert.ok(existsSync(copy), 'the copy is written beside the volume');
      await rm(copy, { force: true });
      await assert.rejects(s.driver.volumeSnapshotCreate(uuid, vol.volumeId, `../${copyName}`), DriverError);
      await assert.rejects(s.driver.volumeSnapshotCreate(uuid, other.volumeId, copyName), VolumeNotAttachedError);
      await s.driver.detachVolume(uuid, vol.volumeId);
      await s.driver.detachVolume(uuid, vol.volumeId);
      assert.ok(!(await s.attachedVolumes(uuid)).includes(vol.volumeId));
      assert.equal((await s.driver.deviceAddresses(uuid)).volumes[vol.volumeId], undefined);
      await assert.rejects(s.driver.extendVolume(uuid, vol.volumeId, 32 * 1024 * 1024), VolumeNotAttachedError);
      if (s.driver.capabilities.supportsAttachInterface) {
        const nic = await s.nic();
        await s.driver.attachInterface(uuid, nic);
        await s.driver.attachInterface(uuid, nic);
        const nicAt = (await s.driver.deviceAddresses(uuid)).nics[nic.portId];
        assert.match(nicAt?.address ?? '', PCI_ADDRESS);
        assert.notEqual(nicAt.address, at.rootDisk?.address);
        await s.driver.detachInterface(uuid, nic.portId);
        assert.equal((await s.driver.deviceAddresses(uuid)).nics[nic.portId], undefined);
        await s.driver.detachInterface(uuid, nic.portId);
      }
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);
    });

    it('snapshots a running instance into a file and leaves it running', async () => {
      const uuid = [...spawned].at(-1)!;
      const snap = await s.driver.snapshot(uuid, s.scratchDir);
      assert.ok(existsSync(snap.path) && statSync(snap.path).size > 0);
      assert.equal(snap.format, 'qcow2');
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);
    });

    it('resizes only a stopped instance, grows and never shrinks', async () => {
      const uuid = [...spawned].at(-1)!;
      const spec = s.spec();
      const bigger = { ...spec.flavor, memoryMb: spec.flavor.memoryMb * 2, rootGb: spec.flavor.rootGb + 1 };
      await assert.rejects(s.driver.resize(uuid, bigger), InvalidInstanceStateError);
      await s.driver.powerOff(uuid, { timeoutSec: 0 });
      await s.driver.resize(uuid, bigger);
      await assert.rejects(s.driver.resize(uuid, { ...bigger, rootGb: spec.flavor.rootGb }));
      assert.equal((await s.driver.getInfo(uuid)).memoryMb, bigger.memoryMb);
      await s.driver.powerOn(uuid);
      const info = await s.driver.getInfo(uuid);
      assert.equal(info.powerState, RUNNING);
      assert.equal(info.memoryMb, bigger.memoryMb);
    });

    it('keeps the disks for a revert on the same host, brings them back, and drops them on confirm', async () => {
      const uuid = [...spawned].at(-1)!;
      await assert.rejects(s.driver.keepForRevert(uuid), InvalidInstanceStateError);
      await s.driver.powerOff(uuid, { timeoutSec: 0 });
      const before = await s.driver.getInfo(uuid);
      const disk = await s.rootDiskBytes(uuid);
      const spec = s.spec();
      const flavor = { ...spec.flavor, memoryMb: before.memoryMb * 2, rootGb: disk / 1024 ** 3 + 1 };
      // Resize, then revert: upstream's same-host revert brings the original disk back, not the grown one.
      await s.driver.keepForRevert(uuid);
      await s.driver.resize(uuid, flavor);
      assert.equal(await s.rootDiskBytes(uuid), disk + 1024 ** 3);
      await s.driver.revertToKept(uuid);
      assert.equal(await s.rootDiskBytes(uuid), disk);
      assert.equal((await s.driver.getInfo(uuid)).memoryMb, before.memoryMb);
      await s.driver.revertToKept(uuid);
      assert.equal(await s.rootDiskBytes(uuid), disk, 'nothing kept any more: a second revert changes nothing');
      // Resize, then confirm: the kept copy goes and the grown disk stays.
      await s.driver.keepForRevert(uuid);
      await s.driver.resize(uuid, flavor);
      await s.driver.dropKept(uuid);
      await s.driver.dropKept(uuid);
      await s.driver.revertToKept(uuid);
      assert.equal(await s.rootDiskBytes(uuid), disk + 1024 ** 3);
      // Kept again and never confirmed nor reverted: destroy (last test) must take it too.
      await s.driver.keepForRevert(uuid);
      await s.driver.powerOn(uuid);
      await assert.rejects(s.driver.revertToKept(uuid), InvalidInstanceStateError);
      assert.equal((await s.driver.getInfo(uuid)).memoryMb, flavor.memoryMb);
    });

    it('rescues and unrescues', async () => {
      const uuid = [...spawned].at(-1)!;
      await s.driver.rescue(uuid, s.rescueImage());
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);
      await assert.rejects(s.driver.rescue(uuid, s.rescueImage()), InvalidInstanceStateError);
      await s.driver.unrescue(uuid);
      assert.equal((await s.driver.getInfo(uuid)).powerState, RUNNING);
      await assert.rejects(s.driver.unrescue(uuid), InvalidInstanceStateError);
    });

    it('copies a stopped instance to another host, which then lists it as stopped', async () => {
      const uuid = [...spawned].at(-1)!;
      const other = await s.otherHost();
      await assert.rejects(s.driver.migrateDisks(uuid, other.target), InvalidInstanceStateError);
      await s.driver.powerOff(uuid, { timeoutSec: 0 });
      await s.driver.migrateDisks(uuid, other.target);
      assert.ok((await other.driver.listInstances()).includes(uuid));
      assert.deepEqual(await other.driver.deviceAddresses(uuid), await s.driver.deviceAddresses(uuid), 'the devices keep their addresses on the other host');
      assert.equal((await other.driver.getInfo(uuid)).powerState, SHUTDOWN);
      assert.ok((await s.driver.listInstances()).includes(uuid), 'the source keeps its copy until destroyed');
      await other.driver.destroy(uuid);
      assert.deepEqual(await other.leftovers(uuid), []);
    });

    it('destroys everything of an instance, idempotently', async () => {
      const uuid = [...spawned].at(-1)!;
      await s.driver.powerOn(uuid);
      await s.driver.destroy(uuid);
      await assert.rejects(s.driver.getInfo(uuid), InstanceNotFoundError);
      assert.ok(!(await s.driver.listInstances()).includes(uuid));
      assert.deepEqual(await s.leftovers(uuid), []);
      await s.driver.destroy(uuid);
    });
  });
}
