import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, conflict } from '@onestack/core/errors.ts';
import { versionNotFound } from '../domain/errors.ts';
import { TaskState } from '../domain/states.ts';
import { callerOf, enforce, isAdmin, mv, serverFor, type ApiDeps } from './context.ts';
import { CONSOLE_ACTIONS } from './console-routes.ts';
import { MOVE_ACTIONS } from './move-action-routes.ts';
import { PROXY_ACTIONS } from './proxy-routes.ts';
import { int, noExtra, nullArg, obj, str } from './validate.ts';

function lockReason(arg: unknown): string | null {
  if (arg === null || arg === undefined) return null;
  const a = obj(arg, 'lock');
  noExtra(a, ['locked_reason']);
  return a.locked_reason === undefined ? null : str(a.locked_reason, 'locked_reason', { min: 1, max: 255 });
}

type Handler = (deps: ApiDeps, req: FastifyRequest, arg: unknown) => Promise<{ status: number; body?: unknown; headers?: Record<string, string> }>;

const power = (method: string, rule: string, action: string, taskState: string, rpc: string): Handler => async (deps, req) => {
  const inst = await serverFor(deps, req, rule);
  await deps.compute.action(callerOf(deps, req), inst, method, { action, taskState, rpc });
  return { status: 202 };
};

/** POST /servers/{id}/action: one key names the action (upstream's wsgi action dispatch). */
const ACTIONS: Record<string, Handler> = {
  ...PROXY_ACTIONS,
  ...MOVE_ACTIONS,
  ...CONSOLE_ACTIONS,
  'os-stop': power('stop', 'os_compute_api:servers:stop', 'stop', TaskState.POWERING_OFF, 'stop_instance'),
  'os-start': power('start', 'os_compute_api:servers:start', 'start', TaskState.POWERING_ON, 'start_instance'),
  pause: power('pause', 'os_compute_api:os-pause-server:pause', 'pause', TaskState.PAUSING, 'pause_instance'),
  unpause: power('unpause', 'os_compute_api:os-pause-server:unpause', 'unpause', TaskState.UNPAUSING, 'unpause_instance'),
  suspend: power('suspend', 'os_compute_api:os-suspend-server:suspend', 'suspend', TaskState.SUSPENDING, 'suspend_instance'),
  resume: power('resume', 'os_compute_api:os-suspend-server:resume', 'resume', TaskState.RESUMING, 'resume_instance'),
  reboot: async (deps, req, arg) => {
    const a = obj(arg, 'reboot');
    const type = str(a.type, 'type');
    if (!['SOFT', 'HARD', 'soft', 'hard'].includes(type)) throw badRequest(`Invalid input for field/attribute type. Value: ${type}. '${type}' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']`);
    const hard = type.toUpperCase() === 'HARD';
    const inst = await serverFor(deps, req, 'os_compute_api:servers:reboot');
    // A soft reboot needs a running guest; a hard one also repairs stopped, paused and suspended ones.
    const states = hard
      ? { vm: ['active', 'stopped', 'paused', 'suspended', 'error'], task: [null, TaskState.REBOOTING, 'reboot_pending', 'reboot_started'] }
      : { vm: ['active'], task: [null] };
    await deps.compute.action(callerOf(deps, req), inst, 'reboot', { action: 'reboot', taskState: hard ? TaskState.REBOOTING_HARD : TaskState.REBOOTING, rpc: 'reboot_instance', extra: { type: hard ? 'HARD' : 'SOFT' }, states });
    return { status: 202 };
  },
  lock: async (deps, req, arg) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-lock-server:lock');
    // 2.73: a reason, validated; before, the body is not looked at.
    const reason = mv(req, '2.73') ? lockReason(arg) : null;
    const caller = callerOf(deps, req);
    await deps.actions.start({ uuid: inst.uuid, action: 'lock', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await deps.instances.update(inst.uuid, { locked_by: caller.isAdmin && caller.projectId !== inst.projectId ? 'admin' : 'owner', locked_reason: reason });
    return { status: 202 };
  },
  unlock: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-lock-server:unlock');
    const caller = callerOf(deps, req);
    if (inst.lockedBy === 'admin' && !caller.isAdmin) enforce(deps, req, 'os_compute_api:os-lock-server:unlock:unlock_override', { project_id: inst.projectId });
    await deps.actions.start({ uuid: inst.uuid, action: 'unlock', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await deps.instances.update(inst.uuid, { locked_by: null, locked_reason: null });
    return { status: 202 };
  },
  'os-getConsoleOutput': async (deps, req, arg) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-console-output');
    const a = arg === null || arg === undefined ? {} : obj(arg, 'os-getConsoleOutput');
    const length = a.length === undefined || a.length === null ? undefined : int(a.length, 'length', { min: -1 });
    if (inst.vmState === 'building' || !inst.host) throw conflict(`Instance ${inst.uuid} is not ready`);
    return { status: 200, body: { output: await deps.compute.consoleOutput(inst, length) } };
  },
  trigger_crash_dump: async (deps, req, arg) => {
    // A 2.17 action: asked for before, upstream's versioned method is not found, ahead of any check.
    if (!mv(req, '2.17')) throw versionNotFound();
    nullArg(arg, 'trigger_crash_dump');
    const inst = await serverFor(deps, req, 'os_compute_api:servers:trigger_crash_dump');
    await deps.compute.triggerCrashDump(callerOf(deps, req), inst);
    return { status: 202 };
  },
  forceDelete: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-deferred-delete:force');
    await deps.compute.delete(callerOf(deps, req), inst);
    return { status: 202 };
  },
  'os-resetState': async (deps, req, arg) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-admin-actions:reset_state');
    const state = str(obj(arg, 'os-resetState').state, 'state');
    if (state !== 'active' && state !== 'error') throw badRequest(`Invalid input for field/attribute state. Value: ${state}. '${state}' is not one of ['active', 'error']`);
    await deps.instances.update(inst.uuid, { vm_state: state, task_state: null });
    return { status: 202 };
  },
};

export function registerActionRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post('/v2.1/servers/:server_id/action', async (req, reply) => {
    const body = obj(req.body, 'body');
    const keys = Object.keys(body);
    const handler = keys.length === 1 ? ACTIONS[keys[0]] : undefined;
    if (!handler) {
      await serverFor(deps, req, undefined);
      throw badRequest('There is no such action: ' + (keys[0] ?? ''));
    }
    void isAdmin;
    const r = await handler(deps, req, body[keys[0]]);
    reply.code(r.status);
    for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
    return r.body ?? '';
  });
}
