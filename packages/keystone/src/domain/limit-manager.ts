import type { Kysely, SelectQueryBuilder } from 'kysely';
import { conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import type { KeystoneDB, ProjectLimitRow, RegisteredLimitRow } from '../db/schema.ts';
import { expectingToFind } from './catalog-manager.ts';
import type { Keystone } from './keystone.ts';

export interface RegisteredLimit {
  id: string;
  serviceId: string;
  regionId: string | null;
  resourceName: string;
  defaultLimit: number;
  description: string | null;
}

/** A project limit, or a domain limit when domainId is set. */
export interface Limit {
  id: string;
  projectId: string | null;
  domainId: string | null;
  serviceId: string;
  regionId: string | null;
  resourceName: string;
  resourceLimit: number;
  description: string | null;
}

export type RegisteredLimitCreate = Omit<RegisteredLimit, 'id' | 'regionId' | 'description'> & { regionId?: string | null; description?: string | null };
export type LimitCreate = Omit<Limit, 'id' | 'projectId' | 'domainId' | 'regionId' | 'description'> & {
  projectId?: string | null;
  domainId?: string | null;
  regionId?: string | null;
  description?: string | null;
};
/** What identifies a registered limit; an absent field does not filter, a null region means "no region". */
export interface ResourceFilter {
  serviceId?: string;
  regionId?: string | null;
  resourceName?: string;
}
export interface LimitFilter extends ResourceFilter {
  projectId?: string;
  domainId?: string;
}

/** The enforcement model: flat, the only one implemented (upstream also has strict_two_level). */
export const FLAT_MODEL = { name: 'flat', description: 'Limit enforcement and validation does not take project hierarchy into consideration.' } as const;

/**
 * Unified limits: registered (default) limits per service, region and
 * resource, and project or domain overrides of them. A limit copies its
 * registered limit's service, region and resource name; the copy cannot drift
 * because a registered limit with limits under it cannot be changed (upstream).
 */
export class LimitManager {
  readonly model = FLAT_MODEL;

  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  // ---- registered limits -------------------------------------------------

  async getRegisteredLimit(id: string, db: Kysely<KeystoneDB> = this.db): Promise<RegisteredLimit> {
    const row = await db.selectFrom('registered_limit').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`Could not find registered limit for ${id}.`);
    return toRegisteredLimit(row);
  }

  async listRegisteredLimits(filter: ResourceFilter = {}): Promise<RegisteredLimit[]> {
    return (await this.registered(this.db, filter)).map(toRegisteredLimit);
  }

  /** All or nothing, as upstream's single transaction; a duplicate (also within the batch) is a 409. */
  async createRegisteredLimits(inputs: RegisteredLimitCreate[]): Promise<RegisteredLimit[]> {
    for (const input of inputs) await this.assertRefs(input, 'registered_limit');
    return this.db.transaction().execute(async (tx) => {
      const out: RegisteredLimit[] = [];
      for (const input of inputs) {
        const r: RegisteredLimit = { id: this.ks.ids.hex(), ...input, regionId: input.regionId ?? null, description: input.description ?? null };
        if ((await this.registered(tx, r)).length) throw duplicate('registered_limit');
        await tx.insertInto('registered_limit').values(registeredRow(r)).execute();
        out.push(r);
      }
      return out;
    });
  }

  async updateRegisteredLimit(id: string, patch: Partial<Omit<RegisteredLimit, 'id'>>): Promise<RegisteredLimit> {
    await this.assertRefs(patch, 'registered_limit');
    return this.db.transaction().execute(async (tx) => {
      const current = await this.getRegisteredLimit(id, tx);
      await this.assertUnreferenced(tx, current);
      const next = { ...current, ...patch };
      if ((await this.registered(tx, next)).some((r) => r.id !== id)) throw duplicate('registered_limit');
      await tx.updateTable('registered_limit').set(registeredRow(next)).where('id', '=', id).execute();
      return next;
    });
  }

  async deleteRegisteredLimit(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await this.assertUnreferenced(tx, await this.getRegisteredLimit(id, tx));
      await tx.deleteFrom('registered_limit').where('id', '=', id).execute();
    });
  }

  private async assertUnreferenced(tx: Kysely<KeystoneDB>, r: RegisteredLimit): Promise<void> {
    if ((await this.limits(tx, resourceOf(r))).length) {
      throw forbidden(`Unable to update or delete registered limit ${r.id} because there are project limits associated with it.`);
    }
  }

  /** Registered limits matching the filter; a null region in it matches only region-less ones. */
  private registered(db: Kysely<KeystoneDB>, f: ResourceFilter) {
    return whereResource(db.selectFrom('registered_limit').selectAll(), f).orderBy('resource_name').execute();
  }

  // ---- limits ------------------------------------------------------------

  async findLimit(id: string): Promise<Limit | undefined> {
    const row = await this.db.selectFrom('project_limit').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toLimit(row);
  }

  async getLimit(id: string): Promise<Limit> {
    const limit = await this.findLimit(id);
    if (!limit) throw notFound(`Could not find limit for ${id}.`);
    return limit;
  }

  async listLimits(filter: LimitFilter = {}): Promise<Limit[]> {
    return (await this.limits(this.db, filter)).map(toLimit);
  }

  /**
   * Each limit needs its registered limit (403 otherwise, upstream's
   * NoLimitReference) and is unique per registered limit and project or
   * domain. A project id naming a domain makes a domain limit. The flat model
   * puts no bound on the values.
   */
  async createLimits(inputs: LimitCreate[]): Promise<Limit[]> {
    const resolved: LimitCreate[] = [];
    for (const input of inputs) resolved.push(await this.assertRefs(input, 'limit'));
    return this.db.transaction().execute(async (tx) => {
      const out: Limit[] = [];
      for (const input of resolved) {
        const l: Limit = {
          id: this.ks.ids.hex(),
          ...input,
          projectId: input.projectId ?? null,
          domainId: input.domainId ?? null,
          regionId: input.regionId ?? null,
          description: input.description ?? null,
        };
        if (!(await this.registered(tx, resourceOf(l))).length) throw forbidden('Unable to create a limit that has no corresponding registered limit.');
        const owner = l.projectId ? { projectId: l.projectId } : { domainId: l.domainId! };
        if ((await this.limits(tx, { ...resourceOf(l), ...owner })).length) throw duplicate('limit');
        await tx.insertInto('project_limit').values(limitRow(l)).execute();
        out.push(l);
      }
      return out;
    });
  }

  async updateLimit(id: string, patch: { resourceLimit?: number; description?: string | null }): Promise<Limit> {
    const next = { ...(await this.getLimit(id)), ...patch };
    await this.db.updateTable('project_limit').set(limitRow(next)).where('id', '=', id).execute();
    return next;
  }

  async deleteLimit(id: string): Promise<void> {
    await this.getLimit(id);
    await this.db.deleteFrom('project_limit').where('id', '=', id).execute();
  }

  private limits(db: Kysely<KeystoneDB>, f: LimitFilter) {
    let q = whereResource(db.selectFrom('project_limit').selectAll(), f);
    if (f.projectId !== undefined) q = q.where('project_id', '=', f.projectId);
    if (f.domainId !== undefined) q = q.where('domain_id', '=', f.domainId);
    return q.orderBy('resource_name').execute();
  }

  /**
   * Every service, region, project and domain a limit names must exist: 400
   * naming the attribute (upstream's _assert_resource_exist). Returns the input
   * with a domain given as project_id moved to domain_id.
   */
  private async assertRefs<T extends { serviceId?: string; regionId?: string | null; projectId?: string | null; domainId?: string | null }>(ref: T, kind: string): Promise<T> {
    const missing = (attribute: string) => expectingToFind(attribute, kind);
    const out = { ...ref };
    if (ref.serviceId !== undefined && !(await this.ks.catalog.findService(ref.serviceId))) throw missing('service_id');
    if (ref.regionId && !(await this.ks.catalog.findRegion(ref.regionId))) throw missing('region_id');
    if (ref.projectId) {
      const project = await this.ks.resource.findProject(ref.projectId);
      if (!project) throw missing('project_id');
      if (project.isDomain) {
        out.domainId = ref.projectId;
        delete out.projectId;
      }
    }
    if (out.domainId) {
      const domain = await this.ks.resource.findProject(out.domainId);
      if (!domain?.isDomain) throw missing('domain_id');
    }
    return out;
  }
}

