import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { ApiError, badRequest, notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, GroupRow, GroupSnapshotRow, SnapshotRow, VolumeRow } from '../db/schema.ts';
import type { GroupType, GroupTypes } from './group-types.ts';
import { invalidInput } from './errors.ts';
import type { CinderNotifier } from './notifier.ts';
import { pageAfterMarker, type RowPage } from './paging.ts';
import type { Quotas } from './quotas.ts';
import type { Scheduler } from './scheduler.ts';
import type { VolumeType, VolumeTypes } from './volume-types.ts';
import { volumeRef, type Caller, type VolumeService } from './volumes.ts';

export const groupNotFound = (id: string) => notFound(`Group ${id} could not be found.`);
export const groupSnapshotNotFound = (id: string) => notFound(`GroupSnapshot ${id} could not be found.`);
const invalidGroup = (reason: string) => badRequest(`Invalid Group: ${reason}`);
const invalidVolume = (reason: string) => badRequest(`Invalid volume: ${reason}`);
const invalidGroupSnapshot = (reason: string) => badRequest(`Invalid GroupSnapshot: ${reason}`);

/** upstream's c_fields.GroupStatus.ALL and GroupSnapshotStatus.ALL, what reset_status accepts. */
export const GROUP_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'in-use', 'error_deleting'];
export const GROUP_SNAPSHOT_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting'];
const ADD_STATUSES = ['available', 'in-use'];
const REMOVE_STATUSES = ['available', 'in-use', 'error', 'error_deleting'];
/** Python's repr of upstream's status tuples, as its messages print them. */
const pyTuple = (xs: string[]) => `(${xs.map((x) => `'${x}'`).join(', ')})`;

export interface Group extends GroupRow {
  volumeTypeIds: string[];
}

export interface ListQuery {
  projectId?: string;
  filters: Record<string, string>;
  sort: [string, 'asc' | 'desc'][];
  page: RowPage;
}

/** upstream's group_snapshot create validation of each volume (_create_snapshot_in_db_validate). */
function snapshotRefusal(v: VolumeRow): string | undefined {
  if (!v.host) return 'The snapshot cannot be created because volume has not been scheduled to any host.';
  if (v.status === 'maintenance') return 'The snapshot cannot be created when the volume is in maintenance mode.';
  if (v.migration_status && !['success', 'error', 'deleting'].includes(v.migration_status)) return 'Snapshot cannot be created while volume is migrating.';
  if (v.status === 'error') return 'The snapshot cannot be created when the volume is in error status.';
  if (!['available', 'in-use'].includes(v.status)) return `Volume ${v.id} status must be available or in-use, but current status is: ${v.status}.`;
  return undefined;
}

/**
 * Generic volume groups (3.13-3.38) and group snapshots (3.14) as upstream's
 * cinder/group/api.py with the generic (per volume) driver path: a group is
 * placed on one backend that passes all its volume types, its snapshot is a
 * driver snapshot of each member, a group made from a source clones each member.
 * No driver here replicates, so the replication actions refuse as upstream does
 * for a group whose type is not a replication type.
 */
export class GroupService {
  constructor(
    readonly db: Kysely<CinderDB>,
    private readonly o: {
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      volumes: VolumeService;
      types: VolumeTypes;
      groupTypes: GroupTypes;
      quotas: Quotas;
      scheduler: Scheduler;
      notifier: CinderNotifier;
      defaultAz: string;
    },
  ) {}

  private now(): number {
    return this.o.clock.now();
  }

  private async hydrate(row: GroupRow): Promise<Group> {
    const types = await this.db.selectFrom('group_volume_type_mapping').select('volume_type_id').where('group_id', '=', row.id).execute();
    return { ...row, volumeTypeIds: types.map((t) => t.volume_type_id) };
  }

  async get(id: string, caller: Caller): Promise<Group> {
    const row = await this.db.selectFrom('groups').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw groupNotFound(id);
    return this.hydrate(row);
  }

