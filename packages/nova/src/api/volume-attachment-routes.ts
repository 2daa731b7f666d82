import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { ApiError, badRequest, conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import type { SwapVolumeArgs } from '../compute/volume-attach.ts';
import { nextDeviceName, type BlockDevice, type BlockDevices } from '../domain/block-devices.ts';
import { instanceLocked, invalidState } from '../domain/errors.ts';
import type { Instance } from '../domain/instances.ts';
import type { CinderClient, CinderVolume } from '../domain/service-clients.ts';
import { callerOf, enforce, mv, serverFor, type ApiDeps } from './context.ts';
import { bool, int, invalid, noExtra, obj, tag as tagOf } from './validate.ts';

const P = 'os_compute_api:os-volumes-attachments';
const READER = 'rule:context_is_admin or (role:reader and project_id:%(project_id)s)';
const MEMBER = 'rule:context_is_admin or (role:member and project_id:%(project_id)s)';

/** upstream's nova/policies/volumes_attachments.py. */
export const volumeAttachmentPolicies: RuleDefault[] = [
  { name: `${P}:index`, checkStr: READER, description: 'List volume attachments for an instance', scopeTypes: ['project'] },
  { name: `${P}:create`, checkStr: MEMBER, description: 'Attach a volume to an instance', scopeTypes: ['project'] },
  { name: `${P}:show`, checkStr: READER, description: 'Show details of a volume attachment', scopeTypes: ['project'] },
  { name: `${P}:update`, checkStr: MEMBER, description: 'Update a volume attachment', scopeTypes: ['project'] },
  // Only Cinder (the service role) swaps volumes, during a volume migration or retype.
  { name: `${P}:swap`, checkStr: 'role:service', description: 'Update a volume attachment with a different volumeId', scopeTypes: ['project'] },
  { name: `${P}:delete`, checkStr: MEMBER, description: 'Detach a volume from an instance', scopeTypes: ['project'] },
];

export interface VolumeAttachmentDeps {
  bus: Bus;
  cinder: CinderClient;
  blockDevices: BlockDevices;
  /** Nova's own service token: the swap's caller (Cinder's service user) may not see the instance's project in Cinder. */
  serviceToken(): Promise<string>;
}

/** match_device() of nova/block_device.py: what a requested device name may look like. */
const DEVICE = /(^\/dev\/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$/;
const UUID_FORMAT = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const ATTACH_STATES = ['active', 'paused', 'stopped', 'resized', 'soft-delete'];
/** The guest's disk is copied while it runs: upstream's swap_volume states. */
const SWAP_STATES = ['active', 'paused', 'resized'];
const SHELVED = ['shelved', 'shelved_offloaded'];

function volumeIdOf(v: unknown, field = 'volumeId'): string {
  if (typeof v !== 'string') throw invalid(field, v, `${JSON.stringify(v)} is not of type 'string'`);
  if (!UUID_FORMAT.test(v)) throw invalid(field, v, `'${v}' is not a 'uuid'`);
  return v;
}

function deviceOf(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') throw invalid('device', v, `${JSON.stringify(v)} is not of type 'string', 'null'`);
  if (!DEVICE.test(v)) throw invalid('device', v, `'${v}' does not match '${DEVICE.source}'`);
  return v;
}

/** Whether the request's microversion is at least the one given. */
export type AtLeast = (version: string) => boolean;
const atLeastOf = (req: FastifyRequest): AtLeast => (version) => mv(req, version);

/** The attachment as upstream's _translate_attachment_detail_view renders it at the request's microversion. */
export function attachmentView(b: BlockDevice, at: AtLeast) {
  const v2_89 = at('2.89');
  return {
    ...(v2_89 ? {} : { id: b.volumeId }),
    volumeId: b.volumeId,
    serverId: b.instanceUuid,
    ...(b.deviceName ? { device: b.deviceName } : {}),
    ...(at('2.70') ? { tag: b.tag } : {}),
    ...(at('2.79') ? { delete_on_termination: b.deleteOnTermination } : {}),
    ...(v2_89 ? { attachment_id: b.attachmentId, bdm_uuid: b.uuid } : {}),
  };
}

const notAttached = (server: string, volume: string) => notFound(`Instance ${server} is not attached to volume ${volume}`);

/** Before 2.20 a shelved server can neither get nor lose a volume (upstream's _check_request_version). */
function checkShelved(req: FastifyRequest, inst: Instance, method: string): void {
  if (SHELVED.includes(inst.vmState) && !mv(req, '2.20')) throw invalidState(inst.uuid, 'vm_state', inst.vmState, method);
}

/** check_instance_lock and check_instance_state(vm_state=[ACTIVE, PAUSED, STOPPED, RESIZED, SOFT_DELETED …], task_state=[None]). */
function checkState(deps: ApiDeps, req: FastifyRequest, inst: Instance, method: string, states = ATTACH_STATES): void {
  if (inst.lockedBy && !callerOf(deps, req).isAdmin) throw instanceLocked(inst.uuid);
  // Shelved (offloaded) servers have no host to plug into: refused as a state onestack does not attach in.
  if (!states.includes(inst.vmState)) throw invalidState(inst.uuid, 'vm_state', inst.vmState, method);
  if (inst.taskState) throw invalidState(inst.uuid, 'task_state', inst.taskState, method);
  if (!inst.host) throw conflict(`Instance ${inst.uuid} is not ready`);
}

/** Cinder's 400 as nova's cinder.py translates it (InvalidInput); other faults keep their status. */
async function fromCinder<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) throw badRequest(`Invalid input received: ${e.message}`);
    throw e;
  }
}

