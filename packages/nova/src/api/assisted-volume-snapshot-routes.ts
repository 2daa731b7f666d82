import type { FastifyInstance } from 'fastify';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { badRequest } from '@onestack/core/errors.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import type { AssistedCreateInfo, VolumeSnapshotArgs } from '../compute/volume-snapshots.ts';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { Instance } from '../domain/instances.ts';
import { enforce, type ApiDeps } from './context.ts';
import { invalid, noExtra, obj, str } from './validate.ts';

/** A required key left out, worded as jsonschema does. */
function required(o: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) if (o[k] === undefined) throw badRequest(`'${k}' is a required property`);
}

/** upstream's schemas/assisted_volume_snapshots.py snapshots_create. */
function parseCreate(body: unknown): { volumeId: string; createInfo: AssistedCreateInfo } {
  const b = obj(body, 'body');
  noExtra(b, ['snapshot']);
  required(b, ['snapshot']);
  const s = obj(b.snapshot, 'snapshot');
  noExtra(s, ['volume_id', 'create_info'], 'snapshot');
  required(s, ['volume_id', 'create_info']);
  const c = obj(s.create_info, 'snapshot/create_info');
  noExtra(c, ['snapshot_id', 'type', 'new_file', 'id'], 'snapshot/create_info');
  required(c, ['snapshot_id', 'type', 'new_file']);
  const type = str(c.type, 'snapshot/create_info/type');
  if (type !== 'qcow2') throw invalid('snapshot/create_info/type', type, `'${type}' is not one of ['qcow2']`);
  const createInfo: AssistedCreateInfo = {
    snapshot_id: str(c.snapshot_id, 'snapshot/create_info/snapshot_id', { min: 1 }),
    type,
    new_file: str(c.new_file, 'snapshot/create_info/new_file', { min: 1 }),
  };
  if (c.id !== undefined) createInfo.id = str(c.id, 'snapshot/create_info/id', { min: 1 });
  return { volumeId: str(s.volume_id, 'snapshot/volume_id', { min: 1 }), createInfo };
}

/**
 * POST /os-assisted-volume-snapshots (upstream's assisted_volume_snapshots.py and compute API
 * volume_snapshot_create): only Cinder calls it, for a file-based volume an instance holds
 * open. The instance is the one the volume's mapping names; it must be on a host and have no
 * task under way (any vm_state, as upstream; 400 otherwise), and the host's driver writes the copy and tells
 * Cinder (compute/volume-snapshots.ts). Answers at once, as upstream's cast.
 * Upstream's DELETE (a snapshot merged back into an overlay chain) has nothing to do here: our
 * Cinder's snapshots are standalone files it deletes itself.
 */
export function registerAssistedVolumeSnapshotRoutes(app: FastifyInstance, deps: ApiDeps, v: { bus: Bus; blockDevices: BlockDevices }): void {
  app.post('/v2.1/os-assisted-volume-snapshots', async (req) => {
    // The body's schema first, then the policy: upstream's validation decorator runs before the method.
    const { volumeId, createInfo } = parseCreate(req.body);
    enforce(deps, req, 'os_compute_api:os-assisted-volume-snapshots:create');
    const found: Instance[] = [];
    for (const bdm of await v.blockDevices.forVolume(volumeId)) {
      const inst = await deps.instances.find(bdm.instanceUuid);
      if (inst) found.push(inst);
    }
    if (!found.length) throw badRequest(`No volume Block Device Mapping with id ${volumeId}.`);
    if (found.length > 1) throw badRequest(`Block Device Mapping ${volumeId} is a multi-attach volume and is not valid for this operation.`);
    const inst = found[0];
    // Both 400 here, not the usual 409: upstream's controller maps them so (its TODO keeps them until a microversion).
    if (!inst.host) throw badRequest(`Instance ${inst.uuid} is not ready`);
    if (inst.taskState !== null) {
      // upstream's check_instance_state names the inner function of compute API's volume_snapshot_create.
      throw badRequest(`Instance ${inst.uuid} in task_state ${inst.taskState}. Cannot do_volume_snapshot_create while the instance is in this state.`);
    }
    const args: VolumeSnapshotArgs = { uuid: inst.uuid, projectId: inst.projectId, volumeId, createInfo };
    await v.bus.cast(COMPUTE_TOPIC, 'volume_snapshot_create', args, { host: inst.host });
    return { snapshot: { id: createInfo.id ?? null, volumeId } };
  });
}
