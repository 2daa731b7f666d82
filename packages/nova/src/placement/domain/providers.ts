import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate, isUniqueViolation, withTransaction, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { InventoryRow, PlacementDB, ResourceProviderRow } from '../db/schema.ts';
import type { Catalog } from './candidates.ts';
import { CODES, badRequest, conflict, notFound } from './errors.ts';
import { STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS } from './standard-names.ts';

/** db_const.MAX_INT: the largest inventory amount and max_unit's default. */
export const MAX_INT = 2147483647;

export type Provider = ResourceProviderRow;

export interface InventoryFields {
  total: number;
  reserved: number;
  minUnit: number;
  maxUnit: number;
  stepSize: number;
  allocationRatio: number;
}

export type Inventory = InventoryFields & { resourceClass: string };

/** Provider filters of GET /resource_providers; trait and aggregate sets are any-of within, all-of across. */
export interface ProviderFilters {
  uuid?: string;
  name?: string;
  inTree?: string;
  memberOf?: string[][];
  forbiddenAggs?: string[];
  requiredTraits?: string[][];
  forbiddenTraits?: string[];
  resources?: Record<string, number>;
}

const STANDARD_RC = new Set(STANDARD_RESOURCE_CLASSES);
const STANDARD_TRAIT = new Set(STANDARD_TRAITS);

export const isStandardResourceClass = (name: string) => STANDARD_RC.has(name);
export const isStandardTrait = (name: string) => STANDARD_TRAIT.has(name);

/** Capacity placement hands out: (total - reserved) * allocation_ratio, truncated as upstream's int(). */
export function capacityOf(inv: Pick<InventoryFields, 'total' | 'reserved' | 'allocationRatio'>): number {
  return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
}

export function inventoryFromRow(r: Omit<InventoryRow, 'created_at' | 'updated_at'>): Inventory {
  return {
    resourceClass: r.resource_class,
    total: Number(r.total),
    reserved: Number(r.reserved),
    minUnit: Number(r.min_unit),
    maxUnit: Number(r.max_unit),
    stepSize: Number(r.step_size),
    allocationRatio: Number(r.allocation_ratio),
  };
}

/** Why a provider's generation moved under a write: the caller answers 409 placement.concurrent_update. */
const providerChanged = () => conflict('resource provider generation conflict', CODES.CONCURRENT_UPDATE);

/**
 * Resource providers with their inventories, traits and aggregates, and the
 * custom resource classes and traits. Every change to what a provider offers
 * bumps its generation by compare-and-swap, so a writer holding a stale
 * generation loses with 409 instead of overwriting.
 */
