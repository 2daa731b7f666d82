import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, ServiceRow, SnapshotRow, VolumeRow } from '../db/schema.ts';
import { VolumeDriverError, type ExistingRef, type ManageableResource, type VolumeDriver } from '../drivers/volume-driver.ts';
import { invalidInput, invalidVolume } from './errors.ts';
import type { CinderNotifier } from './notifier.ts';
import type { Quotas } from './quotas.ts';
import type { Services } from './services.ts';
import type { VolumeTypes } from './volume-types.ts';
import { newVolumeRow, volumePayload, volumeRef, type Caller, type Volume, type VolumeService } from './volumes.ts';

/** Where the object is: upstream's host (host@backend[#pool]) or cluster (no clusters here: never found). */
export interface Location {
  host?: string;
  cluster?: string;
}

export interface ManageVolumeInput extends Location {
  ref: ExistingRef;
  name?: string | null;
  description?: string | null;
  volumeType?: string;
  metadata?: Record<string, string>;
  availabilityZone?: string;
  bootable: boolean;
}

export interface ManageablePage {
  marker?: string;
  limit: number;
  offset: number;
  sort: [key: 'reference' | 'size', dir: 'asc' | 'desc'][];
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UNMANAGE_REFUSED =
  'Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.';

/**
 * Manage existing (3.8, cluster listing 3.17) and unmanage: upstream's volume API
 * manage_existing/get_manageable_* and the manager's flows, in one process. Unlike
 * upstream (which answers 202 and sets error_managing later) the reference is checked
 * by the driver before anything is recorded, so a bad one is a 400 with upstream's
 * ManageExistingInvalidReference words and leaves nothing behind; the taking over of
 * the object runs after the answer (`managing`, then `available` or `error_managing`).
 */
export class ManageExisting {
  constructor(
    private readonly o: {
      db: Kysely<CinderDB>;
      volumes: VolumeService;
      types: VolumeTypes;
      quotas: Quotas;
      services: Services;
      notifier: CinderNotifier;
      clock: Clock;
      ids: IdSource;
      logger: Logger;
      defaultType: string;
    },
  ) {}

  private now(): number {
    return this.o.clock.now();
  }

  /** upstream's _get_service_by_host_cluster: the cinder-volume service, up and enabled, and its driver here. */
  async backend(loc: Location): Promise<{ service: ServiceRow; driver: VolumeDriver }> {
    const volumeServices = (await this.o.services.list()).filter((s) => s.binary === 'cinder-volume');
    const wanted = loc.host?.split('#')[0];
    const service = wanted === undefined ? undefined : (volumeServices.find((s) => s.host === wanted) ?? (wanted.includes('@') ? undefined : volumeServices.find((s) => s.host.startsWith(`${wanted}@`))));
    // No clusters here: a cluster is never found.
    if (!service) throw badRequest(loc.host ? `Host '${loc.host}' not found` : `Cluster '${loc.cluster ?? ''}' not found`);
    const driver = this.o.volumes.driverFor({ host: service.host });
    if (service.disabled || !this.o.services.isUp(service) || !driver) throw badRequest('Service is unavailable at this time.');
    return { service, driver };
  }

  /** upstream's check_already_managed_volume: a source-name carrying a live volume's (or snapshot's) name. */
  private async assertNotManaged(ref: ExistingRef, what: 'volume' | 'snapshot'): Promise<void> {
    const name = typeof ref['source-name'] === 'string' ? ref['source-name'] : '';
    const m = new RegExp(`^(volume|snapshot)-(${UUID})`).exec(name);
    if (!m) return;
    const live =
      m[1] === 'volume'
        ? await this.o.db.selectFrom('volumes').select('id').where('deleted', '=', 0).where((eb) => eb.or([eb('id', '=', m[2]), eb('name_id', '=', m[2])])).executeTakeFirst()
        : await this.o.db.selectFrom('snapshots').select('id').where('deleted', '=', 0).where('id', '=', m[2]).executeTakeFirst();
    if (!live) return;
    throw what === 'volume' ? invalidVolume('Unable to manage existing volume. The volume is already managed') : badRequest('Invalid snapshot: Unable to manage existing snapshot. The snapshot is already managed');
  }

  /** The driver's refusal of a reference is the caller's error (400); anything else stays a failure of ours. */
  private async sizeOf(get: () => Promise<number>): Promise<number> {
    try {
      return await get();
    } catch (e) {
      if (e instanceof VolumeDriverError && e.reason === 'invalid_reference') throw badRequest(e.message);
      throw e;
    }
  }

