import type { Kysely } from 'kysely';
import { badRequest, forbidden, notFound } from '@onestack/core/errors.ts';
import type { KeystoneDB, ProjectRow } from '../db/schema.ts';
import { DEFAULT_DOMAIN_ID, ROOT_DOMAIN } from '../db/schema.ts';
import { bool, int, mergeOptions, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { insertIgnoringDuplicates } from '@onestack/core/db/index.ts';

/** Domains and projects: one table, as upstream (a domain is a project with is_domain). */
export interface Project {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  domainId: string | null; // null for a domain
  parentId: string | null;
  isDomain: boolean;
  tags: string[];
  extra: Record<string, unknown>;
  options: Record<string, unknown>;
}

export interface ProjectCreate {
  name: string;
  description?: string;
  enabled?: boolean;
  domainId?: string;
  parentId?: string | null;
  isDomain?: boolean;
  tags?: string[];
  extra?: Record<string, unknown>;
  options?: Record<string, unknown>;
  id?: string;
}

/** Hierarchy attributes may be sent back unchanged but never changed (domainId, parentId, isDomain). */
export interface ProjectUpdate {
  name?: string;
  description?: string;
  enabled?: boolean;
  tags?: string[];
  extra?: Record<string, unknown>;
  options?: Record<string, unknown>;
  domainId?: string | null;
  parentId?: string | null;
  isDomain?: boolean;
}

export interface ProjectFilter {
  domainId?: string;
  parentId?: string;
  name?: string;
  enabled?: boolean;
  isDomain?: boolean;
  ids?: string[];
  /** `?tags`: every one of these. */
  tags?: string[];
  /** `?tags-any`: at least one of these. */
  tagsAny?: string[];
  /** `?not-tags`: not every one of these. */
  notTags?: string[];
  /** `?not-tags-any`: none of these. */
  notTagsAny?: string[];
}

/** `{id: {child id: … | null}}` as ?parents_as_ids and ?subtree_as_ids render a hierarchy. */
export interface NestedIds {
  [id: string]: NestedIds | null;
}

/** upstream's [DEFAULT] max_project_tree_depth. */
const MAX_PROJECT_TREE_DEPTH = 5;

function matchesTags(tags: string[], f: ProjectFilter): boolean {
  const has = (t: string) => tags.includes(t);
  if (f.tags?.length && !f.tags.every(has)) return false;
  if (f.tagsAny?.length && !f.tagsAny.some(has)) return false;
  if (f.notTags?.length && f.notTags.every(has)) return false;
  if (f.notTagsAny?.length && f.notTagsAny.some(has)) return false;
  return true;
}

function nameConflict(isDomain: boolean, name: string, id: string): string {
  return isDomain
    ? `it is not permitted to have two projects acting as domains with the same name: ${name}.`
    : `it is not permitted to have two projects with either the same name or same id in the same domain: name is ${name}, project id ${id}.`;
}

/** An immutable resource accepts one update only: the one making it mutable again. */
function unlocksImmutable(patch: ProjectUpdate): boolean {
  const keys = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);
  const immutable = patch.options?.immutable;
  return keys.length === 1 && keys[0] === 'options' && 'immutable' in patch.options! && (immutable === false || immutable === null);
}