  async list(q: ListQuery): Promise<Group[]> {
    let query = this.db.selectFrom('groups').selectAll().where('deleted', '=', 0);
    if (q.projectId) query = query.where('project_id', '=', q.projectId);
    for (const [k, v] of Object.entries(q.filters)) if (['name', 'status', 'availability_zone', 'group_type_id', 'id'].includes(k)) query = query.where(k as 'name', '=', v);
    for (const [k, d] of sorted(q.sort)) query = query.orderBy(k as 'id', d);
    const rows = pageAfterMarker(await query.execute(), q.page, groupNotFound);
    return Promise.all(rows.map((r) => this.hydrate(r)));
  }

  async volumesOf(groupId: string): Promise<VolumeRow[]> {
    return this.db.selectFrom('volumes').selectAll().where('group_id', '=', groupId).where('deleted', '=', 0).orderBy('created_at').orderBy('id').execute();
  }

  // ---- create

  private checkAz(az: string | null | undefined): string {
    const zone = az ?? this.o.defaultAz;
    if (zone !== this.o.defaultAz) throw invalidInput(`Availability zone '${zone}' is invalid.`);
    return zone;
  }

  private async insertGroup(caller: Caller, fields: Pick<GroupRow, 'name' | 'description' | 'availability_zone' | 'group_type_id' | 'group_snapshot_id' | 'source_group_id'>, volumeTypeIds: string[]): Promise<Group> {
    const limits = await this.o.quotas.limits(caller.projectId);
    const used = await this.o.quotas.usage(caller.projectId);
    // upstream's GroupLimitExceeded (413).
    if (limits.groups >= 0 && used.groups + 1 > limits.groups) throw new ApiError('over_quota', `Maximum number of groups allowed (${limits.groups}) exceeded`);
    const row: GroupRow = { id: this.o.ids.uuid(), project_id: caller.projectId, user_id: caller.userId, status: 'creating', host: null, replication_status: 'disabled', created_at: this.now(), updated_at: null, deleted: 0, deleted_at: null, ...fields };
    await this.db.insertInto('groups').values(row).execute();
    for (const t of new Set(volumeTypeIds)) await this.db.insertInto('group_volume_type_mapping').values({ group_id: row.id, volume_type_id: t }).execute();
    const group = await this.hydrate(row);
    this.notify('group.create.start', group, caller);
    return group;
  }

  async create(input: { name: string | null; description: string | null; groupType: string; volumeTypes: string[]; availabilityZone?: string | null }, caller: Caller): Promise<Group> {
    // Volume types are looked up as admin (upstream elevates to read their extra specs); the group type as the caller.
    const types: VolumeType[] = [];
    for (const t of input.volumeTypes) types.push(await this.o.types.find(t));
    const groupType = await this.o.groupTypes.resolve(input.groupType, caller.isAdmin);
    const az = this.checkAz(input.availabilityZone);
    const group = await this.insertGroup(caller, { name: input.name, description: input.description, availability_zone: az, group_type_id: groupType.id, group_snapshot_id: null, source_group_id: null }, types.map((t) => t.id));
    this.o.volumes.background(`create group ${group.id}`, async () => {
      const host = await this.place(types.map((t) => t.extraSpecs), az).catch((err: unknown) => {
        this.o.logger.warn({ group_id: group.id, err: String(err) }, 'no backend for group');
        return undefined;
      });
      const status = host ? 'available' : 'error';
      await casUpdate(this.db, 'groups', { set: { status, host: host ?? null, updated_at: this.now() }, where: { id: group.id, status: 'creating' } });
      if (host) this.notify('group.create.end', { ...group, status, host }, caller);
    });
    return group;
  }

  /** One backend (host@backend) that passes every volume type of the group, as upstream's group filter scheduler. */
  private async place(specs: Record<string, string>[], az: string): Promise<string> {
    const first = await this.o.scheduler.choose({ size: 0, availabilityZone: az, extraSpecs: specs[0] ?? {} });
    const backend = first.backend.host;
    for (const s of specs.slice(1)) await this.o.scheduler.passes(backend, { size: 0, extraSpecs: s });
    return backend;
  }

