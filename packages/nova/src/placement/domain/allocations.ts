import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate, isUniqueViolation } from '@onestack/core/db/index.ts';
import type { ConsumerRow, PlacementDB } from '../db/schema.ts';
import { CODES, GenerationConflict, badRequest, conflict, notFound } from './errors.ts';
import { capacityOf, chunks, type Inventory, type Providers } from './providers.ts';

/** Upstream's [placement] incomplete_consumer_project_id / user_id: who owns allocations written before 1.8. */
export const INCOMPLETE_CONSUMER_ID = '00000000-0000-0000-0000-000000000000';

/** What one consumer should hold after a write: amounts per provider and class (empty: nothing). */
export interface ConsumerClaim {
  consumerUuid: string;
  projectId: string;
  userId: string;
  /** Checked against the stored generation (null: the consumer must not exist); undefined: not checked (before 1.28). */
  consumerGeneration?: number | null;
  /** Recorded from 1.38; undefined leaves a stored type as it is. */
  consumerType?: string;
  allocations: Record<string, Record<string, number>>;
}

export interface ConsumerAllocations {
  consumer?: ConsumerRow;
  /** provider uuid → its generation and this consumer's amounts there. */
  allocations: Map<string, { generation: number; resources: Record<string, number> }>;
}

/** Attempts of one write when a provider's generation moves underneath it (upstream retries replace_all the same way). */
const MAX_ATTEMPTS = 10;

/**
 * Allocations and consumers. A write is one transaction that reads the
 * generations of every provider it touches first, then their inventories and
 * usages, checks capacity, writes, and finally moves each generation on by
 * compare-and-swap: a concurrent claim that committed in between makes the CAS
 * match nothing, the transaction rolls back and the whole claim is retried on
 * fresh data. So two claims can never both take the last capacity of a
 * provider, on any of the three databases (SQLite serialises writers; on
 * PostgreSQL and MariaDB the generation row is the point of contention).
 */
export class Allocations {
  constructor(
    private readonly providers: Providers,
    private readonly clock: Clock,
  ) {}

