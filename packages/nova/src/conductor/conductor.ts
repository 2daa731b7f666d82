import type { Logger } from 'pino';
import { RemoteError, type Bus, type RpcServer } from '@onestack/core/bus/bus.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { PlacementClient } from '../placement/client.ts';
import type { InstanceActions } from '../domain/actions.ts';
import type { InstanceRepo } from '../domain/instances.ts';
import type { Migrations } from '../domain/migrations.ts';
import type { MigrateRequest, UnshelveRequest } from '../domain/server-moves.ts';
import type { InstanceNotifier } from '../domain/notifier.ts';
import { TaskState, VmState } from '../domain/states.ts';
import type { Scheduler, Selection } from '../scheduler/scheduler.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';

export const CONDUCTOR_TOPIC = 'conductor';
export const SCHEDULER_TOPIC = 'scheduler';

export interface BuildRequest {
  uuids: string[];
  requestId: string;
  projectId: string;
  userId: string;
  /** The user's token, when the hosts make volumes for the user's project (boot from an image, snapshot or blank volume). */
  token?: string;
}

/**
 * nova-conductor's build path (ComputeTaskManager.build_instances): asks the
 * scheduler for hosts (which claims in placement), records each host, then
 * casts the build to that host's nova-compute. When no host fits, every
 * instance of the request goes to ERROR with the scheduler's reason as fault.
 */
export class Conductor {
  private servers: RpcServer[] = [];

  constructor(private readonly d: { bus: Bus; scheduler: Scheduler; instances: InstanceRepo; actions: InstanceActions; migrations: Migrations; placement: PlacementClient; notifier: InstanceNotifier; logger: Logger }) {}

  async start(): Promise<void> {
    const d = this.d;
    this.servers.push(
      await d.bus.serve(SCHEDULER_TOPIC, undefined, {
        select_destinations: async (a: { uuid: string; uuids: string[]; projectId: string; userId: string }) => {
          const inst = await d.instances.get(a.uuid);
          return d.scheduler.selectDestinations(inst.requestSpec, a.uuids, { projectId: a.projectId, userId: a.userId });
        },
      }),
    );
    this.servers.push(
      await d.bus.serve(CONDUCTOR_TOPIC, undefined, {
        build_instances: async (a: BuildRequest) => {
          void this.build(a).catch((err) => d.logger.error({ err }, 'build_instances failed'));
        },
        unshelve_instance: async (a: UnshelveRequest) => {
          void this.unshelve(a).catch((err) => d.logger.error({ err }, 'unshelve_instance failed'));
        },
        migrate_server: async (a: MigrateRequest) => {
          void this.migrate(a).catch((err) => d.logger.error({ err }, 'migrate_server failed'));
        },
      }),
    );
  }

  async stop(): Promise<void> {
    for (const s of this.servers) await s.stop();
  }

