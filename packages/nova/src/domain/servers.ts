import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { Clock } from '@onestack/core/clock.ts';
import { jsonToDb, withTransaction } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { PlacementClient } from '../placement/client.ts';
import type { InstanceActions } from './actions.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import { CONDUCTOR_TOPIC, type BuildRequest } from '../conductor/conductor.ts';
import type { NovaConfig } from '../conf.ts';
import { badRequest, conflict, forbidden, instanceLocked, invalidState, quotaExceeded } from './errors.ts';
import type { Flavor, Flavors } from './flavors.ts';
import type { FlavorSnapshot, ImageSnapshot, Instance, InstanceRepo, RequestedNetwork, RequestSpec } from './instances.ts';
import type { KeyPairs } from './keypairs.ts';
import type { InstanceNotifier } from './notifier.ts';
import type { Quotas } from './quotas.ts';
import type { CinderClient, GlanceClient, NeutronClient } from './service-clients.ts';
import { checkBlockDevices, type RequestedBlockDevice } from './block-device-requests.ts';
import { imageDefinedBlockDevices } from './image-block-devices.ts';
import type { BlockDevices } from './block-devices.ts';
import { releaseInstanceVolumes } from '../compute/volume-attach.ts';
import type { Aggregates } from './aggregates.ts';
import type { Services } from './services.ts';
import { ACTION_STATES, checkInstanceState, TaskState, VmState, type AllowedStates } from './states.ts';

export interface Caller {
  projectId: string;
  userId: string;
  isAdmin: boolean;
  token: string;
  requestId: string;
}

export interface CreateServerInput {
  name: string;
  /** Absent when the block devices say what to boot. */
  imageRef?: string;
  blockDevices: RequestedBlockDevice[];
  /** 2.60: multiattach volumes may be booted from or attached. */
  multiattach?: boolean;
  /** Policy os_compute_api:servers:create:zero_disk_flavor: an image may boot on a flavor without a root disk. */
  zeroDiskAllowed?: boolean;
  flavorRef: string;
  networks?: RequestedNetwork[] | 'auto' | 'none';
  keyName?: string;
  securityGroups?: string[];
  userData?: string;
  metadata?: Record<string, string>;
  availabilityZone?: string;
  configDrive?: boolean;
  adminPass?: string;
  description?: string | null;
  tags?: string[];
  hostname?: string;
  minCount: number;
  maxCount: number;
  hints: { sameHost?: string[]; differentHost?: string[]; group?: string };
  accessIpV4?: string;
  accessIpV6?: string;
  /** 2.63: kept with the instance (image signature verification is off, as upstream's default). */
  trustedCerts?: string[];
  requestedHost?: string;
  requestedNode?: string;
}

/** upstream's sanitize_hostname: what a display name becomes as a guest hostname. */
export function sanitizeHostname(name: string): string {
  let h = name.normalize('NFKD').replace(/[^\x00-\x7f]/g, '').toLowerCase();
  h = h.replace(/[ _]/g, '-').replace(/[^\w.-]+/g, '').replace(/\.+/g, '.');
  h = h.replace(/^[.-]+|[.-]+$/g, '').slice(0, 63).replace(/[.-]+$/, '');
  return h || 'server';
}

/**
 * nova/compute/api.py: validates a request against images, networks, keys and
 * quotas, writes instances and hands them to the conductor; casts actions to
 * the instance's host after a compare-and-swap on task_state.
 */
export class ComputeApi {
  constructor(
    private readonly d: {
      instances: InstanceRepo;
      actions: InstanceActions;
      flavors: Flavors;
      keypairs: KeyPairs;
      quotas: Quotas;
      services: Services;
      aggregates: Aggregates;
      glance: GlanceClient;
      neutron: NeutronClient;
      cinder: CinderClient;
      blockDevices: BlockDevices;
      placement: PlacementClient;
      bus: Bus;
      notifier: InstanceNotifier;
      config: NovaConfig;
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      session: { tokenId(): Promise<string> };
    },
  ) {}

