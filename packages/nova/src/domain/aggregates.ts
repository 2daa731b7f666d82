import type { Clock } from '@onestack/core/clock.ts';
import { isUniqueViolation, withTransaction, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NovaDB } from '../db/schema.ts';
import { badRequest, conflict, notFound } from './errors.ts';

export interface Aggregate {
  id: number;
  uuid: string;
  name: string;
  availabilityZone: string | null;
  hosts: string[];
  metadata: Record<string, string>;
  createdAt: number;
  updatedAt: number | null;
}

const AZ_KEY = 'availability_zone';

/** How an aggregate change was refused, as upstream's InvalidAggregateAction* words it. */
type AggregateAction = 'add' | 'remove' | 'update' | 'update_meta';
const ACTION_TEXT: Record<AggregateAction, string> = {
  add: 'Cannot add host to aggregate',
  remove: 'Cannot remove host from aggregate',
  update: 'Cannot update aggregate',
  update_meta: 'Cannot update metadata of aggregate',
};
/** The API answers a refused add_host 409 and the other refusals 400. */
const invalidAction = (action: AggregateAction, id: number, reason: string) => (action === 'add' ? conflict : badRequest)(`${ACTION_TEXT[action]} ${id}. Reason: ${reason}.`);
export const aggregateNotFound = (id: number | string) => notFound(`Aggregate ${id} could not be found.`);

/**
 * Host aggregates (nova/compute/api.py AggregateAPI): named groups of compute hosts with
 * metadata; the `availability_zone` key is the zone of every host in the aggregate, and a
 * host can be in one zone only.
 */
