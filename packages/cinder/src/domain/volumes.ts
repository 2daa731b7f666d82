import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import type { RequestContext } from '@onestack/core/context.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { badRequest, conflict } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { AttachmentRow, CinderDB, SnapshotRow, VolumeRow } from '../db/schema.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { VolumeDriverError, type AssistedCreateInfo, type Connector, type OnlineSnapshot, type VolumeDriver, type VolumeRef } from '../drivers/volume-driver.ts';
import { imageMetadataOf, type GlanceImage, type ImageSource } from './glance.ts';
import type { ComputeApi } from './nova.ts';
import { attachmentNotFound, invalidVolume, snapshotNotFound, volumeNotFound } from './errors.ts';
import type { CinderNotifier } from './notifier.ts';
import type { Quotas } from './quotas.ts';
import { MessageAction, MessageDetail, type MessagePair, type MessageResource, type UserMessages } from './messages.ts';
import { NoValidBackend, type Scheduler } from './scheduler.ts';
import type { VolumeType, VolumeTypes } from './volume-types.ts';

const GIB = 1024 ** 3;

/** A created_at/updated_at bound on a volume list (3.60), time in epoch ms. */
export interface TimeComparison {
  column: 'created_at' | 'updated_at';
  op: '>' | '>=' | '=' | '<>' | '<' | '<=';
  at: number;
}

export interface Caller {
  projectId: string;
  userId: string;
  isAdmin: boolean;
  /** The caller's token: Glance is asked with it, so the caller sees only the images they may use. */
  token?: string;
  ctx?: RequestContext;
}

export interface Volume extends VolumeRow {
  metadata: Record<string, string>;
  adminMetadata: Record<string, string>;
  imageMetadata: Record<string, string>;
  typeName: string;
  attachments: AttachmentRow[];
}

/** What a volume created from a backup needs: the backup's size, and the restore into the blank volume. */
export interface BackupSource {
  size: number;
  fill(driver: VolumeDriver, volume: VolumeRef): Promise<void>;
}

export interface CreateVolumeInput {
  size?: number;
  name?: string | null;
  description?: string | null;
  volumeType?: string;
  availabilityZone?: string;
  metadata?: Record<string, string>;
  snapshotId?: string;
  sourceVolid?: string;
  imageId?: string;
  multiattach?: boolean;
  /** 3.47: the backup the new volume is restored from. */
  backup?: BackupSource;
  /** Runs once the new volume is available, in the same background job (a restore into a new volume). */
  afterCreate?: () => Promise<void>;
  /** The group the volume is made in (3.13; the caller checked its type). */
  groupId?: string;
  /** Runs when the background create has ended, available or not (a group made from a source counts its members). */
  onSettled?: () => Promise<void>;
}

/** What a new volume's row holds besides what its creator decides: detached, unmigrated, no error. */
export function newVolumeRow(
  r: Pick<VolumeRow, 'id' | 'project_id' | 'user_id' | 'name' | 'description' | 'size' | 'status' | 'availability_zone' | 'volume_type_id' | 'host' | 'snapshot_id' | 'source_volid' | 'image_id' | 'bootable' | 'multiattach' | 'group_id' | 'created_at'>,
): VolumeRow {
  return {
    ...r,
    attach_status: 'detached',
    migration_status: null,
    name_id: null,
    previous_status: null,
    error: null,
    encrypted: 0,
    consistencygroup_id: null,
    updated_at: null,
    launched_at: null,
    deleted: 0,
    deleted_at: null,
  };
}

/**
 * The volume API and, in the same process, the volume manager: the API checks
 * and records (status `creating`, `deleting` …), the manager runs the driver in
 * the background and moves the status on by compare-and-swap, so two callers
 * racing on one volume see one win and one 400/409.
 */
export class VolumeService {
  /** Running background jobs and their labels (each label names the ids it works on). */
  private readonly inflight = new Map<Promise<void>, string>();

  constructor(
    readonly db: Kysely<CinderDB>,
    private readonly o: {
      /** Where failures the project should see are recorded (the messages API). */
      messages?: UserMessages;
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      types: VolumeTypes;
      quotas: Quotas;
      scheduler: Scheduler;
      drivers: Map<string, VolumeDriver>;
      notifier: CinderNotifier;
      defaultType: string;
      defaultAz: string;
      images?: ImageSource;
      /** Nova, told when an attached volume grew, asked to copy the disk of an in-use volume. */
      compute?: ComputeApi;
      /** How long a snapshot of an in-use volume waits for Nova's report ([cinder] assisted_snapshot_timeout). */
      assistedSnapshotTimeoutMs?: number;
      /** Images are downloaded here before the driver writes them into the volume. */
      conversionDir: string;
    },
  ) {}

  /** Waits for the background work started so far (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight.keys()]);
  }

  /**
   * At start, before the API takes requests: work a previous process left
   * half-done (it ran in that process's memory) is settled as upstream's
   * init_host does. Creates and extends end in error with the reason, deletes
   * are resumed (driver deletes are idempotent). Assumes one volume manager
   * per database, as the all-in-one runs.
   */
  async recoverInterrupted(): Promise<void> {
    const reason = 'The volume service restarted while this operation ran.';
    for (const v of await this.db.selectFrom('volumes').selectAll().where('deleted', '=', 0).where('status', 'in', ['creating', 'extending', 'deleting']).execute()) {
      const driver = this.driverFor(v);
      if (v.status === 'creating') {
        await driver?.deleteVolume(volumeRef(v)).catch(() => undefined);
        await this.failVolume(v.id, 'creating', reason);
      } else if (v.status === 'extending') {
        await casUpdate(this.db, 'volumes', { set: { status: 'error_extending', error: reason, updated_at: this.now() }, where: { id: v.id, status: 'extending' } });
      } else {
        await this.hydrate(v).then((vol) => this.finishDelete(vol, [], false, undefined));
      }
    }
    for (const snap of await this.db.selectFrom('snapshots').selectAll().where('deleted', '=', 0).where('status', 'in', ['creating', 'deleting']).execute()) {
      const set = snap.status === 'creating' ? { status: 'error', error: reason } : { status: 'deleted', deleted: 1, deleted_at: this.now() };
      const vol = await this.db.selectFrom('volumes').select('host').where('id', '=', snap.volume_id).executeTakeFirst();
      await this.driverFor(vol ?? { host: null })?.deleteSnapshot({ id: snap.id, volumeId: snap.volume_id, volumeSize: snap.volume_size }).catch(() => undefined);
      await casUpdate(this.db, 'snapshots', { set, where: { id: snap.id, status: snap.status } });
    }
  }