/** POST's body by upstream's create schemas: tag from 2.49, delete_on_termination from 2.79. */
export function parseAttach(raw: unknown, at: AtLeast): { volumeId: string; device: string | null; tag?: string; deleteOnTermination: boolean } {
  const body = obj(raw ?? null, 'body');
  noExtra(body, ['volumeAttachment']);
  if (body.volumeAttachment === undefined) throw badRequest("'volumeAttachment' is a required property");
  const a = obj(body.volumeAttachment, 'volumeAttachment');
  noExtra(a, ['volumeId', 'device', ...(at('2.49') ? ['tag'] : []), ...(at('2.79') ? ['delete_on_termination'] : [])]);
  if (a.volumeId === undefined) throw badRequest("'volumeId' is a required property");
  return {
    volumeId: volumeIdOf(a.volumeId),
    device: deviceOf(a.device),
    tag: a.tag === undefined ? undefined : tagOf(a.tag),
    deleteOnTermination: a.delete_on_termination === undefined ? false : bool(a.delete_on_termination, 'delete_on_termination'),
  };
}

/** PUT's body by upstream's update schemas: only volumeId before 2.85, then every field GET shows. */
export function parseUpdate(raw: unknown, at: AtLeast): { volumeId: string; fields: Record<string, unknown>; deleteOnTermination?: boolean } {
  const body = obj(raw ?? null, 'body');
  noExtra(body, ['volumeAttachment']);
  if (body.volumeAttachment === undefined) throw badRequest("'volumeAttachment' is a required property");
  const att = obj(body.volumeAttachment, 'volumeAttachment');
  const v2_85 = at('2.85');
  noExtra(att, v2_85 ? ['volumeId', 'device', 'tag', 'delete_on_termination', 'serverId', 'id'] : ['volumeId']);
  if (att.volumeId === undefined) throw badRequest("'volumeId' is a required property");
  const volumeId = volumeIdOf(att.volumeId);
  if (att.device !== undefined) deviceOf(att.device);
  if (att.tag !== undefined) tagOf(att.tag);
  if (att.serverId !== undefined) volumeIdOf(att.serverId, 'serverId');
  if (att.id !== undefined) volumeIdOf(att.id, 'id');
  const deleteOnTermination = att.delete_on_termination === undefined ? undefined : bool(att.delete_on_termination, 'delete_on_termination');
  return { volumeId, fields: att, deleteOnTermination };
}

/** upstream's _check_volume_already_attached: one mapping per volume unless it is multiattach, never two on one server. */
async function checkNotAttached(v: VolumeAttachmentDeps, inst: Instance, volume: CinderVolume): Promise<void> {
  const bdms = await v.blockDevices.forVolume(volume.id);
  if (bdms.length === 0) return;
  if (!volume.multiattach) throw badRequest(`Invalid volume: volume ${volume.id} is already attached to instances: ${bdms.map((b) => b.instanceUuid).join(' ')}`);
  if (bdms.some((b) => b.instanceUuid === inst.uuid)) throw badRequest(`Invalid volume: volume ${volume.id} already attached`);
}