  async build(a: BuildRequest): Promise<void> {
    const d = this.d;
    let selections: Selection[];
    try {
      selections = await d.actions.event(a.uuids[0], a.requestId, 'conductor_schedule_and_build_instances', null, () =>
        d.bus.call<Selection[]>(SCHEDULER_TOPIC, 'select_destinations', { uuid: a.uuids[0], uuids: a.uuids, projectId: a.projectId, userId: a.userId }),
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      for (const uuid of a.uuids) {
        // The fault first: a client that sees ERROR must find the reason with it.
        await d.instances.addFault(uuid, { code: 500, ...schedulingFault(err) });
        const ok = await d.instances.cas(uuid, { taskState: [TaskState.SCHEDULING] }, { vm_state: VmState.ERROR, task_state: null });
        if (!ok) continue;
        const inst = await d.instances.get(uuid);
        d.notifier.send(inst, 'create', 'error', { fault: { message } });
      }
      return;
    }
    for (const s of selections) {
      const ok = await d.instances.cas(s.uuid, { taskState: [TaskState.SCHEDULING] }, { host: s.host, node: s.node, availability_zone: s.availabilityZone });
      if (!ok) {
        // Deleted while it was being scheduled: give back its claim.
        await d.placement.deleteAllocations(s.uuid).catch(() => undefined);
        continue;
      }
      await d.bus.cast(COMPUTE_TOPIC, 'build_and_run_instance', { uuid: s.uuid, requestId: a.requestId, ...(a.token ? { token: a.token } : {}) }, { host: s.host });
    }
  }

  /**
   * ComputeTaskManager.migrate_server (cold): the source host's allocation moves to the
   * migration consumer, the scheduler claims the new flavor for the instance on the
   * destination, then the source host starts the move. When no host fits, the
   * allocation goes back, the migration is in error and the instance as it was, with a fault.
   */
  async migrate(a: MigrateRequest): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    const migration = await d.migrations.byUuid(a.migrationUuid);
    const flavor = JSON.parse(inst.systemMetadata.new_flavor);
    const spec = {
      ...inst.requestSpec,
      flavor,
      forcedHost: a.host,
      requestedHost: undefined,
      requestedNode: undefined,
      numInstances: 1,
      // different_host with the instance itself keeps the source host out of the candidates.
      hints: { ...inst.requestSpec.hints, differentHost: a.avoidSource ? [...(inst.requestSpec.hints.differentHost ?? []), inst.uuid] : inst.requestSpec.hints.differentHost },
    };
    let selection: Selection;
    try {
      [selection] = await d.actions.event(a.uuid, a.requestId, 'conductor_migrate_server', null, async () => {
        await d.placement.moveAllocations(inst.uuid, migration.uuid, 'MIGRATION');
        return d.scheduler.selectDestinations(spec, [inst.uuid], { projectId: inst.projectId, userId: inst.userId });
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await d.placement.moveAllocations(migration.uuid, inst.uuid, 'INSTANCE').catch((e) => d.logger.error({ err: e }, 'allocation rollback failed'));
      await d.migrations.update(migration.uuid, { status: 'error' });
      await d.instances.addFault(a.uuid, { code: 400, ...schedulingFault(err) });
      await d.instances.update(a.uuid, { task_state: null });
      d.notifier.send(await d.instances.get(a.uuid), 'resize', 'error', { fault: { message } });
      return;
    }
    await d.migrations.update(migration.uuid, { dest_compute: selection.host, dest_node: selection.node, dest_host: selection.host });
    await d.bus.cast(COMPUTE_TOPIC, 'resize_instance', { uuid: a.uuid, migrationUuid: migration.uuid, requestId: a.requestId }, { host: inst.host! });
  }

  /** ComputeTaskManager.unshelve_instance for an offloaded instance: scheduled again, like a build. */
  async unshelve(a: UnshelveRequest): Promise<void> {
    const d = this.d;
    const inst = await d.instances.get(a.uuid);
    // The zone is the request spec's (the API saved a new one); a requested host is a destination the filters still check.
    const spec = { ...inst.requestSpec, numInstances: 1, forcedHost: undefined, requestedHost: a.host, requestedNode: undefined };
    let selection: Selection;
    try {
      [selection] = await d.actions.event(a.uuid, a.requestId, 'schedule_instances', null, () => d.scheduler.selectDestinations(spec, [inst.uuid], { projectId: inst.projectId, userId: inst.userId }));
    } catch (err) {
      await d.instances.addFault(a.uuid, { code: 400, ...schedulingFault(err) });
      await d.instances.update(a.uuid, { task_state: null });
      return;
    }
    await d.instances.update(a.uuid, { host: selection.host, node: selection.node, availability_zone: selection.availabilityZone });
    await d.bus.cast(COMPUTE_TOPIC, 'unshelve_instance', { uuid: a.uuid, requestId: a.requestId }, { host: selection.host });
  }
}

/**
 * A failed scheduling's fault: the message is cut to 255 characters where it is stored (upstream's
 * column), so the whole of the scheduler's reasons (which filter removed which host, what each
 * had free) goes to the details too, which admins see; an unexpected error's details are its stack.
 */
function schedulingFault(err: unknown): { message: string; details?: string } {
  const text = err instanceof Error ? err.message : String(err);
  const message = text.startsWith('No valid host') ? text : `No valid host was found. ${text}`;
  const name = err instanceof RemoteError ? err.remoteName : (err as Error)?.name;
  if (name === 'NoValidHost') return { message, details: message };
  return { message, details: err instanceof ApiError ? undefined : (err as Error)?.stack };
}
