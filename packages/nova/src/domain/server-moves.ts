import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { jsonToDb } from '@onestack/core/db/index.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import { CONDUCTOR_TOPIC } from '../conductor/conductor.ts';
import type { InstanceActions } from './actions.ts';
import type { Aggregates } from './aggregates.ts';
import { badRequest, conflict, forbidden, invalidState } from './errors.ts';
import type { Flavors } from './flavors.ts';
import type { KeyPairs } from './keypairs.ts';
import type { FlavorSnapshot, ImageSnapshot, Instance, InstanceRepo } from './instances.ts';
import type { Migrations } from './migrations.ts';
import type { Quotas } from './quotas.ts';
import type { Caller, ComputeApi } from './servers.ts';
import type { CinderClient, Endpoints, GlanceClient } from './service-clients.ts';
import { createSnapshotImage, instanceSnapshotMeta, snapshotVolumeBacked } from './snapshot-images.ts';
import type { BlockDevices } from './block-devices.ts';
import type { Services } from './services.ts';
import { checkInstanceState, TaskState, VmState, type AllowedStates } from './states.ts';

/** What the conductor's migrate_server gets: the migration names source, flavors and the request. */
export interface MigrateRequest {
  uuid: string;
  migrationUuid: string;
  requestId: string;
  /** 2.56 `host` of migrate: the only host the scheduler may pick. */
  host?: string;
  /** Cold migrate, or resize with allow_resize_to_same_host off: the source host is not a destination. */
  avoidSource: boolean;
}

export interface RebuildInput {
  imageRef: string;
  name?: string;
  metadata?: Record<string, string>;
  adminPass?: string;
  preserveEphemeral: boolean;
  keyName?: string | null;
  userData?: string | null;
  description?: string | null;
  /** 2.63: replaces the instance's trusted certificate ids; null clears them. */
  trustedCerts?: string[] | null;
  /** 2.90 */
  hostname?: string;
}

/** What the conductor's unshelve_instance gets (2.77: a zone to schedule into). */
export interface UnshelveRequest {
  uuid: string;
  requestId: string;
  /** 2.91: the host to unshelve to (the request spec's zone still applies). */
  host?: string;
}

/** Where an offloaded server is unshelved: a zone (2.77; null unpins, 2.91) and a host (2.91, admins). */
export interface UnshelveTarget {
  availabilityZone?: string | null;
  host?: string;
  /** The policy check a requested host needs, run where upstream runs it (after the zone checks). */
  authorizeHost?: () => void;
}

/** The new image's facts, and the trusted certificates as rebuild's 2.63 argument says (absent: kept). */
function rebuiltSysmeta(sys: Record<string, string>, image: ImageSnapshot, certs: string[] | null | undefined): Record<string, string> {
  const out: Record<string, string> = { ...sys, image_base_image_ref: image.id, image_disk_format: image.diskFormat, image_min_ram: String(image.minRam), image_min_disk: String(image.minDisk) };
  if (certs === null) delete out.trusted_image_certificates;
  else if (certs) out.trusted_image_certificates = JSON.stringify(certs);
  return out;
}

const MOVABLE = { vm: [VmState.ACTIVE, VmState.STOPPED], task: [null] };

export const flavorSnapshot = (f: { id: string; name: string; vcpus: number; ram: number; disk: number; ephemeral: number; swap: number; extraSpecs: Record<string, string> }): FlavorSnapshot => ({
  id: f.id,
  name: f.name,
  vcpus: f.vcpus,
  ram: f.ram,
  disk: f.disk,
  ephemeral: f.ephemeral,
  swap: f.swap,
  extraSpecs: f.extraSpecs,
});

/**
 * The moving and re-imaging server actions of nova/compute/api.py: resize, cold
 * migrate, confirm/revert, rebuild and createImage. Each checks state and lock,
 * claims the task_state, records the instance action and casts to the conductor
 * (moves, which need the scheduler) or the instance's host.
 */