/**
 * os-volume_attachments (upstream's volume_attachments.py): the server's volume block
 * device mappings; attach and detach go through nova-compute, which connects the volume
 * via Cinder's attachments API and hot-plugs it. Unlike upstream the calls wait for the
 * compute host, so a failure is the request's error and the volume is in-use (or
 * available again) when the response comes.
 */
export function registerVolumeAttachmentRoutes(app: FastifyInstance, deps: ApiDeps, v: VolumeAttachmentDeps): void {
  const base = '/v2.1/servers/:server_id/os-volume_attachments';
  const volumeParam = (req: FastifyRequest) => (req.params as { volume_id: string }).volume_id;

  app.get(base, async (req) => {
    const inst = await serverFor(deps, req, `${P}:index`);
    const q = req.query as Record<string, unknown>;
    if (mv(req, '2.75')) noExtra(q, ['limit', 'offset']);
    const one = (x: unknown) => (Array.isArray(x) ? x[x.length - 1] : x);
    const limit = q.limit === undefined ? undefined : int(one(q.limit), 'limit', { min: 0 });
    const offset = q.offset === undefined ? 0 : int(one(q.offset), 'offset', { min: 0 });
    const max = deps.config.maxLimit;
    const bdms = (await v.blockDevices.forInstance(inst.uuid)).slice(offset, offset + Math.min(limit ?? max, max));
    return { volumeAttachments: bdms.filter((b) => b.volumeId && !(mv(req, '2.89') && !b.attachmentId)).map((b) => attachmentView(b, atLeastOf(req))) };
  });

  app.get(`${base}/:volume_id`, async (req) => {
    const inst = await serverFor(deps, req, `${P}:show`);
    const volumeId = volumeParam(req);
    const bdm = await v.blockDevices.byVolume(inst.uuid, volumeId);
    if (!bdm || (mv(req, '2.89') && !bdm.attachmentId)) throw notAttached(inst.uuid, volumeId);
    return { volumeAttachment: attachmentView(bdm, atLeastOf(req)) };
  });

  app.post(base, async (req) => {
    const inst = await serverFor(deps, req, `${P}:create`);
    const a = parseAttach(req.body, atLeastOf(req));
    checkShelved(req, inst, 'attach_volume');
    checkState(deps, req, inst, 'attach_volume');
    const caller = callerOf(deps, req);
    const volume = await v.cinder.getVolume(caller.token, inst.projectId, a.volumeId);
    if (volume.multiattach && !mv(req, '2.60')) throw badRequest('Multiattach volumes are only supported starting with compute API version 2.60.');
    await checkNotAttached(v, inst, volume);
    const existing = await v.blockDevices.forInstance(inst.uuid);
    // upstream's libvirt driver picks the name itself; a requested one is only validated.
    const device = nextDeviceName(existing.map((b) => b.deviceName), inst.flavor);
    if (!device) throw forbidden('The maximum allowed number of disk devices (26) to attach to a single instance has been exceeded.');
    const bdm = await v.blockDevices.create({
      instanceUuid: inst.uuid,
      sourceType: 'volume',
      destinationType: 'volume',
      volumeId: volume.id,
      deviceName: device,
      tag: a.tag ?? null,
      deleteOnTermination: a.deleteOnTermination,
      diskBus: 'virtio',
      deviceType: 'disk',
    });
    try {
      const attachment = await fromCinder(v.cinder.createAttachment(caller.token, inst.projectId, volume.id, inst.uuid));
      await v.blockDevices.update(bdm.uuid, { attachmentId: attachment.id });
    } catch (e) {
      await v.blockDevices.delete(bdm.uuid);
      throw e;
    }
    await deps.actions.start({ uuid: inst.uuid, action: 'attach_volume', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await v.bus.call(COMPUTE_TOPIC, 'attach_volume', { uuid: inst.uuid, bdmUuid: bdm.uuid, requestId: caller.requestId }, { host: inst.host!, timeoutMs: 300_000 });
    return {
      volumeAttachment: {
        id: volume.id,
        serverId: inst.uuid,
        volumeId: volume.id,
        device,
        ...(mv(req, '2.70') ? { tag: a.tag ?? null } : {}),
        ...(mv(req, '2.79') ? { delete_on_termination: a.deleteOnTermination } : {}),
      },
    };
  });

  app.put(`${base}/:volume_id`, async (req, reply) => {
    const inst = await serverFor(deps, req, undefined);
    const id = volumeParam(req);
    const v2_85 = mv(req, '2.85');
    const { volumeId, fields: att, deleteOnTermination } = parseUpdate(req.body, atLeastOf(req));
    const swap = !v2_85 || id !== volumeId;
    if (swap) enforce(deps, req, `${P}:swap`, {});
    else enforce(deps, req, `${P}:update`, { project_id: inst.projectId, user_id: inst.userId });

    if (v2_85) {
      const bdm = await v.blockDevices.byVolume(inst.uuid, id);
      if (!bdm) throw notFound(`No volume Block Device Mapping with id ${id}.`);
      if (att.id !== undefined && att.id !== id) throw badRequest('The id property is not mutable');
      if (att.serverId !== undefined && att.serverId !== inst.uuid) throw badRequest('The serverId property is not mutable');
      if (att.device !== undefined && att.device !== bdm.deviceName) throw badRequest('The device property is not mutable');
      if (att.tag !== undefined && att.tag !== bdm.tag) throw badRequest('The tag property is not mutable');
      if (deleteOnTermination !== undefined) await v.blockDevices.update(bdm.uuid, { deleteOnTermination });
    }
    if (swap) await swapVolume(req, inst, id, volumeId);
    reply.code(202);
    return '';
  });

  /**
   * upstream's _update_volume_swap and compute API swap_volume: only Cinder calls it, for a
   * migrating volume. The new volume must be detached and no smaller; it is reserved for the
   * server (a Cinder attachment) and nova-compute on the server's host copies the disk onto
   * it, pivots and calls Cinder's os-migrate_volume_completion (action `swap_volume`). Answers
   * once the host has the job, as upstream's cast.
   */
  const swapVolume = async (req: FastifyRequest, inst: Instance, oldId: string, newId: string) => {
    const token = await v.serviceToken();
    const old = (await v.cinder.getVolume(token, inst.projectId, oldId)) as CinderVolume & { migration_status?: string | null };
    if (!old.migration_status) throw conflict(`volume ${oldId} is not migrating; this API should only be called by Cinder`);
    let next: CinderVolume;
    try {
      next = await v.cinder.getVolume(token, inst.projectId, newId);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) throw badRequest(e.message);
      throw e;
    }
    if (old.multiattach || next.multiattach) throw badRequest('Swapping multi-attach volumes with more than one read/write attachment is not supported.');
    const bdm = await v.blockDevices.byVolume(inst.uuid, oldId);
    if (!bdm) throw notFound('The volume was either invalid or not attached to the instance.');
    checkState(deps, req, inst, 'swap_volume', SWAP_STATES);
    if (next.attachments.length) throw badRequest('Invalid volume: New volume must be detached in order to swap.');
    if (next.size < old.size) throw badRequest('Invalid volume: New volume must be the same size or larger.');
    const attachment = await fromCinder(v.cinder.createAttachment(token, inst.projectId, newId, inst.uuid));
    const caller = callerOf(deps, req);
    await deps.actions.start({ uuid: inst.uuid, action: 'swap_volume', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    const args: SwapVolumeArgs = { uuid: inst.uuid, oldVolumeId: oldId, newVolumeId: newId, newAttachmentId: attachment.id, requestId: caller.requestId };
    await v.bus.cast(COMPUTE_TOPIC, 'swap_volume', args, { host: inst.host! });
  };

  app.delete(`${base}/:volume_id`, async (req, reply) => {
    const inst = await serverFor(deps, req, `${P}:delete`);
    const volumeId = volumeParam(req);
    checkShelved(req, inst, 'detach_volume');
    const caller = callerOf(deps, req);
    await v.cinder.getVolume(caller.token, inst.projectId, volumeId);
    const bdm = await v.blockDevices.byVolume(inst.uuid, volumeId);
    if (!bdm) throw notAttached(inst.uuid, volumeId);
    if (bdm.bootIndex === 0) throw badRequest('Cannot detach a root device volume');
    checkState(deps, req, inst, 'detach_volume');
    await deps.actions.start({ uuid: inst.uuid, action: 'detach_volume', requestId: caller.requestId, projectId: caller.projectId, userId: caller.userId });
    await v.bus.call(COMPUTE_TOPIC, 'detach_volume', { uuid: inst.uuid, volumeId, requestId: caller.requestId }, { host: inst.host!, timeoutMs: 300_000 });
    reply.code(202);
    return '';
  });
}