  /** At start: each backend serves again the connections of attachments still open, and ends any other export. */
  async restoreConnections(): Promise<void> {
    const rows = await this.db
      .selectFrom('volume_attachment as a')
      .innerJoin('volumes as v', 'v.id', 'a.volume_id')
      .select(['a.id as attachmentId', 'a.connector', 'a.attach_mode', 'v.id', 'v.name_id', 'v.size', 'v.host'])
      .where('a.deleted', '=', 0)
      .where('v.deleted', '=', 0)
      .where('a.connector', 'is not', null)
      .execute();
    for (const [name, driver] of this.o.drivers) {
      if (!driver.restoreConnections) continue;
      const open = rows
        .filter((r) => this.driverFor(r) === driver)
        .map((r) => ({ volume: volumeRef(r), connector: (parseJson(r.connector) ?? {}) as Connector, attachmentId: r.attachmentId, accessMode: r.attach_mode === 'ro' ? ('ro' as const) : ('rw' as const) }));
      await driver.restoreConnections(open).catch((err: unknown) => this.o.logger.error({ err, backend: name }, 'restoring connections failed'));
    }
  }

  /** Work after the API has answered; drain() waits for it. */
  background(what: string, fn: () => Promise<void>): void {
    const p = fn()
      .catch((err: unknown) => this.o.logger.error({ err }, `${what} failed`))
      .finally(() => this.inflight.delete(p));
    this.inflight.set(p, what);
  }

  /** Whether a job of this process works on the resource: one in a transitional status without one is stuck. */
  busy(id: string): boolean {
    return [...this.inflight.values()].some((what) => what.includes(id));
  }

  private now(): number {
    return this.o.clock.now();
  }

  // ---- reads

  async hydrate(row: VolumeRow): Promise<Volume> {
    const meta = await this.db.selectFrom('volume_metadata').selectAll().where('volume_id', '=', row.id).execute();
    const pick = (kind: string) => Object.fromEntries(meta.filter((m) => m.kind === kind).map((m) => [m.key, m.value]));
    const type = await this.db.selectFrom('volume_types').select('name').where('id', '=', row.volume_type_id).executeTakeFirst();
    const attachments = await this.db.selectFrom('volume_attachment').selectAll().where('volume_id', '=', row.id).where('deleted', '=', 0).orderBy('created_at').execute();
    return { ...row, metadata: pick('user'), adminMetadata: pick('admin'), imageMetadata: pick('image'), typeName: type?.name ?? row.volume_type_id, attachments };
  }

  /** The volume as the caller may see it: another project's is a 404. */
  async get(id: string, caller: Caller): Promise<Volume> {
    const row = await this.db.selectFrom('volumes').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw volumeNotFound(id);
    return this.hydrate(row);
  }

  async listRows(q: { projectId?: string; filters: Record<string, string>; sort: [string, 'asc' | 'desc'][]; limit: number; marker?: string; offset?: number; metadata?: Record<string, string>; imageMetadata?: Record<string, string>; times?: TimeComparison[]; like?: Record<string, string> }): Promise<VolumeRow[]> {
    let query = this.db.selectFrom('volumes').selectAll().where('deleted', '=', 0);
    if (q.projectId) query = query.where('project_id', '=', q.projectId);
    const columns: Record<string, keyof VolumeRow> = { name: 'name', status: 'status', availability_zone: 'availability_zone', bootable: 'bootable', size: 'size', volume_type_id: 'volume_type_id', migration_status: 'migration_status', group_id: 'group_id' };
    for (const [k, v] of Object.entries(q.filters)) {
      // A migration's temporary volume (target:<id>) is upstream's use_quota = false.
      if (k === 'consumes_quota') query = query.where((eb) => (v === 'true' ? eb.or([eb('migration_status', 'is', null), eb('migration_status', 'not like', 'target:%')]) : eb('migration_status', 'like', 'target:%')));
      const col = columns[k];
      if (!col) continue;
      if (col === 'bootable') query = query.where('bootable', '=', ['true', '1', 'True'].includes(v) ? 1 : 0);
      else if (col === 'size') query = query.where('size', '=', Number(v));
      else query = query.where(col, '=', v);
    }
    const wanted = [...Object.entries(q.metadata ?? {}).map(([k, v]) => ['user', k, v] as const), ...Object.entries(q.imageMetadata ?? {}).map(([k, v]) => ['image', k, v] as const)];
    for (const [kind, k, v] of wanted) {
      query = query.where('id', 'in', this.db.selectFrom('volume_metadata').select('volume_id').where('kind', '=', kind).where('key', '=', k).where('value', '=', v));
    }
    for (const t of q.times ?? []) query = query.where(t.column, t.op, t.at);
    for (const [k, v] of Object.entries(q.like ?? {})) {
      const col = columns[k];
      if (col) query = query.where(col, 'like', `%${v}%`);
    }
    const sort = q.sort.length ? q.sort : ([['created_at', 'desc']] as [string, 'asc' | 'desc'][]);
    if (!sort.some(([k]) => k === 'id')) sort.push(['id', sort[0][1]]);
    if (q.marker) {
      const m = await this.db.selectFrom('volumes').selectAll().where('id', '=', q.marker).where('deleted', '=', 0).executeTakeFirst();
      if (!m) throw badRequest(`Marker ${q.marker} could not be found.`);
      // Keyset paging on the sort keys, as upstream's paginate_query.
      query = query.where((eb) =>
        eb.or(
          sort.map(([key, dir], i) =>
            eb.and([
              ...sort.slice(0, i).map(([k]) => eb(k as keyof VolumeRow, '=', (m as unknown as Record<string, never>)[k])),
              eb(key as keyof VolumeRow, dir === 'asc' ? '>' : '<', (m as unknown as Record<string, never>)[key]),
            ]),
          ),
        ),
      );
    }
    for (const [k, d] of sort) query = query.orderBy(k as keyof VolumeRow, d);
    query = query.limit(q.limit);
    if (q.offset) query = query.offset(q.offset);
    return query.execute();
  }

  // ---- create

