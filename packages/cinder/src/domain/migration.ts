import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { badRequest } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { AttachmentRow, CinderDB, VolumeRow } from '../db/schema.ts';
import type { Connector } from '../drivers/volume-driver.ts';
import { invalidVolume } from './errors.ts';
import type { ComputeApi } from './nova.ts';
import type { CinderNotifier } from './notifier.ts';
import type { Scheduler } from './scheduler.ts';
import type { Services } from './services.ts';
import type { VolumeType, VolumeTypes } from './volume-types.ts';
import { volumePayload, volumeRef, type Caller, type Volume, type VolumeService } from './volumes.ts';

/** upstream's AVAILABLE_MIGRATION_STATUS: a volume in any other migration status is mid-migration. */
const MIGRATION_IDLE = ['deleting', 'error', 'success'] as const;

const MIGRATE_REFUSED = (id: string) =>
  `Volume ${id} status must be available or in-use, must not be migrating, have snapshots, be replicated, be part of a group and destination host/cluster must be different than the current one`;

/**
 * Moving a volume between backends as upstream's generic migration: a temporary
 * volume (`migration_status` `target:<id>`, no quota) is made on the destination,
 * the data copied (raw, through the conversion directory), then the two rows swap
 * backends: the volume keeps its id and takes the destination's host and data name
 * (`name_id`), the temporary row takes the source's data and is deleted with it.
 * Retype uses the same path when the new type's backend is another one.
 *
 * An attached volume moves as upstream's: the temporary volume is created empty and
 * Nova is asked to swap the server's disk to it (update_server_volume); Nova copies the
 * running guest's data, pivots, and calls os-migrate_volume_completion, which swaps the
 * rows as above and moves Nova's new attachment to the volume the user knows. A volume
 * attached to several servers does not move (migration_status `error`).
 */
export class VolumeMigrations {
  constructor(
    private readonly v: VolumeService,
    private readonly o: {
      db: Kysely<CinderDB>;
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      types: VolumeTypes;
      scheduler: Scheduler;
      services: Services;
      notifier: CinderNotifier;
      /** Nova, for attached volumes; absent: they do not move. */
      compute?: ComputeApi;
      conversionDir: string;
    },
  ) {}

  private now(): number {
    return this.o.clock.now();
  }

