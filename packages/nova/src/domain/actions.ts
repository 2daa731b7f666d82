import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NovaDB } from '../db/schema.ts';

/**
 * Instance actions and their events (os-instance-actions): one action per API
 * request on a server, events per step the conductor, scheduler and compute
 * manager take, each with its result.
 */
export class InstanceActions {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  async start(o: { uuid: string; action: string; requestId: string; projectId?: string; userId?: string }): Promise<void> {
    const now = this.clock.now();
    await this.database.db
      .insertInto('instance_actions')
      .values({ id: this.ids.uuid(), instance_uuid: o.uuid, action: o.action, request_id: o.requestId, project_id: o.projectId ?? null, user_id: o.userId ?? null, message: null, start_time: now, finish_time: null, updated_at: now })
      .execute();
  }

  private async actionId(uuid: string, requestId: string): Promise<string | undefined> {
    return (await this.database.db.selectFrom('instance_actions').select('id').where('instance_uuid', '=', uuid).where('request_id', '=', requestId).executeTakeFirst())?.id;
  }

  /** Runs `fn` as an event of the request's action, recording its start, end and result. */
  async event<T>(uuid: string, requestId: string, event: string, host: string | null, fn: () => Promise<T>): Promise<T> {
    const actionId = await this.actionId(uuid, requestId);
    const id = this.ids.uuid();
    if (actionId) {
      await this.database.db
        .insertInto('instance_action_events')
        .values({ id, action_id: actionId, event, start_time: this.clock.now(), finish_time: null, result: null, traceback: null, host, details: null })
        .execute();
    }
    try {
      const v = await fn();
      if (actionId) await this.finishEvent(id, actionId, 'Success');
      return v;
    } catch (e) {
      if (actionId) await this.finishEvent(id, actionId, 'Error', e instanceof Error ? e.stack ?? e.message : String(e), e instanceof Error ? e.message : String(e));
      throw e;
    }
  }

  private async finishEvent(id: string, actionId: string, result: string, traceback?: string, details?: string): Promise<void> {
    const now = this.clock.now();
    await this.database.db.updateTable('instance_action_events').set({ finish_time: now, result, traceback: traceback ?? null, details: details ?? null }).where('id', '=', id).execute();
    await this.database.db.updateTable('instance_actions').set({ updated_at: now, ...(result === 'Error' ? { message: 'Error' } : {}) }).where('id', '=', actionId).execute();
  }

  async list(uuid: string) {
    return this.database.db.selectFrom('instance_actions').selectAll().where('instance_uuid', '=', uuid).orderBy('start_time', 'desc').orderBy('id', 'desc').execute();
  }

  async get(uuid: string, requestId: string) {
    const action = await this.database.db.selectFrom('instance_actions').selectAll().where('instance_uuid', '=', uuid).where('request_id', '=', requestId).executeTakeFirst();
    if (!action) return undefined;
    const events = await this.database.db.selectFrom('instance_action_events').selectAll().where('action_id', '=', action.id).orderBy('start_time', 'asc').execute();
    return { action, events };
  }
}
