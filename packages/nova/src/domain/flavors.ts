import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { boolFromDb, boolToDb, isUniqueViolation, jsonFromDb, jsonToDb, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { FlavorRow, NovaDB } from '../db/schema.ts';
import { conflict, flavorNotFound, notFound } from './errors.ts';

export interface Flavor {
  id: string;
  name: string;
  ram: number;
  vcpus: number;
  disk: number;
  ephemeral: number;
  swap: number;
  rxtxFactor: number;
  isPublic: boolean;
  disabled: boolean;
  description: string | null;
  extraSpecs: Record<string, string>;
}

export interface NewFlavor {
  id?: string;
  name: string;
  ram: number;
  vcpus: number;
  disk: number;
  ephemeral?: number;
  swap?: number;
  rxtxFactor?: number;
  isPublic?: boolean;
  description?: string | null;
}

/** Devstack's m1.* flavors, scaled for the onestack guest (128–256 MiB boots in seconds under TCG). */
export const DEFAULT_FLAVORS: NewFlavor[] = [
  { id: '42', name: 'm1.nano', ram: 128, vcpus: 1, disk: 1 },
  { id: '84', name: 'm1.micro', ram: 192, vcpus: 1, disk: 1 },
  { id: '1', name: 'm1.tiny', ram: 256, vcpus: 1, disk: 1 },
  { id: '2', name: 'm1.small', ram: 512, vcpus: 1, disk: 2 },
  { id: '3', name: 'm1.medium', ram: 1024, vcpus: 2, disk: 5 },
];

export function flavorFromRow(r: FlavorRow): Flavor {
  return {
    id: r.flavorid,
    name: r.name,
    ram: r.memory_mb,
    vcpus: r.vcpus,
    disk: r.root_gb,
    ephemeral: r.ephemeral_gb,
    swap: r.swap,
    rxtxFactor: Number(r.rxtx_factor),
    isPublic: boolFromDb(r.is_public),
    disabled: boolFromDb(r.disabled),
    description: r.description,
    extraSpecs: jsonFromDb<Record<string, string>>(r.extra_specs),
  };
}

export async function insertFlavor(db: Kysely<NovaDB>, f: NewFlavor & { id: string }, now: number): Promise<void> {
  await db
    .insertInto('flavors')
    .values({
      flavorid: f.id,
      name: f.name,
      memory_mb: f.ram,
      vcpus: f.vcpus,
      root_gb: f.disk,
      ephemeral_gb: f.ephemeral ?? 0,
      swap: f.swap ?? 0,
      rxtx_factor: f.rxtxFactor ?? 1,
      is_public: boolToDb(f.isPublic ?? true),
      disabled: 0,
      description: f.description ?? null,
      extra_specs: jsonToDb({}),
      created_at: now,
      updated_at: now,
    })
    .execute();
}

export interface FlavorViewer {
  projectId?: string;
  isAdmin: boolean;
}

export class Flavors {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  private get db() {
    return this.database.db;
  }

  async create(f: NewFlavor): Promise<Flavor> {
    const id = f.id ?? this.ids.uuid();
    const byName = await this.db.selectFrom('flavors').select('flavorid').where('name', '=', f.name).executeTakeFirst();
    if (byName) throw conflict(`Flavor with name ${f.name} already exists.`);
    const byId = await this.db.selectFrom('flavors').select('flavorid').where('flavorid', '=', id).executeTakeFirst();
    if (byId) throw conflict(`Flavor with ID ${id} already exists.`);
    try {
      await insertFlavor(this.db, { ...f, id }, this.clock.now());
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Flavor with name ${f.name} already exists.`);
      throw e;
    }
    return this.get(id);
  }

  async get(id: string): Promise<Flavor> {
    const row = await this.db.selectFrom('flavors').selectAll().where('flavorid', '=', id).executeTakeFirst();
    if (!row) throw flavorNotFound(id);
    return flavorFromRow(row);
  }

  /** A flavor the viewer may use: public, or private with access for their project (admins see all). */
  async getVisible(id: string, v: FlavorViewer): Promise<Flavor> {
    const f = await this.get(id);
    if (!f.isPublic && !v.isAdmin && !(await this.hasAccess(id, v.projectId))) throw flavorNotFound(id);
    return f;
  }

  private async hasAccess(id: string, projectId?: string): Promise<boolean> {
    if (!projectId) return false;
    return !!(await this.db.selectFrom('flavor_projects').select('flavorid').where('flavorid', '=', id).where('project_id', '=', projectId).executeTakeFirst());
  }

  async list(v: FlavorViewer, o: { isPublic?: boolean | null; minRam?: number; minDisk?: number; sortKey?: string; sortDir?: 'asc' | 'desc'; limit?: number; marker?: string }): Promise<Flavor[]> {
    const sortKey = ({ flavorid: 'flavorid', id: 'flavorid', name: 'name', memory_mb: 'memory_mb', ram: 'memory_mb', vcpus: 'vcpus', root_gb: 'root_gb', disk: 'root_gb', swap: 'swap', ephemeral_gb: 'ephemeral_gb', rxtx_factor: 'rxtx_factor', created_at: 'created_at' } as const)[o.sortKey ?? 'flavorid'] ?? 'flavorid';
    let q = this.db.selectFrom('flavors').selectAll().where('disabled', '=', 0);
    if (o.minRam !== undefined) q = q.where('memory_mb', '>=', o.minRam);
    if (o.minDisk !== undefined) q = q.where('root_gb', '>=', o.minDisk);
    let rows = await q.orderBy(sortKey, o.sortDir ?? 'asc').orderBy('flavorid', 'asc').execute();
    // Upstream: non-admins see public flavors and private ones shared with them; admins choose with is_public (None: all).
    const access = v.projectId ? new Set((await this.db.selectFrom('flavor_projects').select('flavorid').where('project_id', '=', v.projectId).execute()).map((r) => r.flavorid)) : new Set<string>();
    if (!v.isAdmin) rows = rows.filter((r) => boolFromDb(r.is_public) || access.has(r.flavorid));
    else if (o.isPublic === true || o.isPublic === undefined) rows = rows.filter((r) => boolFromDb(r.is_public) || access.has(r.flavorid));
    else if (o.isPublic === false) rows = rows.filter((r) => !boolFromDb(r.is_public));
    if (o.marker !== undefined) {
      const i = rows.findIndex((r) => r.flavorid === o.marker);
      if (i < 0) throw notFound(`Marker ${o.marker} could not be found.`);
      rows = rows.slice(i + 1);
    }
    if (o.limit !== undefined) rows = rows.slice(0, o.limit);
    return rows.map(flavorFromRow);
  }

  async update(id: string, description: string | null): Promise<Flavor> {
    await this.get(id);
    await this.db.updateTable('flavors').set({ description, updated_at: this.clock.now() }).where('flavorid', '=', id).execute();
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    await this.db.deleteFrom('flavor_projects').where('flavorid', '=', id).execute();
    await this.db.deleteFrom('flavors').where('flavorid', '=', id).execute();
  }

  async setExtraSpecs(id: string, specs: Record<string, string>): Promise<Record<string, string>> {
    const f = await this.get(id);
    const merged = { ...f.extraSpecs, ...specs };
    await this.db.updateTable('flavors').set({ extra_specs: jsonToDb(merged), updated_at: this.clock.now() }).where('flavorid', '=', id).execute();
    return merged;
  }

  async deleteExtraSpec(id: string, key: string): Promise<void> {
    const f = await this.get(id);
    if (!(key in f.extraSpecs)) throw notFound(`Flavor ${id} has no extra specs with key ${key}.`);
    const rest = { ...f.extraSpecs };
    delete rest[key];
    await this.db.updateTable('flavors').set({ extra_specs: jsonToDb(rest), updated_at: this.clock.now() }).where('flavorid', '=', id).execute();
  }

  async accessList(id: string): Promise<string[]> {
    const f = await this.get(id);
    if (f.isPublic) throw notFound('Access list not available for public flavors.');
    return (await this.db.selectFrom('flavor_projects').select('project_id').where('flavorid', '=', id).orderBy('project_id').execute()).map((r) => r.project_id);
  }

  async addAccess(id: string, projectId: string): Promise<string[]> {
    const f = await this.get(id);
    if (f.isPublic) throw conflict('Can not add access to a public flavor.');
    try {
      await this.db.insertInto('flavor_projects').values({ flavorid: id, project_id: projectId }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Flavor access already exists for flavor ${id} and project ${projectId} combination.`);
      throw e;
    }
    return this.accessList(id);
  }

  async removeAccess(id: string, projectId: string): Promise<string[]> {
    await this.get(id);
    const n = await this.db.deleteFrom('flavor_projects').where('flavorid', '=', id).where('project_id', '=', projectId).executeTakeFirst();
    if (Number(n.numDeletedRows) === 0) throw notFound(`Flavor access not found for ${id} / ${projectId} combination.`);
    return this.accessList(id);
  }
}
