import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { backupFile, deleteObjects, objectPrefix, readSha256s, restoreChain, type BackupLocation, type ChunkOptions } from '../backup/chunked.ts';
import type { ObjectStore } from '../backup/chunked.ts';
import type { BackupRow, CinderDB, SnapshotRow } from '../db/schema.ts';
import { GiB, type VolumeDriver, type VolumeRef } from '../drivers/volume-driver.ts';
import { invalidVolume, overQuota } from './errors.ts';
import { MessageAction, MessageDetail } from './messages.ts';
import type { CinderNotifier } from './notifier.ts';
import type { Quotas } from './quotas.ts';
import { volumeRef, type BackupSource, type Caller, type Volume, type VolumeService } from './volumes.ts';

/** upstream's backup_service field of an exported record: restores need the same driver. */
export const SWIFT_BACKUP_SERVICE = 'cinder.backup.drivers.swift.SwiftBackupDriver';

export const backupNotFound = (id: string) => notFound(`Backup ${id} could not be found.`);
const invalidBackup = (reason: string) => badRequest(`Invalid backup: ${reason}`);

export interface CreateBackupInput {
  volumeId: string;
  container?: string | null;
  name?: string | null;
  description?: string | null;
  incremental: boolean;
  force: boolean;
  snapshotId?: string | null;
  /** 3.43. */
  metadata?: Record<string, string> | null;
  /** 3.51: the zone of the backup service to run it; none here but ours. */
  availabilityZone?: string | null;
}

/**
 * cinder-backup in-process: the API records the backup (`creating`), the
 * volume goes `backing-up`, and the Swift chunked driver runs in the
 * background with the caller's token on their own account (upstream's default
 * backup_swift_auth = per_user), so backups are the project's Swift objects
 * and outlive the volume's file.
 */
