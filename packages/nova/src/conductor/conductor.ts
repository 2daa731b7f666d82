import type { Logger } from 'pino';
import type { Bus, RpcServer } from '@onestack/core/bus/bus.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { PlacementClient } from '../placement/client.ts';
import type { InstanceActions } from '../domain/actions.ts';
import type { InstanceRepo } from '../domain/instances.ts';
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
}

/**
 * nova-conductor's build path (ComputeTaskManager.build_instances): asks the
 * scheduler for hosts (which claims in placement), records each host, then
 * casts the build to that host's nova-compute. When no host fits, every
 * instance of the request goes to ERROR with the scheduler's reason as fault.
 */
export class Conductor {
  private servers: RpcServer[] = [];

  constructor(private readonly d: { bus: Bus; scheduler: Scheduler; instances: InstanceRepo; actions: InstanceActions; placement: PlacementClient; notifier: InstanceNotifier; logger: Logger }) {}

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
        const ok = await d.instances.cas(uuid, { taskState: [TaskState.SCHEDULING] }, { vm_state: VmState.ERROR, task_state: null });
        if (!ok) continue;
        await d.instances.addFault(uuid, { code: 500, message: message.startsWith('No valid host') ? message : `No valid host was found. ${message}`, details: err instanceof ApiError ? undefined : (err as Error)?.stack });
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
      await d.bus.cast(COMPUTE_TOPIC, 'build_and_run_instance', { uuid: s.uuid, requestId: a.requestId }, { host: s.host });
    }
  }
}