  /** _validate_host_or_node: the requested compute host and/or node must exist. */
  private async checkDestination(host: string | undefined, node: string | undefined): Promise<void> {
    const computes = await this.d.services.computes();
    const match = computes.find((s) => (!host || s.host === host) && (!node || s.hypervisor?.hypervisorHostname === node));
    if (!match) throw badRequest(`Compute host ${host ?? node} could not be found.`);
  }

  async image(caller: Caller, ref: string): Promise<ImageSnapshot> {
    const id = ref.split('/').pop()!;
    const r = await this.d.glance.getImage(caller.token, id);
    if (r.status === 404 || r.status === 400) throw badRequest(`Image ${id} could not be found.`);
    if (r.status !== 200) throw new Error(`glance answered ${r.status}`);
    const img = r.body as Record<string, unknown>;
    if (img.status !== 'active') throw badRequest(`Image ${id} is not active.`);
    const core = new Set(['id', 'name', 'status', 'visibility', 'protected', 'checksum', 'owner', 'size', 'min_ram', 'min_disk', 'disk_format', 'container_format', 'created_at', 'updated_at', 'tags', 'virtual_size', 'self', 'file', 'schema', 'os_hash_algo', 'os_hash_value', 'os_hidden', 'locations', 'direct_url', 'stores']);
    const properties = Object.fromEntries(Object.entries(img).filter(([k, v]) => !core.has(k) && typeof v === 'string')) as Record<string, string>;
    return { id, name: String(img.name ?? ''), diskFormat: String(img.disk_format), containerFormat: String(img.container_format), properties, minRam: Number(img.min_ram ?? 0), minDisk: Number(img.min_disk ?? 0), ...(img.size ? {} : {}) };
  }

  private async networks(caller: Caller, req: CreateServerInput['networks']): Promise<RequestedNetwork[]> {
    if (req === 'none') return [];
    if (req === undefined || req === 'auto') {
      const own = await this.d.neutron.call(caller.token, 'GET', `/networks?project_id=${caller.projectId}&shared=false`);
      const shared = await this.d.neutron.call(caller.token, 'GET', '/networks?shared=true');
      const nets = [...((own.body?.networks ?? []) as { id: string; 'router:external'?: boolean }[]), ...((shared.body?.networks ?? []) as { id: string }[])].filter((n, i, all) => all.findIndex((x) => x.id === n.id) === i && !(n as { 'router:external'?: boolean })['router:external']);
      if (nets.length === 0) {
        if (req === 'auto') throw badRequest(`Unable to automatically allocate a network for project ${caller.projectId}`);
        return [];
      }
      if (nets.length > 1) throw conflict('Multiple possible networks found, use a Network ID to be more specific.');
      return [{ networkId: nets[0].id }];
    }
    for (const n of req) {
      if (n.portId) {
        const p = await this.d.neutron.call(caller.token, 'GET', `/ports/${n.portId}`);
        if (p.status === 404) throw badRequest(`Port ${n.portId} could not be found.`);
        if (p.body?.port?.device_id) throw conflict(`Port ${n.portId} is still in use.`);
      } else if (n.networkId) {
        const r = await this.d.neutron.call(caller.token, 'GET', `/networks/${n.networkId}`);
        if (r.status === 404) throw badRequest(`Network ${n.networkId} could not be found.`);
      }
    }
    return req;
  }

