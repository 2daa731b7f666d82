import { powerUpdate, type PowerUpdateEvent } from './power-update.ts';
import { volumeExtended, type VolumeExtendedEvent } from './volume-extend.ts';
import { volumeSnapshotHandlers } from './volume-snapshots.ts';
import { imagePrecacheHandlers } from './image-precache.ts';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Bus, RpcServer, Subscription } from '@onestack/core/bus/bus.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { NovaConfig } from '../conf.ts';
import type { PlacementClient } from '../placement/client.ts';
import { PowerState, type ComputeDriver, type InstanceSpec, type NicSpec } from '../virt/driver.ts';
import type { ImageCache } from '../virt/image-cache.ts';
import { consoleHandlers } from './consoles.ts';
import { hotplugHandlers } from './hotplug.ts';
import { releaseInstanceVolumes, volumeAttachHandlers } from './volume-attach.ts';
import { completeVolumes, prepareVolumes, releaseFailedBuildVolumes, volumeSpecs, type BootVolumeDeps } from './boot-volumes.ts';
import { recordDeviceMetadata } from './device-metadata.ts';
import { ComputeMoves } from './moves.ts';
import type { InstanceActions } from '../domain/actions.ts';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { Instance, InstanceRepo, Vif } from '../domain/instances.ts';
import type { Migrations } from '../domain/migrations.ts';
import { configDriveFiles } from '../domain/metadata-content.ts';
import type { InstanceNotifier } from '../domain/notifier.ts';
import type { CinderClient, GlanceClient, NeutronClient, TokenSource } from '../domain/service-clients.ts';
import type { Services } from '../domain/services.ts';
import { TaskState, VmState } from '../domain/states.ts';

export const COMPUTE_TOPIC = 'compute';
export const COMPUTE_BINARY = 'nova-compute';

export interface ComputeManagerDeps {
  host: string;
  driver: ComputeDriver;
  imageCache?: ImageCache;
  instances: InstanceRepo;
  actions: InstanceActions;
  migrations: Migrations;
  services: Services;
  placement: PlacementClient;
  neutron: NeutronClient;
  glance: GlanceClient;
  cinder: CinderClient;
  blockDevices: BlockDevices;
  /** How long a boot volume nova asked Cinder for may take to become available (tests shorten it). */
  volumeCreateTimeoutMs?: number;
  /** The nova service user's tokens (Neutron port binding needs admin/service rights). */
  session: TokenSource;
  bus: Bus;
  notifier: InstanceNotifier;
  clock: Clock;
  logger: Logger;
  reportIntervalMs: number;
  syncPowerStateMs: number;
  vifPluggingTimeoutMs: number;
  vifPluggingIsFatal: boolean;
  forceConfigDrive: boolean;
  /** shelved_offload_time in seconds: only positive values concern the host (the API offloads at 0). */
  shelvedOffloadTime: number;
  shelvedPollIntervalMs: number;
  allocationRatios?: { cpu: number; ram: number; disk: number };
}

/** What nova-compute takes from Nova's configuration. */
export function computeSettings(c: NovaConfig): Pick<ComputeManagerDeps, 'reportIntervalMs' | 'syncPowerStateMs' | 'vifPluggingTimeoutMs' | 'vifPluggingIsFatal' | 'forceConfigDrive' | 'shelvedOffloadTime' | 'shelvedPollIntervalMs'> {
  return {
    reportIntervalMs: c.reportIntervalMs,
    syncPowerStateMs: c.syncPowerStateMs,
    vifPluggingTimeoutMs: c.vifPluggingTimeoutMs,
    vifPluggingIsFatal: c.vifPluggingIsFatal,
    forceConfigDrive: c.forceConfigDrive,
    shelvedOffloadTime: c.shelvedOffloadTime,
    shelvedPollIntervalMs: c.shelvedPollIntervalMs,
  };
}

/** What Neutron's floatingip.*.end notifications carry. */
interface FloatingIpEvent {
  floatingip?: { floating_ip_address?: string; port_id?: string | null };
}

