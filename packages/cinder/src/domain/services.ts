import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, ServiceRow } from '../db/schema.ts';

/** cinder-scheduler and cinder-volume records with heartbeats, for os-services. */
export class Services {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    readonly downAfterMs: number,
  ) {}

  async register(host: string, binary: string, az: string): Promise<void> {
    const row = await this.db.selectFrom('services').select('id').where('host', '=', host).where('binary', '=', binary).executeTakeFirst();
    if (row) return this.heartbeat(host, binary);
    await this.db
      .insertInto('services')
      .values({ id: this.ids.uuid(), host, binary, topic: binary, availability_zone: az, disabled: 0, disabled_reason: null, report_count: 1, frozen: 0, created_at: this.clock.now(), updated_at: this.clock.now() })
      .execute();
  }

  async heartbeat(host: string, binary: string): Promise<void> {
    await this.db.updateTable('services').set((eb) => ({ report_count: eb('report_count', '+', 1), updated_at: this.clock.now() })).where('host', '=', host).where('binary', '=', binary).execute();
  }

  async list(): Promise<ServiceRow[]> {
    return this.db.selectFrom('services').selectAll().orderBy('binary').orderBy('host').execute();
  }

  isUp(s: ServiceRow): boolean {
    return s.updated_at !== null && this.clock.now() - s.updated_at < this.downAfterMs;
  }
}