  async create(caller: Caller, input: CreateServerInput): Promise<{ instances: Instance[]; reservationId: string; adminPass: string }> {
    const d = this.d;
    const flavorId = input.flavorRef.split('/').pop()!;
    let flavor: Flavor;
    try {
      flavor = await d.flavors.getVisible(flavorId, caller);
    } catch {
      throw badRequest(`Flavor ${flavorId} could not be found.`);
    }
    if (flavor.disabled) throw badRequest('Flavor is disabled.');
    const boot = await this.bootDisk(caller, input, flavor);
    if (!boot.volumeBacked && flavor.disk === 0 && !input.zeroDiskAllowed) throw forbidden('Only volume-backed servers are allowed for flavors with zero disk.');
    const image = boot.image;
    if (image.minRam > flavor.ram) throw badRequest("Flavor's memory is too small for requested image.");
    // A volume-backed server's root disk is the volume: its size was checked against min_disk instead.
    if (!boot.volumeBacked && image.minDisk > flavor.disk && flavor.disk > 0) throw badRequest("Flavor's disk is too small for requested image.");
    let keyData: string | null = null;
    if (input.keyName !== undefined) {
      keyData = await d.keypairs.get(caller.userId, input.keyName).then((k) => k.publicKey, () => {
        throw badRequest('Invalid key_name provided.');
      });
    }
    const md = input.metadata ?? {};
    const mdLimit = (await d.quotas.limits(caller.projectId)).metadata_items;
    if (mdLimit >= 0 && Object.keys(md).length > mdLimit) throw forbidden('Quota exceeded for metadata_items: Requested ' + Object.keys(md).length + ', but already used 0 of ' + mdLimit + ' metadata_items');
    let az = input.availabilityZone;
    let forcedHost: string | undefined;
    if (az?.includes(':')) {
      const [zone, host] = az.split(':', 2);
      if (!caller.isAdmin) throw forbidden(`Policy doesn't allow os_compute_api:servers:create:forced_host to be performed.`);
      az = zone || undefined;
      forcedHost = host || undefined;
    }
    if (az && az !== d.config.defaultAz && !(await d.aggregates.computeZones()).available.includes(az)) throw badRequest('The requested availability zone is not available');
    if (input.requestedHost || input.requestedNode) await this.checkDestination(input.requestedHost, input.requestedNode);
    const networks = await this.networks(caller, input.networks);
    const securityGroups = input.securityGroups?.length ? input.securityGroups : [];
    for (const sg of securityGroups) {
      const r = await d.neutron.call(caller.token, 'GET', `/security-groups?name=${encodeURIComponent(sg)}&project_id=${caller.projectId}`);
      const byId = (r.body?.security_groups ?? []).length ? undefined : await d.neutron.call(caller.token, 'GET', `/security-groups/${encodeURIComponent(sg)}`);
      if ((r.body?.security_groups ?? []).length === 0 && byId?.status !== 200) throw badRequest(`Security group ${sg} not found.`);
    }
    let group: RequestSpec['group'];
    if (input.hints.group) {
      const g = await d.instances.db.selectFrom('server_groups').selectAll().where('uuid', '=', input.hints.group).executeTakeFirst();
      if (!g) throw badRequest(`Invalid server group ${input.hints.group}`);
      group = { uuid: g.uuid, policy: g.policy, rules: JSON.parse(g.rules) };
    }
    const snapshot: FlavorSnapshot = { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram: flavor.ram, disk: flavor.disk, ephemeral: flavor.ephemeral, swap: flavor.swap, extraSpecs: flavor.extraSpecs };
    const adminPass = input.adminPass ?? randomBytes(9).toString('base64').replace(/[+/=]/g, 'x');
    const reservationId = `r-${randomBytes(4).toString('hex').slice(0, 8)}`;
    const spec: RequestSpec = {
      flavor: snapshot,
      image,
      networks,
      securityGroups: securityGroups.length ? securityGroups : networks.length ? ['default'] : [],
      availabilityZone: az,
      forcedHost,
      requestedHost: input.requestedHost,
      requestedNode: input.requestedNode,
      hints: input.hints,
      group,
      numInstances: input.maxCount,
      requestId: caller.requestId,
      ...(boot.volumeBacked ? { isBfv: true } : {}),
    };
    const now = d.clock.now();
    const created = await withTransaction(d.instances.database, async (trx) => {
      // Counted inside the write transaction, so concurrent boots of one project cannot both pass.
      const usageRow = await trx
        .selectFrom('instances')
        .select((eb) => [eb.fn.countAll().as('n'), eb.fn.sum('vcpus').as('cores'), eb.fn.sum('memory_mb').as('ram')])
        .where('project_id', '=', caller.projectId)
        .where('deleted', '=', 0)
        .executeTakeFirstOrThrow();
      const used = { instances: Number(usageRow.n), cores: Number(usageRow.cores ?? 0), ram: Number(usageRow.ram ?? 0) };
      const lim = await d.quotas.limits(caller.projectId, trx);
      const fits = (n: number) => (['instances', 'cores', 'ram'] as const).filter((r) => lim[r] >= 0 && used[r] + n * ({ instances: 1, cores: flavor.vcpus, ram: flavor.ram }[r]) > lim[r]);
      let count = input.maxCount;
      while (count >= input.minCount && fits(count).length) count--;
      if (count < input.minCount) {
        const overs = fits(input.minCount);
        const req = { instances: input.minCount, cores: input.minCount * flavor.vcpus, ram: input.minCount * flavor.ram };
        throw quotaExceeded(overs, req, used, { instances: lim.instances, cores: lim.cores, ram: lim.ram });
      }
      const rows: string[] = [];
      for (let i = 0; i < count; i++) {
        const uuid = d.ids.uuid();
        const name = count > 1 ? `${input.name}-${i + 1}` : input.name;
        const hostname = input.hostname ?? (count > 1 ? `${sanitizeHostname(input.name)}-${i + 1}` : sanitizeHostname(name));
        await trx
          .insertInto('instances')
          .values({
            uuid,
            project_id: caller.projectId,
            user_id: caller.userId,
            display_name: name,
            display_description: input.description ?? null,
            hostname,
            // Upstream keeps the image asked for even when volumes boot the server (an image's own mappings).
            image_ref: input.imageRef?.split('/').pop() ?? '',
            flavor: jsonToDb(snapshot),
            vcpus: flavor.vcpus,
            memory_mb: flavor.ram,
            root_gb: flavor.disk,
            vm_state: VmState.BUILDING,
            task_state: TaskState.SCHEDULING,
            power_state: 0,
            host: null,
            node: null,
            availability_zone: az ?? d.config.defaultAz,
            key_name: input.keyName ?? null,
            key_data: keyData,
            user_data: input.userData ?? null,
            config_drive: input.configDrive ? 1 : 0,
            access_ip_v4: input.accessIpV4 ?? null,
            access_ip_v6: input.accessIpV6 ?? null,
            reservation_id: reservationId,
            launch_index: i,
            locked_by: null,
            locked_reason: null,
            network_info: '[]',
            request_spec: jsonToDb(spec),
            device_metadata: null,
            system_metadata: jsonToDb({ image_base_image_ref: image.id, image_disk_format: image.diskFormat, image_min_ram: String(image.minRam), image_min_disk: String(image.minDisk), ...(input.trustedCerts ? { trusted_image_certificates: JSON.stringify(input.trustedCerts) } : {}) }),
            progress: 0,
            created_at: now,
            updated_at: now,
            launched_at: null,
            terminated_at: null,
            deleted_at: null,
            deleted: 0,
          })
          .execute();
        for (const [key, value] of Object.entries(md)) await trx.insertInto('instance_metadata').values({ instance_uuid: uuid, key, value }).execute();
        for (const tag of new Set(input.tags ?? [])) await trx.insertInto('tags').values({ resource_id: uuid, tag }).execute();
        if (group) await trx.insertInto('server_group_members').values({ group_uuid: group.uuid, instance_uuid: uuid }).execute();
        rows.push(uuid);
      }
      return rows;
    });
    try {
      for (const uuid of created) await this.recordBlockDevices(caller, uuid, boot.bdms);
    } catch (e) {
      for (const uuid of created) await this.forgetBlockDevices(caller, uuid).then(() => d.instances.markDeleted(uuid));
      throw e;
    }
    const instances: Instance[] = [];
    for (const uuid of created) {
      await d.actions.start({ uuid, action: 'create', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
      instances.push(await d.instances.get(uuid));
    }
    // The user's token goes with the build (as upstream's RPC context): volumes nova makes belong to the user's project.
    const build: BuildRequest = { uuids: created, requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId, ...(boot.bdms.some((b) => b.destinationType === 'volume') ? { token: caller.token } : {}) };
    await d.bus.cast(CONDUCTOR_TOPIC, 'build_instances', build);
    return { instances, reservationId, adminPass };
  }

  /**
   * What the server boots: the image asked for, or the block devices' boot disk (checked as
   * upstream's _validate_bdm) — the request's, merged with those the image itself carries (the
   * snapshot of a volume-backed server boots a new volume made of the volume's snapshot).
   */
  private async bootDisk(caller: Caller, input: CreateServerInput, flavor: Flavor): Promise<{ image: ImageSnapshot; volumeBacked: boolean; bdms: RequestedBlockDevice[] }> {
    const imageId = input.imageRef?.split('/').pop();
    const asked = imageId ? await this.image(caller, imageId) : undefined;
    const imageDefined = asked ? imageDefinedBlockDevices(asked) : [];
    if (!input.blockDevices.length && !imageDefined.length) return { image: asked!, volumeBacked: false, bdms: [] };
    return checkBlockDevices(
      {
        token: caller.token,
        projectId: caller.projectId,
        cinder: this.d.cinder,
        image: (id) => (asked && id === imageId ? Promise.resolve(asked) : this.image(caller, id)),
        flavor,
        imageRef: imageId,
        maxCount: input.maxCount,
        multiattach: input.multiattach ?? false,
        maxLocal: 3,
      },
      input.blockDevices,
      imageDefined,
    );
  }

  /**
   * Writes the instance's block device mappings; an existing volume is reserved for it at
   * once (an attachment without a connector), so no other boot or attach can take it.
   */
  private async recordBlockDevices(caller: Caller, uuid: string, bdms: RequestedBlockDevice[]): Promise<void> {
    for (const b of bdms) {
      const reserved = b.sourceType === 'volume' ? await this.d.cinder.createAttachment(caller.token, caller.projectId, b.uuid!, uuid).catch((e: Error) => Promise.reject(badRequest(`Invalid volume: ${e.message}`))) : undefined;
      await this.d.blockDevices.create({
        instanceUuid: uuid,
        sourceType: b.sourceType,
        destinationType: b.destinationType,
        bootIndex: b.bootIndex,
        deviceName: b.deviceName ?? (b.bootIndex === 0 ? '/dev/vda' : null),
        volumeId: b.sourceType === 'volume' ? b.uuid! : null,
        imageId: b.sourceType === 'image' ? b.uuid! : null,
        volumeSize: b.volumeSize ?? null,
        deleteOnTermination: b.deleteOnTermination,
        tag: b.tag ?? null,
        attachmentId: reserved?.id ?? null,
        volumeType: b.volumeType ?? null,
        diskBus: b.diskBus ?? null,
        deviceType: b.deviceType ?? null,
        guestFormat: b.guestFormat ?? null,
        snapshotId: b.sourceType === 'snapshot' ? b.uuid! : null,
      });
    }
  }

  /** Gives back what recordBlockDevices reserved, when the create fails after it. */
  private async forgetBlockDevices(caller: Caller, uuid: string): Promise<void> {
    for (const b of await this.d.blockDevices.forInstance(uuid)) {
      if (b.attachmentId) await this.d.cinder.deleteAttachment(caller.token, caller.projectId, b.attachmentId).catch(() => undefined);
    }
    await this.d.blockDevices.deleteForInstance(uuid);
  }

  checkLock(inst: Instance, caller: Caller): void {
    if (inst.lockedBy && !caller.isAdmin) throw instanceLocked(inst.uuid);
  }

  private async computeUp(host: string): Promise<boolean> {
    const s = await this.d.services.find(host, 'nova-compute');
    return !!s?.up;
  }

  async delete(caller: Caller, inst: Instance, action = 'delete'): Promise<void> {
    const d = this.d;
    this.checkLock(inst, caller);
    await d.actions.start({ uuid: inst.uuid, action, requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    if (!inst.host || !(await this.computeUp(inst.host))) {
      // Local delete (never scheduled, or its host is down): what the host would do, done here.
      await d.instances.markDeleted(inst.uuid);
      await d.placement.deleteAllocations(inst.uuid).catch((err) => d.logger.warn({ err }, 'allocation cleanup failed'));
      if (inst.networkInfo.length) await this.localPortCleanup(inst);
      await releaseInstanceVolumes({ ...d, serviceToken: () => this.serviceToken() }, inst);
      d.notifier.send({ ...inst, vmState: 'deleted' }, 'delete', 'end');
      return;
    }
    const ok = await d.instances.cas(inst.uuid, {}, { task_state: TaskState.DELETING });
    if (!ok) return;
    await d.bus.cast(COMPUTE_TOPIC, 'terminate_instance', { uuid: inst.uuid, requestId: caller.requestId }, { host: inst.host });
  }

  private async localPortCleanup(inst: Instance): Promise<void> {
    // The compute host is down; the ports still go, as upstream's _local_delete deallocates the network.
    for (const v of inst.networkInfo) {
      await this.d.neutron.call(await this.serviceToken(), v.createdByNova ? 'DELETE' : 'PUT', `/ports/${v.portId}`, v.createdByNova ? undefined : { port: { device_id: '', device_owner: '', 'binding:host_id': '' } }).catch(() => undefined);
    }
  }

  private serviceToken(): Promise<string> {
    return this.d.session.tokenId();
  }

  /** A power action: state check, lock check, CAS on task_state, cast to the host. */
  async action(caller: Caller, inst: Instance, method: string, o: { action: string; taskState: string; rpc: string; extra?: Record<string, unknown>; states?: AllowedStates }): Promise<void> {
    const d = this.d;
    this.checkLock(inst, caller);
    const allowed = o.states ?? ACTION_STATES[method];
    checkInstanceState(inst, method, allowed);
    const ok = await d.instances.cas(inst.uuid, { vmState: allowed.vm, ...(allowed.task ? { taskState: allowed.task } : {}) }, { task_state: o.taskState });
    if (!ok) {
      const now = await d.instances.get(inst.uuid);
      throw invalidState(inst.uuid, 'task_state', now.taskState, method);
    }
    await d.actions.start({ uuid: inst.uuid, action: o.action, requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    if (!inst.host) throw conflict(`Instance ${inst.uuid} has no host`);
    await d.bus.cast(COMPUTE_TOPIC, o.rpc, { uuid: inst.uuid, requestId: caller.requestId, ...o.extra }, { host: inst.host });
  }

  /**
   * trigger_crash_dump (2.17): lock, host, state as upstream checks them, then the host injects an
   * NMI. No task state: what the guest makes of it (a dump, a panic, a log line) is its own business.
   */
  async triggerCrashDump(caller: Caller, inst: Instance): Promise<void> {
    this.checkLock(inst, caller);
    if (!inst.host) throw conflict(`Instance ${inst.uuid} is not ready`);
    checkInstanceState(inst, 'trigger_crash_dump', ACTION_STATES.trigger_crash_dump);
    await this.d.actions.start({ uuid: inst.uuid, action: 'trigger_crash_dump', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await this.d.bus.cast(COMPUTE_TOPIC, 'trigger_crash_dump', { uuid: inst.uuid, requestId: caller.requestId }, { host: inst.host });
  }

  async consoleOutput(inst: Instance, length?: number): Promise<string> {
    if (!inst.host || inst.vmState === VmState.BUILDING) throw conflict(`Instance ${inst.uuid} is not ready`);
    const out = await this.d.bus.call<string>(COMPUTE_TOPIC, 'get_console_output', { uuid: inst.uuid }, { host: inst.host, timeoutMs: 30_000 });
    if (length === undefined || length < 0) return out;
    const lines = out.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-length).join('\n');
  }
}
