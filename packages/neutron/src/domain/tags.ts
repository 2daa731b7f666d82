import type { Kysely } from 'kysely';
import type { Target } from '@onestack/core/policy/index.ts';
import type { NeutronDB } from '../db/schema.ts';

/**
 * A resource that carries tags (standard-attr-tag): its collection
 * (`networks`, `security-groups` …), its member name for policy rules
 * (`update_network`) and how to find one for a caller — `find` resolves the
 * id to the policy target, or undefined when the caller cannot see it.
 */
export interface TaggableResource {
  collection: string;
  member: string;
  find(db: Kysely<NeutronDB>, id: string, caller: { projectId?: string; isAdmin: boolean }): Promise<Target | undefined>;
}

export class TagRegistry {
  private readonly resources = new Map<string, TaggableResource>();

  register(resource: TaggableResource): void {
    this.resources.set(resource.collection, resource);
  }

  get(collection: string): TaggableResource | undefined {
    return this.resources.get(collection);
  }

  collections(): string[] {
    return [...this.resources.keys()];
  }
}

/** Tags of many resources at once, for list views. */
export async function tagsOf(db: Kysely<NeutronDB>, ids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const rows = await db.selectFrom('tags').select(['resource_id', 'tag']).where('resource_id', 'in', chunk).orderBy('tag').execute();
    for (const r of rows) out.get(r.resource_id)?.push(r.tag);
  }
  return out;
}

export async function replaceTags(trx: Kysely<NeutronDB>, id: string, tags: string[]): Promise<void> {
  await trx.deleteFrom('tags').where('resource_id', '=', id).execute();
  const unique = [...new Set(tags)];
  if (unique.length > 0) await trx.insertInto('tags').values(unique.map((tag) => ({ resource_id: id, tag }))).execute();
}

export async function deleteTags(trx: Kysely<NeutronDB>, id: string): Promise<void> {
  await trx.deleteFrom('tags').where('resource_id', '=', id).execute();
}
