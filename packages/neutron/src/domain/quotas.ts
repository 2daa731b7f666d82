import type { Kysely } from 'kysely';
import type { Dialect } from '@onestack/core/db/index.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { NeutronDB } from '../db/schema.ts';

/** A resource quotas count: `network`, `port` … and those other areas register (`router`, `security_group` …). */
export interface QuotaResource {
  /** Singular name as the quotas API shows it (`network`, `security_group_rule`). */
  name: string;
  /** How many the project has now, read in the creating transaction. */
  count(trx: Kysely<NeutronDB>, projectId: string): Promise<number>;
}

/**
 * Per-project limits: defaults from configuration ([quotas] quota_<name>,
 * else default_quota), overrides in the quotas table. Other areas add their
 * resources with register(); `check` runs inside the creating transaction so
 * the count and the insert commit together, after locking the project's
 * quota_locks row for the resource so concurrent creates count one by one.
 */
export class QuotaRegistry {
  private readonly resources = new Map<string, QuotaResource>();

  constructor(
    private readonly defaults: Record<string, number>,
    private readonly defaultQuota: number,
    private readonly dialect: Dialect = 'sqlite',
  ) {}

  register(resource: QuotaResource): void {
    if (this.resources.has(resource.name)) throw new Error(`quota resource ${resource.name} is registered twice`);
    this.resources.set(resource.name, resource);
  }

  names(): string[] {
    return [...this.resources.keys()];
  }

  has(name: string): boolean {
    return this.resources.has(name);
  }

  defaultOf(name: string): number {
    return this.defaults[name] ?? this.defaultQuota;
  }

  defaultsAll(): Record<string, number> {
    return Object.fromEntries(this.names().map((n) => [n, this.defaultOf(n)]));
  }

  async limits(db: Kysely<NeutronDB>, projectId: string): Promise<Record<string, number>> {
    const rows = await db.selectFrom('quotas').select(['resource', 'limit']).where('project_id', '=', projectId).execute();
    const out = this.defaultsAll();
    for (const r of rows) if (this.resources.has(r.resource)) out[r.resource] = Number(r.limit);
    return out;
  }

  async usage(db: Kysely<NeutronDB>, projectId: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of this.resources.values()) out[r.name] = await r.count(db, projectId);
    return out;
  }

  /** Throws upstream's OverQuota (409) when `adding` more of `name` would pass the project's limit. */
  async check(trx: Kysely<NeutronDB>, projectId: string, name: string, adding = 1): Promise<void> {
    const resource = this.resources.get(name);
    if (!resource) return;
    const row = await trx.selectFrom('quotas').select('limit').where('project_id', '=', projectId).where('resource', '=', name).executeTakeFirst();
    const limit = row ? Number(row.limit) : this.defaultOf(name);
    if (limit < 0) return;
    await this.lock(trx, projectId, name);
    const used = await resource.count(trx, projectId);
    if (used + adding > limit) {
      throw new ApiError('conflict', `Quota exceeded for resources: ['${name}'].`, { type: 'OverQuota' });
    }
  }

  /**
   * Takes the row lock that orders concurrent checks of one project's
   * resource until the transaction ends. An upsert, not insert-then-select:
   * on MySQL a duplicate key under ON DUPLICATE KEY UPDATE waits for an
   * exclusive lock, where INSERT IGNORE's shared lock and a later FOR UPDATE
   * would deadlock two waiters; PostgreSQL's ON CONFLICT DO UPDATE waits for
   * the inserting transaction and then locks the row. The count that follows
   * runs at READ COMMITTED (db/transaction.ts), so it sees what the previous
   * holder committed.
   */
  private async lock(trx: Kysely<NeutronDB>, projectId: string, resource: string): Promise<void> {
    const q = trx.insertInto('quota_locks').values({ project_id: projectId, resource, generation: 1 });
    if (this.dialect === 'mysql') {
      await q.onDuplicateKeyUpdate((eb) => ({ generation: eb('generation', '+', 1) })).execute();
    } else {
      await q.onConflict((oc) => oc.columns(['project_id', 'resource']).doUpdateSet((eb) => ({ generation: eb('quota_locks.generation', '+', 1) }))).execute();
    }
  }
}
