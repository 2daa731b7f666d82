import type { FastifyRequest } from 'fastify';
import { badRequest, conflict } from '@onestack/core/errors.ts';
import { invalidState } from '../domain/errors.ts';
import { VmState } from '../domain/states.ts';
import type { Instance } from '../domain/instances.ts';
import type { RebuildInput, UnshelveTarget } from '../domain/server-moves.ts';
import { callerOf, enforce, mv, serverFor, type ApiDeps } from './context.ts';
import { showServer, trustedCerts } from './server-routes.ts';
import { reducedView } from './server-views.ts';
import { bool, hostname, metadata, name, noExtra, nullArg, obj, str } from './validate.ts';

type Handler = (deps: ApiDeps, req: FastifyRequest, arg: unknown) => Promise<{ status: number; body?: unknown; headers?: Record<string, string> }>;

const flavorRef = (v: unknown): string => {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return String(v);
  return str(v, 'flavorRef', { min: 1, max: 255 });
};

function rebuildInput(req: FastifyRequest, arg: unknown): RebuildInput {
  const a = obj(arg, 'rebuild');
  const allowedKeys = ['imageRef', 'name', 'adminPass', 'metadata', 'preserve_ephemeral', 'OS-DCF:diskConfig', 'accessIPv4', 'accessIPv6'];
  if (!mv(req, '2.57')) allowedKeys.push('personality');
  if (mv(req, '2.19')) allowedKeys.push('description');
  if (mv(req, '2.54')) allowedKeys.push('key_name');
  if (mv(req, '2.57')) allowedKeys.push('user_data');
  if (mv(req, '2.63')) allowedKeys.push('trusted_image_certificates');
  if (mv(req, '2.90')) allowedKeys.push('hostname');
  noExtra(a, allowedKeys);
  if (a.imageRef === undefined) throw badRequest("'imageRef' is a required property");
  const input: RebuildInput = { imageRef: str(a.imageRef, 'imageRef', { min: 1 }), preserveEphemeral: a.preserve_ephemeral === undefined ? false : bool(a.preserve_ephemeral, 'preserve_ephemeral') };
  if (a.name !== undefined) input.name = str(a.name, 'name', { min: 1, max: 255 });
  if (a.adminPass !== undefined) input.adminPass = str(a.adminPass, 'adminPass');
  if (a.metadata !== undefined) input.metadata = metadata(a.metadata);
  if (a.description !== undefined) input.description = a.description === null ? null : str(a.description, 'description', { max: 255 });
  if (a.key_name !== undefined) input.keyName = a.key_name === null ? null : str(a.key_name, 'key_name', { min: 1, max: 255 });
  if (a.user_data !== undefined) {
    input.userData = a.user_data === null ? null : str(a.user_data, 'user_data', { max: 65535 });
    if (input.userData !== null && Buffer.from(input.userData, 'base64').toString('base64').replace(/=+$/, '') !== input.userData.replace(/\s/g, '').replace(/=+$/, '')) throw badRequest('User data needs to be valid base 64.');
  }
  // 2.63: given certificates replace the instance's; null clears them.
  if (a.trusted_image_certificates !== undefined) input.trustedCerts = trustedCerts(a.trusted_image_certificates) ?? null;
  if (a.hostname !== undefined) input.hostname = hostname(a.hostname);
  return input;
}

