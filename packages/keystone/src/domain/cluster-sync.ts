import { sql } from 'kysely';
import type { Keystone } from './keystone.ts';

const POLL_MS = 1000;

/**
 * Keeps this process's caches in step with other Keystone processes on the
 * same database. Every local change bumps a shared counter; the token path
 * polls it at most once a second and, when someone else moved it, reloads the
 * revocation events and drops the caches. So a revocation or a role change
 * made through one Keystone is honoured by all of them within about a second.
 */
export class ClusterSync {
  private seen = 0;
  private lastPoll = 0;
  private polling?: Promise<void>;
  private writes = new Set<Promise<void>>();

  constructor(private readonly ks: Keystone) {}

  async start(): Promise<void> {
    this.seen = await this.read();
    this.lastPoll = Date.now();
  }

  /** Announces a local change. Not awaited by callers: the write is tiny and failures are only logged. */
  bump(): void {
    const write = this.ks.db
      .updateTable('cache_generation')
      .set({ value: sql<number>`value + 1` })
      .where('id', '=', 1)
      .execute()
      // Our own bump is not news for us.
      .then(() => void (this.seen += 1))
      .catch((err: unknown) => this.ks.logger.warn({ err }, 'could not publish a cache generation change'))
      .finally(() => this.writes.delete(write));
    this.writes.add(write);
  }

  /** Waits for announced changes to be written (before the database closes). */
  async settle(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  async poll(): Promise<void> {
    if (Date.now() - this.lastPoll < POLL_MS) return;
    this.lastPoll = Date.now();
    this.polling ??= this.check().finally(() => (this.polling = undefined));
    await this.polling;
  }

  private async check(): Promise<void> {
    const value = await this.read();
    if (value === this.seen) return;
    this.seen = value;
    await this.ks.revocations.load();
    this.ks.invalidateLocal();
  }

  private async read(): Promise<number> {
    const row = await this.ks.db.selectFrom('cache_generation').select('value').where('id', '=', 1).executeTakeFirst();
    return Number(row?.value ?? 0);
  }
}
