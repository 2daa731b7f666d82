import type { Kysely } from 'kysely';
import type { Database } from '@onestack/core/db/index.ts';
import type { QuotaDefaults } from '../conf.ts';
import type { NovaDB } from '../db/schema.ts';

const DEFAULT_CLASS = 'default';

function overlay(base: QuotaDefaults, rows: { resource: string; hard_limit: number }[]): QuotaDefaults {
  const out = { ...base };
  for (const r of rows) if (r.resource in out) out[r.resource as QuotaResource] = Number(r.hard_limit);
  return out;
}

export type QuotaResource = keyof QuotaDefaults;
export const QUOTA_RESOURCES: QuotaResource[] = ['instances', 'cores', 'ram', 'key_pairs', 'metadata_items', 'server_groups', 'server_group_members', 'injected_files', 'injected_file_content_bytes', 'injected_file_path_bytes'];

/**
 * Per-project limits (os-quota-sets): the defaults from config, overridden by the
 * `default` quota class (os-quota-class-sets), overridden per project; -1 is unlimited.
 */
export class Quotas {
  constructor(
    private readonly database: Database<NovaDB>,
    readonly defaults: QuotaDefaults,
  ) {}

  async limits(projectId: string, db: Kysely<NovaDB> = this.database.db): Promise<QuotaDefaults> {
    const rows = await db.selectFrom('quotas').select(['resource', 'hard_limit']).where('project_id', '=', projectId).where('user_id', '=', '').execute();
    return overlay(await this.classLimits(DEFAULT_CLASS, db), rows);
  }

  /** get_class_quotas: the class's own limits over the default class's over the configured defaults. */
  async classLimits(className: string, db: Kysely<NovaDB> = this.database.db): Promise<QuotaDefaults> {
    const rows = await db.selectFrom('quota_classes').select(['class_name', 'resource', 'hard_limit']).where('class_name', 'in', [DEFAULT_CLASS, className]).execute();
    return overlay(overlay({ ...this.defaults }, rows.filter((r) => r.class_name === DEFAULT_CLASS)), rows.filter((r) => r.class_name === className));
  }

  async setClass(className: string, values: Partial<QuotaDefaults>): Promise<void> {
    for (const [resource, limit] of Object.entries(values)) {
      await this.database.db.deleteFrom('quota_classes').where('class_name', '=', className).where('resource', '=', resource).execute();
      await this.database.db.insertInto('quota_classes').values({ class_name: className, resource, hard_limit: Number(limit) }).execute();
    }
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