  async manageVolume(input: ManageVolumeInput, caller: Caller): Promise<Volume> {
    await this.assertNotManaged(input.ref, 'volume');
    let type;
    try {
      type = await this.o.types.find(input.volumeType || this.o.defaultType, caller.projectId, caller.isAdmin);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) throw badRequest(`Invalid volume type: Cannot find requested '${input.volumeType}' volume type`);
      throw e;
    }
    const { service, driver } = await this.backend(input);
    const id = this.o.ids.uuid();
    const size = await this.sizeOf(() => driver.manageExistingGetSize({ id, size: 0 }, input.ref));
    await this.o.quotas.check(caller.projectId, { volumes: 1, gigabytes: size }, size);
    const pool = input.host?.includes('#') ? input.host.split('#')[1] : driver.backendName;
    const row = newVolumeRow({
      id,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name ?? null,
      description: input.description ?? null,
      size,
      status: 'managing',
      availability_zone: input.availabilityZone ?? service.availability_zone,
      volume_type_id: type.id,
      host: `${service.host}#${pool}`,
      snapshot_id: null,
      source_volid: null,
      image_id: null,
      bootable: input.bootable ? 1 : 0,
      multiattach: type.extraSpecs.multiattach === '<is> True' ? 1 : 0,
      group_id: null,
      created_at: this.now(),
    });
    await this.o.db.insertInto('volumes').values(row).execute();
    await this.o.volumes.setMetadata(id, 'user', input.metadata ?? {}, false);
    const volume = await this.o.volumes.hydrate(row);
    this.o.notifier.send('volume.manage_existing.start', volumePayload(volume), caller.ctx);
    this.o.volumes.background(`manage volume ${id}`, async () => {
      try {
        await driver.manageExisting({ id, size }, input.ref);
      } catch (err) {
        this.o.logger.warn({ volume_id: id, err }, 'manage existing volume failed');
        await casUpdate(this.o.db, 'volumes', { set: { status: 'error_managing', error: err instanceof Error ? err.message : String(err), updated_at: this.now() }, where: { id, status: 'managing' } });
        return;
      }
      await casUpdate(this.o.db, 'volumes', { set: { status: 'available', launched_at: this.now(), updated_at: this.now() }, where: { id, status: 'managing' } });
      this.o.notifier.send('volume.manage_existing.end', volumePayload({ ...volume, status: 'available' }), caller.ctx);
    });
    return volume;
  }