/** Resize, migrate, confirm/revert, createImage, rebuild, shelve, rescue and changePassword as actions of POST /servers/{id}/action. */
export const MOVE_ACTIONS: Record<string, Handler> = {
  resize: async (deps, req, arg) => {
    const a = obj(arg, 'resize');
    noExtra(a, ['flavorRef', 'OS-DCF:diskConfig']);
    if (a.flavorRef === undefined) throw badRequest("'flavorRef' is a required property");
    const ref = flavorRef(a.flavorRef);
    const inst = await serverFor(deps, req, 'os_compute_api:servers:resize');
    await deps.moves.resize(callerOf(deps, req), inst, ref);
    return { status: 202 };
  },
  confirmResize: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:servers:confirm_resize');
    await deps.moves.confirmResize(callerOf(deps, req), inst);
    return { status: 204 };
  },
  revertResize: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:servers:revert_resize');
    await deps.moves.revertResize(callerOf(deps, req), inst);
    return { status: 202 };
  },
  migrate: async (deps, req, arg) => {
    // Before 2.56 the action takes no body; from 2.56 an optional target host.
    let host: string | undefined;
    if (arg !== null && arg !== undefined) {
      if (!mv(req, '2.56')) nullArg(arg, 'migrate');
      const a = obj(arg, 'migrate');
      noExtra(a, ['host']);
      if (a.host !== undefined && a.host !== null) host = str(a.host, 'host', { min: 1, max: 255 });
    }
    const inst = await serverFor(deps, req, 'os_compute_api:os-migrate-server:migrate');
    if (host) enforce(deps, req, 'os_compute_api:os-migrate-server:migrate:host', { project_id: inst.projectId });
    await deps.moves.migrate(callerOf(deps, req), inst, host);
    return { status: 202 };
  },
  createImage: async (deps, req, arg) => {
    const a = obj(arg, 'createImage');
    noExtra(a, ['name', 'metadata']);
    if (a.name === undefined) throw badRequest("'name' is a required property");
    const name = str(a.name, 'name', { min: 1, max: 255 });
    const md = a.metadata === undefined ? {} : metadata(a.metadata);
    const inst = await serverFor(deps, req, 'os_compute_api:servers:create_image');
    if (inst.requestSpec.isBfv) enforce(deps, req, 'os_compute_api:servers:create_image:allow_volume_backed', { project_id: inst.projectId });
    const { imageId, location } = await deps.moves.createImage(callerOf(deps, req), inst, name, md);
    // 2.45: the image id in the body instead of a Location header.
    return mv(req, '2.45') ? { status: 202, body: { image_id: imageId } } : { status: 202, headers: { location } };
  },
  rebuild: async (deps, req, arg) => {
    const input = rebuildInput(req, arg);
    const inst = await serverFor(deps, req, 'os_compute_api:servers:rebuild');
    if (input.trustedCerts) enforce(deps, req, 'os_compute_api:servers:rebuild:trusted_certs', { project_id: inst.projectId, user_id: inst.userId });
    const caller = callerOf(deps, req);
    const image = await deps.compute.image(caller, input.imageRef);
    await deps.moves.rebuild(caller, inst, input, image);
    const now = await deps.instances.get(inst.uuid);
    const server = rebuildView(req, await showServer(deps, req, now), now.userData);
    // enable_instance_password defaults to on upstream: the response carries the (new) admin password.
    server.adminPass = input.adminPass ?? randomPass();
    return { status: 202, body: { server } };
  },
  shelve: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-shelve:shelve');
    await deps.moves.shelve(callerOf(deps, req), inst);
    return { status: 202 };
  },
  shelveOffload: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-shelve:shelve_offload');
    await deps.moves.shelveOffload(callerOf(deps, req), inst);
    return { status: 202 };
  },
  unshelve: async (deps, req, arg) => {
    // 2.77: {availability_zone} (required in an object); 2.91: availability_zone may be null (unpin) and a host may be named.
    const a = nullOr(arg, 'unshelve');
    if (a && !mv(req, '2.77')) nullArg(arg, 'unshelve');
    const target: UnshelveTarget = {};
    if (a && mv(req, '2.91')) {
      noExtra(a, ['availability_zone', 'host']);
      if (a.availability_zone !== undefined) target.availabilityZone = a.availability_zone === null ? null : str(a.availability_zone, 'availability_zone');
      if (a.host !== undefined) target.host = str(a.host, 'host');
    } else if (a) {
      noExtra(a, ['availability_zone']);
      if (a.availability_zone === undefined) throw badRequest("Invalid input for field/attribute unshelve. Value: {}. 'availability_zone' is a required property");
      target.availabilityZone = name(a.availability_zone, 'availability_zone');
    }
    const inst = await serverFor(deps, req, 'os_compute_api:os-shelve:unshelve');
    if (target.host) target.authorizeHost = () => enforce(deps, req, 'os_compute_api:os-shelve:unshelve_to_host', { project_id: inst.projectId, user_id: inst.userId });
    await deps.moves.unshelve(callerOf(deps, req), inst, target);
    return { status: 202 };
  },
  rescue: async (deps, req, arg) => {
    const a = nullOr(arg, 'rescue') ?? {};
    noExtra(a, ['adminPass', 'rescue_image_ref']);
    const adminPass = a.adminPass === undefined ? randomPass() : str(a.adminPass, 'adminPass');
    const inst = await serverFor(deps, req, 'os_compute_api:os-rescue');
    const caller = callerOf(deps, req);
    const image = a.rescue_image_ref === undefined ? undefined : await deps.compute.image(caller, str(a.rescue_image_ref, 'rescue_image_ref'));
    deps.compute.checkLock(inst, caller);
    if (inst.requestSpec.isBfv && rescuableState(inst)) throw badRequest(`Instance ${inst.uuid} cannot be rescued: ${bfvRescueRefusal(req, image ?? inst.requestSpec.image)}`);
    await deps.moves.rescue(caller, inst, { adminPass, image });
    return { status: 200, body: { adminPass } };
  },
  unrescue: async (deps, req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-unrescue');
    await deps.moves.unrescue(callerOf(deps, req), inst);
    return { status: 202 };
  },
  changePassword: async (deps, req, arg) => {
    const a = obj(arg, 'changePassword');
    noExtra(a, ['adminPass']);
    if (a.adminPass === undefined) throw badRequest("'adminPass' is a required property");
    str(a.adminPass, 'adminPass');
    const inst = await serverFor(deps, req, 'os_compute_api:os-admin-password');
    deps.compute.checkLock(inst, callerOf(deps, req));
    if (inst.vmState !== VmState.ACTIVE) throw invalidState(inst.uuid, 'vm_state', inst.vmState, 'changePassword');
    if (inst.taskState !== null) throw invalidState(inst.uuid, 'task_state', inst.taskState, 'changePassword');
    // Setting it needs a guest agent; neither driver has one (upstream's libvirt answers the same without hw_qemu_guest_agent).
    const agent = ['yes', 'true', '1'].includes(String(inst.requestSpec.image.properties.hw_qemu_guest_agent ?? '').toLowerCase());
    throw conflict(agent ? 'Set admin password is not supported' : 'QEMU guest agent is not enabled');
  },
};