  /**
   * 3.14 create-from-src: a member per snapshot of the group snapshot, or a clone
   * of each member of the source group, all checked before anything is made; the
   * group is available once every member is, error if one fails.
   */
  async createFromSource(input: { name: string | null; description: string | null; groupSnapshotId?: string; sourceGroupId?: string }, caller: Caller): Promise<Group> {
    let typeIds: string[];
    let groupTypeId: string;
    let sources: { snapshot?: SnapshotRow; volume?: VolumeRow; size: number }[];
    let from: Group;
    if (input.groupSnapshotId) {
      const gs = await this.getSnapshot(input.groupSnapshotId, caller);
      from = await this.get(gs.group_id, caller);
      groupTypeId = gs.group_type_id;
      const snaps = await this.db.selectFrom('snapshots').selectAll().where('group_snapshot_id', '=', gs.id).where('deleted', '=', 0).orderBy('created_at').orderBy('id').execute();
      if (!snaps.length) throw invalidGroup('Group snapshot is empty. No group will be created.');
      const bad = snaps.find((s) => s.status !== 'available');
      if (bad) throw invalidGroup(`Snapshot ${bad.id} status must be available, but current status is: ${bad.status}.`);
      sources = snaps.map((snapshot) => ({ snapshot, size: snapshot.volume_size }));
    } else {
      from = await this.get(input.sourceGroupId!, caller);
      groupTypeId = from.group_type_id;
      const vols = await this.volumesOf(from.id);
      if (!vols.length) throw invalidGroup('Source Group is empty. No group will be created.');
      const bad = vols.find((v) => !['available', 'in-use'].includes(v.status));
      if (bad) throw invalidGroup(`Volume ${bad.id} status must be available or in-use, but current status is: ${bad.status}.`);
      sources = vols.map((volume) => ({ volume, size: volume.size }));
    }
    typeIds = from.volumeTypeIds;
    if (!from.host) throw invalidGroup(`No valid host to create group ${from.id}.`);
    const total = sources.reduce((n, s) => n + s.size, 0);
    await this.o.quotas.check(caller.projectId, { volumes: sources.length, gigabytes: total });
    const group = await this.insertGroup(
      caller,
      { name: input.name, description: input.description, availability_zone: from.availability_zone, group_type_id: groupTypeId, group_snapshot_id: input.groupSnapshotId ?? null, source_group_id: input.sourceGroupId ?? null },
      typeIds,
    );
    await casUpdate(this.db, 'groups', { set: { host: from.host }, where: { id: group.id, status: 'creating' } });
    let pending = sources.length;
    let failed = false;
    const settled = async () => {
      if (--pending > 0) return;
      const members = await this.volumesOf(group.id);
      failed ||= members.length !== sources.length || members.some((m) => m.status !== 'available');
      const status = failed ? 'error' : 'available';
      await casUpdate(this.db, 'groups', { set: { status, updated_at: this.now() }, where: { id: group.id, status: 'creating' } });
      if (!failed) this.notify('group.create.end', { ...group, status }, caller);
    };
    for (const s of sources) {
      await this.o.volumes
        .create({ size: s.size, snapshotId: s.snapshot?.id, sourceVolid: s.volume?.id, availabilityZone: group.availability_zone, groupId: group.id, onSettled: settled }, caller)
        .catch(async (err: unknown) => {
          failed = true;
          this.o.logger.warn({ group_id: group.id, err: String(err) }, 'group member not created');
          await settled();
        });
    }
    return group;
  }

  /** A volume created in a group (3.13): its type named and one of the group's (upstream's InvalidInput otherwise). */
  async checkNewMember(groupId: string, volumeType: string | undefined, caller: Caller): Promise<Group> {
    const type = volumeType ? await this.o.types.find(volumeType, caller.projectId, caller.isAdmin) : undefined;
    const group = await this.get(groupId, caller);
    if (!type) throw invalidInput('volume_type must be provided when creating a volume in a group.');
    if (!group.volumeTypeIds.includes(type.id)) throw invalidInput(`Invalid volume_type provided: ${type.name} (requested type must be supported by this group).`);
    return group;
  }

  // ---- update

