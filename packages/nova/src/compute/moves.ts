import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonToDb } from '@onestack/core/db/index.ts';
import type { FlavorSnapshot, ImageSnapshot, Instance } from '../domain/instances.ts';
import type { Migration, Migrations } from '../domain/migrations.ts';
import { TaskState, VmState } from '../domain/states.ts';
import { PowerState, type FlavorSpec, type InstanceSpec, type MigrationTarget } from '../virt/driver.ts';
import type { ComputeManagerDeps } from './manager.ts';

export interface MoveArgs {
  uuid: string;
  migrationUuid: string;
  requestId: string;
}

export interface ImageArgs {
  uuid: string;
  imageId: string;
  requestId: string;
}

export interface ShelveArgs {
  uuid: string;
  requestId: string;
  imageId?: string;
  offload?: boolean;
}

export interface RescueArgs {
  uuid: string;
  requestId: string;
  image: ImageSnapshot;
}

export interface RebuildArgs {
  uuid: string;
  requestId: string;
  preserveEphemeral?: boolean;
}

const flavorSpec = (f: FlavorSnapshot): FlavorSpec => ({ name: f.name, vcpus: f.vcpus, memoryMb: f.ram, rootGb: f.disk, ephemeralGb: f.ephemeral, swapMb: f.swap, extraSpecs: f.extraSpecs });
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The system_metadata keys a move keeps until it is confirmed or reverted, as upstream's instance.old_flavor / new_flavor. */
const MOVE_KEYS = ['old_flavor', 'new_flavor', 'old_vm_state'];

/**
 * The compute host's half of resize, cold migrate, confirm/revert, snapshot and
 * rebuild (nova/compute/manager.py): resize_instance runs on the source, finish_resize
 * and revert_resize on the destination, confirm_resize and finish_revert_resize on the
 * source again. Every step is an instance action event; a failure before the guest
 * moved puts the instance back as it was, with a fault.
 */
export class ComputeMoves {
  constructor(
    private readonly d: ComputeManagerDeps & { migrations: Migrations },
    private readonly h: {
      /** What the driver spawns the instance from (recording its device metadata). */
      spawnSpec: (inst: Instance) => Promise<InstanceSpec>;
      /** The instance's image in this host's cache ('' when the driver keeps none). */
      imagePath: (inst: Instance) => Promise<string>;
      serviceToken: () => Promise<string>;
      cast: (method: string, args: unknown, host: string) => Promise<void>;
      call: <T>(method: string, args: unknown, host: string) => Promise<T>;
    },
  ) {}

  handlers(run: (fn: () => Promise<void>) => void): Record<string, (a: any) => Promise<unknown>> {
    return {
      resize_instance: async (a: MoveArgs) => run(() => this.resizeInstance(a)),
      finish_resize: async (a: MoveArgs) => run(() => this.finishResize(a)),
      confirm_resize: async (a: MoveArgs) => run(() => this.confirmResize(a)),
      revert_resize: async (a: MoveArgs) => run(() => this.revertResize(a)),
      finish_revert_resize: async (a: MoveArgs) => run(() => this.finishRevertResize(a)),
      migration_target: async (a: { uuid: string }) => this.migrationTarget(a.uuid),
      get_instance_diagnostics: async (a: { uuid: string }) => ({ ...(await this.d.driver.getInfo(a.uuid)), hypervisorType: this.d.driver.capabilities.hypervisorType }),
      snapshot_instance: async (a: ImageArgs) => run(() => this.snapshot(a)),
      rebuild_instance: async (a: RebuildArgs) => run(() => this.rebuild(a)),
      shelve_instance: async (a: ShelveArgs) => run(() => this.shelve(a)),
      shelve_offload_instance: async (a: ShelveArgs) => run(() => this.shelveOffload(a)),
      unshelve_instance: async (a: ShelveArgs) => run(() => this.unshelve(a)),
      rescue_instance: async (a: RescueArgs) => run(() => this.rescue(a)),
      unrescue_instance: async (a: RescueArgs) => run(() => this.unrescue(a)),
    };
  }

  private async migrationTarget(uuid: string): Promise<MigrationTarget> {
    const inst = await this.d.instances.get(uuid);
    const imagePath = await this.h.imagePath(inst);
    return { instancesDir: this.d.driver.instancesDir, ...(imagePath ? { imagePath } : {}) };
  }