  async manageSnapshot(volume: Volume, input: { ref: ExistingRef; name?: string | null; description?: string | null; metadata?: Record<string, string> }, caller: Caller): Promise<SnapshotRow> {
    const { driver } = await this.backend({ host: volume.host ?? '' });
    await this.assertNotManaged(input.ref, 'snapshot');
    if (!['available', 'in-use'].includes(volume.status)) throw invalidVolume(`Volume ${volume.id} status must be available or in-use, but current status is: ${volume.status}.`);
    const id = this.o.ids.uuid();
    const size = await this.sizeOf(() => driver.manageExistingSnapshotGetSize({ id, volumeId: volumeRef(volume).id, volumeSize: volume.size }, input.ref));
    await this.o.quotas.check(caller.projectId, { snapshots: 1, gigabytes: size });
    const row: SnapshotRow = {
      id,
      volume_id: volume.id,
      project_id: caller.projectId,
      user_id: caller.userId,
      name: input.name ?? null,
      description: input.description ?? null,
      volume_size: size,
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
    await this.o.db.insertInto('snapshots').values(row).execute();
    this.o.volumes.background(`manage snapshot ${id}`, async () => {
      try {
        await driver.manageExistingSnapshot({ id, volumeId: volumeRef(volume).id, volumeSize: size }, input.ref);
      } catch (err) {
        await casUpdate(this.o.db, 'snapshots', { set: { status: 'error', error: err instanceof Error ? err.message : String(err), updated_at: this.now() }, where: { id, status: 'creating' } });
        return;
      }
      await casUpdate(this.o.db, 'snapshots', { set: { status: 'available', progress: '100%', updated_at: this.now() }, where: { id, status: 'creating' } });
    });
    return row;
  }

  /** upstream's get_manageable_volumes/_snapshots: the driver's list, sorted and paged as paginate_entries_list. */
  async manageable(kind: 'volume' | 'snapshot', loc: Location, page: ManageablePage): Promise<ManageableResource[]> {
    const { service, driver } = await this.backend(loc);
    const onHost = (q: { host: string | null }) => q.host !== null && q.host.split('#')[0] === service.host;
    const vols = (await this.o.db.selectFrom('volumes').select(['id', 'name_id', 'host', 'size']).where('deleted', '=', 0).execute()).filter(onHost);
    let entries: ManageableResource[];
    if (kind === 'volume') entries = await driver.getManageableVolumes(new Map(vols.map((v) => [volumeRef(v).id, v.id])));
    else {
      const snaps = vols.length ? await this.o.db.selectFrom('snapshots').select('id').where('deleted', '=', 0).where('volume_id', 'in', vols.map((v) => v.id)).execute() : [];
      entries = await driver.getManageableSnapshots(new Map(snaps.map((s) => [s.id, s.id])));
    }
    return paginate(entries, page);
  }

  /** upstream's delete(unmanage_only=True): the same conditions as a delete, then the driver lets go and the row goes. */
  async unmanageVolume(volume: Volume, caller: Caller): Promise<void> {
    const snaps = await this.o.db.selectFrom('snapshots').select('id').where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    const migrating = volume.migration_status !== null && !['deleting', 'error', 'success'].includes(volume.migration_status);
    if (volume.attach_status === 'attached' || volume.attachments.length || snaps.length || migrating || volume.group_id) throw invalidVolume(UNMANAGE_REFUSED);
    if (!['available', 'error', 'error_restoring', 'error_extending', 'error_managing'].includes(volume.status)) throw invalidVolume(UNMANAGE_REFUSED);
    if ((await casUpdate(this.o.db, 'volumes', { set: { status: 'unmanaging', updated_at: this.now() }, where: { id: volume.id, status: volume.status } })) !== 1) throw invalidVolume(UNMANAGE_REFUSED);
    this.o.notifier.send('volume.unmanage.start', volumePayload(volume), caller.ctx);
    this.o.volumes.background(`unmanage volume ${volume.id}`, async () => {
      try {
        await this.o.volumes.driverFor(volume)?.unmanage(volumeRef(volume));
      } catch (err) {
        await casUpdate(this.o.db, 'volumes', { set: { status: 'error_unmanaging', error: String(err), updated_at: this.now() }, where: { id: volume.id, status: 'unmanaging' } });
        return;
      }
      await this.o.db.deleteFrom('volume_metadata').where('volume_id', '=', volume.id).execute();
      await casUpdate(this.o.db, 'volumes', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: volume.id, status: 'unmanaging' } });
      this.o.notifier.send('volume.unmanage.end', volumePayload(volume), caller.ctx);
    });
  }

  async unmanageSnapshot(snap: SnapshotRow): Promise<void> {
    if ((await casUpdate(this.o.db, 'snapshots', { set: { status: 'unmanaging', updated_at: this.now() }, where: { id: snap.id, status: ['available', 'error'].includes(snap.status) ? snap.status : '-' } })) !== 1) {
      throw badRequest('Invalid snapshot: Snapshot status must be available or error and must not be part of a group.');
    }
    const volume = await this.o.db.selectFrom('volumes').select(['id', 'name_id', 'size', 'host']).where('id', '=', snap.volume_id).executeTakeFirst();
    this.o.volumes.background(`unmanage snapshot ${snap.id}`, async () => {
      try {
        if (volume) await this.o.volumes.driverFor(volume)?.unmanageSnapshot({ id: snap.id, volumeId: volumeRef(volume).id, volumeSize: snap.volume_size });
      } catch (err) {
        await casUpdate(this.o.db, 'snapshots', { set: { status: 'error', error: String(err), updated_at: this.now() }, where: { id: snap.id, status: 'unmanaging' } });
        return;
      }
      await casUpdate(this.o.db, 'snapshots', { set: { status: 'deleted', deleted: 1, deleted_at: this.now() }, where: { id: snap.id, status: 'unmanaging' } });
    });
  }
}

/** A reference sorts by its (first) value, as upstream compares the dicts. */
const sortValue = (e: ManageableResource, key: 'reference' | 'size'): string | number => (key === 'size' ? e.size : (Object.values(e.reference).sort()[0] ?? ''));

/** upstream's volume_utils.paginate_entries_list: sort, then after the marker (a reference as JSON), offset, limit. */
export function paginate(entries: ManageableResource[], page: ManageablePage): ManageableResource[] {
  const sorted = [...entries].sort((a, b) => {
    for (const [key, dir] of page.sort) {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      if (x === y) continue;
      return (x < y ? -1 : 1) * (dir === 'asc' ? 1 : -1);
    }
    return 0;
  });
  let start = 0;
  if (page.marker !== undefined && page.marker !== '') {
    let marker: unknown;
    try {
      marker = JSON.parse(page.marker);
    } catch {
      throw invalidInput(`marker ${page.marker} can not be analysed, please use json like format`);
    }
    const same = (r: Record<string, string>) => JSON.stringify(Object.entries(r).sort()) === JSON.stringify(Object.entries((marker ?? {}) as Record<string, string>).sort());
    const i = sorted.findIndex((e) => same(e.reference));
    if (i < 0) throw invalidInput(`marker not found: ${page.marker}`);
    start = i + 1;
  }
  return sorted.slice(start + page.offset, start + page.offset + page.limit);
}