export class Aggregates {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly defaultAz: string,
  ) {}

  private get db() {
    return this.database.db;
  }

  async list(): Promise<Aggregate[]> {
    const rows = await this.db.selectFrom('aggregates').selectAll().orderBy('id').execute();
    const hosts = await this.db.selectFrom('aggregate_hosts').selectAll().execute();
    const meta = await this.db.selectFrom('aggregate_metadata').selectAll().execute();
    return rows.map((r) => {
      const id = Number(r.id);
      const metadata = Object.fromEntries(meta.filter((m) => Number(m.aggregate_id) === id).map((m) => [m.key, m.value]));
      return {
        id,
        uuid: r.uuid,
        name: r.name,
        availabilityZone: metadata[AZ_KEY] ?? null,
        hosts: hosts.filter((h) => Number(h.aggregate_id) === id).map((h) => h.host).sort(),
        metadata,
        createdAt: Number(r.created_at),
        updatedAt: r.updated_at === null ? null : Number(r.updated_at),
      };
    });
  }

  async get(id: number): Promise<Aggregate> {
    const a = (await this.list()).find((x) => x.id === id);
    if (!a) throw aggregateNotFound(id);
    return a;
  }

  /** The availability zone of each host that is in a zoned aggregate. */
  async hostZones(): Promise<Map<string, string>> {
    const rows = await this.db
      .selectFrom('aggregate_hosts')
      .innerJoin('aggregate_metadata', 'aggregate_metadata.aggregate_id', 'aggregate_hosts.aggregate_id')
      .select(['aggregate_hosts.host', 'aggregate_metadata.value'])
      .where('aggregate_metadata.key', '=', AZ_KEY)
      .execute();
    return new Map(rows.map((r) => [r.host, r.value]));
  }

  async zoneOf(host: string): Promise<string> {
    return (await this.hostZones()).get(host) ?? this.defaultAz;
  }

  /** Zones that some aggregate names (whether or not it holds hosts). */
  async zoneNames(): Promise<Set<string>> {
    const rows = await this.db.selectFrom('aggregate_metadata').select('value').where('key', '=', AZ_KEY).execute();
    return new Set(rows.map((r) => r.value));
  }

  /**
   * get_availability_zones: the zones of enabled compute hosts (available), and the zones
   * whose compute hosts are all disabled (not available).
   */
  async computeZones(): Promise<{ available: string[]; unavailable: string[] }> {
    const rows = await this.db.selectFrom('services').select(['host', 'disabled']).where('binary', '=', 'nova-compute').execute();
    const zones = await this.hostZones();
    const zoneOf = (h: string) => zones.get(h) ?? this.defaultAz;
    const available = [...new Set(rows.filter((r) => !Number(r.disabled)).map((r) => zoneOf(r.host)))].sort();
    const unavailable = [...new Set(rows.filter((r) => Number(r.disabled)).map((r) => zoneOf(r.host)))].filter((z) => !available.includes(z)).sort();
    return { available, unavailable };
  }

  async create(name: string, availabilityZone: string | null): Promise<Aggregate> {
    const now = this.clock.now();
    for (;;) {
      try {
        const id = await withTransaction(this.database, async (trx) => {
          const max = await trx.selectFrom('aggregates').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst();
          const next = Number(max?.m ?? 0) + 1;
          await trx.insertInto('aggregates').values({ id: next, uuid: this.ids.uuid(), name, created_at: now, updated_at: null }).execute();
          if (availabilityZone) await trx.insertInto('aggregate_metadata').values({ aggregate_id: next, key: AZ_KEY, value: availabilityZone }).execute();
          return next;
        });
        return this.get(id);
      } catch (e) {
        if (!isUniqueViolation(e)) throw e;
        if (await this.db.selectFrom('aggregates').select('id').where('name', '=', name).executeTakeFirst()) throw conflict(`Aggregate ${name} already exists.`);
        // Another create took the same next id: count again.
      }
    }
  }

  async update(id: number, set: { name?: string; availabilityZone?: string | null }): Promise<Aggregate> {
    const agg = await this.get(id);
    if (set.availabilityZone !== undefined) await this.checkZoneChange(agg, set.availabilityZone, agg.hosts, 'update');
    try {
      await withTransaction(this.database, async (trx) => {
        await trx.updateTable('aggregates').set({ ...(set.name !== undefined ? { name: set.name } : {}), updated_at: this.clock.now() }).where('id', '=', id).execute();
        if (set.availabilityZone !== undefined) {
          await trx.deleteFrom('aggregate_metadata').where('aggregate_id', '=', id).where('key', '=', AZ_KEY).execute();
          if (set.availabilityZone) await trx.insertInto('aggregate_metadata').values({ aggregate_id: id, key: AZ_KEY, value: set.availabilityZone }).execute();
        }
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Aggregate ${set.name} already exists.`);
      throw e;
    }
    return this.get(id);
  }

  async delete(id: number): Promise<void> {
    const agg = await this.get(id);
    if (agg.hosts.length) throw invalidAction('remove', id, 'Host aggregate is not empty');
    await withTransaction(this.database, async (trx) => {
      await trx.deleteFrom('aggregate_metadata').where('aggregate_id', '=', id).execute();
      await trx.deleteFrom('aggregates').where('id', '=', id).execute();
    });
  }

  async addHost(id: number, host: string): Promise<Aggregate> {
    const agg = await this.get(id);
    const service = await this.db.selectFrom('services').select('uuid').where('host', '=', host).where('binary', '=', 'nova-compute').executeTakeFirst();
    if (!service) throw notFound(`Compute host ${host} could not be found.`);
    if (agg.hosts.includes(host)) throw conflict(`Aggregate ${id} already has host ${host}.`);
    if (agg.availabilityZone) await this.checkZoneChange(agg, agg.availabilityZone, [host], 'add', true);
    try {
      await this.db.insertInto('aggregate_hosts').values({ aggregate_id: id, host }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Aggregate ${id} already has host ${host}.`);
      throw e;
    }
    return this.get(id);
  }

  async removeHost(id: number, host: string): Promise<Aggregate> {
    await this.get(id).catch(() => {
      throw notFound(`Cannot remove host ${host} in aggregate ${id}`);
    });
    const n = await this.db.deleteFrom('aggregate_hosts').where('aggregate_id', '=', id).where('host', '=', host).executeTakeFirst();
    if (Number(n.numDeletedRows) === 0) throw notFound(`Cannot remove host ${host} in aggregate ${id}`);
    return this.get(id);
  }

  /** Merges metadata; a null value removes its key. */
  async setMetadata(id: number, metadata: Record<string, string | null>): Promise<Aggregate> {
    const agg = await this.get(id);
    if (AZ_KEY in metadata) await this.checkZoneChange(agg, metadata[AZ_KEY], agg.hosts, 'update_meta');
    await withTransaction(this.database, async (trx) => {
      for (const [key, value] of Object.entries(metadata)) {
        await trx.deleteFrom('aggregate_metadata').where('aggregate_id', '=', id).where('key', '=', key).execute();
        if (value !== null) await trx.insertInto('aggregate_metadata').values({ aggregate_id: id, key, value }).execute();
      }
      await trx.updateTable('aggregates').set({ updated_at: this.clock.now() }).where('id', '=', id).execute();
    });
    return this.get(id);
  }

  /**
   * is_safe_to_update_az: a zone is never empty, a host is in one zone only, and hosts
   * with instances cannot change zone (their instances would silently move).
   */
  private async checkZoneChange(agg: Aggregate, zone: string | null, hosts: string[], action: AggregateAction, adding = false): Promise<void> {
    // A null too: upstream cannot unset a zone, only rename it.
    if (!zone) throw invalidAction(action, agg.id, `Aggregate ${agg.name} does not support empty named availability zone`);
    const zones = await this.hostZones();
    const others = (await this.list()).filter((a) => a.id !== agg.id && a.availabilityZone && a.availabilityZone !== zone && a.hosts.some((h) => hosts.includes(h)));
    if (others.length) throw invalidAction(action, agg.id, `One or more hosts already in availability zone(s) [${others.map((a) => `'${a.availabilityZone}'`).join(', ')}]`);
    const moving = hosts.filter((h) => (zones.get(h) ?? this.defaultAz) !== zone && (adding || agg.availabilityZone !== zone));
    if (!moving.length) return;
    const used = await this.db.selectFrom('instances').select('uuid').where('host', 'in', moving).where('deleted', '=', 0).executeTakeFirst();
    if (used) {
      const reason = adding
        ? `Host '${moving[0]}' has instances in availability zone '${zones.get(moving[0]) ?? this.defaultAz}': moving them to '${zone}' is not allowed`
        : 'One or more hosts contain instances in this zone';
      throw invalidAction(action, agg.id, reason);
    }
  }
}