  async create(input: CreateVolumeInput, caller: Caller): Promise<Volume> {
    let size = input.size;
    let snapshot: SnapshotRow | undefined;
    let source: Volume | undefined;
    if (input.snapshotId) {
      snapshot = await this.getSnapshotRow(input.snapshotId, caller);
      if (snapshot.status !== 'available') throw invalidVolume(`Snapshot ${snapshot.id} status must be available`); // upstream: InvalidSnapshot
      size ??= snapshot.volume_size;
      if (size < snapshot.volume_size) throw badRequest(`Invalid input received: Volume size '${size}'GB cannot be smaller than the snapshot size ${snapshot.volume_size}GB. They must be >= original snapshot size.`);
    }
    if (input.sourceVolid) {
      source = await this.get(input.sourceVolid, caller);
      if (!['available', 'in-use'].includes(source.status)) throw invalidVolume(`Volume ${source.id} status must be available or in-use, but current status is: ${source.status}.`);
      size ??= source.size;
      if (size < source.size) throw badRequest(`Invalid input received: Volume size '${size}'GB cannot be smaller than original volume size ${source.size}GB. They must be >= original volume size.`);
    }
    if (input.backup) {
      size ??= input.backup.size;
      if (size < input.backup.size) throw badRequest(`Invalid input received: Volume size ${size}GB cannot be smaller than the backup size ${input.backup.size}GB. It must be >= backup size.`);
    }
    if (size === undefined) throw badRequest('Invalid input received: Size must be specified.');
    if (!Number.isInteger(size) || size <= 0) throw badRequest(`Invalid input received: Volume size '${size}' must be an integer and greater than 0`);
    const image = input.imageId ? await this.checkImage(input.imageId, size, caller) : undefined;
    const type = await this.resolveType(input.volumeType, snapshot, source, caller);
    const az = input.availabilityZone ?? this.o.defaultAz;
    if (input.availabilityZone && input.availabilityZone !== this.o.defaultAz) throw badRequest(`Invalid input received: Availability zone '${input.availabilityZone}' is invalid.`);
    await this.o.quotas.check(caller.projectId, { volumes: 1, gigabytes: size }, size);
    const id = this.o.ids.uuid();
    const multiattach = input.multiattach || type.extraSpecs.multiattach === '<is> True';
    const row = newVolumeRow({
      id,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name ?? null,
      description: input.description ?? null,
      size,
      status: 'creating',
      availability_zone: az,
      volume_type_id: type.id,
      host: null,
      snapshot_id: snapshot?.id ?? null,
      source_volid: source?.id ?? null,
      image_id: image?.id ?? null,
      bootable: image ? 1 : (source?.bootable ?? 0),
      multiattach: multiattach ? 1 : 0,
      group_id: input.groupId ?? null,
      created_at: this.now(),
    });
    await this.db.insertInto('volumes').values(row).execute();
    await this.setMetadata(id, 'user', input.metadata ?? {}, false);
    if (source) await this.setMetadata(id, 'image', source.imageMetadata, false);
    if (image) await this.setMetadata(id, 'image', imageMetadataOf(image), false);
    const volume = await this.hydrate(row);
    this.o.notifier.send('volume.create.start', volumePayload(volume), caller.ctx);
    this.background(`create volume ${id}`, () => this.runCreate(volume, type, caller, async (driver) => {
      if (snapshot) await driver.createVolumeFromSnapshot({ id, size }, { id: snapshot.id, volumeId: snapshot.volume_id, volumeSize: snapshot.volume_size });
      else if (source) await driver.createClonedVolume({ id, size }, volumeRef(source));
      else {
        // As upstream's _create_from_image_download: the driver makes the volume, then the image is written into it.
        await driver.createVolume({ id, size });
        if (image) await this.copyImage(driver, { id, size }, image, caller.token ?? '');
      }
      if (input.backup) await input.backup.fill(driver, { id, size });
    }, input.afterCreate).finally(() => input.onSettled?.()));
    return volume;
  }

  /** upstream's _validate_image_size / min_disk checks, before anything is recorded. */
  private async checkImage(imageId: string, size: number, caller: Caller): Promise<GlanceImage> {
    if (!this.o.images) throw badRequest('Invalid input received: no Image service is configured for this cloud.');
    const image = await this.o.images.show(imageId, caller.token ?? '');
    if (image.status !== 'active') throw badRequest(`Invalid input received: Image ${imageId} is not active.`);
    if (!image.disk_format) throw badRequest(`Invalid input received: Image ${imageId} has no disk_format.`);
    const imageGb = Math.ceil((image.virtual_size ?? image.size ?? 0) / GIB);
    if (imageGb > size) throw badRequest(`Invalid input received: Size of specified image ${imageGb}GB is larger than volume size ${size}GB.`);
    if (image.min_disk > size) throw badRequest(`Invalid input received: Volume size ${size}GB cannot be smaller than the image minDisk size ${image.min_disk}GB.`);
    return image;
  }