interface BuildArgs {
  uuid: string;
  requestId: string;
  /** The user's, for the volumes nova makes in the user's project. */
  token?: string;
}

interface ActionArgs {
  uuid: string;
  requestId: string;
  type?: 'SOFT' | 'HARD';
}

/** The tap Neutron's L2 agent looks for: tap + the port id's first 11 characters (upstream's NIC_NAME_LEN 14). */
export const tapName = (portId: string) => `tap${portId.slice(0, 11)}`;

/**
 * nova-compute on one host (nova/compute/manager.py): builds and destroys the
 * host's instances through the driver, binds their ports in Neutron, keeps
 * placement's view of the host current, heartbeats, syncs power states and,
 * after a restart, finds the guests that kept running.
 */
export class ComputeManager {
  private server?: RpcServer;
  private vifSub?: Subscription;
  private timers: NodeJS.Timeout[] = [];
  private providerUuid?: string;
  private readonly vifWaiters = new Map<string, () => void>();
  private stopped = false;
  private readonly moves: ComputeMoves;

  constructor(private readonly d: ComputeManagerDeps) {
    this.moves = new ComputeMoves(d, {
      spawnSpec: (inst) => this.spawnSpec(inst),
      imagePath: (inst) => this.imagePath(inst),
      serviceToken: () => this.serviceToken(),
      cast: (method, args, host) => d.bus.cast(COMPUTE_TOPIC, method, args, { host }),
      call: (method, args, host) => d.bus.call(COMPUTE_TOPIC, method, args, { host, timeoutMs: 120_000 }),
    });
  }