  private async sysmeta(uuid: string, patch: Record<string, string | undefined>): Promise<void> {
    const inst = await this.d.instances.get(uuid);
    const next: Record<string, string> = { ...inst.systemMetadata };
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) delete next[k];
      else next[k] = v;
    }
    await this.d.instances.update(uuid, { system_metadata: jsonToDb(next) });
  }

  private async fail(inst: Instance, m: Migration, notify: string, err: unknown): Promise<void> {
    const d = this.d;
    d.logger.warn({ err, instance: inst.uuid }, `${notify} failed`);
    await d.migrations.update(m.uuid, { status: 'error' });
    await d.instances.update(inst.uuid, { task_state: null });
    await d.instances.addFault(inst.uuid, { code: 500, message: errorText(err), details: err instanceof Error ? err.stack : undefined, host: d.host });
    d.notifier.send(await d.instances.get(inst.uuid), notify, 'error', { fault: { message: errorText(err) } });
  }

  /** On the source: power off, copy the disks to the destination (or keep them aside for a revert on this host), hand over. */
  async resizeInstance(a: MoveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const m = await d.migrations.byUuid(a.migrationUuid);
    d.notifier.send(inst, 'resize', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_resize_instance', d.host, async () => {
        await d.instances.update(a.uuid, { task_state: TaskState.RESIZE_MIGRATING });
        await d.migrations.update(m.uuid, { status: 'migrating' });
        await this.sysmeta(a.uuid, { old_vm_state: inst.vmState });
        await d.driver.powerOff(a.uuid);
        if (m.dest_compute !== d.host) {
          const target = await this.h.call<MigrationTarget>('migration_target', { uuid: a.uuid }, m.dest_compute!);
          await d.driver.migrateDisks(a.uuid, target);
        } else {
          await d.driver.keepForRevert(a.uuid);
        }
        await d.instances.update(a.uuid, { task_state: TaskState.RESIZE_MIGRATED, power_state: PowerState.SHUTDOWN });
        await d.migrations.update(m.uuid, { status: 'post-migrating' });
      });
    } catch (err) {
      // Nothing moved yet: the destination's claim goes, the source's allocation comes back.
      if (m.dest_compute === d.host) await d.driver.dropKept(a.uuid).catch(() => undefined);
      await d.placement.deleteAllocations(a.uuid).catch(() => undefined);
      await d.placement.moveAllocations(m.uuid, a.uuid, 'INSTANCE').catch((e) => d.logger.error({ err: e }, 'allocation rollback failed'));
      if (inst.vmState === VmState.ACTIVE) await d.driver.powerOn(a.uuid).catch(() => undefined);
      const info = await d.driver.getInfo(a.uuid).catch(() => undefined);
      if (info) await d.instances.update(a.uuid, { power_state: info.powerState });
      await this.fail(inst, m, 'resize', err);
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'resize', 'end');
    await this.h.cast('finish_resize', a, m.dest_compute!);
  }

  /** Points the instance's ports at this host (upstream's migrate_instance_finish), or at none (''). */
  private async bindPorts(inst: Instance, host = this.d.host): Promise<void> {
    const token = await this.h.serviceToken();
    for (const v of inst.networkInfo) await this.d.neutron.expect(token, 'PUT', `/ports/${v.portId}`, { port: { 'binding:host_id': host } }, 200);
  }

  private async setFlavor(uuid: string, f: FlavorSnapshot, host: string, node: string | null): Promise<void> {
    const inst = await this.d.instances.get(uuid);
    await this.d.instances.update(uuid, { flavor: jsonToDb(f), vcpus: f.vcpus, memory_mb: f.ram, root_gb: f.disk, host, node, request_spec: jsonToDb({ ...inst.requestSpec, flavor: f }) });
  }

  private async powerAs(uuid: string, vmState: string | undefined): Promise<number> {
    if (vmState !== VmState.STOPPED) await this.d.driver.powerOn(uuid);
    return (await this.d.driver.getInfo(uuid)).powerState;
  }

  /** On the destination: the new flavor (the driver grows the disk), ports bound here, guest started if it ran; VERIFY_RESIZE. */
  async finishResize(a: MoveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const m = await d.migrations.byUuid(a.migrationUuid);
    const to = JSON.parse(inst.systemMetadata.new_flavor) as FlavorSnapshot;
    d.notifier.send(inst, 'resize_finish', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_finish_resize', d.host, async () => {
        await d.instances.update(a.uuid, { task_state: TaskState.RESIZE_FINISH });
        if (to.id !== inst.flavor.id) await d.driver.resize(a.uuid, flavorSpec(to));
        if (m.source_compute !== d.host) await this.bindPorts(inst);
        await this.setFlavor(a.uuid, to, d.host, m.dest_node);
        const power = await this.powerAs(a.uuid, inst.systemMetadata.old_vm_state);
        await d.instances.update(a.uuid, { vm_state: VmState.RESIZED, task_state: null, power_state: power });
        await d.migrations.update(m.uuid, { status: 'finished' });
      });
    } catch (err) {
      // Upstream leaves a failed finish in ERROR: the guest may be half on each host.
      await this.fail(inst, m, 'resize_finish', err);
      await d.instances.update(a.uuid, { vm_state: VmState.ERROR });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'resize_finish', 'end');
  }

  /** On the source: its copy goes (on the same host: the disks kept for a revert) and so does the migration's allocation. */
  async confirmResize(a: MoveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const m = await d.migrations.byUuid(a.migrationUuid);
    d.notifier.send(inst, 'resize_confirm', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_confirm_resize', d.host, async () => {
        if (m.dest_compute !== d.host) await d.driver.destroy(a.uuid);
        else await d.driver.dropKept(a.uuid);
        await d.placement.deleteAllocations(m.uuid);
        await this.sysmeta(a.uuid, Object.fromEntries(MOVE_KEYS.map((k) => [k, undefined])));
        const running = inst.powerState === PowerState.RUNNING;
        await d.instances.update(a.uuid, { vm_state: running ? VmState.ACTIVE : VmState.STOPPED, task_state: null });
        await d.migrations.update(m.uuid, { status: 'confirmed' });
      });
    } catch (err) {
      await this.fail(inst, m, 'resize_confirm', err);
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'resize_confirm', 'end');
  }

  /** On the destination: its copy goes, then the source takes the instance back; on one host, all here. */
  async revertResize(a: MoveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const m = await d.migrations.byUuid(a.migrationUuid);
    d.notifier.send(inst, 'resize_revert', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_revert_resize', d.host, async () => {
        // One host: the guest stops here and finish_revert_resize puts the kept disks back.
        if (m.source_compute !== d.host) await d.driver.destroy(a.uuid);
        else await d.driver.powerOff(a.uuid);
      });
    } catch (err) {
      await this.fail(inst, m, 'resize_revert', err);
      return;
    }
    if (m.source_compute !== d.host) await this.h.cast('finish_revert_resize', a, m.source_compute!);
    else await this.finishRevertResize(a);
  }

  /** On the source: old disks (kept on a same-host resize), flavor, ports and allocation back, the guest started again if it ran. */
  async finishRevertResize(a: MoveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const m = await d.migrations.byUuid(a.migrationUuid);
    const from = JSON.parse(inst.systemMetadata.old_flavor) as FlavorSnapshot;
    const oldState = inst.systemMetadata.old_vm_state;
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_finish_revert_resize', d.host, async () => {
        await d.driver.revertToKept(a.uuid);
        if (m.dest_compute !== d.host) await this.bindPorts(inst);
        await this.setFlavor(a.uuid, from, d.host, m.source_node);
        await d.placement.deleteAllocations(a.uuid);
        await d.placement.moveAllocations(m.uuid, a.uuid, 'INSTANCE');
        const power = await this.powerAs(a.uuid, oldState);
        await this.sysmeta(a.uuid, Object.fromEntries(MOVE_KEYS.map((k) => [k, undefined])));
        await d.instances.update(a.uuid, { vm_state: oldState === VmState.STOPPED ? VmState.STOPPED : VmState.ACTIVE, task_state: null, power_state: power });
        await d.migrations.update(m.uuid, { status: 'reverted' });
      });
    } catch (err) {
      await this.fail(inst, m, 'resize_revert', err);
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'resize_revert', 'end');
  }

  /** The root disk into the image the API made, with the task states of the upload's two phases. */
  private async upload(uuid: string, imageId: string, dir: string, phases: [string, string]): Promise<void> {
    await this.d.instances.update(uuid, { task_state: phases[0] });
    const snap = await this.d.driver.snapshot(uuid, dir);
    await this.d.instances.update(uuid, { task_state: phases[1] });
    const status = await this.d.glance.upload(await this.h.serviceToken(), imageId, createReadStream(snap.path));
    if (status !== 204) throw new Error(`glance answered ${status} to the snapshot upload of image ${imageId}`);
  }

  /** Snapshot of the root disk uploaded into the image the API made; the instance keeps running. */
  async snapshot(a: ImageArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'snapshot', 'start');
    const dir = await mkdtemp(join(tmpdir(), 'nova-snapshot-'));
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_snapshot_instance', d.host, async () => {
        await this.upload(a.uuid, a.imageId, dir, [TaskState.IMAGE_PENDING_UPLOAD, TaskState.IMAGE_UPLOADING]);
      });
      await d.instances.update(a.uuid, { task_state: null });
      d.notifier.send(await d.instances.get(a.uuid), 'snapshot', 'end');
    } catch (err) {
      // As upstream: the instance is fine, the half-made image goes.
      d.logger.warn({ err, instance: a.uuid }, 'snapshot failed');
      await d.glance.deleteImage(await this.h.serviceToken(), a.imageId).catch(() => undefined);
      await d.instances.update(a.uuid, { task_state: null });
      d.notifier.send(await d.instances.get(a.uuid), 'snapshot', 'error', { fault: { message: errorText(err) } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * The guest is destroyed and spawned again from the new image with the same ports;
   * a stopped instance is stopped again afterwards (upstream's rebuild of a SHUTOFF server).
   * preserve_ephemeral is accepted but, as with upstream's libvirt driver, the disks are new.
   */
  async rebuild(a: RebuildArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'rebuild', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_rebuild_instance', d.host, async () => {
        await d.instances.update(a.uuid, { task_state: TaskState.REBUILD_SPAWNING });
        await d.driver.destroy(a.uuid);
        await d.driver.spawn(await this.h.spawnSpec(inst));
        if (inst.vmState === VmState.STOPPED) await d.driver.powerOff(a.uuid);
        const info = await d.driver.getInfo(a.uuid);
        await d.instances.update(a.uuid, { vm_state: inst.vmState === VmState.STOPPED ? VmState.STOPPED : VmState.ACTIVE, task_state: null, power_state: info.powerState, launched_at: d.clock.now() });
      });
    } catch (err) {
      await d.instances.update(a.uuid, { vm_state: VmState.ERROR, task_state: null, power_state: PowerState.NOSTATE });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), details: err instanceof Error ? err.stack : undefined, host: d.host });
      d.notifier.send(await d.instances.get(a.uuid), 'rebuild', 'error', { fault: { message: errorText(err) } });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'rebuild', 'end');
  }

  /** Power off, snapshot into the shelved image, SHELVED; with shelved_offload_time 0, offloaded at once. */
  async shelve(a: ShelveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'shelve', 'start');
    const dir = await mkdtemp(join(tmpdir(), 'nova-shelve-'));
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_shelve_instance', d.host, async () => {
        await d.driver.powerOff(a.uuid);
        await this.upload(a.uuid, a.imageId!, dir, [TaskState.SHELVING_IMAGE_PENDING_UPLOAD, TaskState.SHELVING_IMAGE_UPLOADING]);
        await this.sysmeta(a.uuid, { shelved_at: new Date(d.clock.now()).toISOString(), shelved_image_id: a.imageId, shelved_host: d.host });
        await d.instances.update(a.uuid, { vm_state: VmState.SHELVED, task_state: a.offload ? TaskState.SHELVING_OFFLOADING : null, power_state: PowerState.SHUTDOWN });
      });
    } catch (err) {
      await d.glance.deleteImage(await this.h.serviceToken(), a.imageId!).catch(() => undefined);
      if (inst.vmState === VmState.ACTIVE) await d.driver.powerOn(a.uuid).catch(() => undefined);
      const info = await d.driver.getInfo(a.uuid).catch(() => undefined);
      await d.instances.update(a.uuid, { task_state: null, ...(info ? { power_state: info.powerState } : {}) });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), host: d.host });
      d.notifier.send(await d.instances.get(a.uuid), 'shelve', 'error', { fault: { message: errorText(err) } });
      return;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    d.notifier.send(await d.instances.get(a.uuid), 'shelve', 'end');
    if (a.offload) await this.offload(a);
  }

  async shelveOffload(a: ShelveArgs): Promise<void> {
    await this.offload(a);
  }

  /** The guest goes, its ports are unbound and its allocation given back: no host holds the instance. */
  private async offload(a: ShelveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'shelve_offload', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_shelve_offload_instance', d.host, async () => {
        await d.driver.destroy(a.uuid);
        await this.bindPorts(inst, '');
        await d.placement.deleteAllocations(a.uuid);
        await d.instances.update(a.uuid, { vm_state: VmState.SHELVED_OFFLOADED, task_state: null, power_state: PowerState.NOSTATE, host: null, node: null });
      });
    } catch (err) {
      await d.instances.update(a.uuid, { task_state: null });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), host: d.host });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'shelve_offload', 'end');
  }

  /** Back to ACTIVE: started in place when only shelved, spawned here from the shelved image when offloaded. */
  async unshelve(a: ShelveArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const imageId = inst.systemMetadata.shelved_image_id;
    d.notifier.send(inst, 'unshelve', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_unshelve_instance', d.host, async () => {
        if (inst.vmState === VmState.SHELVED) {
          await d.driver.powerOn(a.uuid);
        } else {
          await this.bindPorts(inst);
          const image: ImageSnapshot = { ...inst.requestSpec.image, id: imageId, diskFormat: 'qcow2' };
          await d.driver.spawn(await this.h.spawnSpec({ ...inst, requestSpec: { ...inst.requestSpec, image } }));
        }
        const info = await d.driver.getInfo(a.uuid);
        // As upstream, the shelved image has served its purpose: gone before the server shows ACTIVE.
        if (imageId) await d.glance.deleteImage(await this.h.serviceToken(), imageId).catch((err) => d.logger.warn({ err }, 'shelved image cleanup failed'));
        await this.sysmeta(a.uuid, { shelved_at: undefined, shelved_image_id: undefined, shelved_host: undefined });
        await d.instances.update(a.uuid, { vm_state: VmState.ACTIVE, task_state: null, power_state: info.powerState, launched_at: d.clock.now() });
      });
    } catch (err) {
      if (inst.vmState === VmState.SHELVED_OFFLOADED) {
        await d.driver.destroy(a.uuid).catch(() => undefined);
        await d.placement.deleteAllocations(a.uuid).catch(() => undefined);
        await d.instances.update(a.uuid, { host: null, node: null });
      }
      await d.instances.update(a.uuid, { task_state: null });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), host: d.host });
      d.notifier.send(await d.instances.get(a.uuid), 'unshelve', 'error', { fault: { message: errorText(err) } });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'unshelve', 'end');
  }

  /** Boots the rescue image with the instance's disk attached second; RESCUE. A failure leaves it in ERROR, as upstream. */
  async rescue(a: RescueArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'rescue', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_rescue_instance', d.host, async () => {
        const path = await this.h.imagePath({ ...inst, requestSpec: { ...inst.requestSpec, image: a.image } });
        await d.driver.rescue(a.uuid, { id: a.image.id, path, properties: a.image.properties });
        const info = await d.driver.getInfo(a.uuid);
        await d.instances.update(a.uuid, { vm_state: VmState.RESCUED, task_state: null, power_state: info.powerState });
      });
    } catch (err) {
      await d.instances.update(a.uuid, { vm_state: VmState.ERROR, task_state: null });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), host: d.host });
      d.notifier.send(await d.instances.get(a.uuid), 'rescue', 'error', { fault: { message: errorText(err) } });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'rescue', 'end');
  }

  async unrescue(a: RescueArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    d.notifier.send(inst, 'unrescue', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_unrescue_instance', d.host, async () => {
        await d.driver.unrescue(a.uuid);
        const info = await d.driver.getInfo(a.uuid);
        await d.instances.update(a.uuid, { vm_state: VmState.ACTIVE, task_state: null, power_state: info.powerState });
      });
    } catch (err) {
      await d.instances.update(a.uuid, { task_state: null });
      await d.instances.addFault(a.uuid, { code: 500, message: errorText(err), host: d.host });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'unrescue', 'end');
  }
}