  /** Downloads the image next to the volumes with the caller's token, then the driver checks and writes it. */
  private async copyImage(driver: VolumeDriver, volume: { id: string; size: number }, image: GlanceImage, token: string): Promise<void> {
    await mkdir(this.o.conversionDir, { recursive: true });
    const tmp = join(this.o.conversionDir, `${volume.id}.${image.id}.img`);
    try {
      await this.o.images!.download(image.id, token, tmp);
      await driver.copyImageToVolume(volume, { path: tmp, diskFormat: image.disk_format! });
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async resolveType(name: string | undefined, snapshot: SnapshotRow | undefined, source: Volume | undefined, caller: Caller): Promise<VolumeType> {
    if (name !== undefined) return this.o.types.find(name, caller.projectId, caller.isAdmin);
    const inherited = source?.volume_type_id ?? (snapshot ? (await this.db.selectFrom('volumes').select('volume_type_id').where('id', '=', snapshot.volume_id).executeTakeFirst())?.volume_type_id : undefined);
    return this.o.types.find(inherited ?? this.o.defaultType);
  }

  /** Scheduler then driver; the volume ends `available`, or `error` with the reason kept for the admin. */
  private async runCreate(volume: Volume, type: VolumeType, caller: Caller, make: (driver: VolumeDriver) => Promise<void>, after?: () => Promise<void>): Promise<void> {
    let host: string;
    let driver: VolumeDriver;
    try {
      const choice = await this.o.scheduler.choose({ size: volume.size, availabilityZone: volume.availability_zone, extraSpecs: type.extraSpecs });
      host = choice.host;
      driver = choice.backend.driver;
    } catch (err) {
      const reason = err instanceof NoValidBackend ? err.message : `scheduling failed: ${String(err)}`;
      await this.failVolume(volume.id, 'creating', reason);
      await this.tell(caller, volume.id, MessageAction.SCHEDULE_ALLOCATE_VOLUME, err instanceof NoValidBackend ? MessageDetail.NO_BACKEND_AVAILABLE : MessageDetail.UNKNOWN_ERROR);
      return;
    }
    await casUpdate(this.db, 'volumes', { set: { host, updated_at: this.now() }, where: { id: volume.id, status: 'creating' } });
    try {
      await make(driver);
    } catch (err) {
      await this.failVolume(volume.id, 'creating', err instanceof Error ? err.message : String(err));
      await this.tell(caller, volume.id, MessageAction.CREATE_VOLUME_FROM_BACKEND, MessageDetail.DRIVER_FAILED_CREATE);
      await driver.deleteVolume(volumeRef(volume)).catch(() => undefined);
      return;
    }
    const n = await casUpdate(this.db, 'volumes', { set: { status: 'available', launched_at: this.now(), updated_at: this.now() }, where: { id: volume.id, status: 'creating' } });
    if (n === 1) this.o.notifier.send('volume.create.end', volumePayload({ ...volume, status: 'available', host }), caller.ctx);
    if (n === 1) await after?.();
  }

  /** A user message for the failure (upstream's message_api.create); losing it must not hide the error state already set. */
  async tell(caller: Caller, resourceUuid: string, action: MessagePair, detail: MessagePair, resourceType: MessageResource = 'VOLUME'): Promise<void> {
    await this.o.messages?.record(caller, { action, detail, resourceUuid, resourceType }).catch((err: unknown) => this.o.logger.warn({ resource_uuid: resourceUuid, err: String(err) }, 'user message not recorded'));
  }

  private async failVolume(id: string, from: string, reason: string): Promise<void> {
    this.o.logger.warn({ volume_id: id, reason }, 'volume failed');
    await casUpdate(this.db, 'volumes', { set: { status: 'error', error: reason, updated_at: this.now() }, where: { id, status: from } });
  }

  driverFor(volume: Pick<VolumeRow, 'host'>): VolumeDriver | undefined {
    const backend = volume.host?.split('#')[0].split('@')[1];
    return backend ? this.o.drivers.get(backend) : undefined;
  }

  // ---- update, metadata

  async update(volume: Volume, patch: { name?: string | null; description?: string | null; metadata?: Record<string, string> }): Promise<Volume> {
    const set: Partial<VolumeRow> = { updated_at: this.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    await this.db.updateTable('volumes').set(set).where('id', '=', volume.id).execute();
    if (patch.metadata) await this.setMetadata(volume.id, 'user', patch.metadata, true);
    return this.hydrate((await this.db.selectFrom('volumes').selectAll().where('id', '=', volume.id).executeTakeFirstOrThrow()));
  }

  async setMetadata(volumeId: string, kind: 'user' | 'admin' | 'image', metadata: Record<string, string>, replace: boolean): Promise<void> {
    if (replace) await this.db.deleteFrom('volume_metadata').where('volume_id', '=', volumeId).where('kind', '=', kind).execute();
    for (const [key, value] of Object.entries(metadata)) {
      await this.db.deleteFrom('volume_metadata').where('volume_id', '=', volumeId).where('kind', '=', kind).where('key', '=', key).execute();
      await this.db.insertInto('volume_metadata').values({ volume_id: volumeId, kind, key, value: String(value) }).execute();
    }
  }

  async deleteMetadataKey(volumeId: string, key: string): Promise<boolean> {
    const r = await this.db.deleteFrom('volume_metadata').where('volume_id', '=', volumeId).where('kind', '=', 'user').where('key', '=', key).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  // ---- delete

  async delete(volume: Volume, opts: { cascade: boolean; force: boolean }, caller: Caller): Promise<void> {
    // A group member goes only with its group (upstream's expected group_id None, force or not).
    if (volume.group_id) throw invalidVolume('Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.');
    if (!opts.force) {
      if (volume.attach_status === 'attached' || volume.attachments.length > 0) throw invalidVolume('Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.');
      if (!['available', 'error', 'error_restoring', 'error_extending', 'error_managing'].includes(volume.status)) {
        throw invalidVolume('Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.');
      }
    }
    const migrating = volume.migration_status !== null && !['deleting', 'error', 'success'].includes(volume.migration_status);
    if (migrating && !opts.force) throw invalidVolume('Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.');
    const snaps = await this.db.selectFrom('snapshots').selectAll().where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    if (snaps.length && !opts.cascade) throw invalidVolume('Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.');
    if (opts.cascade && snaps.some((s) => !['available', 'error'].includes(s.status))) throw invalidVolume('Snapshot status must be available or error to cascade-delete.');
    const n = await casUpdate(this.db, 'volumes', { set: { status: 'deleting', updated_at: this.now() }, where: { id: volume.id, status: volume.status } });
    if (n !== 1) throw invalidVolume(`Volume ${volume.id} changed status during the delete.`);
    this.o.notifier.send('volume.delete.start', volumePayload(volume), caller.ctx);
    this.background(`delete volume ${volume.id}`, () => this.finishDelete(volume, snaps, opts.force, caller));
  }

  /** The manager's half of a delete: snapshots (cascade), exports (force), then the volume; idempotent. */
  async finishDelete(volume: Volume, snaps: SnapshotRow[], force: boolean, caller: Caller | undefined): Promise<void> {
    const driver = this.driverFor(volume);
    try {
      for (const s of snaps) {
        await driver?.deleteSnapshot({ id: s.id, volumeId: volumeRef(volume).id, volumeSize: s.volume_size });
        await this.db.updateTable('snapshots').set({ status: 'deleted', deleted: 1, deleted_at: this.now() }).where('id', '=', s.id).execute();
      }
      if (force) for (const a of volume.attachments) await driver?.terminateConnection(volumeRef(volume), parseJson(a.connector) as Connector | undefined, { attachmentId: a.id });
      await driver?.deleteVolume(volumeRef(volume));
    } catch (err) {
      await casUpdate(this.db, 'volumes', { set: { status: 'error_deleting', error: String(err), updated_at: this.now() }, where: { id: volume.id, status: 'deleting' } });
      return;
    }
    await this.db.updateTable('volume_attachment').set({ deleted: 1, deleted_at: this.now(), attach_status: 'detached' }).where('volume_id', '=', volume.id).execute();
    await this.db.deleteFrom('volume_metadata').where('volume_id', '=', volume.id).execute();
    await casUpdate(this.db, 'volumes', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: volume.id, status: 'deleting' } });
    this.o.notifier.send('volume.delete.end', volumePayload(volume), caller?.ctx);
  }

  // ---- actions

  async extend(volume: Volume, newSize: number, caller: Caller): Promise<void> {
    if (!Number.isInteger(newSize) || newSize <= 0) throw badRequest(`Invalid input received: New size for extend must be an integer greater than 0`);
    const attached = volume.status === 'in-use';
    if (volume.status !== 'available' && !attached) throw invalidVolume(`Volume status must be 'available' or 'in-use' to extend, but current status is: ${volume.status}.`);
    if (newSize <= volume.size) throw badRequest(`Invalid input received: New size for extend must be greater than current size. (current: ${volume.size}, extended: ${newSize}).`);
    await this.o.quotas.check(caller.projectId, { gigabytes: newSize - volume.size }, newSize);
    const n = await casUpdate(this.db, 'volumes', { set: { status: 'extending', updated_at: this.now() }, where: { id: volume.id, status: volume.status } });
    if (n !== 1) throw invalidVolume(`Volume ${volume.id} changed status during the extend.`);
    this.background(`extend volume ${volume.id}`, async () => {
      try {
        const connectors = attached ? volume.attachments.map((a) => parseJson(a.connector) as Connector | undefined) : undefined;
        await this.driverFor(volume)?.extendVolume(volumeRef(volume), newSize, { connectors });
      } catch (err) {
        await casUpdate(this.db, 'volumes', { set: { status: 'error_extending', error: String(err), updated_at: this.now() }, where: { id: volume.id, status: 'extending' } });
        await this.tell(caller, volume.id, MessageAction.EXTEND_VOLUME, MessageDetail.DRIVER_FAILED_EXTEND);
        return;
      }
      await casUpdate(this.db, 'volumes', { set: { status: volume.status, size: newSize, updated_at: this.now() }, where: { id: volume.id, status: 'extending' } });
      this.o.notifier.send('volume.resize.end', volumePayload({ ...volume, size: newSize }), caller.ctx);
      // The guests of an in-use volume learn its new size from Nova (upstream's online extend, 3.42).
      const servers = [...new Set(volume.attachments.flatMap((a) => (a.instance_uuid ? [a.instance_uuid] : [])))];
      // upstream's nova.extend_volume records NOTIFY_COMPUTE_SERVICE_FAILED when Nova took no event; the extend stands.
      if (attached && this.o.compute && !(await this.o.compute.extendVolume(servers, volume.id))) await this.tell(caller, volume.id, MessageAction.EXTEND_VOLUME, MessageDetail.NOTIFY_COMPUTE_SERVICE_FAILED);
    });
  }

  /**
   * upstream's revert (3.40): only to the volume's latest snapshot, of the same size;
   * the volume is `reverting` and the snapshot `restoring` meanwhile (a race on either is a 409).
   */
  async revertToSnapshot(volume: Volume, snapshotId: string | null, caller: Caller): Promise<void> {
    const latest = await this.db.selectFrom('snapshots').selectAll().where('volume_id', '=', volume.id).where('deleted', '=', 0).orderBy('created_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    if (!latest) throw badRequest(`Volume ${volume.id} doesn't have any snapshots.`);
    if (snapshotId !== latest.id) throw badRequest(`Specified snapshot ${snapshotId} is None or not the latest one of volume ${volume.id}.`);
    if (volume.size !== latest.volume_size) {
      throw badRequest(`Can't revert volume ${volume.id} to its latest snapshot ${latest.id}. The volume size must be equal to the snapshot size.`);
    }
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'reverting', updated_at: this.now() }, where: { id: volume.id, status: 'available' } })) !== 1) {
      throw conflict(`Invalid volume: Volume ${volume.id} status must be available, but current status is: ${volume.status}.`);
    }
    if ((await casUpdate(this.db, 'snapshots', { set: { status: 'restoring', updated_at: this.now() }, where: { id: latest.id, status: 'available' } })) !== 1) {
      await casUpdate(this.db, 'volumes', { set: { status: 'available' }, where: { id: volume.id, status: 'reverting' } });
      throw conflict(`Invalid snapshot: Snapshot ${latest.id} status must be available, but current status is: ${latest.status}.`);
    }
    this.o.notifier.send('volume.revert.start', volumePayload(volume), caller.ctx);
    this.background(`revert volume ${volume.id}`, async () => {
      let ok = true;
      try {
        const driver = this.driverFor(volume);
        if (!driver) throw new Error(`volume ${volume.id} has no backend`);
        await driver.revertToSnapshot(volumeRef(volume), { id: latest.id, volumeId: volumeRef(volume).id, volumeSize: latest.volume_size });
      } catch (err) {
        ok = false;
        this.o.logger.warn({ volume_id: volume.id, err }, 'revert to snapshot failed');
      }
      await casUpdate(this.db, 'volumes', { set: { status: ok ? 'available' : 'error', error: ok ? null : 'revert to snapshot failed', updated_at: this.now() }, where: { id: volume.id, status: 'reverting' } });
      await casUpdate(this.db, 'snapshots', { set: { status: 'available', updated_at: this.now() }, where: { id: latest.id, status: 'restoring' } });
      if (ok) this.o.notifier.send('volume.revert.end', volumePayload(volume), caller.ctx);
    });
  }

  /**
   * upstream's copy_volume_to_image (os-volume_upload_image): a Glance image in the
   * caller's project with the volume's data and its volume_image_metadata as
   * properties; the volume is `uploading` meanwhile and returns to its status.
   */
  async uploadToImage(volume: Volume, o: { imageName: string; force: boolean; diskFormat: 'raw' | 'qcow2'; containerFormat: string; visibility?: string; protected?: boolean }, caller: Caller): Promise<{ imageId: string; prior: string }> {
    const prior = volume.status;
    if (prior !== 'available' && !(prior === 'in-use' && o.force)) throw invalidVolume(`Volume ${volume.id} status must be available or in-use, but current status is: ${prior}.`);
    if (!this.o.images) throw badRequest('Invalid input received: no Image service is configured for this cloud.');
    const images = this.o.images;
    const skip = new Set(['image_id', 'image_name', 'checksum', 'size', 'disk_format', 'container_format', 'min_ram']);
    const props = Object.fromEntries(Object.entries(volume.imageMetadata).filter(([k]) => !skip.has(k)));
    const image = await images.create({ ...props, name: o.imageName, disk_format: o.diskFormat, container_format: o.containerFormat, min_disk: volume.size, ...(o.visibility ? { visibility: o.visibility } : {}), ...(o.protected !== undefined ? { protected: o.protected } : {}) }, caller.token ?? '');
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'uploading', updated_at: this.now() }, where: { id: volume.id, status: prior } })) !== 1) throw invalidVolume(`Volume ${volume.id} status must be available or in-use.`);
    this.background(`upload volume ${volume.id} to image ${image.id}`, async () => {
      const dir = join(this.o.conversionDir, randomUUID());
      try {
        const driver = this.driverFor(volume);
        if (!driver) throw new Error(`volume ${volume.id} has no backend`);
        await mkdir(dir, { recursive: true });
        const file = join(dir, `image.${o.diskFormat}`);
        await driver.copyVolumeToImage(volumeRef(volume), file, o.diskFormat);
        await images.upload(image.id, caller.token ?? '', file);
      } catch (err) {
        this.o.logger.warn({ volume_id: volume.id, image_id: image.id, err }, 'upload to image failed');
        await this.tell(caller, volume.id, MessageAction.COPY_VOLUME_TO_IMAGE, MessageDetail.FAILED_TO_UPLOAD_VOLUME);
      } finally {
        await rm(dir, { recursive: true, force: true });
        await casUpdate(this.db, 'volumes', { set: { status: prior, updated_at: this.now() }, where: { id: volume.id, status: 'uploading' } });
      }
    });
    return { imageId: image.id, prior };
  }

  /** Statuses as the API's schema admitted them (upstream's volume_status formats), lowercased as upstream. */
  async resetStatus(volume: Volume, s: { status?: string | null; attach_status?: string | null; migration_status?: string | null }): Promise<void> {
    const set: Partial<VolumeRow> = { updated_at: this.now() };
    if (s.status) set.status = s.status.toLowerCase();
    if (s.attach_status) set.attach_status = s.attach_status.toLowerCase();
    if (s.migration_status) set.migration_status = s.migration_status.toLowerCase() === 'none' ? null : s.migration_status.toLowerCase();
    if (set.status === 'deleting') throw badRequest('Cannot reset-state to deleting');
    await this.db.updateTable('volumes').set(set).where('id', '=', volume.id).execute();
  }

  async setFlag(volume: Volume, flag: 'bootable' | 'readonly', value: boolean): Promise<void> {
    if (flag === 'bootable') await this.db.updateTable('volumes').set({ bootable: value ? 1 : 0, updated_at: this.now() }).where('id', '=', volume.id).execute();
    else {
      if (volume.status !== 'available') throw invalidVolume(`Volume status must be 'available' to update readonly flag, but current status is: ${volume.status}.`);
      await this.setMetadata(volume.id, 'admin', { readonly: value ? 'True' : 'False' }, false);
    }
  }

  // ---- snapshots

  async getSnapshotRow(id: string, caller: Caller): Promise<SnapshotRow> {
    const row = await this.db.selectFrom('snapshots').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw snapshotNotFound(id);
    return row;
  }

  async createSnapshot(volume: Volume, input: { name?: string | null; description?: string | null; force: boolean; metadata?: Record<string, string> }, caller: Caller): Promise<SnapshotRow> {
    if (volume.status === 'in-use' && !input.force) throw invalidVolume('Volume status must be available, but current status is: in-use.');
    if (!['available', 'in-use'].includes(volume.status)) throw invalidVolume(`Volume status must be available, but current status is: ${volume.status}.`);
    await this.o.quotas.check(caller.projectId, { snapshots: 1, gigabytes: volume.size });
    const row: SnapshotRow = {
      id: this.o.ids.uuid(),
      volume_id: volume.id,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name ?? null,
      description: input.description ?? null,
      volume_size: volume.size,
      status: 'creating',
      progress: '0%',
      error: null,
      metadata: JSON.stringify(input.metadata ?? {}),
      group_snapshot_id: null,
      created_at: this.now(),
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    };
    await this.db.insertInto('snapshots').values(row).execute();
    this.o.notifier.send('snapshot.create.start', snapshotPayload(row), caller.ctx);
    this.background(`snapshot ${row.id}`, async () => {
      try {
        await this.driverFor(volume)?.createSnapshot({ id: row.id, volumeId: volumeRef(volume).id, volumeSize: volume.size }, this.onlineSnapshot(volume, row.id));
      } catch (err) {
        // An assisted snapshot's row may have left `creating` meanwhile (os-update_snapshot_status:
        // Nova's `error`, or anyone's `available`); without the driver's file it is in error all the same.
        for (const status of ['creating', 'error', 'available']) await casUpdate(this.db, 'snapshots', { set: { status: 'error', error: String(err), updated_at: this.now() }, where: { id: row.id, status } });
        await this.tell(caller, row.id, MessageAction.SNAPSHOT_CREATE, MessageDetail.SNAPSHOT_CREATE_ERROR, 'VOLUME_SNAPSHOT');
        return;
      }
      await casUpdate(this.db, 'snapshots', { set: { status: 'available', progress: '100%', updated_at: this.now() }, where: { id: row.id, status: 'creating' } });
      this.o.notifier.send('snapshot.create.end', snapshotPayload({ ...row, status: 'available', progress: '100%' }), caller.ctx);
    });
    return row;
  }

  /**
   * What a driver needs to snapshot an in-use volume through Nova (upstream's remotefs
   * _create_snapshot_online): its open attachments, and Nova's os-assisted-volume-snapshots
   * followed by a wait for Nova's os-update_snapshot_status on the snapshot's row: `creating`
   * at 90% is done, `error` failed, and after assisted_snapshot_timeout the snapshot fails
   * with upstream's words. Undefined when the volume is not in use or there is no Nova.
   */
  private onlineSnapshot(volume: Volume, snapshotId: string): OnlineSnapshot | undefined {
    const compute = this.o.compute;
    if (volume.status !== 'in-use' || !compute?.createVolumeSnapshot) return undefined;
    const timeoutMs = this.o.assistedSnapshotTimeoutMs ?? 600_000;
    return {
      attachments: volume.attachments.filter((a) => a.attach_status === 'attached').map((a) => ({ instanceUuid: a.instance_uuid, connector: (parseJson(a.connector) ?? undefined) as Connector | undefined })),
      assisted: async (_instanceUuid: string, createInfo: AssistedCreateInfo) => {
        try {
          await compute.createVolumeSnapshot!(volume.id, createInfo);
        } catch (err) {
          throw new VolumeDriverError(`Nova refused the snapshot of volume ${volume.id}: ${(err as Error).message}`, 'backend', { cause: err });
        }
        // Wall time, not the injected clock: this is a wait for another service, as a request timeout is.
        const end = performance.now() + timeoutMs;
        for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
          const s = await this.db.selectFrom('snapshots').select(['status', 'progress']).where('id', '=', snapshotId).executeTakeFirst();
          if (!s || s.status === 'error') throw new VolumeDriverError('Nova returned "error" status while creating snapshot.');
          if (s.status === 'deleting' || s.status === 'error_deleting') {
            throw new VolumeDriverError(`Snapshot ${snapshotId} has been asked to be deleted while waiting for it to become available. Perhaps a concurrent request was made.`);
          }
          if (s.status === 'creating' && s.progress === '90%') return;
          if (performance.now() >= end) throw new VolumeDriverError(`Timed out while waiting for Nova update for creation of snapshot ${snapshotId}.`);
          await sleep(Math.min(pause, Math.max(end - performance.now(), 0)));
        }
      },
    };
  }

  /**
   * os-update_snapshot_status (upstream's snapshot_actions._update_snapshot_status): how Nova's
   * part of an assisted snapshot went. Only a snapshot being made or deleted changes, to the
   * statuses upstream's map allows (compared as given, as upstream). Compare-and-swap on the
   * status read, so a snapshot the manager settled meanwhile is not overwritten.
   */
  async updateSnapshotStatus(snap: SnapshotRow, input: { status: string; progress?: string }): Promise<void> {
    const allowed: Record<string, string[]> = { creating: ['creating', 'available', 'error'], deleting: ['deleting', 'error_deleting'] };
    const status = input.status;
    if (!allowed[snap.status]) throw badRequest(`Snapshot status ${snap.status} not allowed for update_snapshot_status`);
    if (!allowed[snap.status].includes(status)) throw badRequest(`Provided snapshot status ${status} not allowed for snapshot with status ${snap.status}.`);
    const set: Partial<SnapshotRow> = { status, updated_at: this.now() };
    // The schema checked the percentage.
    if (input.progress) set.progress = input.progress;
    const n = await casUpdate(this.db, 'snapshots', { set, where: { id: snap.id, status: snap.status } });
    if (n !== 1) throw conflict('Snapshot changed status during the update.');
  }

  async deleteSnapshot(snap: SnapshotRow, caller: Caller, force = false): Promise<void> {
    if (snap.group_snapshot_id || (!force && !['available', 'error'].includes(snap.status))) throw badRequest(`Invalid snapshot: Snapshot status must be available or error and must not be part of a group.`);
    const n = await casUpdate(this.db, 'snapshots', { set: { status: 'deleting', updated_at: this.now() }, where: { id: snap.id, status: snap.status } });
    if (n !== 1) throw conflict('Snapshot changed status during the delete.');
    const volume = await this.db.selectFrom('volumes').selectAll().where('id', '=', snap.volume_id).executeTakeFirst();
    this.background(`delete snapshot ${snap.id}`, async () => {
      try {
        if (volume) await this.driverFor(volume)?.deleteSnapshot({ id: snap.id, volumeId: snap.volume_id, volumeSize: snap.volume_size });
      } catch (err) {
        await casUpdate(this.db, 'snapshots', { set: { status: 'error_deleting', error: String(err) }, where: { id: snap.id, status: 'deleting' } });
        await this.tell(caller, snap.id, MessageAction.SNAPSHOT_DELETE, MessageDetail.SNAPSHOT_DELETE_ERROR, 'VOLUME_SNAPSHOT');
        return;
      }
      await casUpdate(this.db, 'snapshots', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: snap.id, status: 'deleting' } });
      this.o.notifier.send('snapshot.delete.end', snapshotPayload(snap), caller.ctx);
    });
  }

  // ---- attachments (the path Nova uses, microversion 3.27+)

  async createAttachment(volume: Volume, input: { instanceUuid?: string; connector?: Connector; mode?: string }, caller: Caller): Promise<AttachmentRow> {
    const multi = volume.multiattach === 1;
    const expected = volume.status;
    if (!['available', 'in-use', 'downloading'].includes(expected) || (expected === 'in-use' && !multi)) {
      throw badRequest(`Invalid volume: Volume ${volume.id} status must be available or downloading to reserve, but the current status is ${expected}.`);
    }
    if (expected === 'in-use' && volume.attachments.some((a) => a.instance_uuid && a.instance_uuid === input.instanceUuid)) {
      throw badRequest(`Invalid volume: Volume ${volume.id} is already attached to instance ${input.instanceUuid}.`);
    }
    const next = input.connector ? 'attaching' : 'reserved';
    const n = await casUpdate(this.db, 'volumes', { set: { status: expected === 'in-use' ? 'in-use' : next, updated_at: this.now() }, where: { id: volume.id, status: expected } });
    if (n !== 1) throw conflict(`Volume ${volume.id} is being attached by another request.`);
    const row: AttachmentRow = {
      id: this.o.ids.uuid(),
      volume_id: volume.id,
      instance_uuid: input.instanceUuid ?? null,
      attached_host: (input.connector?.host as string | undefined) ?? null,
      mountpoint: (input.connector?.mountpoint as string | undefined) ?? null,
      attach_mode: input.mode ?? (volume.adminMetadata.readonly === 'True' ? 'ro' : 'rw'),
      attach_status: 'reserved',
      connector: null,
      connection_info: null,
      attach_time: null,
      detach_time: null,
      created_at: this.now(),
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    };
    await this.db.insertInto('volume_attachment').values(row).execute();
    if (!input.connector) return row;
    try {
      return await this.connectAttachment(volume, row, input.connector, caller);
    } catch (err) {
      // Nothing half-made: the attachment goes and the volume is as it was (upstream's attachment_create rollback).
      await this.db.updateTable('volume_attachment').set({ deleted: 1, deleted_at: this.now(), attach_status: 'detached' }).where('id', '=', row.id).execute();
      if (expected !== 'in-use') await casUpdate(this.db, 'volumes', { set: { status: expected, updated_at: this.now() }, where: { id: volume.id, status: next } });
      throw err;
    }
  }

  async getAttachment(id: string, caller: Caller): Promise<{ attachment: AttachmentRow; volume: Volume }> {
    const a = await this.db.selectFrom('volume_attachment').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!a) throw attachmentNotFound(id);
    const volume = await this.get(a.volume_id, caller).catch(() => {
      throw attachmentNotFound(id);
    });
    return { attachment: a, volume };
  }

  async connectAttachment(volume: Volume, a: AttachmentRow, connector: Connector, caller: Caller): Promise<AttachmentRow> {
    const driver = this.driverFor(volume);
    if (!driver) throw invalidVolume(`Volume ${volume.id} has no backend host.`);
    const info = await driver.initializeConnection(volumeRef(volume), connector, { attachmentId: a.id, accessMode: a.attach_mode === 'ro' ? 'ro' : 'rw' }).catch(async (err: unknown) => {
      await this.tell(caller, volume.id, MessageAction.UPDATE_ATTACHMENT, MessageDetail.UNKNOWN_ERROR);
      throw err;
    });
    const connectionInfo = { ...info.data, attachment_id: a.id, access_mode: a.attach_mode, driver_volume_type: info.driver_volume_type };
    const set = {
      connector: JSON.stringify(connector),
      connection_info: JSON.stringify(connectionInfo),
      attached_host: (connector.host as string | undefined) ?? a.attached_host,
      mountpoint: (connector.mountpoint as string | undefined) ?? a.mountpoint,
      attach_status: 'attaching',
      updated_at: this.now(),
    };
    await this.db.updateTable('volume_attachment').set(set).where('id', '=', a.id).execute();
    await casUpdate(this.db, 'volumes', { set: { status: 'attaching', updated_at: this.now() }, where: { id: volume.id, status: 'reserved' } });
    return { ...a, ...set };
  }

  async completeAttachment(volume: Volume, a: AttachmentRow, caller: Caller): Promise<void> {
    await this.db.updateTable('volume_attachment').set({ attach_status: 'attached', attach_time: this.now(), updated_at: this.now() }).where('id', '=', a.id).execute();
    await this.markInUse(volume, caller);
  }

  async markInUse(volume: Volume, caller: Caller): Promise<void> {
    await this.db.updateTable('volumes').set({ status: 'in-use', attach_status: 'attached', updated_at: this.now() }).where('id', '=', volume.id).execute();
    this.o.notifier.send('volume.attach.end', volumePayload({ ...volume, status: 'in-use', attach_status: 'attached' }), caller.ctx);
  }

  async deleteAttachment(volume: Volume, a: AttachmentRow, caller: Caller): Promise<void> {
    if (a.connector) await this.driverFor(volume)?.terminateConnection(volumeRef(volume), parseJson(a.connector) as Connector, { attachmentId: a.id });
    await this.db.updateTable('volume_attachment').set({ attach_status: 'detached', detach_time: this.now(), deleted: 1, deleted_at: this.now() }).where('id', '=', a.id).execute();
    const left = await this.db.selectFrom('volume_attachment').select(['id', 'attach_status']).where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    const attached = left.some((l) => l.attach_status === 'attached');
    const status = attached ? 'in-use' : left.length ? 'reserved' : 'available';
    await this.db.updateTable('volumes').set({ status, attach_status: attached ? 'attached' : 'detached', updated_at: this.now() }).where('id', '=', volume.id).execute();
    this.o.notifier.send('volume.detach.end', volumePayload({ ...volume, status }), caller.ctx);
  }
}