export class BackupService {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly o: {
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      volumes: VolumeService;
      quotas: Quotas;
      notifier: CinderNotifier;
      /** The object store a caller's backups live in (their account, with their token). */
      storeFor(caller: Caller): Promise<ObjectStore>;
      defaultContainer: string;
      chunks: ChunkOptions;
      az: string;
      host: string;
      /** Scratch space for raw images of volumes being backed up or restored. */
      workDir: string;
    },
  ) {}

  private now(): number {
    return this.o.clock.now();
  }

  /** Backups of an interrupted process: creates and restores end in error, deletes are retried on the next delete. */
  async recoverInterrupted(): Promise<void> {
    await this.db.updateTable('backups').set({ status: 'error', fail_reason: 'The backup service restarted while this operation ran.', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'creating').execute();
    await this.db.updateTable('backups').set({ status: 'available', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'restoring').execute();
    await this.db.updateTable('volumes').set({ status: 'available', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'backing-up').where('attach_status', '=', 'detached').execute();
    await this.db.updateTable('volumes').set({ status: 'in-use', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'backing-up').where('attach_status', '=', 'attached').execute();
    await this.db.updateTable('volumes').set({ status: 'error_restoring', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'restoring-backup').execute();
    await this.db.updateTable('snapshots').set({ status: 'available', updated_at: this.now() }).where('deleted', '=', 0).where('status', '=', 'backing-up').execute();
  }

  async get(id: string, caller: Caller): Promise<BackupRow> {
    const row = await this.db.selectFrom('backups').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row || (!caller.isAdmin && row.project_id !== caller.projectId)) throw backupNotFound(id);
    return row;
  }

  /** Sorted on the given keys (created_at descending by default, id the tie-break), exact and substring (3.34) filters. */
  async list(q: { projectId?: string; filters: Record<string, string>; like?: Record<string, string>; limit: number; marker?: string; offset?: number; sort: [string, 'asc' | 'desc'][] }): Promise<BackupRow[]> {
    let sel = this.db.selectFrom('backups').selectAll().where('deleted', '=', 0);
    if (q.projectId) sel = sel.where('project_id', '=', q.projectId);
    for (const [k, v] of Object.entries(q.filters)) {
      if (['name', 'status', 'volume_id'].includes(k)) sel = sel.where(k as 'name', '=', v);
    }
    for (const [k, v] of Object.entries(q.like ?? {})) if (['name', 'status', 'volume_id'].includes(k)) sel = sel.where(k as 'name', 'like', `%${v}%`);
    const sort = q.sort.length ? [...q.sort] : ([['created_at', 'desc']] as [string, 'asc' | 'desc'][]);
    if (!sort.some(([k]) => k === 'id')) sort.push(['id', sort[0][1]]);
    for (const [k, d] of sort) sel = sel.orderBy(k as 'id', d);
    const rows = await sel.execute();
    let start = q.offset ?? 0;
    if (q.marker) {
      const i = rows.findIndex((r) => r.id === q.marker);
      if (i < 0) throw notFound(`Marker ${q.marker} could not be found.`);
      start = i + 1;
    }
    return rows.slice(start, start + q.limit);
  }

  async create(input: CreateBackupInput, caller: Caller): Promise<BackupRow> {
    const volume = await this.o.volumes.get(input.volumeId, caller);
    const snapshot = input.snapshotId ? await this.snapshotToBackUp(input.snapshotId, volume.id, caller) : undefined;
    if (!snapshot && !['available', 'in-use'].includes(volume.status)) throw invalidVolume(`Volume to be backed up must be available or in-use, but the current status is "${volume.status}".`);
    if (!snapshot && volume.status === 'in-use' && !input.force) throw invalidVolume('Backing up an in-use volume must use the force flag.');
    // A backup of a snapshot builds only on backups taken before the snapshot (upstream's data_timestamp rule).
    const parent = input.incremental ? await this.latestBackup(volume.id, snapshot?.created_at) : undefined;
    if (input.incremental && !parent) throw invalidBackup('No backups available to do an incremental backup.');
    await this.checkQuota(caller.projectId, volume.size);
    const id = this.o.ids.uuid();
    const now = this.now();
    // upstream's scheduler finds no backup service in another zone: the backup is recorded in error, nothing else moves.
    const unscheduled = Boolean(input.availabilityZone) && input.availabilityZone !== this.o.az;
    const prior = volume.status;
    if (!unscheduled) await this.claimSource(volume.id, prior, snapshot, caller);
    const row: BackupRow = {
      id,
      volume_id: volume.id,
      snapshot_id: snapshot?.id ?? null,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name ?? null,
      description: input.description ?? null,
      size: volume.size,
      object_count: 0,
      status: unscheduled ? 'error' : 'creating',
      fail_reason: unscheduled ? 'Service not found for creating backup.' : null,
      container: input.container || this.o.defaultContainer,
      parent_id: unscheduled ? null : (parent?.id ?? null),
      service: SWIFT_BACKUP_SERVICE,
      availability_zone: input.availabilityZone || this.o.az,
      service_metadata: objectPrefix({ volumeId: volume.id, backupId: id, az: this.o.az, now: new Date(now) }),
      data_timestamp: snapshot?.created_at ?? now,
      num_dependent_backups: 0,
      metadata: JSON.stringify(input.metadata ?? {}),
      created_at: now,
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    };
    await this.db.insertInto('backups').values(row).execute();
    if (unscheduled) {
      await this.o.volumes.tell(caller, row.id, MessageAction.BACKUP_CREATE, MessageDetail.BACKUP_SCHEDULE_ERROR, 'VOLUME_BACKUP');
      return row;
    }
    if (parent) await this.db.updateTable('backups').set((eb) => ({ num_dependent_backups: eb('num_dependent_backups', '+', 1) })).where('id', '=', parent.id).execute();
    this.o.notifier.send('backup.create.start', backupPayload(row), caller.ctx);
    this.o.volumes.background(`backup ${id}`, () => this.runBackup(row, volume, prior, parent, snapshot, caller));
    return row;
  }

  /** upstream's checks of a snapshot to back up: of this volume, available. */
  private async snapshotToBackUp(snapshotId: string, volumeId: string, caller: Caller): Promise<SnapshotRow> {
    const snapshot = await this.o.volumes.getSnapshotRow(snapshotId, caller);
    if (snapshot.volume_id !== volumeId) throw invalidVolume(`Volume ${volumeId} does not match with snapshot.volume_id ${snapshot.volume_id}.`);
    if (snapshot.status !== 'available') throw badRequest(`Invalid snapshot: Snapshot to be backed up must be available, but the current status is "${snapshot.status}".`);
    return snapshot;
  }

  /** The volume goes `backing-up` (a snapshot does, when the backup is of it) so that nothing else moves it meanwhile. */
  private async claimSource(volumeId: string, prior: string, snapshot: SnapshotRow | undefined, caller: Caller): Promise<void> {
    if (snapshot) {
      if ((await casUpdate(this.db, 'snapshots', { set: { status: 'backing-up', updated_at: this.now() }, where: { id: snapshot.id, status: 'available' } })) !== 1) {
        throw badRequest('Invalid snapshot: Snapshot to be backed up must be available.');
      }
      return;
    }
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'backing-up', updated_at: this.now() }, where: { id: volumeId, status: prior } })) !== 1) {
      throw invalidVolume(`Volume to be backed up must be available or in-use, but the current status is "${(await this.o.volumes.get(volumeId, caller)).status}".`);
    }
  }

  private async latestBackup(volumeId: string, before?: number): Promise<BackupRow | undefined> {
    let sel = this.db.selectFrom('backups').selectAll().where('volume_id', '=', volumeId).where('deleted', '=', 0).where('status', '=', 'available');
    if (before !== undefined) sel = sel.where('data_timestamp', '<', before);
    return sel.orderBy('data_timestamp', 'desc').orderBy('created_at', 'desc').executeTakeFirst();
  }

  /** upstream's BackupLimitExceeded / VolumeBackupSizeExceedsAvailableQuota. */
  private async checkQuota(projectId: string, size: number): Promise<void> {
    const limits = await this.o.quotas.limits(projectId);
    const used = await this.o.quotas.usage(projectId);
    if (limits.backup_gigabytes >= 0 && used.backup_gigabytes + size > limits.backup_gigabytes) {
      throw overQuota(`Requested backup exceeds allowed Backup gigabytes quota. Requested ${size}G, quota is ${limits.backup_gigabytes}G and ${used.backup_gigabytes}G has been consumed.`);
    }
    if (limits.backups >= 0 && used.backups + 1 > limits.backups) throw overQuota(`Maximum number of backups allowed (${limits.backups}) exceeded`);
  }

  private async runBackup(row: BackupRow, volume: Volume, prior: string, parent: BackupRow | undefined, snapshot: SnapshotRow | undefined, caller: Caller): Promise<void> {
    const raw = join(this.o.workDir, `backup-${row.id}.raw`);
    try {
      const driver = this.o.volumes.driverFor(volume);
      if (!driver) throw new Error(`volume ${volume.id} has no backend`);
      await mkdir(this.o.workDir, { recursive: true });
      if (snapshot) await this.copySnapshot(driver, snapshot, raw);
      else await driver.copyVolumeToImage(volumeRef(volume), raw, 'raw');
      const store = await this.o.storeFor(caller);
      const parentShas = parent ? await readSha256s(store, location(parent), this.o.chunks.blockSize) : undefined;
      const count = await backupFile(store, location(row), raw, {
        ...this.o.chunks,
        parentShas,
        desc: { backup_id: row.id, volume_id: row.volume_id, backup_name: row.name, backup_description: row.description, created_at: new Date(row.created_at).toISOString(), parent_id: row.parent_id },
        volumeMeta: { version: 2, 'volume-base-metadata': { bootable: Boolean(volume.bootable), size: volume.size }, 'volume-metadata': volume.metadata, 'volume-glance-metadata': volume.imageMetadata },
      });
      await casUpdate(this.db, 'backups', { set: { status: 'available', object_count: count, updated_at: this.now() }, where: { id: row.id, status: 'creating' } });
      this.o.notifier.send('backup.create.end', backupPayload({ ...row, status: 'available', object_count: count }), caller.ctx);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.o.logger.warn({ backup_id: row.id, reason }, 'backup failed');
      await casUpdate(this.db, 'backups', { set: { status: 'error', fail_reason: reason, updated_at: this.now() }, where: { id: row.id, status: 'creating' } });
      await this.o.volumes.tell(caller, row.id, MessageAction.BACKUP_CREATE, MessageDetail.BACKUP_CREATE_DRIVER_ERROR, 'VOLUME_BACKUP');
      if (parent) await this.db.updateTable('backups').set((eb) => ({ num_dependent_backups: eb('num_dependent_backups', '-', 1) })).where('id', '=', parent.id).execute();
    } finally {
      await rm(raw, { force: true });
      if (snapshot) await casUpdate(this.db, 'snapshots', { set: { status: 'available', updated_at: this.now() }, where: { id: snapshot.id, status: 'backing-up' } });
      else await casUpdate(this.db, 'volumes', { set: { status: prior, updated_at: this.now() }, where: { id: volume.id, status: 'backing-up' } });
    }
  }

  /**
   * A snapshot's data through a temporary volume made from it, as upstream's
   * generic backup of a snapshot: every driver can do it, none needs to read
   * its snapshots in place.
   */
  private async copySnapshot(driver: VolumeDriver, snapshot: SnapshotRow, raw: string): Promise<void> {
    const temp = { id: this.o.ids.uuid(), size: snapshot.volume_size };
    try {
      await driver.createVolumeFromSnapshot(temp, { id: snapshot.id, volumeId: snapshot.volume_id, volumeSize: snapshot.volume_size });
      await driver.copyVolumeToImage(temp, raw, 'raw');
    } finally {
      await driver.deleteVolume(temp).catch((err) => this.o.logger.warn({ snapshot_id: snapshot.id, err }, 'temporary volume of a snapshot backup not deleted'));
    }
  }

  /**
   * upstream's backup restore: into the named volume (available, at least the
   * backup's size) or a new one of the backup's size; both `restoring-backup`
   * (the backup `restoring`) until the chain is written.
   */
  async restore(backup: BackupRow, target: { volumeId?: string; name?: string | null }, caller: Caller): Promise<{ backup_id: string; volume_id: string; volume_name: string | null }> {
    if (backup.status !== 'available') throw invalidBackup('Backup status must be available');
    const chain = await this.chainOf(backup);
    if (target.volumeId) {
      const volume = await this.o.volumes.get(target.volumeId, caller);
      if (volume.status !== 'available') throw invalidVolume(`Volume to be restored to must be available`);
      if (volume.size < backup.size) throw invalidVolume(`volume size ${volume.size} is too small to restore backup of size ${backup.size}.`);
      await this.beginRestore(backup, volume.id, 'available');
      this.o.volumes.background(`restore backup ${backup.id}`, () => this.runRestore(backup, chain, volume, caller));
      return { backup_id: backup.id, volume_id: volume.id, volume_name: volume.name };
    }
    const name = target.name ?? `restore_backup_${backup.id}`;
    // A blank volume made as any other; the restore starts once it is available.
    const volume = await this.o.volumes.create({ size: backup.size, name, description: `auto-created_from_restore_from_backup`, afterCreate: async () => {
      await this.beginRestore(backup, volume.id, 'available');
      await this.runRestore(backup, chain, await this.o.volumes.get(volume.id, caller), caller);
    } }, caller);
    await casUpdate(this.db, 'backups', { set: { status: 'restoring', updated_at: this.now() }, where: { id: backup.id, status: 'available' } });
    return { backup_id: backup.id, volume_id: volume.id, volume_name: name };
  }

  private async beginRestore(backup: BackupRow, volumeId: string, from: string): Promise<void> {
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'restoring-backup', updated_at: this.now() }, where: { id: volumeId, status: from } })) !== 1) throw invalidVolume('Volume to be restored to must be available');
    await casUpdate(this.db, 'backups', { set: { status: 'restoring', updated_at: this.now() }, where: { id: backup.id, status: 'available' } });
  }

  /** The full backup, then each incremental down to this one. */
  private async chainOf(backup: BackupRow): Promise<BackupRow[]> {
    const chain = [backup];
    while (chain[0].parent_id) {
      const parent = await this.db.selectFrom('backups').selectAll().where('id', '=', chain[0].parent_id).where('deleted', '=', 0).executeTakeFirst();
      if (!parent) throw invalidBackup(`the parent ${chain[0].parent_id} of backup ${chain[0].id} is gone`);
      chain.unshift(parent);
    }
    return chain;
  }

  private async runRestore(backup: BackupRow, chain: BackupRow[], volume: Volume, caller: Caller): Promise<void> {
    let ok = false;
    try {
      const driver = this.o.volumes.driverFor(volume);
      if (!driver) throw new Error(`volume ${volume.id} has no backend`);
      await this.writeChain(backup, chain, driver, volumeRef(volume), caller);
      ok = true;
    } catch (err) {
      this.o.logger.warn({ backup_id: backup.id, volume_id: volume.id, err }, 'restore failed');
      await this.o.volumes.tell(caller, backup.id, MessageAction.BACKUP_RESTORE, MessageDetail.BACKUP_RESTORE_ERROR, 'VOLUME_BACKUP');
    } finally {
      await casUpdate(this.db, 'volumes', { set: { status: ok ? 'available' : 'error_restoring', updated_at: this.now() }, where: { id: volume.id, status: 'restoring-backup' } });
      await casUpdate(this.db, 'backups', { set: { status: 'available', updated_at: this.now() }, where: { id: backup.id, status: 'restoring' } });
    }
  }

  /** The chain's data into the volume through a raw image of the backup's size. */
  private async writeChain(backup: BackupRow, chain: BackupRow[], driver: VolumeDriver, volume: VolumeRef, caller: Caller): Promise<void> {
    const raw = join(this.o.workDir, `restore-${backup.id}-${volume.id}.raw`);
    try {
      await mkdir(this.o.workDir, { recursive: true });
      const fh = await open(raw, 'wx');
      await fh.truncate(backup.size * GiB);
      await fh.close();
      await restoreChain(await this.o.storeFor(caller), chain.map(location), raw);
      await driver.copyImageToVolume(volume, { path: raw, diskFormat: 'raw' });
      this.o.notifier.send('backup.restore.end', backupPayload(backup), caller.ctx);
    } finally {
      await rm(raw, { force: true });
    }
  }

  /**
   * upstream's volume create with backup_id (3.47): the backup must be
   * available; the new volume stays `creating` while the backup (`restoring`)
   * is written into it, and a failed restore fails the create.
   */
  async sourceFor(backupId: string, caller: Caller): Promise<BackupSource> {
    const backup = await this.get(backupId, caller);
    if (backup.status !== 'available') throw invalidBackup("Originating backup status must be one of 'available' values");
    const chain = await this.chainOf(backup);
    return {
      size: backup.size,
      fill: async (driver, volume) => {
        if ((await casUpdate(this.db, 'backups', { set: { status: 'restoring', updated_at: this.now() }, where: { id: backup.id, status: 'available' } })) !== 1) {
          throw new Error(`backup ${backup.id} is no longer available`);
        }
        try {
          await this.writeChain(backup, chain, driver, volume, caller);
        } finally {
          await casUpdate(this.db, 'backups', { set: { status: 'available', updated_at: this.now() }, where: { id: backup.id, status: 'restoring' } });
        }
      },
    };
  }

  /** upstream's backup delete: available or error only (any status with force), never with dependent incrementals. */
  async delete(backup: BackupRow, force: boolean, caller: Caller): Promise<void> {
    if (!force && !['available', 'error'].includes(backup.status)) throw invalidBackup('Backup status must be available or error');
    if (force && !['available', 'error', 'creating', 'restoring'].includes(backup.status)) throw invalidBackup('Backup status must be available, error, creating or restoring');
    if (backup.num_dependent_backups > 0) throw invalidBackup('Incremental backups exist for this backup.');
    if ((await casUpdate(this.db, 'backups', { set: { status: 'deleting', updated_at: this.now() }, where: { id: backup.id, status: backup.status } })) !== 1) throw invalidBackup('Backup status must be available or error');
    this.o.notifier.send('backup.delete.start', backupPayload(backup), caller.ctx);
    this.o.volumes.background(`delete backup ${backup.id}`, async () => {
      try {
        if (backup.service_metadata) await deleteObjects(await this.o.storeFor(caller), location(backup));
      } catch (err) {
        await casUpdate(this.db, 'backups', { set: { status: 'error_deleting', fail_reason: err instanceof Error ? err.message : String(err), updated_at: this.now() }, where: { id: backup.id, status: 'deleting' } });
        await this.o.volumes.tell(caller, backup.id, MessageAction.BACKUP_DELETE, MessageDetail.BACKUP_DELETE_DRIVER_ERROR, 'VOLUME_BACKUP');
        return;
      }
      await casUpdate(this.db, 'backups', { set: { status: 'deleted', deleted: 1, deleted_at: this.now(), updated_at: this.now() }, where: { id: backup.id, status: 'deleting' } });
      if (backup.parent_id) await this.db.updateTable('backups').set((eb) => ({ num_dependent_backups: eb('num_dependent_backups', '-', 1) })).where('id', '=', backup.parent_id).execute();
      this.o.notifier.send('backup.delete.end', backupPayload({ ...backup, status: 'deleted' }), caller.ctx);
    });
  }

  /** upstream's export_record: the driver's name and the row, base64 JSON, for import_record elsewhere. */
  exportRecord(backup: BackupRow): { backup_service: string; backup_url: string } {
    if (backup.status !== 'available') throw invalidBackup('Backup status must be available and not restoring.');
    const record = { ...backup, display_name: backup.name, display_description: backup.description };
    return { backup_service: backup.service ?? SWIFT_BACKUP_SERVICE, backup_url: Buffer.from(JSON.stringify(record)).toString('base64') };
  }

  /**
   * upstream's import_record: a backup row from an exported record (its id
   * kept), `available` once the driver finds its metadata object; an id still
   * in use is refused as upstream does.
   */
  async importRecord(service: string, url: string, caller: Caller): Promise<BackupRow> {
    if (service !== SWIFT_BACKUP_SERVICE) throw badRequest(`Invalid input received: Service ${service} could not be found.`);
    let rec: Partial<BackupRow> & { display_name?: string; display_description?: string };
    try {
      rec = JSON.parse(Buffer.from(url, 'base64').toString('utf8'));
    } catch {
      throw badRequest("Invalid input received: Can't parse backup record.");
    }
    for (const k of ['id', 'volume_id', 'size', 'container', 'service_metadata'] as const) if (rec[k] === undefined || rec[k] === null) throw badRequest(`Invalid input received: Backup record is missing ${k}.`);
    const existing = await this.db.selectFrom('backups').select(['id', 'deleted']).where('id', '=', rec.id!).executeTakeFirst();
    if (existing && !existing.deleted) throw badRequest(`Invalid backup: Backup already exists in database.`);
    const loc = { container: String(rec.container), prefix: String(rec.service_metadata) };
    const store = await this.o.storeFor(caller);
    if (!(await store.list(loc.container, `${loc.prefix}_metadata`)).length) throw invalidBackup(`the metadata of backup ${rec.id} is not in container ${loc.container}`);
    const now = this.now();
    const row: BackupRow = {
      id: String(rec.id),
      volume_id: String(rec.volume_id),
      snapshot_id: rec.snapshot_id ?? null,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: rec.display_name ?? rec.name ?? null,
      description: rec.display_description ?? rec.description ?? null,
      size: Number(rec.size),
      object_count: Number(rec.object_count ?? 0),
      status: 'available',
      fail_reason: null,
      container: loc.container,
      parent_id: rec.parent_id ?? null,
      service: SWIFT_BACKUP_SERVICE,
      availability_zone: rec.availability_zone ?? this.o.az,
      service_metadata: loc.prefix,
      data_timestamp: rec.data_timestamp ?? now,
      num_dependent_backups: 0,
      metadata: rec.metadata ?? null,
      created_at: now,
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    };
    if (existing) await this.db.deleteFrom('backups').where('id', '=', row.id).execute();
    await this.db.insertInto('backups').values(row).execute();
    return row;
  }

  /** Name, description and (3.43) metadata, which is replaced whole as upstream's backup_metadata_update with delete. */
  async update(backup: BackupRow, patch: { name?: string | null; description?: string | null; metadata?: Record<string, string> }): Promise<BackupRow> {
    const { metadata, ...names } = patch;
    const set: Partial<BackupRow> = { ...names, ...(metadata !== undefined ? { metadata: JSON.stringify(metadata) } : {}) };
    if (Object.keys(set).length) await this.db.updateTable('backups').set({ ...set, updated_at: this.now() }).where('id', '=', backup.id).execute();
    return { ...backup, ...set };
  }

  /** Admin reset-status of a backup (upstream: available or error only). */
  async resetStatus(backup: BackupRow, status: string): Promise<void> {
    if (!['available', 'error'].includes(status)) throw badRequest(`Invalid input received: The status "${status}" is not allowed to reset.`);
    await this.db.updateTable('backups').set({ status, updated_at: this.now() }).where('id', '=', backup.id).execute();
  }
}

function location(b: BackupRow): BackupLocation {
  return { container: b.container ?? 'volumebackups', prefix: b.service_metadata ?? '' };
}

/** upstream's _usage_from_backup. */
export function backupPayload(b: BackupRow): Record<string, unknown> {
  return {
    tenant_id: b.project_id,
    user_id: b.user_id,
    backup_id: b.id,
    display_name: b.name,
    availability_zone: b.availability_zone,
    created_at: new Date(b.created_at).toISOString(),
    status: b.status,
    volume_id: b.volume_id,
    size: b.size,
    service_metadata: b.service_metadata,
    service: b.service,
    fail_reason: b.fail_reason,
    parent_id: b.parent_id,
    num_dependent_backups: b.num_dependent_backups,
    snapshot_id: b.snapshot_id,
  };
}