  async update(group: Group, input: { name?: string | null; description?: string | null; addVolumes?: string; removeVolumes?: string }, caller: Caller): Promise<void> {
    const name = input.name === group.name ? undefined : input.name;
    const description = input.description === group.description ? undefined : input.description;
    const add = splitIds(input.addVolumes);
    const remove = splitIds(input.removeVolumes);
    const both = add.filter((id) => remove.includes(id));
    if (both.length) throw invalidVolume(`UUIDs [${both.map((b) => `'${b}'`).join(', ')}] are in both add and remove volume list.`);
    const members = await this.volumesOf(group.id);
    const toAdd = add.length ? await this.validateAdd(group, members, add, caller) : [];
    const toRemove = remove.length ? this.validateRemove(group, members, remove) : [];
    if (name === undefined && description === undefined && !toAdd.length && !toRemove.length) {
      throw invalidGroup(`Cannot update group ${group.id} because no valid name, description, add_volumes, or remove_volumes were provided.`);
    }
    const set: Partial<GroupRow> = { updated_at: this.now() };
    if (name !== undefined) set.name = name;
    if (description !== undefined) set.description = description;
    const changesMembers = toAdd.length > 0 || toRemove.length > 0;
    // Name or description alone: upstream sets the group available whatever it was.
    if (!changesMembers) {
      await this.db.updateTable('groups').set({ ...set, status: 'available' }).where('id', '=', group.id).execute();
      return;
    }
    if ((await casUpdate(this.db, 'groups', { set: { ...set, status: 'updating' }, where: { id: group.id, status: 'available' } })) !== 1) throw invalidGroup('Group status must be available.');
    this.notify('group.update.start', group, caller);
    this.o.volumes.background(`update group ${group.id}`, async () => {
      if (toAdd.length) await this.db.updateTable('volumes').set({ group_id: group.id, updated_at: this.now() }).where('id', 'in', toAdd).execute();
      if (toRemove.length) await this.db.updateTable('volumes').set({ group_id: null, updated_at: this.now() }).where('id', 'in', toRemove).where('group_id', '=', group.id).execute();
      await casUpdate(this.db, 'groups', { set: { status: 'available', updated_at: this.now() }, where: { id: group.id, status: 'updating' } });
      this.notify('group.update.end', { ...group, ...set, status: 'available' }, caller);
    });
  }

  private validateRemove(group: Group, members: VolumeRow[], remove: string[]): string[] {
    const out: string[] = [];
    for (const v of members) {
      if (!remove.includes(v.id)) continue;
      if (!REMOVE_STATUSES.includes(v.status)) {
        throw invalidVolume(`Cannot remove volume ${v.id} from group ${group.id} because volume is in an invalid state: ${v.status}. Valid states are: ${pyTuple(REMOVE_STATUSES)}.`);
      }
      out.push(v.id);
    }
    const missing = remove.find((id) => !out.includes(id));
    if (missing) throw invalidVolume(`Cannot remove volume ${missing} from group ${group.id} because it is not in the group.`);
    return out;
  }

  private async validateAdd(group: Group, members: VolumeRow[], add: string[], caller: Caller): Promise<string[]> {
    const out: string[] = [];
    for (const id of add.filter((a) => !members.some((m) => m.id === a))) {
      const v = await this.o.volumes.get(id, caller).catch(() => undefined);
      if (!v) throw invalidVolume(`Cannot add volume ${id} to group ${group.id} because volume cannot be found.`);
      if (v.group_id) throw invalidVolume(`Cannot add volume ${v.id} to group ${group.id} because it is already in group ${v.group_id}.`);
      if (v.project_id !== group.project_id) throw invalidVolume(`Cannot add volume ${v.id} to group ${group.id} as they belong to different projects.`);
      if (!group.volumeTypeIds.includes(v.volume_type_id)) {
        throw invalidVolume(`Cannot add volume ${v.id} to group ${group.id} because volume type ${v.volume_type_id} is not supported by the group.`);
      }
      if (!ADD_STATUSES.includes(v.status)) {
        throw invalidVolume(`Cannot add volume ${v.id} to group ${group.id} because volume is in an invalid state: ${v.status}. Valid states are: ${pyTuple(ADD_STATUSES)}.`);
      }
      if (backendOf(v.host) !== backendOf(group.host)) throw invalidVolume('Volume is not local to this node.');
      out.push(v.id);
    }
    return out;
  }