/** The pre-3.27 attach actions Nova used before the attachments API; upstream keeps them. */
export class LegacyAttach {
  constructor(private readonly v: VolumeService) {}

  private async cas(volume: Volume, from: string[], to: string, what: string): Promise<void> {
    if (!from.includes(volume.status)) throw invalidVolume(`Volume status must be ${from.join(' or ')} to ${what}, but current status is: ${volume.status}.`);
    const n = await casUpdate(this.v.db, 'volumes', { set: { status: to, updated_at: Date.now() }, where: { id: volume.id, status: volume.status } });
    if (n !== 1) throw conflict(`Volume ${volume.id} changed status during ${what}.`);
  }

  reserve(volume: Volume): Promise<void> {
    return this.cas(volume, volume.multiattach ? ['available', 'in-use'] : ['available'], 'attaching', 'reserve');
  }

  async unreserve(volume: Volume): Promise<void> {
    if (volume.status !== 'attaching') return;
    await this.cas(volume, ['attaching'], volume.attachments.some((a) => a.attach_status === 'attached') ? 'in-use' : 'available', 'unreserve');
  }

  beginDetaching(volume: Volume): Promise<void> {
    return this.cas(volume, ['in-use'], 'detaching', 'begin detaching');
  }

  async rollDetaching(volume: Volume): Promise<void> {
    if (volume.status === 'detaching') await this.cas(volume, ['detaching'], 'in-use', 'roll detaching');
  }

