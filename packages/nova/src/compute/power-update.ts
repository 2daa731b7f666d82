import type { Logger } from 'pino';
import type { InstanceActions } from '../domain/actions.ts';
import type { InstanceRepo } from '../domain/instances.ts';
import { TaskState, VmState } from '../domain/states.ts';
import { PowerState } from '../virt/driver.ts';

/** The payload of a power-update external event (os-server-external-events, 2.76). */
export interface PowerUpdateEvent {
  server_uuid?: string;
  tag?: string;
}

interface PowerUpdateDeps {
  host: string;
  driverName: string;
  instances: InstanceRepo;
  actions: InstanceActions;
  logger: Pick<Logger, 'info'>;
}

/** The state an instance must be in for the event to change anything (upstream's _is_state_valid_for_power_update_event). */
const FROM: Record<string, { vmState: string; powerState: number; taskState: string }> = {
  POWER_ON: { vmState: VmState.STOPPED, powerState: PowerState.SHUTDOWN, taskState: TaskState.POWERING_ON },
  POWER_OFF: { vmState: VmState.ACTIVE, powerState: PowerState.RUNNING, taskState: TaskState.POWERING_OFF },
};

/**
 * power-update on the instance's host: the event `compute_power_update` of the start/stop action the
 * API recorded. The event reports a power change made outside Nova (upstream: Ironic's bare metal);
 * a hypervisor whose guests Nova itself powers has nothing to apply, so, as upstream's libvirt
 * driver, a valid event fails (NotImplementedError there) and the task state goes back to none.
 * An instance in another state is left alone: the event is a no-op that succeeds.
 */
export async function powerUpdate(d: PowerUpdateDeps, e: PowerUpdateEvent, requestId: string): Promise<void> {
  if (!e.server_uuid || !e.tag) return;
  const inst = await d.instances.find(e.server_uuid);
  if (!inst || inst.host !== d.host) return;
  try {
    await applyPowerUpdate(d, inst.uuid, e.tag, requestId);
  } catch (err) {
    // Recorded on the event and as the instance's fault; the notification is handled all the same (no redelivery).
    await d.instances.addFault(inst.uuid, { code: 500, message: (err as Error).message, details: (err as Error).stack, host: d.host });
  }
}

async function applyPowerUpdate(d: PowerUpdateDeps, uuid: string, tag: string, requestId: string): Promise<void> {
  const from = FROM[tag];
  await d.actions.event(uuid, requestId, 'compute_power_update', d.host, async () => {
    const inst = await d.instances.get(uuid);
    if (!from || inst.taskState !== null || inst.vmState !== from.vmState || inst.powerState !== from.powerState) {
      d.logger.info({ instance: uuid, tag, vmState: inst.vmState, taskState: inst.taskState }, 'power-update is a no-op in this state');
      return;
    }
    // Lost to another task: best effort, as upstream (UnexpectedTaskStateError is only logged).
    if (!(await d.instances.cas(uuid, { taskState: [null] }, { task_state: from.taskState }))) return;
    await d.instances.cas(uuid, { taskState: [from.taskState] }, { task_state: null });
    throw new Error(`${d.driverName} does not apply power-update events: Nova powers its guests itself.`);
  });
}