/** Before 2.75 the rebuild response is the reduced view, with key_name from 2.54 and user_data from 2.57. */
function rebuildView(req: FastifyRequest, full: Record<string, unknown>, userData: string | null): Record<string, unknown> {
  if (mv(req, '2.75')) return full;
  const out = reducedView(full);
  if (mv(req, '2.54')) out.key_name = full.key_name;
  if (mv(req, '2.57')) out.user_data = userData;
  return out;
}

/** The states rescue starts from; others get the state conflict (409) first, as upstream checks lock and state before the volume. */
const RESCUE_FROM: string[] = [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR];
const rescuableState = (inst: Instance) => RESCUE_FROM.includes(inst.vmState) && inst.taskState === null;

/**
 * Why a volume-backed server is not rescued. From 2.87 upstream rescues one from an image naming
 * hw_rescue_bus and hw_rescue_device on a host reporting COMPUTE_RESCUE_BFV; no host here reports
 * it (the drivers boot a rescue disk only beside a local root disk), so such a request meets that
 * host check and every other one the plain refusal.
 */
function bfvRescueRefusal(req: FastifyRequest, image: { properties: Record<string, string> }): string {
  const stableDevice = mv(req, '2.87') && 'hw_rescue_bus' in image.properties && 'hw_rescue_device' in image.properties;
  return stableDevice ? 'Host unable to rescue a volume-backed instance' : 'Cannot rescue a volume-backed instance';
}

const nullOr = (arg: unknown, action: string): Record<string, unknown> | null => (arg === null || arg === undefined ? null : obj(arg, action));

function randomPass(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789'[b % 57]).join('');
}