  async initializeConnection(volume: Volume, connector: Connector): Promise<Record<string, unknown>> {
    const driver = this.v.driverFor(volume);
    if (!driver) throw invalidVolume(`Volume ${volume.id} has no backend host.`);
    const info = await driver.initializeConnection(volumeRef(volume), connector);
    return { driver_volume_type: info.driver_volume_type, data: { ...info.data, access_mode: volume.adminMetadata.readonly === 'True' ? 'ro' : 'rw' } };
  }

  async terminateConnection(volume: Volume, connector: Connector): Promise<void> {
    await this.v.driverFor(volume)?.terminateConnection(volumeRef(volume), connector);
  }

  async attach(volume: Volume, a: { instanceUuid?: string; hostName?: string; mountpoint: string; mode: string }, caller: Caller): Promise<void> {
    if (!['attaching', 'available'].includes(volume.status) && !(volume.multiattach && volume.status === 'in-use')) {
      throw invalidVolume(`Volume status must be attaching to attach, but current status is: ${volume.status}.`);
    }
    const now = Date.now();
    await this.v.db
      .insertInto('volume_attachment')
      .values({ id: randomUUID(), volume_id: volume.id, instance_uuid: a.instanceUuid ?? null, attached_host: a.hostName ?? null, mountpoint: a.mountpoint, attach_mode: a.mode, attach_status: 'attached', connector: null, connection_info: null, attach_time: now, detach_time: null, created_at: now, updated_at: null, deleted: 0, deleted_at: null })
      .execute();
    await this.v.markInUse(volume, caller);
  }

