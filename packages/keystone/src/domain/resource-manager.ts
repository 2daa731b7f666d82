import type { Kysely } from 'kysely';
import { badRequest, conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import type { KeystoneDB, ProjectRow } from '../db/schema.ts';
import { ROOT_DOMAIN } from '../db/schema.ts';
import { bool, int, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';

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

export interface ProjectUpdate {
  name?: string;
  description?: string;
  enabled?: boolean;
  tags?: string[];
  extra?: Record<string, unknown>;
  options?: Record<string, unknown>;
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

  async listProjects(filter: { domainId?: string; parentId?: string; name?: string; enabled?: boolean; isDomain?: boolean; ids?: string[] } = {}): Promise<Project[]> {
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
    const rows = await q.orderBy('name').execute();
    return this.withTags(rows);
  }

  async createProject(input: ProjectCreate): Promise<Project> {
    const isDomain = input.isDomain ?? false;
    const id = input.id ?? this.ks.ids.hex();
    let domainId: string = ROOT_DOMAIN;
    let parentId: string | null = null;
    if (!isDomain) {
      if (input.parentId) {
        const parent = await this.findProject(input.parentId);
        if (!parent) throw notFound(`Could not find project: ${input.parentId}.`);
        domainId = parent.isDomain ? parent.id : parent.domainId!;
        if (input.domainId && input.domainId !== domainId) {
          throw badRequest('Cannot create project, the parent project is in a different domain.');
        }
        if (!parent.enabled) throw forbidden('cannot create a project in a branch containing a disabled project');
        parentId = parent.id;
      } else {
        domainId = input.domainId ?? 'default';
        await this.getDomain(domainId);
        parentId = domainId;
      }
    }
    const row: ProjectRow = {
      id,
      name: input.name,
      description: input.description ?? '',
      enabled: int(input.enabled ?? true),
      domain_id: domainId,
      parent_id: parentId,
      is_domain: int(isDomain),
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(input.options ?? {}),
    };
    await this.ks.unique(isDomain ? 'domain' : 'project', isDomain ? `Duplicate entry found with name ${input.name}.` : `Duplicate entry found with name ${input.name} at domain ${domainId}.`, () =>
        this.db.transaction().execute(async (tx) => {
          await tx.insertInto('project').values(row).execute();
          for (const name of input.tags ?? []) await tx.insertInto('project_tag').values({ project_id: id, name }).execute();
        }));
    this.ks.notifier.emit(isDomain ? 'domain' : 'project', 'created', id);
    return this.toProject(row, input.tags ?? []);
  }

  async updateProject(id: string, patch: ProjectUpdate, isDomain: boolean): Promise<Project> {
    const current = isDomain ? await this.getDomain(id) : await this.getProject(id);
    const set: Partial<ProjectRow> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (patch.options !== undefined) set.options = JSON.stringify({ ...current.options, ...patch.options });
    await this.ks.unique(isDomain ? 'domain' : 'project', `Duplicate entry found with name ${patch.name}.`, () =>
        this.db.transaction().execute(async (tx) => {
          if (Object.keys(set).length) await tx.updateTable('project').set(set).where('id', '=', id).execute();
          if (patch.tags !== undefined) await this.replaceTags(tx, id, patch.tags);
        }));
    if (patch.enabled === false && current.enabled) {
      await this.ks.revocations.revoke(isDomain ? { domainId: id } : { projectId: id });
      this.ks.notifier.emit(isDomain ? 'domain' : 'project', 'disabled', id);
    }
    this.ks.notifier.emit(isDomain ? 'domain' : 'project', 'updated', id);
    this.ks.invalidate();
    return isDomain ? this.getDomain(id) : this.getProject(id);
  }

  async deleteProject(id: string, isDomain: boolean, opts: { cascade?: boolean } = {}): Promise<void> {
    const current = isDomain ? await this.getDomain(id) : await this.getProject(id);
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
      if (isDomain) {
        for (const t of ['user', 'group', 'role'] as const) {
          const ids = (await tx.selectFrom(t).select('id').where('domain_id', '=', id).execute()).map((r) => r.id);
          if (ids.length) await this.ks.identity.purgeActors(tx, t, ids);
        }
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

  async addTag(id: string, tag: string): Promise<void> {
    await this.getProject(id);
    await this.db.insertInto('project_tag').values({ project_id: id, name: tag }).onConflict((oc) => oc.doNothing()).execute();
  }

  async removeTag(id: string, tag: string): Promise<void> {
    const res = await this.db.deleteFrom('project_tag').where('project_id', '=', id).where('name', '=', tag).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`Tag ${tag} not found for project ${id}.`);
  }

  private async replaceTags(tx: Kysely<KeystoneDB>, id: string, tags: string[]): Promise<void> {
    await tx.deleteFrom('project_tag').where('project_id', '=', id).execute();
    for (const name of new Set(tags)) await tx.insertInto('project_tag').values({ project_id: id, name }).execute();
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