export class ResourceManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  async findProject(id: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom('project').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toProject(row) : undefined;
  }

  async getProject(id: string): Promise<Project> {
    const p = await this.findProject(id);
    if (!p || p.isDomain) throw notFound(`Could not find project: ${id}.`);
    return p;
  }

  async getDomain(id: string): Promise<Project> {
    const p = await this.findProject(id);
    if (!p || !p.isDomain) throw notFound(`Could not find domain: ${id}.`);
    return p;
  }

  async getDomainByName(name: string): Promise<Project> {
    const row = await this.db
      .selectFrom('project')
      .selectAll()
      .where('domain_id', '=', ROOT_DOMAIN)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw notFound(`Could not find domain: ${name}.`);
    return this.toProject(row);
  }

  async getProjectByName(name: string, domainId: string): Promise<Project> {
    const row = await this.db
      .selectFrom('project')
      .selectAll()
      .where('domain_id', '=', domainId)
      .where('name', '=', name)
      .where('is_domain', '=', 0)
      .executeTakeFirst();
    if (!row) throw notFound(`Could not find project: ${name}.`);
    return this.toProject(row);
  }

  async listProjects(filter: ProjectFilter = {}): Promise<Project[]> {
    let q = this.db.selectFrom('project').selectAll();
    if (filter.isDomain !== undefined) q = q.where('is_domain', '=', int(filter.isDomain));
    if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
    if (filter.parentId !== undefined) q = q.where('parent_id', '=', filter.parentId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.enabled !== undefined) q = q.where('enabled', '=', int(filter.enabled));
    if (filter.ids !== undefined) {
      if (filter.ids.length === 0) return [];
      q = q.where('id', 'in', filter.ids);
    }
    const projects = await this.withTags(await q.orderBy('name').execute());
    return projects.filter((p) => matchesTags(p.tags, filter));
  }

  async createProject(input: ProjectCreate): Promise<Project> {
    const isDomain = input.isDomain ?? false;
    const id = input.id ?? this.ks.ids.hex();
    const name = input.name.trim();
    let domainId: string = ROOT_DOMAIN;
    let parentId: string | null = null;
    if (isDomain) {
      if (input.parentId) throw badRequest('only root projects are allowed to act as domains.');
    } else {
      ({ domainId, parentId } = await this.placeInHierarchy(input.domainId, input.parentId ?? undefined));
    }
    const tags = [...new Set((input.tags ?? []).map((t) => t.trim()))];
    const row: ProjectRow = {
      id,
      name,
      description: input.description ?? '',
      enabled: int(input.enabled ?? true),
      domain_id: domainId,
      parent_id: parentId,
      is_domain: int(isDomain),
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(mergeOptions({}, input.options)),
    };
    await this.ks.unique('project', nameConflict(isDomain, name, id), () =>
      this.db.transaction().execute(async (tx) => {
        await tx.insertInto('project').values(row).execute();
        for (const tag of tags) await tx.insertInto('project_tag').values({ project_id: id, name: tag }).execute();
      }),
    );
    this.ks.notifier.emit(isDomain ? 'domain' : 'project', 'created', id);
    return this.toProject(row, tags);
  }

  /**
   * Upstream's project constraints: the parent (the domain when none is given)
   * must be in the project's domain, the whole branch above must be enabled,
   * and the tree may not grow deeper than max_project_tree_depth.
   */
  private async placeInHierarchy(wantedDomainId: string | undefined, wantedParentId: string | undefined): Promise<{ domainId: string; parentId: string }> {
    const explicitParent = wantedParentId ? await this.findProject(wantedParentId) : undefined;
    const domain = await this.getDomain(wantedDomainId ?? explicitParent?.domainId ?? explicitParent?.id ?? DEFAULT_DOMAIN_ID);
    if (wantedParentId && !explicitParent) throw notFound(`Could not find project: ${wantedParentId}.`);
    const parent = explicitParent ?? domain;
    if (parent.isDomain && parent.id !== domain.id) {
      throw badRequest(
        `Cannot create project, the parent (${parent.id}) is acting as a domain, but this project's domain id (${domain.id}) does not match the parent's id.`,
      );
    }
    if (!parent.isDomain && parent.domainId !== domain.id) {
      throw badRequest(`Cannot create project, since it specifies its domain_id ${domain.id}, but specifies a parent in a different domain (${parent.domainId}).`);
    }
    const branch = [parent, ...(await this.listProjects({ ids: await this.parentIds(parent.id) }))];
    const disabled = branch.find((p) => !p.enabled);
    if (disabled) throw badRequest(`cannot create a project in a branch containing a disabled project: ${disabled.id}`);
    // The domain counts as a level, hence the + 1 upstream adds as well.
    if (branch.length + 1 > MAX_PROJECT_TREE_DEPTH + 1) throw forbidden(`Max hierarchy depth reached for ${parent.id} branch.`);
    return { domainId: domain.id, parentId: parent.id };
  }

  async updateProject(id: string, patch: ProjectUpdate, isDomain: boolean): Promise<Project> {
    const current = isDomain ? await this.getDomain(id) : await this.getProject(id);
    const kind = isDomain ? 'domain' : 'project';
    if (patch.domainId !== undefined && patch.domainId !== current.domainId) throw badRequest('Cannot change Domain ID');
    if (current.options.immutable === true && !unlocksImmutable(patch)) {
      throw forbidden(`Unable to update immutable ${kind} resource: \`${id}. Set resource option "immutable" to false first.`);
    }
    if (patch.parentId !== undefined && patch.parentId !== current.parentId) throw forbidden('Update of `parent_id` is not allowed.');
    if (patch.isDomain !== undefined && patch.isDomain !== current.isDomain) throw badRequest('Update of `is_domain` is not allowed.');
    const enabling = patch.enabled === true && !current.enabled;
    const disabling = patch.enabled === false && current.enabled;
    if (!isDomain && enabling) {
      const parents = await this.listProjects({ ids: await this.parentIds(id) });
      if (parents.some((p) => !p.enabled)) throw forbidden(`Cannot enable project ${id} since it has disabled parents`);
    }
    // A domain may be disabled whatever its projects' state: that disables them all.
    if (!isDomain && disabling) {
      const subtree = await this.listProjects({ ids: await this.subtreeIds(id) });
      if (subtree.some((p) => p.enabled)) throw forbidden(`Cannot disable project ${id} since its subtree contains enabled projects.`);
    }
    const set: Partial<ProjectRow> = {};
    const name = patch.name?.trim();
    if (name !== undefined) set.name = name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (patch.options !== undefined) set.options = JSON.stringify(mergeOptions(current.options, patch.options));
    await this.ks.unique('project', nameConflict(isDomain, name ?? current.name, id), () =>
      this.db.transaction().execute(async (tx) => {
        if (Object.keys(set).length) await tx.updateTable('project').set(set).where('id', '=', id).execute();
        if (patch.tags !== undefined) await this.replaceTags(tx, id, patch.tags);
      }),
    );
    if (disabling) {
      await this.ks.revocations.revoke(isDomain ? { domainId: id } : { projectId: id });
      this.ks.notifier.emit(kind, 'disabled', id);
    }
    this.ks.notifier.emit(kind, 'updated', id);
    this.ks.invalidate();
    return this.loadTags(isDomain ? await this.getDomain(id) : await this.getProject(id));
  }

  async deleteProject(id: string, isDomain: boolean, opts: { cascade?: boolean } = {}): Promise<void> {
    const current = isDomain ? await this.getDomain(id) : await this.getProject(id);
    if (current.options.immutable === true) {
      throw forbidden(`Unable to delete immutable ${isDomain ? 'domain' : 'project'} resource: \`${id}. Set resource option "immutable" to false first.`);
    }
    if (isDomain && current.enabled) {
      throw forbidden('Cannot delete a domain that is enabled, please disable it first.');
    }
    const children = await this.db.selectFrom('project').select('id').where('parent_id', '=', id).where('is_domain', '=', 0).execute();
    const owned = isDomain
      ? await this.db.selectFrom('project').select('id').where('domain_id', '=', id).execute()
      : children;
    if (owned.length && !isDomain && !opts.cascade) {
      throw forbidden(`Cannot delete the project ${id} since it is not a leaf in the hierarchy. Use the cascade option if you want to delete a whole subtree.`);
    }
    const doomed = isDomain ? [...owned.map((r) => r.id), id] : [...(await this.subtreeIds(id)), id];
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('project_tag').where('project_id', 'in', doomed).execute();
      await tx.deleteFrom('assignment').where('target_id', 'in', doomed).execute();
      await tx.deleteFrom('project_limit').where((eb) => eb.or([eb('project_id', 'in', doomed), eb('domain_id', 'in', doomed)])).execute();
      await tx.deleteFrom('credential').where('project_id', 'in', doomed).execute();
      await this.ks.appCreds.purge(tx, { projectIds: doomed });
      // A default project is a convenience that must not point at nothing.
      await tx.updateTable('user').set({ default_project_id: null }).where('default_project_id', 'in', doomed).execute();
      if (isDomain) {
        for (const t of ['user', 'group', 'role'] as const) {
          const ids = (await tx.selectFrom(t).select('id').where('domain_id', '=', id).execute()).map((r) => r.id);
          if (ids.length) await this.ks.identity.purgeActors(tx, t, ids);
        }
        await this.ks.identity.purgeMappings(tx, id);
      }
      await tx.deleteFrom('project').where('id', 'in', doomed).execute();
    });
    await this.ks.revocations.revoke(isDomain ? { domainId: id } : { projectId: id });
    for (const pid of doomed) this.ks.notifier.emit(pid === id && isDomain ? 'domain' : 'project', 'deleted', pid);
    this.ks.invalidate();
  }

  /** Ids of every project below `id` (depth-first), excluding `id` itself. */
  async subtreeIds(id: string): Promise<string[]> {
    const out: string[] = [];
    let frontier = [id];
    while (frontier.length) {
      const rows = await this.db.selectFrom('project').select('id').where('parent_id', 'in', frontier).where('is_domain', '=', 0).execute();
      frontier = rows.map((r) => r.id);
      out.push(...frontier);
    }
    return out;
  }

  /** Ancestors from the parent up to (and including) the domain. */
  async parentIds(id: string): Promise<string[]> {
    const out: string[] = [];
    let cur = await this.findProject(id);
    while (cur?.parentId) {
      out.push(cur.parentId);
      cur = await this.findProject(cur.parentId);
    }
    return out;
  }

  /** `?parents_as_ids`: `{parent: {grandparent: {domain: null}}}`, null for a root. */
  async parentsAsIds(id: string): Promise<NestedIds | null> {
    let nested: NestedIds | null = null;
    for (const pid of (await this.parentIds(id)).reverse()) nested = { [pid]: nested };
    return nested;
  }

  /** `?subtree_as_ids`: `{child: {grandchild: null}, other_child: null}`, null for a leaf. */
  async subtreeAsIds(id: string): Promise<NestedIds | null> {
    const rows = await this.db.selectFrom('project').select(['id', 'parent_id']).where('id', 'in', [id, ...(await this.subtreeIds(id))]).execute();
    const children = new Map<string, string[]>();
    for (const r of rows) if (r.parent_id) children.set(r.parent_id, [...(children.get(r.parent_id) ?? []), r.id]);
    const nest = (pid: string): NestedIds | null => {
      const kids = children.get(pid);
      return kids ? Object.fromEntries(kids.map((k) => [k, nest(k)])) : null;
    };
    return nest(id);
  }

  async addTag(id: string, tag: string): Promise<string> {
    await this.assertTagsMutable(id, 'create');
    const name = tag.trim();
    await insertIgnoringDuplicates(this.db, 'project_tag', { project_id: id, name }).execute();
    this.ks.notifier.emit('project', 'updated', id);
    return name;
  }

  async setTags(id: string, tags: string[]): Promise<string[]> {
    await this.assertTagsMutable(id, 'update');
    await this.db.transaction().execute((tx) => this.replaceTags(tx, id, tags));
    this.ks.notifier.emit('project', 'updated', id);
    return (await this.loadTags(await this.getProject(id))).tags;
  }

  async removeTag(id: string, tag: string): Promise<void> {
    await this.assertTagsMutable(id, 'delete');
    const res = await this.db.deleteFrom('project_tag').where('project_id', '=', id).where('name', '=', tag).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`Could not find project tag: ${tag}.`);
    this.ks.notifier.emit('project', 'updated', id);
  }

  private async assertTagsMutable(id: string, verb: 'create' | 'update' | 'delete'): Promise<void> {
    const project = await this.getProject(id);
    if (project.options.immutable === true) {
      throw forbidden(
        `Cannot ${verb} project tags for ${id}, project is immutable. Set "immutable" option to false before creating project tags.`,
      );
    }
  }

  private async replaceTags(tx: Kysely<KeystoneDB>, id: string, tags: string[]): Promise<void> {
    await tx.deleteFrom('project_tag').where('project_id', '=', id).execute();
    for (const name of new Set(tags.map((t) => t.trim()))) await tx.insertInto('project_tag').values({ project_id: id, name }).execute();
  }

  private async withTags(rows: ProjectRow[]): Promise<Project[]> {
    if (rows.length === 0) return [];
    const tags = await this.db.selectFrom('project_tag').selectAll().where('project_id', 'in', rows.map((r) => r.id)).execute();
    const byProject = new Map<string, string[]>();
    for (const t of tags) byProject.set(t.project_id, [...(byProject.get(t.project_id) ?? []), t.name]);
    return rows.map((r) => this.toProject(r, byProject.get(r.id) ?? []));
  }

  /** Single-row lookups skip tags (the token path never needs them); APIs call loadTags. */
  private toProject(row: ProjectRow, tags: string[] = []): Project {
    const isDomain = bool(row.is_domain);
    return {
      id: row.id,
      name: row.name,
      description: row.description ?? '',
      enabled: bool(row.enabled),
      domainId: isDomain ? null : row.domain_id,
      parentId: row.parent_id,
      isDomain,
      tags,
      extra: parseJson(row.extra),
      options: parseJson(row.options),
    };
  }

  async loadTags(p: Project): Promise<Project> {
    const tags = await this.db.selectFrom('project_tag').select('name').where('project_id', '=', p.id).execute();
    return { ...p, tags: tags.map((t) => t.name) };
  }
}