export class Providers {
  constructor(
    readonly database: Database<PlacementDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  get db(): Kysely<PlacementDB> {
    return this.database.db;
  }

  tx<T>(fn: (trx: Kysely<PlacementDB>) => Promise<T>): Promise<T> {
    return withTransaction(this.database, fn);
  }

  // ---- providers ----

  async get(uuid: string, db: Kysely<PlacementDB> = this.db): Promise<Provider | undefined> {
    const row = await db.selectFrom('resource_providers').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    return row ? normalizeProvider(row) : undefined;
  }

  async require(uuid: string, db: Kysely<PlacementDB> = this.db): Promise<Provider> {
    const rp = await this.get(uuid, db);
    if (!rp) throw notFound(`No resource provider with uuid ${uuid} found`, CODES.RESOURCE_PROVIDER_NOT_FOUND);
    return rp;
  }

  async create(input: { uuid?: string; name: string; parentProviderUuid?: string | null }): Promise<Provider> {
    const uuid = input.uuid ?? this.ids.uuid();
    const now = this.clock.now();
    try {
      return await this.tx(async (trx) => {
        let root = uuid;
        if (input.parentProviderUuid) {
          const parent = await this.get(input.parentProviderUuid, trx);
          if (!parent) {
            throw badRequest(
              `Unable to create resource provider "${input.name}", ${uuid}: Object action create failed because: parent provider UUID does not exist.`,
            );
          }
          root = parent.root_provider_uuid;
        }
        const row: ResourceProviderRow = {
          uuid,
          name: input.name,
          generation: 0,
          parent_provider_uuid: input.parentProviderUuid ?? null,
          root_provider_uuid: root,
          created_at: now,
          updated_at: now,
        };
        await trx.insertInto('resource_providers').values(row).execute();
        await this.changed(trx);
        return row;
      });
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      const dup = await this.duplicateOf(uuid, input.name);
      throw conflict(`Conflicting resource provider ${dup} already exists.`, CODES.DUPLICATE_NAME);
    }
  }

  private async duplicateOf(uuid: string, name: string): Promise<string> {
    const parts: string[] = [];
    if (await this.get(uuid)) parts.push(`uuid: ${uuid}`);
    if (await this.db.selectFrom('resource_providers').select('uuid').where('name', '=', name).executeTakeFirst()) parts.push(`name: ${name}`);
    return parts.join(', ') || `name: ${name}`;
  }

  /** PUT /resource_providers/{uuid}: name, and the parent (set once before 1.37, moved or removed from 1.37). */
  async update(uuid: string, changes: { name: string; parentProviderUuid?: string | null }, allowReparenting: boolean): Promise<Provider> {
    try {
      return await this.tx(async (trx) => {
        const rp = await this.require(uuid, trx);
        let parent = rp.parent_provider_uuid;
        let root = rp.root_provider_uuid;
        if (changes.parentProviderUuid !== undefined && changes.parentProviderUuid !== rp.parent_provider_uuid) {
          const wanted = changes.parentProviderUuid;
          if (!allowReparenting && rp.parent_provider_uuid !== null) {
            throw badRequest(`Unable to save resource provider ${uuid}: Object action update failed because: re-parenting a provider is not currently allowed.`);
          }
          if (!allowReparenting && wanted === null) {
            throw badRequest(`Unable to save resource provider ${uuid}: Object action update failed because: un-parenting a provider is not currently allowed.`);
          }
          if (wanted !== null) {
            const newParent = await this.get(wanted, trx);
            if (!newParent) throw badRequest(`Unable to save resource provider ${uuid}: Object action update failed because: parent provider UUID does not exist.`);
            if (await this.isInSubtree(trx, wanted, uuid)) {
              throw badRequest(`Unable to save resource provider ${uuid}: Object action update failed because: creating loop in the provider tree is not allowed.`);
            }
            root = newParent.root_provider_uuid;
          } else {
            root = uuid;
          }
          parent = wanted;
        }
        const now = this.clock.now();
        const n = await casUpdate(trx, 'resource_providers', {
          set: { name: changes.name, parent_provider_uuid: parent, root_provider_uuid: root, updated_at: now, generation: rp.generation + 1 },
          where: { uuid, generation: rp.generation },
        });
        if (n !== 1) throw providerChanged();
        if (root !== rp.root_provider_uuid) await this.setRootOfSubtree(trx, uuid, root);
        await this.changed(trx);
        return { ...rp, name: changes.name, parent_provider_uuid: parent, root_provider_uuid: root, updated_at: now, generation: rp.generation + 1 };
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Conflicting resource provider ${changes.name} already exists.`, CODES.DUPLICATE_NAME);
      throw e;
    }
  }

  private async descendants(db: Kysely<PlacementDB>, uuid: string): Promise<string[]> {
    const out: string[] = [];
    let frontier = [uuid];
    while (frontier.length) {
      const kids = await db.selectFrom('resource_providers').select('uuid').where('parent_provider_uuid', 'in', frontier).execute();
      frontier = kids.map((k) => k.uuid);
      out.push(...frontier);
    }
    return out;
  }

  private async isInSubtree(db: Kysely<PlacementDB>, candidate: string, top: string): Promise<boolean> {
    return candidate === top || (await this.descendants(db, top)).includes(candidate);
  }

  private async setRootOfSubtree(db: Kysely<PlacementDB>, uuid: string, root: string): Promise<void> {
    const all = [uuid, ...(await this.descendants(db, uuid))];
    await db.updateTable('resource_providers').set({ root_provider_uuid: root }).where('uuid', 'in', all).execute();
  }

  async delete(uuid: string): Promise<void> {
    await this.tx(async (trx) => {
      const rp = await this.get(uuid, trx);
      if (!rp) throw notFound(`No resource provider with uuid ${uuid} found for delete`);
      const used = await trx.selectFrom('allocations').select('consumer_uuid').where('resource_provider_uuid', '=', uuid).where('used', '>', 0).executeTakeFirst();
      if (used) throw conflict(`Unable to delete resource provider ${uuid}: Resource provider has allocations.`, CODES.PROVIDER_IN_USE);
      const child = await trx.selectFrom('resource_providers').select('uuid').where('parent_provider_uuid', '=', uuid).executeTakeFirst();
      if (child) throw conflict(`Unable to delete parent resource provider ${uuid}: It has child resource providers.`, CODES.PROVIDER_CANNOT_DELETE_PARENT);
      for (const table of ['inventories', 'resource_provider_traits', 'resource_provider_aggregates', 'allocations'] as const) {
        await trx.deleteFrom(table).where('resource_provider_uuid', '=', uuid).execute();
      }
      // The generation read first: a claim that committed since makes this match nothing.
      const res = await trx.deleteFrom('resource_providers').where('uuid', '=', uuid).where('generation', '=', rp.generation).executeTakeFirst();
      if (Number(res.numDeletedRows) !== 1) throw providerChanged();
      await this.changed(trx);
    });
  }

  async list(f: ProviderFilters): Promise<Provider[]> {
    let q = this.db.selectFrom('resource_providers').selectAll();
    if (f.uuid) q = q.where('uuid', '=', f.uuid);
    if (f.name) q = q.where('name', '=', f.name);
    if (f.inTree) {
      const anchor = await this.get(f.inTree);
      if (!anchor) return [];
      q = q.where('root_provider_uuid', '=', anchor.root_provider_uuid);
    }
    let rows = (await q.orderBy('created_at').orderBy('uuid').execute()).map(normalizeProvider);
    if (f.memberOf?.length || f.forbiddenAggs?.length) {
      const aggs = await this.aggregatesByProvider(rows.map((r) => r.uuid));
      rows = rows.filter((r) => {
        const mine = aggs.get(r.uuid) ?? new Set<string>();
        return (f.memberOf ?? []).every((anyOf) => anyOf.some((a) => mine.has(a))) && !(f.forbiddenAggs ?? []).some((a) => mine.has(a));
      });
    }
    if (f.requiredTraits?.length || f.forbiddenTraits?.length) {
      const traits = await this.traitsByProvider(rows.map((r) => r.uuid));
      rows = rows.filter((r) => {
        const mine = traits.get(r.uuid) ?? new Set<string>();
        return (f.requiredTraits ?? []).every((anyOf) => anyOf.some((t) => mine.has(t))) && !(f.forbiddenTraits ?? []).some((t) => mine.has(t));
      });
    }
    if (f.resources && Object.keys(f.resources).length) {
      const wanted = f.resources;
      const invs = await this.inventoriesOf(rows.map((r) => r.uuid));
      const usage = await this.usageOf(rows.map((r) => r.uuid));
      rows = rows.filter((r) =>
        Object.entries(wanted).every(([rc, amount]) => {
          const inv = invs.get(r.uuid)?.find((i) => i.resourceClass === rc);
          if (!inv) return false;
          const used = usage.get(r.uuid)?.get(rc) ?? 0;
          return used + amount <= capacityOf(inv) && amount >= inv.minUnit && amount <= inv.maxUnit && amount % inv.stepSize === 0;
        }),
      );
    }
    return rows;
  }

  /** Bumps a provider's generation from `expected` (CAS): throws 409 concurrent_update when it moved. */
  async bump(trx: Kysely<PlacementDB>, uuid: string, expected: number, conflictError = providerChanged): Promise<number> {
    const n = await casUpdate(trx, 'resource_providers', { set: { generation: expected + 1, updated_at: this.clock.now() }, where: { uuid, generation: expected } });
    if (n !== 1) throw conflictError();
    return expected + 1;
  }

  /**
   * Moves the placement-wide change counter on (see migration 002): the last statement of every
   * transaction that changes what allocation candidates are computed from, so a transaction
   * holding the counter's row lock waits for nothing else (no lock cycle on PostgreSQL or MariaDB).
   */
  async changed(trx: Kysely<PlacementDB>): Promise<void> {
    await trx.updateTable('placement_changes').set((eb) => ({ counter: eb('counter', '+', 1) })).where('id', '=', 1).execute();
  }

  private cachedCatalog?: { counter: number; catalog: Promise<Catalog> };

  /**
   * Every provider with its tree, inventories, traits and aggregates, read again only when the
   * change counter moved. The counter is read first: a change committed while the catalog is
   * read is in it or makes the next request read it again, never lost.
   */
  async catalog(): Promise<Catalog> {
    const row = await this.db.selectFrom('placement_changes').select('counter').where('id', '=', 1).executeTakeFirstOrThrow();
    const counter = Number(row.counter);
    const cached = this.cachedCatalog;
    if (cached?.counter === counter) return cached.catalog;
    const catalog = this.readCatalog();
    this.cachedCatalog = { counter, catalog };
    catalog.catch(() => {
      if (this.cachedCatalog?.catalog === catalog) this.cachedCatalog = undefined;
    });
    return catalog;
  }

  private async readCatalog(): Promise<Catalog> {
    const db = this.db;
    const rows = await db.selectFrom('resource_providers').select(['uuid', 'parent_provider_uuid', 'root_provider_uuid']).orderBy('created_at').orderBy('uuid').execute();
    const providers = rows.map((p) => ({ uuid: p.uuid, parent: p.parent_provider_uuid, root: p.root_provider_uuid }));
    const inventories = new Map<string, Inventory[]>();
    // The columns a candidate needs, not the timestamps.
    const inventoryRows = await db
      .selectFrom('inventories')
      .select(['resource_provider_uuid', 'resource_class', 'total', 'reserved', 'min_unit', 'max_unit', 'step_size', 'allocation_ratio'])
      .orderBy('resource_class')
      .execute();
    for (const r of inventoryRows) (inventories.get(r.resource_provider_uuid) ?? inventories.set(r.resource_provider_uuid, []).get(r.resource_provider_uuid)!).push(inventoryFromRow(r));
    const traits = new Map<string, Set<string>>();
    for (const r of await db.selectFrom('resource_provider_traits').selectAll().execute()) {
      (traits.get(r.resource_provider_uuid) ?? traits.set(r.resource_provider_uuid, new Set()).get(r.resource_provider_uuid)!).add(r.trait);
    }
    const aggregates = new Map<string, Set<string>>();
    for (const r of await db.selectFrom('resource_provider_aggregates').selectAll().execute()) {
      (aggregates.get(r.resource_provider_uuid) ?? aggregates.set(r.resource_provider_uuid, new Set()).get(r.resource_provider_uuid)!).add(r.aggregate_uuid);
    }
    return { providers, byUuid: new Map(providers.map((p) => [p.uuid, p])), inventories, traits, aggregates };
  }

  /** Amounts allocated per provider and class, of every provider. */
  async allUsage(): Promise<Map<string, Map<string, number>>> {
    const usage = new Map<string, Map<string, number>>();
    const sums = await this.db
      .selectFrom('allocations')
      .select(['resource_provider_uuid', 'resource_class'])
      .select((eb) => eb.fn.sum<number>('used').as('used'))
      .groupBy(['resource_provider_uuid', 'resource_class'])
      .execute();
    for (const r of sums) (usage.get(r.resource_provider_uuid) ?? usage.set(r.resource_provider_uuid, new Map()).get(r.resource_provider_uuid)!).set(r.resource_class, Number(r.used));
    return usage;
  }

  // ---- inventories ----

  async inventoriesOf(uuids: string[], db: Kysely<PlacementDB> = this.db): Promise<Map<string, Inventory[]>> {
    const out = new Map<string, Inventory[]>();
    if (!uuids.length) return out;
    for (const chunk of chunks(uuids)) {
      const rows = await db.selectFrom('inventories').selectAll().where('resource_provider_uuid', 'in', chunk).orderBy('resource_class').execute();
      for (const r of rows) (out.get(r.resource_provider_uuid) ?? out.set(r.resource_provider_uuid, []).get(r.resource_provider_uuid)!).push(inventoryFromRow(r));
    }
    return out;
  }

  async inventories(uuid: string, db: Kysely<PlacementDB> = this.db): Promise<Inventory[]> {
    return (await this.inventoriesOf([uuid], db)).get(uuid) ?? [];
  }

  /** Amounts allocated per provider and class. */
  async usageOf(uuids: string[], db: Kysely<PlacementDB> = this.db): Promise<Map<string, Map<string, number>>> {
    const out = new Map<string, Map<string, number>>();
    for (const chunk of chunks(uuids)) {
      const rows = await db
        .selectFrom('allocations')
        .select(['resource_provider_uuid', 'resource_class'])
        .select((eb) => eb.fn.sum<number>('used').as('used'))
        .where('resource_provider_uuid', 'in', chunk)
        .groupBy(['resource_provider_uuid', 'resource_class'])
        .execute();
      for (const r of rows) (out.get(r.resource_provider_uuid) ?? out.set(r.resource_provider_uuid, new Map()).get(r.resource_provider_uuid)!).set(r.resource_class, Number(r.used));
    }
    return out;
  }

  /**
   * Replaces a provider's whole inventory (PUT …/inventories, DELETE …/inventories
   * with []), refusing to drop a class that has allocations.
   */
  async setInventories(uuid: string, generation: number, inventories: Inventory[]): Promise<{ generation: number; inventories: Inventory[] }> {
    for (const inv of inventories) await this.requireResourceClass(inv.resourceClass, `Unknown resource class in inventory for resource provider ${uuid}: No such resource class ${inv.resourceClass}.`);
    return this.tx(async (trx) => {
      const rp = await this.require(uuid, trx);
      if (rp.generation !== generation) throw providerChanged();
      const existing = await this.inventories(uuid, trx);
      await this.dropOtherInventories(trx, uuid, new Set(inventories.map((i) => i.resourceClass)), inventories.length ? 'update conflict: ' : '');
      await this.upsertInventories(trx, uuid, inventories, existing);
      const gen = await this.bump(trx, uuid, generation);
      const stored = await this.inventories(uuid, trx);
      await this.changed(trx);
      return { generation: gen, inventories: stored };
    });
  }

  /** Writes these inventories (insert or update), leaving the provider's other classes alone. */
  async upsertInventories(trx: Kysely<PlacementDB>, uuid: string, inventories: Inventory[], existing?: Inventory[]): Promise<void> {
    const had = new Set((existing ?? (await this.inventories(uuid, trx))).map((e) => e.resourceClass));
    const now = this.clock.now();
    for (const inv of inventories) {
      const values = inventoryRow(uuid, inv, now);
      if (had.has(inv.resourceClass)) {
        const { created_at: _c, resource_provider_uuid: _r, resource_class: _k, ...set } = values;
        await trx.updateTable('inventories').set(set).where('resource_provider_uuid', '=', uuid).where('resource_class', '=', inv.resourceClass).execute();
      } else {
        await trx.insertInto('inventories').values(values).execute();
      }
    }
  }

  /** Drops the classes of a provider not in `keep`: 409 inventory.inuse when one still has allocations. */
  async dropOtherInventories(trx: Kysely<PlacementDB>, uuid: string, keep: Set<string>, prefix: string): Promise<void> {
    const dropped = (await this.inventories(uuid, trx)).filter((i) => !keep.has(i.resourceClass)).map((i) => i.resourceClass);
    if (!dropped.length) return;
    const usage = (await this.usageOf([uuid], trx)).get(uuid) ?? new Map<string, number>();
    const inUse = dropped.filter((rc) => (usage.get(rc) ?? 0) > 0);
    if (inUse.length) throw conflict(`${prefix}Inventory for '${inUse.join(', ')}' on resource provider '${uuid}' in use.`, CODES.INVENTORY_INUSE);
    await trx.deleteFrom('inventories').where('resource_provider_uuid', '=', uuid).where('resource_class', 'in', dropped).execute();
  }

  /** POST …/inventories: one new class; 409 when it exists (upstream's DBDuplicateEntry). */
  async addInventory(uuid: string, generation: number, inv: Inventory): Promise<{ generation: number; inventory: Inventory }> {
    await this.requireResourceClass(inv.resourceClass, `Unable to create inventory for resource provider ${uuid}: No such resource class ${inv.resourceClass}.`);
    try {
      return await this.tx(async (trx) => {
        const rp = await this.require(uuid, trx);
        if (rp.generation !== generation) throw conflict('Update conflict: Another thread concurrently updated the data. Please retry your update', CODES.CONCURRENT_UPDATE);
        await trx.insertInto('inventories').values(inventoryRow(uuid, inv, this.clock.now())).execute();
        const gen = await this.bump(trx, uuid, generation);
        await this.changed(trx);
        return { generation: gen, inventory: inv };
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Update conflict: Inventory for '${inv.resourceClass}' on resource provider '${uuid}' already exists.`, CODES.CONCURRENT_UPDATE);
      throw e;
    }
  }

  /** PUT …/inventories/{rc}: updates one existing class. */
  async updateInventory(uuid: string, generation: number, inv: Inventory): Promise<{ generation: number; inventory: Inventory }> {
    await this.requireResourceClass(inv.resourceClass, `No such resource class ${inv.resourceClass}.`);
    return this.tx(async (trx) => {
      const rp = await this.require(uuid, trx);
      if (rp.generation !== generation) throw conflict('resource provider generation conflict', CODES.CONCURRENT_UPDATE);
      const { created_at: _c, resource_provider_uuid: _r, resource_class: _k, ...set } = inventoryRow(uuid, inv, this.clock.now());
      const res = await trx.updateTable('inventories').set(set).where('resource_provider_uuid', '=', uuid).where('resource_class', '=', inv.resourceClass).executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) {
        throw badRequest(`No inventory record with resource class for resource provider ${uuid}: No inventory of class ${inv.resourceClass} found.`);
      }
      const gen = await this.bump(trx, uuid, generation);
      await this.changed(trx);
      return { generation: gen, inventory: inv };
    });
  }

  /** DELETE …/inventories/{rc}. */
  async deleteInventory(uuid: string, resourceClass: string): Promise<void> {
    await this.tx(async (trx) => {
      const rp = await this.require(uuid, trx);
      const usage = (await this.usageOf([uuid], trx)).get(uuid)?.get(resourceClass) ?? 0;
      if (usage > 0) {
        throw conflict(`Unable to delete inventory of class ${resourceClass}: Inventory for '${resourceClass}' on resource provider '${uuid}' in use.`, CODES.CONCURRENT_UPDATE);
      }
      const res = await trx.deleteFrom('inventories').where('resource_provider_uuid', '=', uuid).where('resource_class', '=', resourceClass).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) {
        throw notFound(`No inventory of class ${resourceClass} found for delete: No inventory of class ${resourceClass} found.`);
      }
      await this.bump(trx, uuid, rp.generation);
      await this.changed(trx);
    });
  }