  async write(claims: ConsumerClaim[]): Promise<void> {
    await this.checkReferences(claims);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.providers.tx(async (trx) => {
          await this.writeOnce(trx, claims);
        });
        return;
      } catch (e) {
        if (!(e instanceof GenerationConflict || isRetryable(e)) || attempt >= MAX_ATTEMPTS) {
          if (e instanceof GenerationConflict) {
            throw conflict(`Inventory and/or allocations changed while attempting to allocate: ${e.detail}`, CODES.CONCURRENT_UPDATE);
          }
          if (isUniqueViolation(e)) throw conflict('Inventory and/or allocations changed while attempting to allocate: Another thread concurrently updated the data. Please retry your update', CODES.CONCURRENT_UPDATE);
          throw e;
        }
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  /**
   * POST /reshaper (1.30): new inventories for some providers and new
   * allocations for some consumers in one transaction, so allocations can move
   * from one class or provider to another (a root's VGPU to a child's) without
   * ever being over capacity or orphaned. Provider generations are the caller's
   * and are not retried.
   */
  async reshape(inventories: { uuid: string; generation: number; inventories: Inventory[] }[], claims: ConsumerClaim[]): Promise<void> {
    for (const i of inventories) {
      if (!(await this.providers.get(i.uuid))) {
        throw badRequest(`Resource provider ${i.uuid} in inventories not found: No resource provider with uuid ${i.uuid} found`, CODES.RESOURCE_PROVIDER_NOT_FOUND);
      }
      for (const inv of i.inventories) {
        if (!(await this.providers.resourceClassExists(inv.resourceClass))) throw badRequest(`malformed reshaper data: No such resource class ${inv.resourceClass}.`);
      }
    }
    await this.checkReferences(claims);
    try {
      await this.providers.tx(async (trx) => {
        const sorted = [...inventories].sort((a, b) => a.uuid.localeCompare(b.uuid));
        for (const i of sorted) {
          const row = await trx.selectFrom('resource_providers').select('generation').where('uuid', '=', i.uuid).executeTakeFirst();
          const actual = Number(row?.generation);
          if (actual !== i.generation) {
            throw conflict(`resource provider generation conflict for provider ${i.uuid}: actual: ${actual}, given: ${i.generation}`, CODES.CONCURRENT_UPDATE);
          }
          await this.providers.upsertInventories(trx, i.uuid, i.inventories);
        }
        const moved = new Set(claims.length ? await this.writeOnce(trx, claims) : []);
        for (const i of sorted) {
          await this.providers.dropOtherInventories(trx, i.uuid, new Set(i.inventories.map((x) => x.resourceClass)), 'update conflict: ');
          // Providers the allocation write touched have had their generation moved by CAS already.
          if (!moved.has(i.uuid)) await this.providers.bump(trx, i.uuid, i.generation);
        }
        if (inventories.length) await this.providers.changed(trx);
      });
    } catch (e) {
      if (e instanceof GenerationConflict) throw conflict(`update conflict: ${e.detail}`, CODES.CONCURRENT_UPDATE);
      throw e;
    }
  }

  /** Providers and classes named must exist before any lock is taken (upstream answers 400 for both). */
  private async checkReferences(claims: ConsumerClaim[]): Promise<void> {
    const uuids = [...new Set(claims.flatMap((c) => Object.keys(c.allocations)))];
    const found = new Set<string>();
    for (const chunk of chunks(uuids)) {
      for (const r of await this.providers.db.selectFrom('resource_providers').select('uuid').where('uuid', 'in', chunk).execute()) found.add(r.uuid);
    }
    const missing = uuids.find((u) => !found.has(u));
    if (missing) throw badRequest(`Allocation for resource provider '${missing}' that does not exist.`);
    for (const c of claims) {
      for (const resources of Object.values(c.allocations)) {
        for (const rc of Object.keys(resources)) {
          if (!(await this.providers.resourceClassExists(rc))) {
            throw badRequest(`Unable to allocate inventory for consumer ${c.consumerUuid}: No such resource class ${rc}.`);
          }
        }
      }
    }
  }

  /** One attempt at a write inside `trx`; returns the providers whose generation it moved. */
  private async writeOnce(trx: Kysely<PlacementDB>, claims: ConsumerClaim[]): Promise<string[]> {
    const now = this.clock.now();
    const consumerUuids = claims.map((c) => c.consumerUuid);
    for (const claim of claims) await this.advanceConsumer(trx, claim, now);

    const previous = await trx.selectFrom('allocations').select(['resource_provider_uuid']).where('consumer_uuid', 'in', consumerUuids).execute();
    const touched = [...new Set([...previous.map((p) => p.resource_provider_uuid), ...claims.flatMap((c) => Object.keys(c.allocations))])].sort();
    // Generations before usages: on READ COMMITTED a later statement may see a newer
    // commit; reading the generation first makes any such commit fail our CAS below.
    const generations = new Map<string, number>();
    for (const chunk of chunks(touched)) {
      for (const r of await trx.selectFrom('resource_providers').select(['uuid', 'generation']).where('uuid', 'in', chunk).execute()) generations.set(r.uuid, Number(r.generation));
    }
    const gone = touched.find((u) => !generations.has(u));
    if (gone) throw badRequest(`Allocation for resource provider '${gone}' that does not exist.`);

    await trx.deleteFrom('allocations').where('consumer_uuid', 'in', consumerUuids).execute();
    const wanted = new Map<string, Map<string, number>>();
    for (const c of claims) {
      for (const [rp, resources] of Object.entries(c.allocations)) {
        const m = wanted.get(rp) ?? wanted.set(rp, new Map()).get(rp)!;
        for (const [rc, used] of Object.entries(resources)) m.set(rc, (m.get(rc) ?? 0) + used);
      }
    }
    await this.checkCapacity(trx, wanted, claims);
    const rows = claims.flatMap((c) =>
      Object.entries(c.allocations).flatMap(([rp, resources]) =>
        Object.entries(resources)
          .filter(([, used]) => used > 0)
          .map(([rc, used]) => ({ consumer_uuid: c.consumerUuid, resource_provider_uuid: rp, resource_class: rc, used, created_at: now, updated_at: now })),
      ),
    );
    for (const chunk of chunks(rows, 200)) await trx.insertInto('allocations').values(chunk).execute();
    for (const rp of touched) {
      const expected = generations.get(rp)!;
      const n = await casUpdate(trx, 'resource_providers', { set: { generation: expected + 1, updated_at: now }, where: { uuid: rp, generation: expected } });
      if (n !== 1) throw new GenerationConflict('Another thread concurrently updated the resource provider data. Please retry your update');
    }
    // A consumer whose allocations are all gone is gone too (upstream's delete_consumers_if_no_allocations).
    const empty = claims.filter((c) => !Object.values(c.allocations).some((r) => Object.values(r).some((u) => u > 0))).map((c) => c.consumerUuid);
    if (empty.length) await trx.deleteFrom('consumers').where('uuid', 'in', empty).execute();
    return touched;
  }

  /** Checks the consumer generation the caller expects and moves it on (CAS), creating the consumer if new. */
  private async advanceConsumer(trx: Kysely<PlacementDB>, c: ConsumerClaim, now: number): Promise<void> {
    const row = await trx.selectFrom('consumers').selectAll().where('uuid', '=', c.consumerUuid).executeTakeFirst();
    if (!row) {
      if (c.consumerGeneration !== undefined && c.consumerGeneration !== null) {
        throw conflict(`consumer generation conflict - expected null but got ${c.consumerGeneration}`, CODES.CONCURRENT_UPDATE);
      }
      await trx
        .insertInto('consumers')
        .values({ uuid: c.consumerUuid, project_id: c.projectId, user_id: c.userId, generation: 1, consumer_type: c.consumerType ?? null, created_at: now, updated_at: now })
        .execute();
      return;
    }
    const generation = Number(row.generation);
    if (c.consumerGeneration !== undefined && c.consumerGeneration !== generation) {
      throw conflict(`consumer generation conflict - expected ${generation} but got ${c.consumerGeneration}`, CODES.CONCURRENT_UPDATE);
    }
    const n = await casUpdate(trx, 'consumers', {
      set: { generation: generation + 1, project_id: c.projectId, user_id: c.userId, consumer_type: c.consumerType ?? row.consumer_type, updated_at: now },
      where: { uuid: c.consumerUuid, generation },
    });
    if (n !== 1) throw new GenerationConflict('Another thread concurrently updated the data. Please retry your update');
  }

  private async checkCapacity(trx: Kysely<PlacementDB>, wanted: Map<string, Map<string, number>>, claims: ConsumerClaim[]): Promise<void> {
    const uuids = [...wanted.keys()];
    if (!uuids.length) return;
    const inventories = await this.providers.inventoriesOf(uuids, trx);
    const usage = await this.providers.usageOf(uuids, trx);
    for (const [rp, classes] of wanted) {
      for (const [rc, amount] of classes) {
        if (amount <= 0) continue;
        const inv = inventories.get(rp)?.find((i) => i.resourceClass === rc);
        if (!inv) throw conflict(`Unable to allocate inventory: Inventory for '${rc}' on resource provider '${rp}' invalid.`);
        // Constraints apply to each consumer's amount, capacity to the sum.
        for (const c of claims) {
          const one = c.allocations[rp]?.[rc];
          if (one === undefined || one <= 0) continue;
          if (one < inv.minUnit || one > inv.maxUnit || one % inv.stepSize !== 0) {
            throw conflict(
              `Unable to allocate inventory: Unable to create allocation for '${rc}' on resource provider '${rp}'. The requested amount would violate inventory constraints.`,
            );
          }
        }
        const used = usage.get(rp)?.get(rc) ?? 0;
        if (used + amount > capacityOf(inv)) {
          throw conflict(`Unable to allocate inventory: Unable to create allocation for '${rc}' on resource provider '${rp}'. The requested amount would exceed the capacity.`);
        }
      }
    }
  }

  /** DELETE /allocations/{consumer}: 404 when it holds nothing. */
  async deleteConsumer(consumerUuid: string): Promise<void> {
    const existing = await this.providers.db.selectFrom('allocations').select('consumer_uuid').where('consumer_uuid', '=', consumerUuid).executeTakeFirst();
    if (!existing) throw notFound(`No allocations for consumer '${consumerUuid}'`);
    const row = await this.providers.db.selectFrom('consumers').selectAll().where('uuid', '=', consumerUuid).executeTakeFirst();
    await this.write([{ consumerUuid, projectId: row?.project_id ?? INCOMPLETE_CONSUMER_ID, userId: row?.user_id ?? INCOMPLETE_CONSUMER_ID, allocations: {} }]);
  }

  async byConsumer(consumerUuid: string): Promise<ConsumerAllocations> {
    const db = this.providers.db;
    const rows = await db
      .selectFrom('allocations')
      .innerJoin('resource_providers', 'resource_providers.uuid', 'allocations.resource_provider_uuid')
      .select(['allocations.resource_provider_uuid as rp', 'allocations.resource_class as rc', 'allocations.used as used', 'resource_providers.generation as generation'])
      .where('allocations.consumer_uuid', '=', consumerUuid)
      .execute();
    const allocations = new Map<string, { generation: number; resources: Record<string, number> }>();
    for (const r of rows) {
      const a = allocations.get(r.rp) ?? allocations.set(r.rp, { generation: Number(r.generation), resources: {} }).get(r.rp)!;
      a.resources[r.rc] = Number(r.used);
    }
    const consumer = rows.length ? await db.selectFrom('consumers').selectAll().where('uuid', '=', consumerUuid).executeTakeFirst() : undefined;
    return { consumer: consumer ? { ...consumer, generation: Number(consumer.generation) } : undefined, allocations };
  }

  /** consumer uuid → its amounts on this provider, and its generation. */
  async byProvider(uuid: string): Promise<Map<string, { generation: number | null; resources: Record<string, number> }>> {
    const rows = await this.providers.db
      .selectFrom('allocations')
      .leftJoin('consumers', 'consumers.uuid', 'allocations.consumer_uuid')
      .select(['allocations.consumer_uuid as consumer', 'allocations.resource_class as rc', 'allocations.used as used', 'consumers.generation as generation'])
      .where('allocations.resource_provider_uuid', '=', uuid)
      .orderBy('allocations.consumer_uuid')
      .execute();
    const out = new Map<string, { generation: number | null; resources: Record<string, number> }>();
    for (const r of rows) {
      const a = out.get(r.consumer) ?? out.set(r.consumer, { generation: r.generation === null ? null : Number(r.generation), resources: {} }).get(r.consumer)!;
      a.resources[r.rc] = Number(r.used);
    }
    return out;
  }

  /** GET /usages: sums per class, and (1.38) per consumer type with consumer counts. */
  async totals(f: { projectId: string; userId?: string; consumerType?: string }): Promise<{ rc: string; used: number; consumerType: string; consumer: string }[]> {
    let q = this.providers.db
      .selectFrom('allocations')
      .innerJoin('consumers', 'consumers.uuid', 'allocations.consumer_uuid')
      .select(['allocations.resource_class as rc', 'allocations.used as used', 'consumers.consumer_type as ct', 'consumers.uuid as consumer'])
      .where('consumers.project_id', '=', f.projectId);
    if (f.userId) q = q.where('consumers.user_id', '=', f.userId);
    const rows = await q.execute();
    return rows
      .map((r) => ({ rc: r.rc, used: Number(r.used), consumerType: r.ct ?? 'unknown', consumer: r.consumer }))
      .filter((r) => f.consumerType === undefined || f.consumerType === 'all' || r.consumerType === f.consumerType);
  }
}

/** Serialization failures and deadlocks on PostgreSQL / MariaDB, and a consumer created twice at once: run the claim again. */
function isRetryable(e: unknown): boolean {
  if (isUniqueViolation(e)) return true;
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const { code, errno } = x as { code?: unknown; errno?: unknown };
    if (code === '40001' || code === '40P01' || code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT') return true;
    if (errno === 1213 || errno === 1205) return true;
  }
  return false;
}