  private async row(id: string): Promise<VolumeRow> {
    return this.o.db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  /**
   * At start, before VolumeService's recovery: migrations and retypes the previous
   * process was running end as upstream's init_host ends them: temporary volumes and
   * their data go, the volume returns to its previous status with migration_status
   * `error` (a retype keeps its old type).
   */
  async recoverInterrupted(): Promise<void> {
    const rows = await this.o.db.selectFrom('volumes').selectAll().where('deleted', '=', 0).execute();
    // A completed swap has already renamed the temporary row `deleting` (VolumeService resumes that delete).
    for (const r of rows.filter((x) => x.migration_status?.startsWith('target:'))) await this.deleteTemporary(r);
    for (const r of rows.filter((x) => ['starting', 'migrating', 'completing'].includes(x.migration_status ?? '') || x.status === 'retyping')) {
      const set: Partial<VolumeRow> = { status: r.status === 'retyping' || r.status === 'maintenance' ? (r.previous_status ?? 'available') : r.status, updated_at: this.now() };
      if (r.migration_status && !r.migration_status.startsWith('target:') && !MIGRATION_IDLE.includes(r.migration_status as never)) set.migration_status = 'error';
      await this.o.db.updateTable('volumes').set(set).where('id', '=', r.id).execute();
    }
  }

  // ---- os-migrate_volume

  /** upstream's API migrate_volume: the destination's service must be up and enabled; one conditional update decides. */
  async migrate(volume: Volume, o: { host: string; forceHostCopy: boolean; lockVolume: boolean }): Promise<void> {
    const backendHost = o.host.split('#')[0];
    const svc = (await this.o.services.list()).find((s) => s.binary === 'cinder-volume' && s.host === backendHost);
    if (!svc || svc.disabled || !this.o.services.isUp(svc)) throw badRequest(`Invalid host: No available service named '${o.host}'`);
    const n = await this.o.db
      .updateTable('volumes')
      .set((eb) => ({
        migration_status: 'starting',
        previous_status: eb.ref('status'),
        status: o.lockVolume ? eb.case().when('status', '=', 'available').then('maintenance').else(eb.ref('status')).end() : eb.ref('status'),
        updated_at: this.now(),
      }))
      .where('id', '=', volume.id)
      .where('status', 'in', ['available', 'in-use'])
      .where((eb) => eb.or([eb('migration_status', 'is', null), eb('migration_status', 'in', [...MIGRATION_IDLE])]))
      .where('group_id', 'is', null)
      .where((eb) => eb.or([eb('host', 'is', null), eb('host', '!=', o.host)]))
      .where((eb) => eb.not(eb.exists(eb.selectFrom('snapshots').select('id').whereRef('snapshots.volume_id', '=', 'volumes.id').where('snapshots.deleted', '=', 0))))
      .executeTakeFirst();
    if (Number(n.numUpdatedRows) !== 1) throw invalidVolume(MIGRATE_REFUSED(volume.id));
    const type = await this.o.types.find(volume.volume_type_id);
    this.v.background(`migrate volume ${volume.id}`, () => this.run(volume.id, o.host, type, undefined));
  }

  /**
   * The manager's migrate_volume: the scheduler checks the destination takes the
   * volume's type and size, then the generic copy. A failure leaves the volume where
   * it was, with migration_status `error` and its previous status back.
   */
  private async run(id: string, host: string, type: VolumeType, newType: VolumeType | undefined): Promise<void> {
    const src = await this.row(id);
    try {
      const dest = await this.o.scheduler.passes(host, { size: src.size, extraSpecs: type.extraSpecs });
      const live = await this.attachmentsOf(id);
      const servers = [...new Set(live.map((a) => a.instance_uuid))];
      if (servers.length > 1 || (servers.length && !servers[0])) throw new Error('only a volume attached to one server moves (Nova swaps it for that server)');
      await casUpdate(this.o.db, 'volumes', { set: { migration_status: 'migrating', updated_at: this.now() }, where: { id, migration_status: 'starting' } });
      if (servers.length) await this.swapAttached(src, dest.host, newType, servers[0]!);
      else await this.generic(src, dest.host, newType);
    } catch (err) {
      this.o.logger.warn({ volume_id: id, host, err }, 'volume migration failed');
      await this.o.db.updateTable('volumes').set({ migration_status: 'error', status: src.previous_status ?? src.status, updated_at: this.now() }).where('id', '=', id).execute();
    }
  }

  private attachmentsOf(volumeId: string): Promise<AttachmentRow[]> {
    return this.o.db.selectFrom('volume_attachment').selectAll().where('volume_id', '=', volumeId).where('deleted', '=', 0).execute();
  }

  /** upstream's _migrate_volume_generic: the temporary volume on the destination, the copy, then completion. */
  private async generic(src: VolumeRow, destHost: string, newType: VolumeType | undefined): Promise<void> {
    const tmp = await this.insertTemporary(src, destHost, newType);
    try {
      await this.copyData(src, tmp);
      await casUpdate(this.o.db, 'volumes', { set: { status: 'available', launched_at: this.now(), updated_at: this.now() }, where: { id: tmp.id, status: 'creating' } });
    } catch (err) {
      await this.dropTemporary(tmp);
      throw err;
    }
    await this.complete(await this.row(src.id), await this.row(tmp.id), false);
  }

  /**
   * The attached half of _migrate_volume_generic: an empty temporary volume of the same
   * size on the destination, then Nova's swap. Nova answers at once and copies in the
   * background; its os-migrate_volume_completion (error or not) finishes the migration.
   * Nova refusing leaves the volume as it was (the caller marks the migration `error`).
   */
  private async swapAttached(src: VolumeRow, destHost: string, newType: VolumeType | undefined, serverId: string): Promise<void> {
    if (!this.o.compute?.swapVolume) throw new Error('moving an attached volume needs Nova, which this Cinder does not know');
    const tmp = await this.insertTemporary(src, destHost, newType);
    try {
      const driver = this.v.driverFor(tmp);
      if (!driver) throw new Error(`volume ${src.id}: backend of ${destHost} is not served here`);
      await driver.createVolume(volumeRef(tmp));
      await casUpdate(this.o.db, 'volumes', { set: { status: 'available', launched_at: this.now(), updated_at: this.now() }, where: { id: tmp.id, status: 'creating' } });
      await this.o.compute.swapVolume(serverId, src.id, tmp.id);
    } catch (err) {
      await this.dropTemporary(tmp);
      throw err;
    }
  }

  /** A temporary volume that never took over: its data and row go. */
  private async dropTemporary(tmp: VolumeRow): Promise<void> {
    await this.v.driverFor(tmp)?.deleteVolume(volumeRef(tmp)).catch(() => undefined);
    await this.o.db.updateTable('volumes').set({ status: 'deleted', deleted: 1, deleted_at: this.now() }).where('id', '=', tmp.id).execute();
  }

  private async insertTemporary(src: VolumeRow, destHost: string, newType: VolumeType | undefined): Promise<VolumeRow> {
    const tmp: VolumeRow = {
      ...src,
      id: this.o.ids.uuid(),
      host: destHost,
      status: 'creating',
      attach_status: 'detached',
      migration_status: `target:${src.id}`,
      name_id: null,
      previous_status: null,
      volume_type_id: newType?.id ?? src.volume_type_id,
      snapshot_id: null,
      source_volid: null,
      created_at: this.now(),
      updated_at: null,
      launched_at: null,
    };
    await this.o.db.insertInto('volumes').values(tmp).execute();
    return tmp;
  }

  /** The source's data as raw into the destination's volume: the two backends share no format. */
  private async copyData(src: VolumeRow, dest: VolumeRow): Promise<void> {
    const from = this.v.driverFor(src);
    const to = this.v.driverFor(dest);
    if (!from || !to) throw new Error(`volume ${src.id}: backend of ${from ? dest.host : src.host} is not served here`);
    const dir = join(this.o.conversionDir, `migrate-${randomUUID()}`);
    await mkdir(dir, { recursive: true });
    try {
      const raw = join(dir, 'volume.raw');
      await from.copyVolumeToImage(volumeRef(src), raw, 'raw');
      // The destination volume is made by its driver first, as upstream's generic migration creates it through the volume API.
      await to.createVolume(volumeRef(dest));
      await to.copyImageToVolume(volumeRef(dest), { path: raw, diskFormat: 'raw' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  // ---- os-migrate_volume_completion

  /** upstream's API migrate_volume_completion: answers the id the caller keeps (save_volume_id). */
  async completion(volume: Volume, newVolume: Volume, error: boolean): Promise<string> {
    if (!volume.migration_status && !newVolume.migration_status) return newVolume.id;
    if (!volume.migration_status) throw invalidVolume('Source volume not mid-migration.');
    if (!newVolume.migration_status) throw invalidVolume('Destination volume not mid-migration.');
    const expected = `target:${volume.id}`;
    if (newVolume.migration_status !== expected) throw invalidVolume(`Destination has migration_status ${newVolume.migration_status}, expected ${expected}.`);
    return this.complete(volume, newVolume, error);
  }

  /**
   * upstream's manager migrate_volume_completion and finish_volume_migration: on
   * error the destination goes; otherwise the rows swap backends and data names,
   * the volume returns to its previous status with migration_status `success`, and
   * the temporary row is deleted together with the source's old data.
   *
   * After Nova's swap the source's attachments name the old data the guest no longer
   * uses: their connections end on the old backend and they go. The attachment Nova made
   * on the destination moves to the source, so the volume the user knows is in-use by it
   * (Nova then deletes the old attachment, which is gone already).
   */
  private async complete(src: VolumeRow, dest: VolumeRow, error: boolean): Promise<string> {
    const previous = src.previous_status ?? 'available';
    if (error) {
      await this.deleteTemporary(dest);
      await this.o.db.updateTable('volumes').set({ migration_status: 'error', status: previous, updated_at: this.now() }).where('id', '=', src.id).execute();
      return src.id;
    }
    await this.o.db.updateTable('volumes').set({ migration_status: 'completing', updated_at: this.now() }).where('id', '=', src.id).execute();
    await this.endAttachments(src);
    const taken = await this.attachmentsOf(dest.id);
    await this.o.db.updateTable('volume_attachment').set({ volume_id: src.id, updated_at: this.now() }).where('volume_id', '=', dest.id).where('deleted', '=', 0).execute();
    const attached = taken.some((a) => a.attach_status === 'attached');
    const typeChanged = dest.volume_type_id !== src.volume_type_id;
    await this.o.db
      .updateTable('volumes')
      .set({
        host: dest.host,
        name_id: dest.name_id ?? dest.id,
        volume_type_id: dest.volume_type_id,
        status: previous === 'in-use' && !attached ? 'available' : previous,
        attach_status: attached ? 'attached' : 'detached',
        previous_status: src.status,
        migration_status: 'success',
        updated_at: this.now(),
      })
      .where('id', '=', src.id)
      .execute();
    const old = { ...dest, host: src.host, name_id: src.name_id ?? src.id };
    await this.o.db.updateTable('volumes').set({ host: old.host, name_id: old.name_id, migration_status: 'deleting', status: 'deleting', updated_at: this.now() }).where('id', '=', dest.id).execute();
    await this.deleteTemporary(old);
    const moved = await this.v.hydrate(await this.row(src.id));
    if (typeChanged) this.o.notifier.send('volume.retype', volumePayload(moved));
    return src.id;
  }

  /** The row's attachments end: each connection is terminated on the row's backend (a failure is logged) and the attachment deleted. */
  private async endAttachments(row: VolumeRow): Promise<void> {
    for (const a of await this.attachmentsOf(row.id)) {
      if (a.connector) {
        await this.v
          .driverFor(row)
          ?.terminateConnection(volumeRef(row), JSON.parse(a.connector) as Connector, { attachmentId: a.id })
          .catch((err: unknown) => this.o.logger.warn({ volume_id: row.id, attachment_id: a.id, err }, 'terminating a migrated attachment failed'));
      }
      await this.o.db.updateTable('volume_attachment').set({ attach_status: 'detached', detach_time: this.now(), deleted: 1, deleted_at: this.now() }).where('id', '=', a.id).execute();
    }
  }

  /** The temporary row and the data it names; a data delete that fails is logged and the row kept in error_deleting. */
  private async deleteTemporary(row: VolumeRow): Promise<void> {
    await this.endAttachments(row);
    try {
      await this.v.driverFor(row)?.deleteVolume(volumeRef(row));
    } catch (err) {
      this.o.logger.error({ volume_id: row.id, err }, 'deleting the data a migration left failed');
      await this.o.db.updateTable('volumes').set({ status: 'error_deleting', updated_at: this.now() }).where('id', '=', row.id).execute();
      return;
    }
    await this.o.db.updateTable('volumes').set({ status: 'deleted', deleted: 1, deleted_at: this.now() }).where('id', '=', row.id).execute();
  }

  // ---- os-retype

  /**
   * upstream's retype: the new type must differ and the volume must not be
   * mid-migration; the volume is `retyping` while the scheduler decides. Its own
   * backend still passing the new type: only the type changes. Another backend:
   * with migration_policy `on-demand` the volume migrates there (no snapshots; an
   * attached one through Nova's swap), with `never` it keeps its type ("Retype requires migration but is not
   * allowed."). Either way the API has answered 202 and the volume returns to its
   * previous status; the reason of a refusal is logged, as upstream.
   */
  async retype(volume: Volume, newType: string, policy: 'never' | 'on-demand', caller: Caller): Promise<void> {
    const prior = volume.status;
    if (prior !== 'available' && prior !== 'in-use') throw invalidVolume(`Volume ${volume.id} status must be available or in-use, but current status is: ${prior}.`);
    const type = await this.o.types.find(newType, caller.projectId, caller.isAdmin);
    if (type.id === volume.volume_type_id) throw badRequest(`Invalid input received: New volume_type same as original: ${newType}.`);
    const n = await this.o.db
      .updateTable('volumes')
      .set({ status: 'retyping', previous_status: prior, updated_at: this.now() })
      .where('id', '=', volume.id)
      .where('status', '=', prior)
      .where((eb) => eb.or([eb('migration_status', 'is', null), eb('migration_status', 'in', [...MIGRATION_IDLE])]))
      .executeTakeFirst();
    if (Number(n.numUpdatedRows) !== 1) {
      throw invalidVolume('Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change.');
    }
    this.v.background(`retype volume ${volume.id}`, () => this.runRetype(volume, type, policy, caller));
  }

  private async runRetype(volume: Volume, type: VolumeType, policy: 'never' | 'on-demand', caller: Caller): Promise<void> {
    const back = (why: string) => {
      this.o.logger.warn({ volume_id: volume.id, new_type: type.id }, `retype refused: ${why}`);
      return casUpdate(this.o.db, 'volumes', { set: { status: volume.status, updated_at: this.now() }, where: { id: volume.id, status: 'retyping' } });
    };
    const req = { size: volume.size, availabilityZone: volume.availability_zone, extraSpecs: type.extraSpecs };
    if (volume.host && (await this.o.scheduler.passes(volume.host, req).then(() => true, () => false))) {
      await casUpdate(this.o.db, 'volumes', { set: { status: volume.status, volume_type_id: type.id, updated_at: this.now() }, where: { id: volume.id, status: 'retyping' } });
      this.o.notifier.send('volume.retype', volumePayload({ ...volume, volume_type_id: type.id }), caller.ctx);
      return;
    }
    let host: string;
    try {
      host = (await this.o.scheduler.choose(req)).host;
    } catch (err) {
      await back(err instanceof Error ? err.message : String(err));
      return;
    }
    if (policy === 'never') return void (await back('Retype requires migration but is not allowed.'));
    const snaps = await this.o.db.selectFrom('snapshots').select('id').where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    if (snaps.length) return void (await back('Volume must not have snapshots.'));
    await this.o.db.updateTable('volumes').set({ migration_status: 'starting', updated_at: this.now() }).where('id', '=', volume.id).execute();
    await this.run(volume.id, host, type, type);
  }
}
