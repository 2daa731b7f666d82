import { invalidState } from './errors.ts';
import type { Instance } from './instances.ts';

/** vm_state / task_state values and the API status they map to (nova/api/openstack/common.py _STATE_MAP). */
export const VmState = {
  ACTIVE: 'active',
  BUILDING: 'building',
  PAUSED: 'paused',
  SUSPENDED: 'suspended',
  STOPPED: 'stopped',
  RESCUED: 'rescued',
  RESIZED: 'resized',
  SOFT_DELETED: 'soft-delete',
  DELETED: 'deleted',
  ERROR: 'error',
  SHELVED: 'shelved',
  SHELVED_OFFLOADED: 'shelved_offloaded',
} as const;

export const TaskState = {
  SCHEDULING: 'scheduling',
  BLOCK_DEVICE_MAPPING: 'block_device_mapping',
  NETWORKING: 'networking',
  SPAWNING: 'spawning',
  IMAGE_SNAPSHOT: 'image_snapshot',
  IMAGE_PENDING_UPLOAD: 'image_pending_upload',
  IMAGE_UPLOADING: 'image_uploading',
  RESIZE_PREP: 'resize_prep',
  RESIZE_MIGRATING: 'resize_migrating',
  RESIZE_MIGRATED: 'resize_migrated',
  RESIZE_FINISH: 'resize_finish',
  RESIZE_REVERTING: 'resize_reverting',
  RESIZE_CONFIRMING: 'resize_confirming',
  REBUILDING: 'rebuilding',
  REBUILD_SPAWNING: 'rebuild_spawning',
  SHELVING: 'shelving',
  SHELVING_IMAGE_PENDING_UPLOAD: 'shelving_image_pending_upload',
  SHELVING_IMAGE_UPLOADING: 'shelving_image_uploading',
  SHELVING_OFFLOADING: 'shelving_offloading',
  UNSHELVING: 'unshelving',
  RESCUING: 'rescuing',
  UNRESCUING: 'unrescuing',
  REBOOTING: 'rebooting',
  REBOOTING_HARD: 'rebooting_hard',
  PAUSING: 'pausing',
  UNPAUSING: 'unpausing',
  SUSPENDING: 'suspending',
  RESUMING: 'resuming',
  POWERING_OFF: 'powering-off',
  POWERING_ON: 'powering-on',
  DELETING: 'deleting',
} as const;

const STATE_MAP: Record<string, Record<string, string>> = {
  active: { default: 'ACTIVE', rebooting: 'REBOOT', reboot_pending: 'REBOOT', reboot_started: 'REBOOT', rebooting_hard: 'HARD_REBOOT', reboot_pending_hard: 'HARD_REBOOT', reboot_started_hard: 'HARD_REBOOT', updating_password: 'PASSWORD', rebuilding: 'REBUILD', rebuild_block_device_mapping: 'REBUILD', rebuild_spawning: 'REBUILD', migrating: 'MIGRATING', resize_prep: 'RESIZE', resize_migrating: 'RESIZE', resize_migrated: 'RESIZE', resize_finish: 'RESIZE' },
  building: { default: 'BUILD' },
  stopped: { default: 'SHUTOFF', resize_prep: 'RESIZE', resize_migrating: 'RESIZE', resize_migrated: 'RESIZE', resize_finish: 'RESIZE', rebuilding: 'REBUILD', rebuild_block_device_mapping: 'REBUILD', rebuild_spawning: 'REBUILD' },
  resized: { default: 'VERIFY_RESIZE', resize_reverting: 'REVERT_RESIZE' },
  paused: { default: 'PAUSED', migrating: 'MIGRATING' },
  suspended: { default: 'SUSPENDED' },
  rescued: { default: 'RESCUE' },
  error: { default: 'ERROR', rebuilding: 'REBUILD', rebuild_block_device_mapping: 'REBUILD', rebuild_spawning: 'REBUILD' },
  deleted: { default: 'DELETED' },
  'soft-delete': { default: 'SOFT_DELETED' },
  shelved: { default: 'SHELVED' },
  shelved_offloaded: { default: 'SHELVED_OFFLOADED' },
};

export function statusFromState(vmState: string, taskState: string | null): string {
  const m = STATE_MAP[vmState];
  if (!m) return 'UNKNOWN';
  if (taskState && m[taskState]) return m[taskState];
  return m.default;
}

/** The vm_states a status filter stands for (common.task_and_vm_state_from_status, simplified to vm_state). */
export function vmStatesForStatus(status: string): { vm: string[]; task?: string[] } | undefined {
  const s = status.toUpperCase();
  const vm: string[] = [];
  const task: string[] = [];
  for (const [state, map] of Object.entries(STATE_MAP)) {
    for (const [t, st] of Object.entries(map)) {
      if (st !== s) continue;
      if (!vm.includes(state)) vm.push(state);
      if (t !== 'default') task.push(t);
    }
  }
  if (vm.length === 0) return undefined;
  // ACTIVE means vm_state active with no task that maps elsewhere; the caller filters task states.
  return { vm, task: task.length ? task : undefined };
}

export interface AllowedStates {
  vm: string[];
  task?: (string | null)[];
  /** check_instance_state's must_have_launched: an instance that never ran is refused too. */
  launched?: boolean;
}

/** nova/compute/api.py check_instance_state: vm_state, then task_state, then launched_at, each a 409 naming the method. */
export function checkInstanceState(inst: Instance, method: string, allowed: AllowedStates): void {
  if (!allowed.vm.includes(inst.vmState)) throw invalidState(inst.uuid, 'vm_state', inst.vmState, method);
  if (allowed.task && !allowed.task.includes(inst.taskState)) throw invalidState(inst.uuid, 'task_state', inst.taskState, method);
  if (allowed.launched && inst.launchedAt === null) throw invalidState(inst.uuid, 'launched_at', null, method);
}

/** Valid vm_states for each action (nova/compute/api.py @check_instance_state). */
export const ACTION_STATES: Record<string, AllowedStates> = {
  stop: { vm: ['active', 'error'], task: [null] },
  start: { vm: ['stopped'], task: [null] },
  reboot: { vm: ['active', 'stopped', 'paused', 'suspended', 'error'] },
  pause: { vm: ['active'], task: [null] },
  unpause: { vm: ['paused'], task: [null] },
  suspend: { vm: ['active'], task: [null] },
  resume: { vm: ['suspended'], task: [null] },
  createImage: { vm: ['active', 'stopped', 'paused', 'suspended'], task: [null] },
  // vm_states.ALLOW_TRIGGER_CRASH_DUMP
  trigger_crash_dump: { vm: ['active', 'paused', 'rescued', 'resized', 'error'], task: [null], launched: true },
};
