import type { BackendStats, PoolStats, VolumeDriver } from '../drivers/volume-driver.ts';

export interface Backend {
  /** host@backend, as upstream names a volume service. */
  host: string;
  availabilityZone: string;
  driver: VolumeDriver;
}

export interface PoolChoice {
  backend: Backend;
  pool: PoolStats;
  /** host@backend#pool, the volume's `os-vol-host-attr:host`. */
  host: string;
}

export class NoValidBackend extends Error {
  constructor(readonly reason: string) {
    super(`No valid backend was found. ${reason}`);
    this.name = 'NoValidBackend';
  }
}

/**
 * The filter scheduler in small: availability zone, capability filter on the
 * type's extra specs (volume_backend_name, capabilities), capacity filter with
 * thin provisioning (upstream's CapacityFilter arithmetic), then the pool with
 * the most free space (CapacityWeigher).
 */
export class Scheduler {
  constructor(private readonly backends: Backend[]) {}

  async pools(): Promise<{ backend: Backend; stats: BackendStats }[]> {
    return Promise.all(this.backends.map(async (backend) => ({ backend, stats: await backend.driver.getVolumeStats() })));
  }

  async choose(req: { size: number; availabilityZone?: string; extraSpecs: Record<string, string> }): Promise<PoolChoice> {
    const reasons: string[] = [];
    let best: { choice: PoolChoice; free: number } | undefined;
    for (const { backend, stats } of await this.pools()) {
      if (req.availabilityZone && backend.availabilityZone !== req.availabilityZone) {
        reasons.push(`${backend.host}: availability zone ${backend.availabilityZone} is not ${req.availabilityZone}`);
        continue;
      }
      const wantedName = req.extraSpecs.volume_backend_name;
      if (wantedName && wantedName !== stats.volume_backend_name) {
        reasons.push(`${backend.host}: volume_backend_name ${stats.volume_backend_name} does not match ${wantedName}`);
        continue;
      }
      for (const pool of stats.pools) {
        const why = this.refuse(pool, req);
        if (why) {
          reasons.push(`${backend.host}#${pool.pool_name}: ${why}`);
          continue;
        }
        const free = pool.free_capacity_gb - (pool.total_capacity_gb * pool.reserved_percentage) / 100;
        if (!best || free > best.free) best = { choice: { backend, pool, host: `${backend.host}#${pool.pool_name}` }, free };
      }
    }
    if (!best) throw new NoValidBackend(reasons.length ? reasons.join('; ') : 'No volume backends are enabled.');
    return best.choice;
  }

  /**
   * Whether the backend (host@backend, with or without #pool) could take the
   * request: upstream's host_passes_filters, for retype in place and migration to a
   * named host. Answers the chosen pool, or throws NoValidBackend with the reason.
   */
  async passes(host: string, req: { size: number; extraSpecs: Record<string, string> }): Promise<PoolChoice> {
    const [backendHost, poolName] = host.split('#');
    const backend = this.backends.find((b) => b.host === backendHost);
    if (!backend) throw new NoValidBackend(`Cannot place volume on ${host}: no such backend.`);
    const stats = await backend.driver.getVolumeStats();
    const wantedName = req.extraSpecs.volume_backend_name;
    if (wantedName && wantedName !== stats.volume_backend_name) throw new NoValidBackend(`Cannot place volume on ${host}: volume_backend_name ${stats.volume_backend_name} does not match ${wantedName}`);
    const reasons: string[] = [];
    for (const pool of stats.pools) {
      if (poolName && pool.pool_name !== poolName) continue;
      const why = this.refuse(pool, req);
      if (!why) return { backend, pool, host: `${backend.host}#${pool.pool_name}` };
      reasons.push(`${backend.host}#${pool.pool_name}: ${why}`);
    }
    throw new NoValidBackend(`Cannot place volume on ${host}: ${reasons.join('; ') || 'no such pool'}`);
  }

  private refuse(pool: PoolStats, req: { size: number; extraSpecs: Record<string, string> }): string | undefined {
    for (const [key, value] of Object.entries(req.extraSpecs)) {
      const cap = key.startsWith('capabilities:') ? key.slice('capabilities:'.length) : key;
      if (!(cap in pool)) continue;
      const want = value.replace(/^<is>\s*/i, '').toLowerCase();
      if (String((pool as unknown as Record<string, unknown>)[cap]).toLowerCase() !== want) return `capability ${cap} is not ${want}`;
    }
    const reserved = (pool.total_capacity_gb * pool.reserved_percentage) / 100;
    const free = pool.free_capacity_gb - reserved;
    if (pool.thin_provisioning_support && pool.max_over_subscription_ratio >= 1) {
      const provisionedRatio = (pool.provisioned_capacity_gb + req.size) / pool.total_capacity_gb;
      if (provisionedRatio > pool.max_over_subscription_ratio) {
        return `provisioned ratio ${provisionedRatio.toFixed(2)} would exceed max_over_subscription_ratio ${pool.max_over_subscription_ratio}`;
      }
      if (free <= 0) return `free capacity ${pool.free_capacity_gb}GB is all reserved`;
      return undefined;
    }
    if (free < req.size) return `insufficient free space: ${free.toFixed(2)}GB free, ${req.size}GB requested`;
    return undefined;
  }
}