/** Both limit tables carry the resource columns under the same names; the casts only tell Kysely so. */
function whereResource<Q>(query: Q, f: ResourceFilter): Q {
  let q = query as unknown as SelectQueryBuilder<KeystoneDB, 'registered_limit', object>;
  if (f.serviceId !== undefined) q = q.where('service_id', '=', f.serviceId);
  if (f.regionId !== undefined) q = f.regionId === null ? q.where('region_id', 'is', null) : q.where('region_id', '=', f.regionId);
  if (f.resourceName !== undefined) q = q.where('resource_name', '=', f.resourceName);
  return q as unknown as Q;
}

const resourceOf = (r: { serviceId: string; regionId: string | null; resourceName: string }): ResourceFilter => ({
  serviceId: r.serviceId,
  regionId: r.regionId,
  resourceName: r.resourceName,
});

function duplicate(kind: string) {
  return conflict(`Conflict occurred attempting to store ${kind} - Duplicate entry.`);
}

function registeredRow(r: RegisteredLimit): RegisteredLimitRow {
  return { id: r.id, service_id: r.serviceId, region_id: r.regionId, resource_name: r.resourceName, default_limit: r.defaultLimit, description: r.description };
}

function toRegisteredLimit(row: RegisteredLimitRow): RegisteredLimit {
  return {
    id: row.id,
    serviceId: row.service_id,
    regionId: row.region_id,
    resourceName: row.resource_name,
    defaultLimit: Number(row.default_limit),
    description: row.description,
  };
}

function limitRow(l: Limit): ProjectLimitRow {
  return {
    id: l.id,
    project_id: l.projectId,
    domain_id: l.domainId,
    service_id: l.serviceId,
    region_id: l.regionId,
    resource_name: l.resourceName,
    resource_limit: l.resourceLimit,
    description: l.description,
  };
}

function toLimit(row: ProjectLimitRow): Limit {
  return {
    id: row.id,
    projectId: row.project_id,
    domainId: row.domain_id,
    serviceId: row.service_id,
    regionId: row.region_id,
    resourceName: row.resource_name,
    resourceLimit: Number(row.resource_limit),
    description: row.description,
  };
}