export class ServerMoves {
  constructor(
    private readonly d: {
      instances: InstanceRepo;
      actions: InstanceActions;
      migrations: Migrations;
      flavors: Flavors;
      keypairs: KeyPairs;
      quotas: Quotas;
      services: Services;
      aggregates: Aggregates;
      glance: GlanceClient;
      cinder: CinderClient;
      blockDevices: BlockDevices;
      logger: Logger;
      /** This API service's host (instance action events of the API). */
      apiHost: string;
      endpoints: Endpoints;
      bus: Bus;
      compute: ComputeApi;
      allowResizeToSameHost: boolean;
      /** shelved_offload_time: 0 offloads at once (upstream's default); otherwise the compute host's poll does, or never (negative). */
      shelvedOffloadTime: number;
    },
  ) {}

  /** check_instance_state plus the task_state compare-and-swap that makes concurrent actions lose with a 409. */
  private async claimTask(caller: Caller, inst: Instance, method: string, allowed: AllowedStates, taskState: string, action: string): Promise<void> {
    this.d.compute.checkLock(inst, caller);
    checkInstanceState(inst, method, allowed);
    const ok = await this.d.instances.cas(inst.uuid, { vmState: allowed.vm, ...(allowed.task ? { taskState: allowed.task } : {}) }, { task_state: taskState });
    if (!ok) throw invalidState(inst.uuid, 'task_state', (await this.d.instances.get(inst.uuid)).taskState, method);
    await this.d.actions.start({ uuid: inst.uuid, action, requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
  }

  /** Upsizing counts against cores and ram quota by the difference, as upstream's resize quota check. */
  private async checkResizeQuota(inst: Instance, to: FlavorSnapshot): Promise<void> {
    const delta = { cores: to.vcpus - inst.flavor.vcpus, ram: to.ram - inst.flavor.ram };
    const used = await this.d.instances.usage(inst.projectId);
    const lim = await this.d.quotas.limits(inst.projectId);
    const overs = (['cores', 'ram'] as const).filter((r) => delta[r] > 0 && lim[r] >= 0 && used[r] + delta[r] > lim[r]);
    if (overs.length) {
      throw forbidden(`Quota exceeded for ${overs.join(', ')}: Requested ${overs.map((o) => delta[o]).join(', ')}, but already used ${overs.map((o) => used[o]).join(', ')} of ${overs.map((o) => lim[o]).join(', ')} ${overs.join(', ')}`);
    }
  }

  async resize(caller: Caller, inst: Instance, flavorRef: string): Promise<void> {
    const flavor = await this.d.flavors.get(flavorRef).catch(() => {
      throw badRequest('Unable to locate requested flavor.');
    });
    const to = flavorSnapshot(flavor);
    if (to.id === inst.flavor.id) throw badRequest('When resizing, instances must change flavor!');
    if (to.disk === 0 && inst.flavor.disk !== 0) throw badRequest('Resize to zero disk flavor is not allowed.');
    // Upstream's drivers refuse shrinking at migrate time (and roll back); refused here before anything moves.
    if (to.disk < inst.flavor.disk || to.ephemeral < inst.flavor.ephemeral) throw badRequest('Unable to resize disk down.');
    await this.checkResizeQuota(inst, to);
    await this.move(caller, inst, 'resize', to, { avoidSource: !this.d.allowResizeToSameHost });
  }

  async migrate(caller: Caller, inst: Instance, host?: string): Promise<void> {
    if (host && !(await this.d.services.find(host, 'nova-compute'))) throw badRequest(`Compute host ${host} could not be found.`);
    if (host && host === inst.host) throw badRequest(`The target host can't be the same one.`);
    await this.move(caller, inst, 'migrate', inst.flavor, { avoidSource: true, host });
  }

  private async move(caller: Caller, inst: Instance, method: 'resize' | 'migrate', to: FlavorSnapshot, o: { avoidSource: boolean; host?: string }): Promise<void> {
    await this.claimTask(caller, inst, method, MOVABLE, TaskState.RESIZE_PREP, method);
    const migration = await this.d.migrations.create({
      instance_uuid: inst.uuid,
      migration_type: method === 'resize' ? 'resize' : 'migration',
      status: 'pre-migrating',
      source_compute: inst.host,
      source_node: inst.node,
      dest_compute: null,
      dest_node: null,
      dest_host: null,
      old_flavor_id: inst.flavor.id,
      new_flavor_id: to.id,
      project_id: inst.projectId,
      user_id: inst.userId,
    });
    const sys = { ...inst.systemMetadata, old_flavor: JSON.stringify(inst.flavor), new_flavor: JSON.stringify(to) };
    await this.d.instances.update(inst.uuid, { system_metadata: jsonToDb(sys) });
    const req: MigrateRequest = { uuid: inst.uuid, migrationUuid: migration.uuid, requestId: caller.requestId, host: o.host, avoidSource: o.avoidSource };
    await this.d.bus.cast(CONDUCTOR_TOPIC, 'migrate_server', req);
  }

  private async unconfirmed(inst: Instance, method: string) {
    const m = await this.d.migrations.inProgress(inst.uuid, ['finished']);
    if (!m) throw badRequest(`Instance has not been resized.`);
    if (inst.vmState !== VmState.RESIZED) throw invalidState(inst.uuid, 'vm_state', inst.vmState, method);
    return m;
  }

  async confirmResize(caller: Caller, inst: Instance): Promise<void> {
    const m = await this.unconfirmed(inst, 'confirm_resize');
    await this.claimTask(caller, inst, 'confirm_resize', { vm: [VmState.RESIZED], task: [null] }, TaskState.RESIZE_CONFIRMING, 'confirmResize');
    await this.d.migrations.update(m.uuid, { status: 'confirming' });
    await this.d.bus.cast(COMPUTE_TOPIC, 'confirm_resize', { uuid: inst.uuid, migrationUuid: m.uuid, requestId: caller.requestId }, { host: m.source_compute! });
  }

  async revertResize(caller: Caller, inst: Instance): Promise<void> {
    const m = await this.unconfirmed(inst, 'revert_resize');
    await this.claimTask(caller, inst, 'revert_resize', { vm: [VmState.RESIZED], task: [null] }, TaskState.RESIZE_REVERTING, 'revertResize');
    await this.d.migrations.update(m.uuid, { status: 'reverting' });
    await this.d.bus.cast(COMPUTE_TOPIC, 'revert_resize', { uuid: inst.uuid, migrationUuid: m.uuid, requestId: caller.requestId }, { host: m.dest_compute! });
  }

  /**
   * The image record is made here, with the caller's token (so the caller's project
   * owns it), queued; the host uploads the snapshot into it. Properties as upstream's
   * create_image: the base image's, plus image_type, instance_uuid, base_image_ref.
   */
  private async snapshotImage(caller: Caller, inst: Instance, name: string, metadata: Record<string, string>): Promise<string> {
    const base = inst.requestSpec.image;
    const meta = instanceSnapshotMeta(caller, inst, name, { ...metadata, image_type: 'snapshot', instance_uuid: inst.uuid, base_image_ref: base.id, user_id: caller.userId }, ['image_type', 'instance_uuid', 'base_image_ref', 'owner_project_name', 'owner_user_name', 'image_location', 'image_state']);
    return createSnapshotImage(this.d.glance, caller, { ...meta, body: { disk_format: 'qcow2', container_format: 'bare', ...meta.body } });
  }

  /** The task_state goes back when the step after claiming it fails in the API. */
  private async orUntask<T>(inst: Instance, taskState: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      await this.d.instances.cas(inst.uuid, { taskState: [taskState] }, { task_state: null });
      throw e;
    }
  }

  /** A volume-backed server's image is made here of volume snapshots; any other's root disk is uploaded by its host. */
  async createImage(caller: Caller, inst: Instance, name: string, metadata: Record<string, string>): Promise<{ imageId: string; location: string }> {
    let imageId: string;
    if (inst.requestSpec.isBfv) {
      imageId = await snapshotVolumeBacked({ ...this.d, host: this.d.apiHost }, caller, inst, name, metadata);
    } else {
      await this.claimTask(caller, inst, 'createImage', { vm: [VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED], task: [null] }, TaskState.IMAGE_SNAPSHOT, 'createImage');
      imageId = await this.orUntask(inst, TaskState.IMAGE_SNAPSHOT, () => this.snapshotImage(caller, inst, name, metadata));
      await this.d.bus.cast(COMPUTE_TOPIC, 'snapshot_instance', { uuid: inst.uuid, imageId, requestId: caller.requestId }, { host: inst.host! });
    }
    return { imageId, location: `${await this.d.endpoints.url('image')}/images/${imageId}` };
  }

  /** Shelve: a snapshot named `<name>-shelved` in Glance, then (shelved_offload_time 0) the host's resources go. */
  async shelve(caller: Caller, inst: Instance): Promise<void> {
    await this.claimTask(caller, inst, 'shelve', { vm: [VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED], task: [null] }, TaskState.SHELVING, 'shelve');
    const imageId = await this.orUntask(inst, TaskState.SHELVING, () => this.snapshotImage(caller, inst, `${inst.name}-shelved`, {}));
    await this.d.bus.cast(COMPUTE_TOPIC, 'shelve_instance', { uuid: inst.uuid, imageId, requestId: caller.requestId, offload: this.d.shelvedOffloadTime === 0 }, { host: inst.host! });
  }

  async shelveOffload(caller: Caller, inst: Instance): Promise<void> {
    await this.claimTask(caller, inst, 'shelve_offload', { vm: [VmState.SHELVED], task: [null] }, TaskState.SHELVING_OFFLOADING, 'shelveOffload');
    await this.d.bus.cast(COMPUTE_TOPIC, 'shelve_offload_instance', { uuid: inst.uuid, requestId: caller.requestId }, { host: inst.host! });
  }

  /** A shelved instance starts again on its host; an offloaded one is scheduled again by the conductor. */
  async unshelve(caller: Caller, inst: Instance, t: UnshelveTarget = {}): Promise<void> {
    const zonePassed = t.availabilityZone !== undefined;
    if ((zonePassed || t.host) && inst.vmState !== VmState.SHELVED_OFFLOADED) {
      throw conflict(`Specifying an availability zone or a host when unshelving server "${inst.uuid}" with status "${inst.vmState}" is not supported. The server status must be SHELVED_OFFLOADED.`);
    }
    if (t.availabilityZone && !(await this.d.aggregates.computeZones()).available.includes(t.availabilityZone)) throw badRequest('The requested availability zone is not available');
    // The zone the server is pinned to afterwards: the one given (null: none), else the one it had.
    const zone = zonePassed ? (t.availabilityZone ?? undefined) : inst.requestSpec.availabilityZone;
    if (t.host) {
      t.authorizeHost?.();
      if (!(await this.d.services.computes()).some((s) => s.host === t.host)) throw badRequest(`Compute host ${t.host} could not be found.`);
      if (zone !== undefined && (await this.d.aggregates.zoneOf(t.host)) !== zone) throw conflict(`Host "${t.host}" is not in the availability zone "${zone}".`);
    }
    await this.claimTask(caller, inst, 'unshelve', { vm: [VmState.SHELVED, VmState.SHELVED_OFFLOADED], task: [null] }, TaskState.UNSHELVING, 'unshelve');
    if (inst.vmState === VmState.SHELVED) {
      await this.d.bus.cast(COMPUTE_TOPIC, 'unshelve_instance', { uuid: inst.uuid, requestId: caller.requestId }, { host: inst.host! });
      return;
    }
    if (zonePassed) {
      const spec = { ...inst.requestSpec, availabilityZone: zone };
      if (zone === undefined) delete spec.availabilityZone;
      await this.d.instances.update(inst.uuid, { request_spec: jsonToDb(spec) });
    }
    const req: UnshelveRequest = { uuid: inst.uuid, requestId: caller.requestId, ...(t.host ? { host: t.host } : {}) };
    await this.d.bus.cast(CONDUCTOR_TOPIC, 'unshelve_instance', req);
  }

  async rescue(caller: Caller, inst: Instance, o: { adminPass: string; image?: ImageSnapshot }): Promise<void> {
    await this.claimTask(caller, inst, 'rescue', { vm: [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR], task: [null] }, TaskState.RESCUING, 'rescue');
    await this.d.bus.cast(COMPUTE_TOPIC, 'rescue_instance', { uuid: inst.uuid, requestId: caller.requestId, image: o.image ?? inst.requestSpec.image }, { host: inst.host! });
  }

  async unrescue(caller: Caller, inst: Instance): Promise<void> {
    await this.claimTask(caller, inst, 'unrescue', { vm: [VmState.RESCUED], task: [null] }, TaskState.UNRESCUING, 'unrescue');
    await this.d.bus.cast(COMPUTE_TOPIC, 'unrescue_instance', { uuid: inst.uuid, requestId: caller.requestId }, { host: inst.host! });
  }

  async rebuild(caller: Caller, inst: Instance, input: RebuildInput, image: ImageSnapshot): Promise<void> {
    // Before 2.93 upstream never reimages a boot volume; refused here for every image (upstream lets the root volume's own image through).
    if (inst.requestSpec.isBfv) throw badRequest(`Image ${image.id} is unacceptable: Unable to rebuild with a different image for a volume-backed server.`);
    if (image.minDisk > inst.flavor.disk && inst.flavor.disk > 0) throw badRequest(`Flavor's disk is too small for requested image. Flavor disk is ${inst.flavor.disk * 1024 ** 3} bytes, image is ${image.minDisk * 1024 ** 3} bytes.`);
    if (image.minRam > inst.flavor.ram) throw badRequest(`Flavor's memory is too small for requested image.`);
    if (input.keyName) await this.d.keypairs.get(caller.userId, input.keyName).catch(() => {
      throw badRequest('Invalid key_name provided.');
    });
    await this.claimTask(caller, inst, 'rebuild', { vm: [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR], task: [null] }, TaskState.REBUILDING, 'rebuild');
    const set: Parameters<InstanceRepo['update']>[1] = {
      image_ref: image.id,
      request_spec: jsonToDb({ ...inst.requestSpec, image }),
      system_metadata: jsonToDb(rebuiltSysmeta(inst.systemMetadata, image, input.trustedCerts)),
    };
    if (input.hostname !== undefined) set.hostname = input.hostname;
    if (input.name !== undefined) set.display_name = input.name;
    if (input.description !== undefined) set.display_description = input.description;
    if (input.userData !== undefined) set.user_data = input.userData;
    if (input.keyName === null) Object.assign(set, { key_name: null, key_data: null });
    else if (input.keyName !== undefined) Object.assign(set, { key_name: input.keyName, key_data: (await this.d.keypairs.get(caller.userId, input.keyName)).publicKey });
    await this.d.instances.update(inst.uuid, set);
    if (input.metadata) await this.d.instances.setMetadata(inst.uuid, input.metadata, true);
    if (!inst.host) throw conflict(`Instance ${inst.uuid} has no host`);
    await this.d.bus.cast(COMPUTE_TOPIC, 'rebuild_instance', { uuid: inst.uuid, requestId: caller.requestId, preserveEphemeral: input.preserveEphemeral }, { host: inst.host });
  }
}