  async start(): Promise<void> {
    const d = this.d;
    await d.services.register(d.host, COMPUTE_BINARY, COMPUTE_TOPIC);
    await this.updateAvailableResource();
    this.vifSub = await d.bus.subscribe('notifications', `nova-compute-vif-${d.host}`, async (n) => {
      if (n.event_type.startsWith('floatingip.')) return this.onFloatingIp(n.payload as FloatingIpEvent, n.event_type === 'floatingip.delete.end');
      if (n.event_type === 'power-update') return powerUpdate({ ...d, driverName: d.driver.constructor.name }, n.payload as PowerUpdateEvent, n.ctx?.requestId ?? '');
      if (n.event_type === 'volume-extended') return volumeExtended({ ...d, serviceToken: () => this.serviceToken() }, n.payload as VolumeExtendedEvent, n.ctx?.requestId ?? '');
      const p = n.payload as { server_uuid?: string; tag?: string; status?: string };
      if (p?.server_uuid && p.tag) this.vifWaiters.get(`${p.server_uuid}/${p.tag}`)?.();
    }, { eventTypes: ['network-vif-plugged', 'power-update', 'volume-extended', 'floatingip.create.end', 'floatingip.update.end', 'floatingip.delete.end'] });
    await this.reconcile();
    this.server = await d.bus.serve(COMPUTE_TOPIC, d.host, {
      build_and_run_instance: async (a: BuildArgs) => void this.background(() => this.buildAndRun(a)),
      terminate_instance: async (a: ActionArgs) => void this.background(() => this.terminate(a)),
      stop_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'stop')),
      start_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'start')),
      reboot_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'reboot')),
      pause_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'pause')),
      unpause_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'unpause')),
      suspend_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'suspend')),
      resume_instance: async (a: ActionArgs) => void this.background(() => this.powerAction(a, 'resume')),
      trigger_crash_dump: async (a: ActionArgs) => void this.background(() => this.triggerCrashDump(a)),
      get_console_output: async (a: { uuid: string; maxBytes?: number }) => d.driver.getConsoleOutput(a.uuid, { maxBytes: a.maxBytes }),
      ...this.moves.handlers((fn) => this.background(fn)),
      ...consoleHandlers(d.driver),
      ...hotplugHandlers({ ...d, serviceToken: () => this.serviceToken(), tapName, waitForVifs: (uuid, vifs) => this.waitForVifs(uuid, vifs) }),
      ...volumeAttachHandlers({ ...d, serviceToken: () => this.serviceToken() }),
      ...volumeSnapshotHandlers({ ...d, serviceToken: () => this.serviceToken() }, (fn) => this.background(fn)),
      ...imagePrecacheHandlers({ ...d, serviceToken: () => this.serviceToken() }),
    });
    this.timers.push(setInterval(() => void this.heartbeat(), d.reportIntervalMs));
    if (d.syncPowerStateMs > 0) this.timers.push(setInterval(() => void this.syncPowerStates().catch((err) => d.logger.warn({ err }, 'power state sync failed')), d.syncPowerStateMs));
    if (d.shelvedPollIntervalMs > 0 && d.shelvedOffloadTime > 0) {
      this.timers.push(setInterval(() => this.background(() => this.pollShelvedInstances()), d.shelvedPollIntervalMs));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.server?.stop();
    await this.vifSub?.stop();
    await Promise.allSettled([...this.running]);
  }

  private readonly running = new Set<Promise<void>>();

  /** RPC casts return at once; the work goes on, and a stop() waits for it. */
  private background(fn: () => Promise<void>): void {
    const p = fn()
      .catch((err) => this.d.logger.error({ err }, 'compute task failed'))
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async heartbeat(): Promise<void> {
    if (this.stopped) return;
    await this.d.services.heartbeat(this.d.host, COMPUTE_BINARY).catch((err) => this.d.logger.warn({ err }, 'heartbeat failed'));
  }

  /** Reports the host's totals to placement and records them for the hypervisors API and the scheduler. */
  async updateAvailableResource(): Promise<void> {
    const d = this.d;
    const info = await d.driver.getHostInfo();
    const ratios = d.allocationRatios ?? { cpu: 4, ram: 1, disk: 1 };
    const rp = await d.placement.ensureProvider({
      name: info.hypervisorHostname,
      inventories: {
        VCPU: { total: info.vcpus, allocation_ratio: ratios.cpu, max_unit: info.vcpus },
        MEMORY_MB: { total: info.memoryMb, allocation_ratio: ratios.ram, reserved: 0, max_unit: info.memoryMb },
        DISK_GB: { total: Math.max(info.localGb, 1), allocation_ratio: ratios.disk, max_unit: Math.max(info.localGb, 1) },
      },
      traits: ['COMPUTE_NODE'],
    });
    this.providerUuid = rp.uuid;
    await d.services.heartbeat(d.host, COMPUTE_BINARY, {
      providerUuid: rp.uuid,
      hypervisorType: info.hypervisorType,
      hypervisorVersion: info.hypervisorVersion,
      hypervisorHostname: info.hypervisorHostname,
      vcpus: info.vcpus,
      memoryMb: info.memoryMb,
      localGb: info.localGb,
      vcpusUsed: info.vcpusUsed,
      memoryMbUsed: info.memoryMbUsed,
      localGbUsed: info.localGbUsed,
      cpuInfo: info.cpuInfo,
    });
  }

  /**
   * Upstream refreshes an instance's network info cache on Neutron's network-changed event;
   * here the floating IP notifications do it, so the addresses of a server show its floating
   * IP as soon as it is associated and lose it when it is not.
   */
  private async onFloatingIp(e: FloatingIpEvent, deleted: boolean): Promise<void> {
    const fip = e.floatingip;
    if (!fip?.floating_ip_address) return;
    const attachedTo = deleted ? null : fip.port_id;
    for (const inst of await this.d.instances.onHost(this.d.host)) {
      const next = inst.networkInfo.map((v) => ({
        ...v,
        ips: [
          ...v.ips.filter((a) => !(a.type === 'floating' && a.address === fip.floating_ip_address)),
          ...(v.portId === attachedTo ? [{ address: fip.floating_ip_address, version: 4 as const, type: 'floating' as const }] : []),
        ],
      }));
      if (JSON.stringify(next) !== JSON.stringify(inst.networkInfo)) await this.d.instances.update(inst.uuid, { network_info: JSON.stringify(next) });
    }
  }

  private async serviceToken(): Promise<string> {
    return this.d.session.tokenId();
  }

  // ---- build ----

  async buildAndRun(a: BuildArgs): Promise<void> {
    const d = this.d;
    let inst = await d.instances.find(a.uuid);
    if (!inst) return;
    d.notifier.send(inst, 'create', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute__do_build_and_run_instance', d.host, async () => {
        if (!(await d.instances.cas(a.uuid, { taskState: [TaskState.SCHEDULING, null] }, { task_state: TaskState.NETWORKING }))) throw new Error('instance was deleted while scheduled');
        const vifs = await this.allocateNetworks(inst!);
        await d.instances.update(a.uuid, { network_info: JSON.stringify(vifs) });
        if (!(await d.instances.cas(a.uuid, { taskState: [TaskState.NETWORKING] }, { task_state: TaskState.BLOCK_DEVICE_MAPPING }))) throw new Error('instance was deleted while its network was set up');
        inst = await d.instances.get(a.uuid);
        await prepareVolumes(this.volumeDeps(), inst, a.token);
        const spec = await this.spawnSpec(inst);
        if (!(await d.instances.cas(a.uuid, { taskState: [TaskState.BLOCK_DEVICE_MAPPING] }, { task_state: TaskState.SPAWNING }))) throw new Error('instance was deleted before spawning');
        const plugged = this.waitForVifs(a.uuid, vifs);
        await d.driver.spawn(spec);
        await plugged;
        await completeVolumes(this.volumeDeps(), inst);
        const info = await d.driver.getInfo(a.uuid);
        const ok = await d.instances.cas(a.uuid, { taskState: [TaskState.SPAWNING] }, { vm_state: VmState.ACTIVE, task_state: null, power_state: info.powerState, launched_at: d.clock.now(), progress: 100 });
        if (!ok) throw new Error('instance was deleted while spawning');
      });
      const done = await d.instances.get(a.uuid);
      d.notifier.send(done, 'create', 'end');
    } catch (err) {
      await this.buildFailed(a.uuid, err);
    }
  }

  private volumeDeps(): BootVolumeDeps {
    return { ...this.d, serviceToken: () => this.serviceToken() };
  }

  /** Leaves nothing behind (guest, ports Nova made, port bindings, volumes Nova made, attachments, allocations) and shows the reason as the fault. */
  private async buildFailed(uuid: string, err: unknown): Promise<void> {
    const d = this.d;
    const message = err instanceof Error ? err.message : String(err);
    d.logger.warn({ err, instance: uuid }, 'build failed');
    await d.driver.destroy(uuid).catch((e) => d.logger.error({ err: e, instance: uuid }, 'destroy after failed build failed'));
    const inst = await d.instances.find(uuid, { includeDeleted: true });
    if (inst) await this.deallocateNetworks(inst).catch((e) => d.logger.error({ err: e, instance: uuid }, 'port cleanup failed'));
    if (inst) await releaseFailedBuildVolumes(this.volumeDeps(), inst).catch((e) => d.logger.error({ err: e, instance: uuid }, 'volume cleanup failed'));
    await d.placement.deleteAllocations(uuid).catch((e) => d.logger.error({ err: e, instance: uuid }, 'allocation cleanup failed'));
    if (!inst || inst.deleted) return;
    if (inst.taskState === TaskState.DELETING) {
      await releaseInstanceVolumes(this.volumeDeps(), inst);
      await d.instances.markDeleted(uuid);
      return;
    }
    // The fault first, as upstream: whoever sees ERROR sees why.
    await d.instances.addFault(uuid, { code: 500, message: `Build of instance ${uuid} aborted: ${message}`, details: err instanceof Error ? err.stack : undefined, host: d.host });
    await d.instances.update(uuid, { vm_state: VmState.ERROR, task_state: null, power_state: PowerState.NOSTATE, network_info: '[]' });
    d.notifier.send(await d.instances.get(uuid), 'create', 'error', { fault: { message } });
  }

  private async securityGroupIds(token: string, projectId: string, names: string[]): Promise<string[] | undefined> {
    if (names.length === 0) return undefined;
    const ids: string[] = [];
    for (const name of names) {
      const body = await this.d.neutron.expect(token, 'GET', `/security-groups?project_id=${encodeURIComponent(projectId)}&name=${encodeURIComponent(name)}`, undefined, 200);
      const sg = (body.security_groups as { id: string }[])[0] ?? ((await this.d.neutron.call(token, 'GET', `/security-groups/${encodeURIComponent(name)}`)).body?.security_group as { id: string } | undefined);
      if (!sg) throw new Error(`Security group ${name} not found.`);
      ids.push(sg.id);
    }
    return ids;
  }

  /** Creates (or binds) one port per requested network, bound to this host; upstream's allocate_for_instance. */
  private async allocateNetworks(inst: Instance): Promise<Vif[]> {
    const d = this.d;
    const token = await this.serviceToken();
    const vifs: Vif[] = [];
    const az = inst.availabilityZone ?? 'nova';
    const sgIds = await this.securityGroupIds(token, inst.projectId, inst.requestSpec.securityGroups);
    try {
      for (const req of inst.requestSpec.networks) {
        let port: any;
        let created = false;
        const binding = { device_id: inst.uuid, device_owner: `compute:${az}`, 'binding:host_id': d.host };
        if (req.portId) {
          port = (await d.neutron.expect(token, 'PUT', `/ports/${req.portId}`, { port: binding }, 200)).port;
        } else {
          const body: Record<string, unknown> = { network_id: req.networkId, project_id: inst.projectId, ...binding };
          if (req.fixedIp) body.fixed_ips = [{ ip_address: req.fixedIp }];
          if (sgIds) body.security_groups = sgIds;
          port = (await d.neutron.expect(token, 'POST', '/ports', { port: body }, 201)).port;
          created = true;
        }
        const net = (await d.neutron.expect(token, 'GET', `/networks/${port.network_id}`, undefined, 200)).network;
        vifs.push({
          portId: port.id,
          networkId: port.network_id,
          networkName: net.name || port.network_id,
          mac: port.mac_address,
          ips: (port.fixed_ips as { ip_address: string }[]).map((f) => ({ address: f.ip_address, version: f.ip_address.includes(':') ? 6 : 4, type: 'fixed' as const })),
          createdByNova: created,
          tapName: tapName(port.id),
          mtu: net.mtu,
          tag: req.tag,
        });
      }
    } catch (e) {
      await this.releasePorts(token, vifs);
      throw e;
    }
    return vifs;
  }

  private async releasePorts(token: string, vifs: Vif[]): Promise<void> {
    for (const v of vifs) {
      const r = v.createdByNova
        ? await this.d.neutron.call(token, 'DELETE', `/ports/${v.portId}`)
        : await this.d.neutron.call(token, 'PUT', `/ports/${v.portId}`, { port: { device_id: '', device_owner: '', 'binding:host_id': '' } });
      if (r.status >= 300 && r.status !== 404) this.d.logger.warn({ port: v.portId, status: r.status }, 'port release failed');
    }
  }

  private async deallocateNetworks(inst: Instance): Promise<void> {
    const token = await this.serviceToken();
    await this.releasePorts(token, inst.networkInfo);
    // Ports Nova created but never recorded (a build that failed half-way) are found by device_id.
    const left = await this.d.neutron.call(token, 'GET', `/ports?device_id=${inst.uuid}`);
    for (const p of (left.body?.ports ?? []) as { id: string; device_owner: string }[]) {
      if (p.device_owner.startsWith('compute:')) await this.d.neutron.call(token, 'DELETE', `/ports/${p.id}`);
    }
  }

  /** Waits for Neutron's network-vif-plugged per port, up to vif_plugging_timeout; fatal only when configured. */
  private waitForVifs(uuid: string, vifs: Vif[]): Promise<void> {
    const d = this.d;
    if (vifs.length === 0 || d.vifPluggingTimeoutMs === 0) return Promise.resolve();
    const waits = vifs.map(
      (v) =>
        new Promise<boolean>((resolve) => {
          const key = `${uuid}/${v.portId}`;
          const timer = setTimeout(() => {
            this.vifWaiters.delete(key);
            resolve(false);
          }, d.vifPluggingTimeoutMs);
          this.vifWaiters.set(key, () => {
            clearTimeout(timer);
            this.vifWaiters.delete(key);
            resolve(true);
          });
        }),
    );
    return Promise.all(waits).then((ok) => {
      if (ok.every(Boolean)) return;
      if (d.vifPluggingIsFatal) throw new Error('Virtual interface creation failed');
      d.logger.warn({ instance: uuid }, 'network-vif-plugged did not arrive in time; going on');
    });
  }

  /** The instance's image in this host's cache, downloaded on first use; '' when the driver keeps no cache. */
  private async imagePath(inst: Instance): Promise<string> {
    const d = this.d;
    const image = inst.requestSpec.image;
    if (!d.driver.capabilities.hasImageCache || !d.imageCache) return '';
    const token = await this.serviceToken();
    return d.imageCache.ensure(image.id, image.diskFormat === 'raw' ? 'raw' : 'qcow2', async (dest) => {
      const body = await d.glance.download(token, image.id);
      await pipeline(Readable.fromWeb(body as never), createWriteStream(dest));
    });
  }

  /**
   * What the driver spawns the instance from. It also records the device metadata of the guest
   * about to be made: upstream builds it once the domain is defined, before it runs, so that the
   * config drive carries it too.
   */
  private async spawnSpec(inst: Instance): Promise<InstanceSpec> {
    const d = this.d;
    const rs = inst.requestSpec;
    const blockDevices = await volumeSpecs(d, inst.uuid);
    // A volume-backed guest boots from its volume: no image, nothing to cache.
    const bootVolume = blockDevices.some((b) => b.bootIndex === 0);
    const imagePath = bootVolume ? '' : await this.imagePath(inst);
    const nics: NicSpec[] = inst.networkInfo.map((v) => ({ portId: v.portId, mac: v.mac, tapName: v.tapName, mtu: v.mtu }));
    const spec: InstanceSpec = {
      uuid: inst.uuid,
      name: inst.name,
      hostname: inst.hostname,
      flavor: { name: inst.flavor.name, vcpus: inst.flavor.vcpus, memoryMb: inst.flavor.ram, rootGb: inst.flavor.disk, ephemeralGb: inst.flavor.ephemeral, swapMb: inst.flavor.swap, extraSpecs: inst.flavor.extraSpecs },
      image: bootVolume ? undefined : { id: rs.image.id, path: imagePath, properties: rs.image.properties },
      nics,
      blockDevices,
      userData: inst.userData ?? undefined,
    };
    const deviceMetadata = await recordDeviceMetadata(d, inst, d.driver.plannedDeviceAddresses(spec));
    if (inst.configDrive || d.forceConfigDrive) {
      const keys = inst.keyData ? [{ name: inst.keyName ?? 'key', type: 'ssh', data: inst.keyData }] : [];
      spec.configDrive = configDriveFiles({ instance: { ...inst, deviceMetadata }, metadata: await d.instances.metadata(inst.uuid), keys });
    }
    return spec;
  }

  // ---- delete ----

  async terminate(a: ActionArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.find(a.uuid);
    if (!inst) return;
    d.notifier.send(inst, 'delete', 'start');
    await d.actions.event(a.uuid, a.requestId, 'compute_terminate_instance', d.host, async () => {
      await d.driver.destroy(a.uuid);
      await releaseInstanceVolumes({ ...d, serviceToken: () => this.serviceToken() }, inst);
      await this.deallocateNetworks(inst);
      await d.placement.deleteAllocations(a.uuid);
      await d.instances.markDeleted(a.uuid);
    }).catch(async (err) => {
      await d.instances.update(a.uuid, { vm_state: VmState.ERROR, task_state: null });
      await d.instances.addFault(a.uuid, { code: 500, message: err instanceof Error ? err.message : String(err), host: d.host });
      throw err;
    });
    d.notifier.send((await d.instances.get(a.uuid, { includeDeleted: true }))!, 'delete', 'end');
  }

  // ---- power actions ----

  async powerAction(a: ActionArgs, op: 'stop' | 'start' | 'reboot' | 'pause' | 'unpause' | 'suspend' | 'resume'): Promise<void> {
    const d = this.d;
    const inst = await d.instances.find(a.uuid);
    if (!inst) return;
    const plan = {
      stop: { event: 'compute_stop_instance', notify: 'power_off', vm: VmState.STOPPED, run: () => d.driver.powerOff(a.uuid) },
      start: { event: 'compute_start_instance', notify: 'power_on', vm: VmState.ACTIVE, run: () => d.driver.powerOn(a.uuid) },
      reboot: { event: 'compute_reboot_instance', notify: 'reboot', vm: VmState.ACTIVE, run: () => d.driver.reboot(a.uuid, a.type ?? 'SOFT') },
      pause: { event: 'compute_pause_instance', notify: 'pause', vm: VmState.PAUSED, run: () => d.driver.pause(a.uuid) },
      unpause: { event: 'compute_unpause_instance', notify: 'unpause', vm: VmState.ACTIVE, run: () => d.driver.unpause(a.uuid) },
      suspend: { event: 'compute_suspend_instance', notify: 'suspend', vm: VmState.SUSPENDED, run: () => d.driver.suspend(a.uuid) },
      resume: { event: 'compute_resume_instance', notify: 'resume', vm: VmState.ACTIVE, run: () => d.driver.resume(a.uuid) },
    }[op];
    d.notifier.send(inst, plan.notify, 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, plan.event, d.host, plan.run);
      const info = await d.driver.getInfo(a.uuid);
      await d.instances.update(a.uuid, { vm_state: plan.vm, task_state: null, power_state: info.powerState });
      d.notifier.send(await d.instances.get(a.uuid), plan.notify, 'end');
    } catch (err) {
      const info = await d.driver.getInfo(a.uuid).catch(() => undefined);
      // The instance stays in the state it was in, as upstream's reverts_task_state does; the fault says why.
      await d.instances.update(a.uuid, { task_state: null, ...(info ? { power_state: info.powerState } : {}) });
      await d.instances.addFault(a.uuid, { code: 500, message: err instanceof Error ? err.message : String(err), host: d.host });
      d.notifier.send(await d.instances.get(a.uuid), plan.notify, 'error', { fault: { message: String(err) } });
    }
  }

  /** Upstream's trigger_crash_dump: an NMI into the guest; task and power states stay as they are, a failure is a fault. */
  async triggerCrashDump(a: ActionArgs): Promise<void> {
    const d = this.d;
    const inst = await d.instances.find(a.uuid);
    if (!inst) return;
    d.notifier.send(inst, 'trigger_crash_dump', 'start');
    try {
      await d.actions.event(a.uuid, a.requestId, 'compute_trigger_crash_dump', d.host, () => d.driver.injectNmi(a.uuid));
    } catch (err) {
      // Upstream has no error phase for it: the fault (wrap_instance_fault) says what went wrong.
      await d.instances.addFault(a.uuid, { code: 500, message: err instanceof Error ? err.message : String(err), details: err instanceof Error ? err.stack : undefined, host: d.host });
      return;
    }
    d.notifier.send(await d.instances.get(a.uuid), 'trigger_crash_dump', 'end');
  }

  // ---- periodic tasks ----

  /**
   * _sync_power_states: a guest that stopped behind Nova's back is shown
   * SHUTOFF (upstream calls the stop API for it); a paused/running mismatch
   * only updates power_state.
   */
  async syncPowerStates(): Promise<void> {
    const d = this.d;
    const known = new Set(await d.driver.listInstances());
    for (const inst of await d.instances.onHost(d.host)) {
      if (inst.taskState !== null || inst.vmState === VmState.BUILDING || inst.vmState === VmState.ERROR) continue;
      const power = known.has(inst.uuid) ? (await d.driver.getInfo(inst.uuid).catch(() => undefined))?.powerState ?? PowerState.NOSTATE : PowerState.NOSTATE;
      if (power === inst.powerState && !(inst.vmState === VmState.ACTIVE && power !== PowerState.RUNNING)) continue;
      if (inst.vmState === VmState.ACTIVE && (power === PowerState.SHUTDOWN || power === PowerState.NOSTATE || power === PowerState.CRASHED)) {
        await d.instances.cas(inst.uuid, { vmState: [VmState.ACTIVE], taskState: [null] }, { vm_state: VmState.STOPPED, power_state: power === PowerState.NOSTATE ? PowerState.SHUTDOWN : power });
        d.logger.info({ instance: inst.uuid }, 'instance shut down behind nova: now SHUTOFF');
      } else {
        await d.instances.cas(inst.uuid, { taskState: [null] }, { power_state: power });
      }
    }
  }

  /**
   * Upstream's _poll_shelved_instances: this host's SHELVED instances (no task) shelved longer than
   * shelved_offload_time ago are offloaded, each claimed by compare-and-swap first so that an
   * unshelve or shelveOffload arriving meanwhile wins. Without a request of its own the offload's
   * event goes to the instance's latest action (the shelve), as upstream's does for a periodic task.
   */
  async pollShelvedInstances(): Promise<void> {
    const d = this.d;
    if (this.stopped || d.shelvedOffloadTime <= 0) return;
    const due = d.clock.now() - d.shelvedOffloadTime * 1000;
    for (const inst of await d.instances.onHost(d.host)) {
      if (inst.vmState !== VmState.SHELVED || inst.taskState !== null) continue;
      const shelvedAt = Date.parse(inst.systemMetadata.shelved_at ?? '');
      if (!(shelvedAt < due)) continue;
      if (!(await d.instances.cas(inst.uuid, { vmState: [VmState.SHELVED], taskState: [null] }, { task_state: TaskState.SHELVING_OFFLOADING }))) continue;
      const [latest] = await d.actions.list(inst.uuid);
      d.logger.info({ instance: inst.uuid }, `shelved longer than ${d.shelvedOffloadTime} s: offloading`);
      await this.moves.shelveOffload({ uuid: inst.uuid, requestId: latest?.request_id ?? '' });
    }
  }

  /**
   * After a restart: guests of instances that are gone (deleted while this
   * host was down) are destroyed; builds interrupted half-way go to ERROR;
   * the rest are found again and their power states synced.
   */
  async reconcile(): Promise<void> {
    const d = this.d;
    const onHost = await d.driver.listInstances();
    for (const uuid of onHost) {
      const inst = await d.instances.find(uuid);
      // The source copy of an unconfirmed resize or migration stays for a revert.
      const moving = inst && (await d.migrations.inProgress(uuid, ['post-migrating', 'finished', 'confirming', 'reverting']))?.source_compute === d.host;
      if (!inst || (inst.host !== d.host && !moving)) {
        d.logger.info({ instance: uuid }, 'destroying a guest whose instance is deleted or elsewhere');
        await d.driver.destroy(uuid).catch((err) => d.logger.warn({ err, instance: uuid }, 'reap failed'));
      }
    }
    for (const inst of await d.instances.onHost(d.host)) {
      if (inst.vmState === VmState.BUILDING) await this.buildFailed(inst.uuid, new Error('nova-compute restarted during the build'));
      else if (inst.taskState === TaskState.DELETING) await this.terminate({ uuid: inst.uuid, requestId: 'reconcile' });
      else if (inst.taskState !== null) await d.instances.update(inst.uuid, { task_state: null });
    }
    await this.syncPowerStates();
  }
}