  async detach(volume: Volume, attachmentId: string | undefined, caller: Caller): Promise<void> {
    const live = volume.attachments;
    const target = attachmentId ? live.find((a) => a.id === attachmentId) : live.length === 1 ? live[0] : undefined;
    if (!target) throw invalidVolume(attachmentId ? `Volume ${volume.id} has no attachment ${attachmentId}.` : `Volume ${volume.id} has several attachments: attachment_id is required.`);
    await this.v.deleteAttachment(volume, target, caller);
  }
}

/** What a driver knows a volume by: its data's name (upstream's name_id after a migration) and size. */
export function volumeRef(v: Pick<VolumeRow, 'id' | 'name_id' | 'size'>): VolumeRef {
  return { id: v.name_id ?? v.id, size: v.size };
}

export function parseJson(s: string | null): unknown {
  if (!s) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** upstream's _usage_from_volume. */
export function volumePayload(v: VolumeRow & { typeName?: string }): Record<string, unknown> {
  return {
    tenant_id: v.project_id,
    user_id: v.user_id,
    volume_id: v.id,
    display_name: v.name,
    size: v.size,
    status: v.status,
    availability_zone: v.availability_zone,
    volume_type: v.volume_type_id,
    host: v.host,
    created_at: iso(v.created_at),
    launched_at: iso(v.launched_at),
    snapshot_id: v.snapshot_id,
    replication_status: null,
  };
}

function snapshotPayload(s: SnapshotRow): Record<string, unknown> {
  return {
    tenant_id: s.project_id,
    user_id: s.user_id,
    snapshot_id: s.id,
    display_name: s.name,
    volume_id: s.volume_id,
    volume_size: s.volume_size,
    status: s.status,
    created_at: iso(s.created_at),
  };
}
