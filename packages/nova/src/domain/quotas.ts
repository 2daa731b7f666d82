import type { Kysely } from 'kysely';
import type { Database } from '@onestack/core/db/index.ts';
import type { QuotaDefaults } from '../conf.ts';
import type { NovaDB } from '../db/schema.ts';

export type QuotaResource = keyof QuotaDefaults;
export const QUOTA_RESOURCES: QuotaResource[] = ['instances', 'cores', 'ram', 'key_pairs', 'metadata_items', 'server_groups', 'server_group_members', 'injected_files', 'injected_file_content_bytes', 'injected_file_path_length'];

/** Per-project limits (os-quota-sets): the defaults from config, overridden per project; -1 is unlimited. */
export class Quotas {
  constructor(
    private readonly database: Database<NovaDB>,
    readonly defaults: QuotaDefaults,
  ) {}

  async limits(projectId: string, db: Kysely<NovaDB> = this.database.db): Promise<QuotaDefaults> {
    const rows = await db.selectFrom('quotas').select(['resource', 'hard_limit']).where('project_id', '=', projectId).where('user_id', '=', '').execute();
    const out = { ...this.defaults };
    for (const r of rows) if (r.resource in out) out[r.resource as QuotaResource] = r.hard_limit;
    return out;
  }

  async set(projectId: string, values: Partial<QuotaDefaults>): Promise<void> {
    for (const [resource, limit] of Object.entries(values)) {
      await this.database.db.deleteFrom('quotas').where('project_id', '=', projectId).where('user_id', '=', '').where('resource', '=', resource).execute();
      await this.database.db.insertInto('quotas').values({ project_id: projectId, user_id: '', resource, hard_limit: Number(limit) }).execute();
    }
  }

  async reset(projectId: string): Promise<void> {
    await this.database.db.deleteFrom('quotas').where('project_id', '=', projectId).execute();
  }
}
