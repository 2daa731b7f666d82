import type { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import type { Clock } from '@onestack/core/clock.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { ImageRepo } from './image-repo.ts';

/** Upstream's quota names (glance/quota/keystone.py); sizes are in MiB. */
const QUOTAS = ['image_size_total', 'image_stage_total', 'image_count_total', 'image_count_uploading'] as const;
export type QuotaName = (typeof QUOTAS)[number];

const MiB = 1024 * 1024;

interface LimitRecord {
  resource_name?: string;
  region_id?: string | null;
  default_limit?: number;
  resource_limit?: number;
  project_id?: string | null;
}

/**
 * Keystone unified limits for the image service, as oslo.limit reads them: a
 * project's own limit, else the registered default, else 0 (nothing allowed).
 * A limit in this Glance's region wins over one with no region. Answers are
 * reused for `cacheMs`, so a burst of requests costs one round trip.
 */
export class UnifiedLimits {
  private registered?: { at: number; value: LimitRecord[] };
  private readonly project = new Map<string, { at: number; value: LimitRecord[] }>();

  constructor(
    private readonly session: KeystoneSession,
    private readonly o: { regionName: string; cacheMs: number; clock: Clock },
  ) {}

  async limit(projectId: string, resource: QuotaName): Promise<number> {
    const own = pick(await this.projectLimits(projectId), resource, this.o.regionName);
    if (own) return Number(own.resource_limit);
    const dflt = pick(await this.registeredLimits(), resource, this.o.regionName);
    return dflt ? Number(dflt.default_limit) : 0;
  }

  private async registeredLimits(): Promise<LimitRecord[]> {
    if (this.registered && this.fresh(this.registered.at)) return this.registered.value;
    const serviceId = await this.session.serviceId('image');
    const body = (await this.session.get(`/v3/registered_limits?service_id=${encodeURIComponent(serviceId)}`)) as { registered_limits?: LimitRecord[] };
    this.registered = { at: this.o.clock.now(), value: body.registered_limits ?? [] };
    return this.registered.value;
  }

  private async projectLimits(projectId: string): Promise<LimitRecord[]> {
    const hit = this.project.get(projectId);
    if (hit && this.fresh(hit.at)) return hit.value;
    const serviceId = await this.session.serviceId('image');
    const body = (await this.session.get(`/v3/limits?service_id=${encodeURIComponent(serviceId)}&project_id=${encodeURIComponent(projectId)}`)) as { limits?: LimitRecord[] };
    const value = (body.limits ?? []).filter((l) => l.project_id === projectId);
    this.project.set(projectId, { at: this.o.clock.now(), value });
    return value;
  }

  private fresh(at: number): boolean {
    return this.o.clock.now() - at < this.o.cacheMs;
  }
}

function pick(records: LimitRecord[], resource: QuotaName, region: string): LimitRecord | undefined {
  const named = records.filter((r) => r.resource_name === resource);
  return named.find((r) => r.region_id === region) ?? named.find((r) => !r.region_id);
}

/**
 * The four checks upstream makes (enforce_image_*): usage plus the requested
 * delta against the project's limit, refused with upstream's 413 text.
 * Without limits configured every check passes, as with use_keystone_limits off.
 */
export class Quotas {
  constructor(
    private readonly repo: ImageRepo,
    private readonly limits: UnifiedLimits | undefined,
  ) {}

  /** One more image for the project. */
  imageCountTotal(projectId: string | null | undefined): Promise<void> {
    return this.enforce(projectId, 'image_count_total', 1);
  }

  /** Stored bytes, with `deltaBytes` about to arrive. */
  imageSizeTotal(projectId: string | null | undefined, deltaBytes = 0): Promise<void> {
    return this.enforce(projectId, 'image_size_total', Math.floor(deltaBytes / MiB));
  }

  imageStageTotal(projectId: string | null | undefined, deltaBytes = 0): Promise<void> {
    return this.enforce(projectId, 'image_stage_total', Math.floor(deltaBytes / MiB));
  }

  /** Checked once the image counts as uploading, hence no delta. */
  imageCountUploading(projectId: string | null | undefined): Promise<void> {
    return this.enforce(projectId, 'image_count_uploading', 0);
  }

  /** GET /v2/info/usage: each quota's limit and usage, or nothing when limits are off. */
  async usage(projectId: string | undefined): Promise<Partial<Record<QuotaName, { limit: number; usage: number }>>> {
    if (!this.limits || !projectId) return {};
    const out: Partial<Record<QuotaName, { limit: number; usage: number }>> = {};
    for (const name of QUOTAS) out[name] = { limit: await this.limits.limit(projectId, name), usage: await this.current(projectId, name) };
    return out;
  }

  /** Usage as upstream counts it (user_get_*): sizes in whole MiB. */
  private async current(projectId: string, resource: QuotaName): Promise<number> {
    switch (resource) {
      case 'image_size_total':
        return Math.floor((await this.repo.storageUsage(projectId)) / MiB);
      case 'image_stage_total':
        return Math.floor((await this.repo.stagingUsage(projectId)) / MiB);
      case 'image_count_total':
        return this.repo.imageCount(projectId);
      case 'image_count_uploading':
        return this.repo.uploadingCount(projectId);
    }
  }

  private async enforce(projectId: string | null | undefined, resource: QuotaName, delta: number): Promise<void> {
    if (!this.limits || !projectId) return;
    const [limit, current] = await Promise.all([this.limits.limit(projectId, resource), this.current(projectId, resource)]);
    if (current + delta <= limit) return;
    const body = `Project ${projectId} is over a limit for [Resource ${resource} is over limit of ${limit} due to current usage ${current} and delta ${delta}]`;
    throw new ApiError(
      'over_quota',
      `The request returned a 413 Request Entity Too Large. This generally means that rate limiting or a quota threshold was breached.\n\nThe response body:\n${body}`,
    );
  }
}
