import type { Kysely } from 'kysely';
import type { CinderDB } from '../db/schema.ts';
import type { QuotaDefaults } from '../conf.ts';
import { overQuota } from './errors.ts';

export const QUOTA_RESOURCES = ['volumes', 'snapshots', 'gigabytes', 'backups', 'backup_gigabytes', 'groups', 'per_volume_gigabytes'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];

/**
 * Per-project quotas: config defaults overridden by os-quota-sets rows. Usage is
 * counted from the live rows at check time (volumes and snapshots not deleted),
 * so no usage counter can drift; upstream's reservations are not kept.
 */
export class Quotas {
  constructor(
    private readonly db: Kysely<CinderDB>,
    readonly defaults: QuotaDefaults,
  ) {}

  async limits(projectId: string): Promise<Record<QuotaResource, number>> {
    const out = { ...this.defaults } as Record<QuotaResource, number>;
    for (const r of await this.db.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute()) {
      if ((QUOTA_RESOURCES as readonly string[]).includes(r.resource)) out[r.resource as QuotaResource] = r.hard_limit;
    }
    return out;
  }

  async set(projectId: string, values: Partial<Record<QuotaResource, number>>): Promise<void> {
    for (const [resource, limit] of Object.entries(values)) {
      await this.db.deleteFrom('quotas').where('project_id', '=', projectId).where('resource', '=', resource).execute();
      await this.db.insertInto('quotas').values({ project_id: projectId, resource, hard_limit: limit! }).execute();
    }
  }

  async reset(projectId: string): Promise<void> {
    await this.db.deleteFrom('quotas').where('project_id', '=', projectId).execute();
  }

  async usage(projectId: string): Promise<Record<QuotaResource, number>> {
    const v = await this.db
      .selectFrom('volumes')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size').as('gb')])
      .where('project_id', '=', projectId)
      .where('deleted', '=', 0)
      .executeTakeFirstOrThrow();
    const s = await this.db
      .selectFrom('snapshots')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('volume_size').as('gb')])
      .where('project_id', '=', projectId)
      .where('deleted', '=', 0)
      .executeTakeFirstOrThrow();
    const b = await this.db
      .selectFrom('backups')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size').as('gb')])
      .where('project_id', '=', projectId)
      .where('deleted', '=', 0)
      .executeTakeFirstOrThrow();
    const g = await this.db.selectFrom('groups').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).where('deleted', '=', 0).executeTakeFirstOrThrow();
    return {
      volumes: Number(v.n),
      snapshots: Number(s.n),
      gigabytes: Number(v.gb ?? 0) + Number(s.gb ?? 0),
      backups: Number(b.n),
      backup_gigabytes: Number(b.gb ?? 0),
      groups: Number(g.n),
      per_volume_gigabytes: 0,
    };
  }

  /** Upstream's VolumeLimitExceeded / VolumeSizeExceedsAvailableQuota / SnapshotLimitExceeded messages. */
  async check(projectId: string, delta: { volumes?: number; snapshots?: number; gigabytes?: number }, size?: number): Promise<void> {
    const limits = await this.limits(projectId);
    if (size !== undefined && limits.per_volume_gigabytes >= 0 && size > limits.per_volume_gigabytes) {
      throw overQuota(`Requested volume size ${size}G is larger than maximum allowed limit ${limits.per_volume_gigabytes}G.`);
    }
    const used = await this.usage(projectId);
    if (delta.gigabytes && limits.gigabytes >= 0 && used.gigabytes + delta.gigabytes > limits.gigabytes) {
      throw overQuota(
        `VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested ${delta.gigabytes}G, quota is ${limits.gigabytes}G and ${used.gigabytes}G has been consumed.`,
      );
    }
    if (delta.volumes && limits.volumes >= 0 && used.volumes + delta.volumes > limits.volumes) {
      throw overQuota(`VolumeLimitExceeded: Maximum number of volumes allowed (${limits.volumes}) exceeded for quota 'volumes'.`);
    }
    if (delta.snapshots && limits.snapshots >= 0 && used.snapshots + delta.snapshots > limits.snapshots) {
      throw overQuota(`SnapshotLimitExceeded: Maximum number of snapshots allowed (${limits.snapshots}) exceeded`);
    }
  }
}
