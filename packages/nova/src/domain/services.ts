import type { Clock } from '@onestack/core/clock.ts';
import { boolFromDb, isUniqueViolation, jsonFromDb, jsonToDb, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NovaDB, ServiceRow } from '../db/schema.ts';

export interface HypervisorRecord {
  providerUuid: string;
  hypervisorType: string;
  hypervisorVersion: number;
  hypervisorHostname: string;
  vcpus: number;
  memoryMb: number;
  localGb: number;
  vcpusUsed: number;
  memoryMbUsed: number;
  localGbUsed: number;
  cpuInfo: unknown;
  hostIp?: string;
}

export interface Service {
  uuid: string;
  host: string;
  binary: string;
  topic: string | null;
  disabled: boolean;
  disabledReason: string | null;
  forcedDown: boolean;
  lastSeenUp: number | null;
  up: boolean;
  hypervisor: HypervisorRecord | null;
  updatedAt: number;
  createdAt: number;
}

/** Nova services (nova-compute per host, nova-conductor, nova-scheduler) with their heartbeats (servicegroup's db driver). */
export class Services {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly downAfterMs: number,
  ) {}

  private get db() {
    return this.database.db;
  }

  /** Parsed hypervisor records by service and the generation they were read at: the scheduler needs every host's on each boot. */
  private readonly hypervisors = new Map<string, { generation: number; record: HypervisorRecord | null }>();

  private hypervisorOf(r: Pick<ServiceRow, 'uuid' | 'hypervisor' | 'hypervisor_generation'>): HypervisorRecord | null {
    const generation = Number(r.hypervisor_generation);
    const cached = this.hypervisors.get(r.uuid);
    if (cached?.generation === generation) return cached.record;
    const record = r.hypervisor ? Object.freeze(jsonFromDb<HypervisorRecord>(r.hypervisor)) : null;
    this.hypervisors.set(r.uuid, { generation, record });
    return record;
  }

  private isUp(r: Pick<ServiceRow, 'forced_down' | 'last_seen_up'>): boolean {
    return !boolFromDb(r.forced_down) && r.last_seen_up !== null && this.clock.now() - Number(r.last_seen_up) <= this.downAfterMs;
  }

  view(r: Omit<ServiceRow, 'hypervisor' | 'report_count'> & { hypervisor?: string | null }): Service {
    const lastSeen = r.last_seen_up === null ? null : Number(r.last_seen_up);
    const up = this.isUp(r);
    return {
      uuid: r.uuid,
      host: r.host,
      binary: r.binary,
      topic: r.topic,
      disabled: boolFromDb(r.disabled),
      disabledReason: r.disabled_reason,
      forcedDown: boolFromDb(r.forced_down),
      lastSeenUp: lastSeen,
      up,
      hypervisor: r.hypervisor === undefined ? this.hypervisors.get(r.uuid)!.record : this.hypervisorOf({ ...r, hypervisor: r.hypervisor }),
      updatedAt: Number(r.updated_at),
      createdAt: Number(r.created_at),
    };
  }

  /** Creates the service's row on first start (or finds it) and reports it up. */
  async register(host: string, binary: string, topic: string): Promise<Service> {
    const now = this.clock.now();
    try {
      await this.db
        .insertInto('services')
        .values({ uuid: this.ids.uuid(), host, binary, topic, disabled: 0, disabled_reason: null, forced_down: 0, last_seen_up: now, report_count: 0, hypervisor: null, hypervisor_generation: 0, created_at: now, updated_at: now })
        .execute();
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
    }
    await this.heartbeat(host, binary);
    return (await this.find(host, binary))!;
  }

  async heartbeat(host: string, binary: string, hypervisor?: HypervisorRecord): Promise<void> {
    const now = this.clock.now();
    await this.db
      .updateTable('services')
      .set((eb) => ({
        last_seen_up: now,
        updated_at: now,
        report_count: eb('report_count', '+', 1),
        ...(hypervisor ? { hypervisor: jsonToDb(hypervisor), hypervisor_generation: eb('hypervisor_generation', '+', 1) } : {}),
      }))
      .where('host', '=', host)
      .where('binary', '=', binary)
      .execute();
  }

  async find(host: string, binary: string): Promise<Service | undefined> {
    const r = await this.db.selectFrom('services').selectAll().where('host', '=', host).where('binary', '=', binary).executeTakeFirst();
    return r ? this.view(r) : undefined;
  }

  async get(uuid: string): Promise<Service | undefined> {
    const r = await this.db.selectFrom('services').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    return r ? this.view(r) : undefined;
  }

  async list(o: { host?: string; binary?: string } = {}): Promise<Service[]> {
    let q = this.db.selectFrom('services').selectAll();
    if (o.host) q = q.where('host', '=', o.host);
    if (o.binary) q = q.where('binary', '=', o.binary);
    return (await q.orderBy('created_at').execute()).map((r) => this.view(r));
  }

  /**
   * Every nova-compute service. The scheduler asks on every boot (1,000 hosts, 1,000 rows): the
   * hypervisor records are read only of the hosts whose record moved since this process parsed it.
   */
  async computes(): Promise<Service[]> {
    const rows = await this.db
      .selectFrom('services')
      .select(['uuid', 'host', 'binary', 'topic', 'disabled', 'disabled_reason', 'forced_down', 'last_seen_up', 'hypervisor_generation', 'created_at', 'updated_at'])
      .where('binary', '=', 'nova-compute')
      .orderBy('created_at')
      .execute();
    const stale = rows.filter((r) => this.hypervisors.get(r.uuid)?.generation !== Number(r.hypervisor_generation)).map((r) => r.uuid);
    for (let i = 0; i < stale.length; i += 500) {
      const records = await this.db.selectFrom('services').select(['uuid', 'hypervisor', 'hypervisor_generation']).where('uuid', 'in', stale.slice(i, i + 500)).execute();
      for (const r of records) this.hypervisorOf(r);
    }
    // A row deleted between the two reads has no record parsed: it goes too.
    return rows.filter((r) => this.hypervisors.has(r.uuid)).map((r) => this.view(r));
  }

  /** Whether these hosts' nova-compute is up, without reading every host's hypervisor record (a server view needs no more). */
  async computesUp(hosts: string[]): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    for (let i = 0; i < hosts.length; i += 500) {
      const rows = await this.db.selectFrom('services').select(['host', 'forced_down', 'last_seen_up']).where('binary', '=', 'nova-compute').where('host', 'in', hosts.slice(i, i + 500)).execute();
      for (const r of rows) out.set(r.host, this.isUp(r));
    }
    return out;
  }

  async update(uuid: string, set: { disabled?: boolean; disabledReason?: string | null; forcedDown?: boolean }): Promise<void> {
    await this.db
      .updateTable('services')
      .set({
        ...(set.disabled !== undefined ? { disabled: set.disabled ? 1 : 0 } : {}),
        ...(set.disabledReason !== undefined ? { disabled_reason: set.disabledReason } : {}),
        ...(set.forcedDown !== undefined ? { forced_down: set.forcedDown ? 1 : 0 } : {}),
        updated_at: this.clock.now(),
      })
      .where('uuid', '=', uuid)
      .execute();
  }

  async delete(uuid: string): Promise<void> {
    await this.db.deleteFrom('services').where('uuid', '=', uuid).execute();
    this.hypervisors.delete(uuid);
  }
}