  // ---- delete

  async delete(group: Group, deleteVolumes: boolean, caller: Caller): Promise<void> {
    if (!group.host) {
      // Never placed: upstream drops the row at once.
      await this.db.updateTable('groups').set({ status: 'deleted', deleted: 1, deleted_at: this.now() }).where('id', '=', group.id).execute();
      return;
    }
    if (!deleteVolumes && !['available', 'error'].includes(group.status)) throw invalidGroup(`Group status must be available or error, but current status is: ${group.status}`);
    const snaps = await this.db.selectFrom('group_snapshots').select('id').where('group_id', '=', group.id).where('deleted', '=', 0).executeTakeFirst();
    if (snaps) throw invalidGroup('Group has existing snapshots.');
    const members = await this.volumesOf(group.id);
    if (members.length && !deleteVolumes) throw invalidGroup(`Group ${group.id} still contains volumes. The delete-volumes flag is required to delete it.`);
    for (const v of members) {
      if (v.attach_status === 'attached') throw invalidGroup(`Volume in group ${group.id} is attached. Need to detach first.`);
      const dependent = await this.db.selectFrom('snapshots').select('id').where('volume_id', '=', v.id).where('deleted', '=', 0).executeTakeFirst();
      if (dependent) throw invalidGroup('Volume in group still has dependent snapshots.');
    }
    const busySource = await this.db
      .selectFrom('groups')
      .select('id')
      .where('source_group_id', '=', group.id)
      .where('status', '=', 'creating')
      .where('deleted', '=', 0)
      .executeTakeFirst();
    const where = deleteVolumes ? { id: group.id } : { id: group.id, status: group.status };
    if (busySource || (await casUpdate(this.db, 'groups', { set: { status: 'deleting', updated_at: this.now() }, where })) !== 1) {
      const reason = deleteVolumes ? 'Group status must be available or error and must not have dependent group snapshots' : 'Group must not have attached volumes, volumes with snapshots, or dependent group snapshots';
      throw invalidGroup(`Cannot delete group ${group.id}. ${reason}, and it cannot be the source for an ongoing group or group snapshot creation.`);
    }
    if (members.length) await this.db.updateTable('volumes').set({ status: 'deleting', updated_at: this.now() }).where('id', 'in', members.map((m) => m.id)).execute();
    this.notify('group.delete.start', group, caller);
    this.o.volumes.background(`delete group ${group.id}`, async () => {
      for (const m of members) await this.o.volumes.finishDelete(await this.o.volumes.hydrate({ ...m, status: 'deleting' }), [], false, caller);
      const left = await this.volumesOf(group.id);
      if (left.length) {
        await casUpdate(this.db, 'groups', { set: { status: 'error_deleting', updated_at: this.now() }, where: { id: group.id, status: 'deleting' } });
        return;
      }
      await casUpdate(this.db, 'groups', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: group.id, status: 'deleting' } });
      this.notify('group.delete.end', { ...group, status: 'deleted' }, caller);
    });
  }

  async resetStatus(group: Group, status: string): Promise<void> {
    await this.db.updateTable('groups').set({ status, updated_at: this.now() }).where('id', '=', group.id).execute();
  }

  /**
   * 3.38 replication actions: upstream's _check_type first. A group type replicates
   * only with consistent_group_replication_enabled '<is> True' (each volume type then
   * needs replication_enabled), so an ordinary group gets upstream's 400. No driver
   * here replicates: on a replication type the action is accepted and the group's
   * replication_status goes to error, as upstream's manager leaves it when the
   * driver cannot; it has no targets to list.
   */
  async replicationAction(group: Group, action: 'enable' | 'disable' | 'failover' | 'list'): Promise<void> {
    const t = await this.o.groupTypes.get(group.group_type_id, true).catch(() => undefined);
    if (!t || !isReplicated(t)) throw badRequest(`Invalid group type: Group ${group.id} is not a replication group type.`);
    for (const id of group.volumeTypeIds) {
      const vt = await this.o.types.find(id);
      if (vt.extraSpecs.replication_enabled !== '<is> True') throw badRequest(`Invalid volume type: Volume type ${id} does not have 'replication_enabled' spec key set to '<is> True'.`);
    }
    if (action === 'list') return;
    const verb = { enable: 'enable replication', disable: 'disable replication', failover: 'failover replication' }[action];
    if (group.status !== 'available') throw invalidGroup(`Group ${group.id} status must be ['available'], but current status is: ${group.status}. Cannot ${verb}.`);
    await this.db.updateTable('groups').set({ replication_status: 'error', updated_at: this.now() }).where('id', '=', group.id).execute();
  }

  // ---- group snapshots

  async getSnapshot(id: string, caller: Caller): Promise<GroupSnapshotRow> {
    const row = await this.db.selectFrom('group_snapshots').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw groupSnapshotNotFound(id);
    return row;
  }

  async listSnapshots(q: ListQuery): Promise<GroupSnapshotRow[]> {
    let query = this.db.selectFrom('group_snapshots').selectAll().where('deleted', '=', 0);
    if (q.projectId) query = query.where('project_id', '=', q.projectId);
    for (const [k, v] of Object.entries(q.filters)) if (['name', 'status', 'group_id', 'id'].includes(k)) query = query.where(k as 'name', '=', v);
    for (const [k, d] of sorted(q.sort)) query = query.orderBy(k as 'id', d);
    return pageAfterMarker(await query.execute(), q.page, groupSnapshotNotFound);
  }

  /** A `creating` group snapshot with a `creating` snapshot of each member; the driver snapshots them one by one. */
  async createSnapshot(group: Group, input: { name: string | null; description: string | null }, caller: Caller): Promise<GroupSnapshotRow> {
    const members = await this.volumesOf(group.id);
    for (const v of members) {
      const why = snapshotRefusal(v);
      if (why) throw invalidVolume(why);
    }
    await this.o.quotas.check(caller.projectId, { snapshots: members.length, gigabytes: members.reduce((n, v) => n + v.size, 0) });
    const gs: GroupSnapshotRow = { id: this.o.ids.uuid(), group_id: group.id, project_id: caller.projectId, user_id: caller.userId, name: input.name, description: input.description, status: 'creating', group_type_id: group.group_type_id, created_at: this.now(), updated_at: null, deleted: 0, deleted_at: null };
    await this.db.insertInto('group_snapshots').values(gs).execute();
    const snaps: SnapshotRow[] = members.map((v) => ({
      id: this.o.ids.uuid(),
      volume_id: v.id,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name,
      description: input.description,
      volume_size: v.size,
      status: 'creating',
      progress: '0%',
      error: null,
      metadata: '{}',
      group_snapshot_id: gs.id,
      created_at: this.now(),
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    }));
    for (const s of snaps) await this.db.insertInto('snapshots').values(s).execute();
    this.notifySnapshot('group_snapshot.create.start', gs, caller);
    this.o.volumes.background(`create group snapshot ${gs.id}`, async () => {
      let error: string | null = null;
      for (const [i, s] of snaps.entries()) {
        try {
          const driver = this.o.volumes.driverFor(members[i]);
          if (!driver) throw new Error(`volume ${members[i].id} has no backend`);
          await driver.createSnapshot({ id: s.id, volumeId: volumeRef(members[i]).id, volumeSize: s.volume_size });
        } catch (err) {
          error = err instanceof Error ? err.message : String(err);
          break;
        }
      }
      const ids = snaps.map((s) => s.id);
      if (ids.length) await this.db.updateTable('snapshots').set(error ? { status: 'error', error, updated_at: this.now() } : { status: 'available', progress: '100%', updated_at: this.now() }).where('id', 'in', ids).where('status', '=', 'creating').execute();
      const status = error ? 'error' : 'available';
      await casUpdate(this.db, 'group_snapshots', { set: { status, updated_at: this.now() }, where: { id: gs.id, status: 'creating' } });
      if (!error) this.notifySnapshot('group_snapshot.create.end', { ...gs, status }, caller);
    });
    return gs;
  }

  async deleteSnapshot(gs: GroupSnapshotRow, caller: Caller): Promise<void> {
    const using = await this.db.selectFrom('groups').select('id').where('group_snapshot_id', '=', gs.id).where('status', '=', 'creating').where('deleted', '=', 0).executeTakeFirst();
    const ok = !using && ['available', 'error'].includes(gs.status) && (await casUpdate(this.db, 'group_snapshots', { set: { status: 'deleting', updated_at: this.now() }, where: { id: gs.id, status: gs.status } })) === 1;
    if (!ok) throw invalidGroupSnapshot('GroupSnapshot status must be available or error, and no Group can be currently using it as source for its creation.');
    const snaps = await this.db.selectFrom('snapshots').selectAll().where('group_snapshot_id', '=', gs.id).where('deleted', '=', 0).execute();
    if (snaps.length) await this.db.updateTable('snapshots').set({ status: 'deleting', updated_at: this.now() }).where('id', 'in', snaps.map((s) => s.id)).execute();
    this.notifySnapshot('group_snapshot.delete.start', gs, caller);
    this.o.volumes.background(`delete group snapshot ${gs.id}`, async () => {
      for (const s of snaps) {
        try {
          const volume = await this.db.selectFrom('volumes').selectAll().where('id', '=', s.volume_id).executeTakeFirst();
          if (volume) await this.o.volumes.driverFor(volume)?.deleteSnapshot({ id: s.id, volumeId: volumeRef(volume).id, volumeSize: s.volume_size });
        } catch (err) {
          await this.db.updateTable('snapshots').set({ status: 'error_deleting', error: String(err) }).where('id', '=', s.id).execute();
          await casUpdate(this.db, 'group_snapshots', { set: { status: 'error_deleting', updated_at: this.now() }, where: { id: gs.id, status: 'deleting' } });
          return;
        }
        await this.db.updateTable('snapshots').set({ status: 'deleted', deleted: 1, deleted_at: this.now() }).where('id', '=', s.id).execute();
      }
      await casUpdate(this.db, 'group_snapshots', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: gs.id, status: 'deleting' } });
      this.notifySnapshot('group_snapshot.delete.end', { ...gs, status: 'deleted' }, caller);
    });
  }

  async resetSnapshotStatus(gs: GroupSnapshotRow, status: string): Promise<void> {
    await this.db.updateTable('group_snapshots').set({ status, updated_at: this.now() }).where('id', '=', gs.id).execute();
  }

  // ---- notifications (upstream's _usage_from_group / _usage_from_group_snapshot)

  private notify(event: string, g: GroupRow, caller: Caller): void {
    this.o.notifier.send(event, { tenant_id: g.project_id, user_id: g.user_id, availability_zone: g.availability_zone, group_id: g.id, group_type: g.group_type_id, name: g.name, created_at: new Date(g.created_at).toISOString(), status: g.status }, caller.ctx);
  }

  private notifySnapshot(event: string, gs: GroupSnapshotRow, caller: Caller): void {
    this.o.notifier.send(event, { tenant_id: gs.project_id, user_id: gs.user_id, group_snapshot_id: gs.id, name: gs.name, group_id: gs.group_id, group_type: gs.group_type_id, created_at: new Date(gs.created_at).toISOString(), status: gs.status }, caller.ctx);
  }
}

export function isReplicated(t: GroupType): boolean {
  return t.groupSpecs.consistent_group_replication_enabled === '<is> True';
}

/** The sort asked for (default newest first) with id last, as upstream's paginate_query. */
function sorted(sort: [string, 'asc' | 'desc'][]): [string, 'asc' | 'desc'][] {
  const out: [string, 'asc' | 'desc'][] = sort.length ? [...sort] : [['created_at', 'desc']];
  if (!out.some(([k]) => k === 'id')) out.push(['id', out[0][1]]);
  return out;
}

function splitIds(s: string | undefined): string[] {
  if (!s) return [];
  return s.replace(/^,+|,+$/g, '').split(',').filter((x) => x.length > 0);
}

/** upstream's extract_host at backend level: host@backend without the pool. */
function backendOf(host: string | null): string | null {
  return host ? host.split('#')[0] : null;
}