  // ---- resource classes ----

  async resourceClassExists(name: string, db: Kysely<PlacementDB> = this.db): Promise<boolean> {
    if (STANDARD_RC.has(name)) return true;
    return !!(await db.selectFrom('resource_classes').select('name').where('name', '=', name).executeTakeFirst());
  }

  private async requireResourceClass(name: string, message: string): Promise<void> {
    if (!(await this.resourceClassExists(name))) throw badRequest(message);
  }

  async listResourceClasses(): Promise<string[]> {
    const custom = await this.db.selectFrom('resource_classes').select('name').orderBy('created_at').orderBy('name').execute();
    return [...STANDARD_RESOURCE_CLASSES, ...custom.map((c) => c.name)];
  }

  /** Creates a custom class; false when it already existed. */
  async createResourceClass(name: string): Promise<boolean> {
    if (STANDARD_RC.has(name)) return false;
    const now = this.clock.now();
    try {
      await this.db.insertInto('resource_classes').values({ name, created_at: now, updated_at: now }).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async renameResourceClass(from: string, to: string): Promise<void> {
    if (STANDARD_RC.has(from)) throw badRequest(`Cannot update standard resource class ${from}`);
    try {
      await this.tx(async (trx) => {
        const res = await trx.updateTable('resource_classes').set({ name: to, updated_at: this.clock.now() }).where('name', '=', from).executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) throw notFound(`No such resource class ${from}.`);
        await trx.updateTable('inventories').set({ resource_class: to }).where('resource_class', '=', from).execute();
        await trx.updateTable('allocations').set({ resource_class: to }).where('resource_class', '=', from).execute();
        await this.changed(trx);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Resource class already exists: ${to}`, CODES.DUPLICATE_NAME);
      throw e;
    }
  }

  async deleteResourceClass(name: string): Promise<void> {
    if (STANDARD_RC.has(name)) throw badRequest(`Cannot delete standard resource class ${name}: Cannot delete standard resource class ${name}.`);
    await this.tx(async (trx) => {
      const used = await trx.selectFrom('inventories').select('resource_provider_uuid').where('resource_class', '=', name).executeTakeFirst();
      if (used) throw conflict(`Unable to delete resource class ${name}: Cannot delete resource class ${name}. Class is in use in inventory.`);
      const res = await trx.deleteFrom('resource_classes').where('name', '=', name).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw notFound(`No such resource class ${name}.`);
    });
  }

  // ---- traits ----

  async traitExists(name: string): Promise<boolean> {
    if (STANDARD_TRAIT.has(name)) return true;
    return !!(await this.db.selectFrom('traits').select('name').where('name', '=', name).executeTakeFirst());
  }

  /** The names among `names` that are no trait at all. */
  async unknownTraits(names: Iterable<string>): Promise<string[]> {
    const custom = [...new Set(names)].filter((n) => !STANDARD_TRAIT.has(n));
    if (!custom.length) return [];
    const found = new Set((await this.db.selectFrom('traits').select('name').where('name', 'in', custom).execute()).map((r) => r.name));
    return custom.filter((n) => !found.has(n));
  }

  async listTraits(filter: { startsWith?: string; in?: string[]; associated?: boolean }): Promise<string[]> {
    const custom = (await this.db.selectFrom('traits').select('name').orderBy('name').execute()).map((r) => r.name);
    let all = [...STANDARD_TRAITS, ...custom];
    if (filter.startsWith !== undefined) all = all.filter((n) => n.startsWith(filter.startsWith!));
    if (filter.in) {
      const wanted = new Set(filter.in);
      all = all.filter((n) => wanted.has(n));
    }
    if (filter.associated !== undefined) {
      const used = new Set((await this.db.selectFrom('resource_provider_traits').select('trait').distinct().execute()).map((r) => r.trait));
      all = all.filter((n) => used.has(n) === filter.associated);
    }
    return all;
  }

  async createTrait(name: string): Promise<boolean> {
    const now = this.clock.now();
    try {
      await this.db.insertInto('traits').values({ name, created_at: now, updated_at: now }).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async deleteTrait(name: string): Promise<void> {
    if (STANDARD_TRAIT.has(name)) throw badRequest(`Cannot delete standard trait ${name}.`);
    await this.tx(async (trx) => {
      const used = await trx.selectFrom('resource_provider_traits').select('trait').where('trait', '=', name).executeTakeFirst();
      if (used) throw conflict(`The trait ${name} is in use by a resource provider.`);
      const res = await trx.deleteFrom('traits').where('name', '=', name).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw notFound(`No such trait(s): ${name}.`);
    });
  }

  async traitsByProvider(uuids: string[], db: Kysely<PlacementDB> = this.db): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const chunk of chunks(uuids)) {
      for (const r of await db.selectFrom('resource_provider_traits').selectAll().where('resource_provider_uuid', 'in', chunk).execute()) {
        (out.get(r.resource_provider_uuid) ?? out.set(r.resource_provider_uuid, new Set()).get(r.resource_provider_uuid)!).add(r.trait);
      }
    }
    return out;
  }

  async providerTraits(uuid: string): Promise<string[]> {
    return [...((await this.traitsByProvider([uuid])).get(uuid) ?? [])].sort();
  }

  async setProviderTraits(uuid: string, generation: number | undefined, traits: string[]): Promise<number> {
    const unknown = await this.unknownTraits(traits);
    if (unknown.length) throw badRequest(`No such trait(s): ${unknown.join(', ')}.`);
    return this.tx(async (trx) => {
      const rp = await this.require(uuid, trx);
      const expected = generation ?? rp.generation;
      if (rp.generation !== expected) throw providerTraitsChanged();
      await trx.deleteFrom('resource_provider_traits').where('resource_provider_uuid', '=', uuid).execute();
      const unique = [...new Set(traits)];
      if (unique.length) await trx.insertInto('resource_provider_traits').values(unique.map((trait) => ({ resource_provider_uuid: uuid, trait }))).execute();
      const gen = await this.bump(trx, uuid, expected, providerTraitsChanged);
      await this.changed(trx);
      return gen;
    });
  }

  // ---- aggregates ----

  async aggregatesByProvider(uuids: string[], db: Kysely<PlacementDB> = this.db): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const chunk of chunks(uuids)) {
      for (const r of await db.selectFrom('resource_provider_aggregates').selectAll().where('resource_provider_uuid', 'in', chunk).execute()) {
        (out.get(r.resource_provider_uuid) ?? out.set(r.resource_provider_uuid, new Set()).get(r.resource_provider_uuid)!).add(r.aggregate_uuid);
      }
    }
    return out;
  }

  async providerAggregates(uuid: string): Promise<string[]> {
    return [...((await this.aggregatesByProvider([uuid])).get(uuid) ?? [])].sort();
  }

  /** Replaces the aggregates; `generation` (1.19+) is checked and bumped, older microversions leave it be. */
  async setProviderAggregates(uuid: string, generation: number | undefined, aggregates: string[]): Promise<number> {
    return this.tx(async (trx) => {
      const rp = await this.require(uuid, trx);
      if (generation !== undefined && rp.generation !== generation) throw providerTraitsChanged();
      await trx.deleteFrom('resource_provider_aggregates').where('resource_provider_uuid', '=', uuid).execute();
      const unique = [...new Set(aggregates)];
      if (unique.length) await trx.insertInto('resource_provider_aggregates').values(unique.map((a) => ({ resource_provider_uuid: uuid, aggregate_uuid: a }))).execute();
      const gen = generation === undefined ? rp.generation : await this.bump(trx, uuid, generation, providerTraitsChanged);
      await this.changed(trx);
      return gen;
    });
  }
}

const providerTraitsChanged = () =>
  conflict("Resource provider's generation already changed. Please update the generation and try again.", CODES.CONCURRENT_UPDATE);

function inventoryRow(uuid: string, inv: Inventory, now: number): InventoryRow {
  return {
    resource_provider_uuid: uuid,
    resource_class: inv.resourceClass,
    total: inv.total,
    reserved: inv.reserved,
    min_unit: inv.minUnit,
    max_unit: inv.maxUnit,
    step_size: inv.stepSize,
    allocation_ratio: inv.allocationRatio,
    created_at: now,
    updated_at: now,
  };
}

/** Drivers hand BIGINT back as strings on some dialects; the rest of placement wants numbers. */
export function normalizeProvider(r: ResourceProviderRow): Provider {
  return { ...r, generation: Number(r.generation), created_at: Number(r.created_at), updated_at: Number(r.updated_at) };
}

/** IN lists stay well under every dialect's bound-parameter limit. */
export function chunks<T>(items: T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
