import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import type { CinderDB, ServiceRow } from '../db/schema.ts';
import { invalidInput } from './errors.ts';
import type { Services } from './services.ts';
import type { VolumeService } from './volumes.ts';

/** upstream's CleanupRequest. */
export interface CleanupRequest {
  serviceId?: string;
  clusterName?: string;
  host?: string;
  binary?: string;
  /** Default false: only services that are down, as upstream. */
  isUp: boolean;
  disabled?: boolean;
  resourceType?: 'Volume' | 'Snapshot';
  resourceId?: string;
}

/** upstream's cleanable states (Volume._is_cleanable, Snapshot._is_cleanable). */
const VOLUME_CLEANABLE = ['creating', 'deleting', 'uploading', 'downloading'];
const SNAPSHOT_CLEANABLE = ['creating'];

/**
 * Workers cleanup (3.24), upstream's scheduler work_cleanup and manager do_cleanup.
 * Upstream records a worker row per running operation; here the operations run in
 * this process's background jobs, so a resource in a cleanable status that no job of
 * this process works on is what a dead worker left: that is what gets cleaned. As
 * upstream, a cinder-volume service is cleaned by itself (there are no clusters whose
 * other members could), so one that is down is `unavailable`; the scheduler always
 * cleans (any scheduler will do).
 */
export class WorkerCleanup {
  constructor(
    private readonly o: { db: Kysely<CinderDB>; volumes: VolumeService; services: Services; clock: Clock; logger: Logger },
  ) {}

  private matches(s: ServiceRow, r: CleanupRequest): boolean {
    if (r.serviceId !== undefined && s.id !== r.serviceId) return false;
    // No clusters: a cluster_name matches no service.
    if (r.clusterName !== undefined) return false;
    if (r.host !== undefined && s.host !== r.host && !s.host.startsWith(`${r.host}@`) && !s.host.startsWith(`${r.host}#`)) return false;
    if (r.binary !== undefined && s.binary !== r.binary) return false;
    if (r.disabled !== undefined && !!s.disabled !== r.disabled) return false;
    return this.o.services.isUp(s) === r.isUp;
  }

  /** upstream's check for resource_id without a location: it must be pending cleanup, and it tells where. */
  private async locate(r: CleanupRequest): Promise<CleanupRequest> {
    if (!r.resourceId || r.serviceId || r.clusterName || r.host) return r;
    const vol = r.resourceType === 'Snapshot' ? undefined : await this.o.db.selectFrom('volumes').select(['host', 'status']).where('id', '=', r.resourceId).where('deleted', '=', 0).executeTakeFirst();
    const snap =
      r.resourceType === 'Volume'
        ? undefined
        : await this.o.db.selectFrom('snapshots').innerJoin('volumes', 'volumes.id', 'snapshots.volume_id').select(['volumes.host', 'snapshots.status']).where('snapshots.id', '=', r.resourceId).where('snapshots.deleted', '=', 0).executeTakeFirst();
    const pending = (vol && VOLUME_CLEANABLE.includes(vol.status) && { host: vol.host, type: 'Volume' as const }) || (snap && SNAPSHOT_CLEANABLE.includes(snap.status) && { host: snap.host, type: 'Snapshot' as const });
    if (!pending || this.o.volumes.busy(r.resourceId)) throw invalidInput(`There is no resource with UUID ${r.resourceId} pending cleanup.`);
    if (!pending.host) return { ...r, resourceType: pending.type, binary: 'cinder-scheduler' };
    return { ...r, resourceType: pending.type, host: pending.host.split('#')[0] };
  }

  async cleanup(request: CleanupRequest): Promise<{ cleaning: ServiceRow[]; unavailable: ServiceRow[] }> {
    const r = await this.locate(request);
    const cleaning: ServiceRow[] = [];
    const unavailable: ServiceRow[] = [];
    for (const s of (await this.o.services.list()).filter((x) => this.matches(x, r))) {
      if (s.binary !== 'cinder-scheduler' && !this.o.services.isUp(s)) {
        this.o.logger.info({ host: s.host, binary: s.binary }, 'no service available to clean up');
        unavailable.push(s);
        continue;
      }
      cleaning.push(s);
      await this.clean(s, r);
    }
    return { cleaning, unavailable };
  }

  /** upstream's _do_cleanup for what the service left: creating/downloading go error, uploading back, deleting resumes. */
  private async clean(s: ServiceRow, r: CleanupRequest): Promise<void> {
    const now = this.o.clock.now();
    const onService = (host: string | null) => (s.binary === 'cinder-scheduler' ? host === null : host !== null && host.split('#')[0] === s.host);
    const wanted = (id: string, type: 'Volume' | 'Snapshot') => (!r.resourceType || r.resourceType === type) && (!r.resourceId || r.resourceId === id) && !this.o.volumes.busy(id);
    const vols = await this.o.db.selectFrom('volumes').selectAll().where('deleted', '=', 0).where('status', 'in', VOLUME_CLEANABLE).execute();
    for (const v of vols.filter((x) => onService(x.host) && wanted(x.id, 'Volume'))) {
      this.o.logger.info({ volume_id: v.id, status: v.status }, 'cleaning up volume');
      if (v.status === 'deleting') {
        const volume = await this.o.volumes.hydrate(v);
        const snaps = await this.o.db.selectFrom('snapshots').selectAll().where('volume_id', '=', v.id).where('deleted', '=', 0).execute();
        this.o.volumes.background(`delete volume ${v.id} (cleanup)`, () => this.o.volumes.finishDelete(volume, snaps, false, undefined));
        continue;
      }
      const attached = (await this.o.db.selectFrom('volume_attachment').select('id').where('volume_id', '=', v.id).where('deleted', '=', 0).where('attach_status', '=', 'attached').execute()).length > 0;
      const status = v.status === 'uploading' ? (attached ? 'in-use' : 'available') : 'error';
      await casUpdate(this.o.db, 'volumes', { set: { status, updated_at: now }, where: { id: v.id, status: v.status } });
    }
    const snaps = await this.o.db.selectFrom('snapshots').innerJoin('volumes', 'volumes.id', 'snapshots.volume_id').select(['snapshots.id', 'snapshots.status', 'volumes.host']).where('snapshots.deleted', '=', 0).where('snapshots.status', 'in', SNAPSHOT_CLEANABLE).execute();
    for (const sn of snaps.filter((x) => s.binary === 'cinder-volume' && onService(x.host) && wanted(x.id, 'Snapshot'))) {
      this.o.logger.info({ snapshot_id: sn.id }, 'cleaning up snapshot');
      await casUpdate(this.o.db, 'snapshots', { set: { status: 'error', updated_at: now }, where: { id: sn.id, status: sn.status } });
    }
  }
}
