import type { Kysely } from 'kysely';
import { jsonFromDb, jsonToDb, isUniqueViolation } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronDB } from '../db/schema.ts';

/** What an agent reports (upstream's report_state payload). */
export interface AgentReport {
  agentType: string;
  binary: string;
  topic: string;
  host: string;
  availabilityZone?: string | null;
  configurations?: Record<string, unknown>;
  resourceVersions?: Record<string, unknown> | null;
  /** True on the first report after the agent (re)started: started_at moves. */
  startFlag?: boolean;
}

/**
 * Records an agent's heartbeat (upstream's AgentDbMixin.create_or_update_agent):
 * the first report creates the row, later ones move heartbeat_timestamp (and
 * started_at when the agent says it just started). The data-plane agents
 * call this, in process or through an RPC handler that wraps it.
 */
export async function reportAgentState(db: Kysely<NeutronDB>, clock: Clock, ids: IdSource, report: AgentReport): Promise<string> {
  const now = clock.now();
  const fields = {
    binary: report.binary,
    topic: report.topic,
    availability_zone: report.availabilityZone ?? null,
    configurations: jsonToDb(report.configurations ?? {}),
    resource_versions: report.resourceVersions ? jsonToDb(report.resourceVersions) : null,
    heartbeat_timestamp: now,
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = await db.selectFrom('agents').select('id').where('agent_type', '=', report.agentType).where('host', '=', report.host).executeTakeFirst();
    if (existing) {
      await db
        .updateTable('agents')
        .set({ ...fields, ...(report.startFlag ? { started_at: now } : {}) })
        .where('id', '=', existing.id)
        .execute();
      return existing.id;
    }
    const id = ids.uuid();
    try {
      await db
        .insertInto('agents')
        .values({ id, agent_type: report.agentType, host: report.host, admin_state_up: 1, description: null, load: 0, resources_synced: null, created_at: now, started_at: now, ...fields })
        .execute();
      return id;
    } catch (e) {
      // Two first reports raced: the other created the row, update it.
      if (!isUniqueViolation(e)) throw e;
    }
  }
  throw new Error(`agent ${report.agentType}@${report.host}: could not record its state`);
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, '');

/** Agents as `/v2.0/agents` shows them; `alive` is a heartbeat within agent_down_time. */
export async function listAgents(db: Kysely<NeutronDB>, clock: Clock, downTimeMs: number) {
  const rows = await db.selectFrom('agents').selectAll().orderBy('host').orderBy('agent_type').execute();
  const now = clock.now();
  return rows.map((a) => ({
    id: a.id,
    agent_type: a.agent_type,
    binary: a.binary,
    topic: a.topic,
    host: a.host,
    admin_state_up: a.admin_state_up === 1,
    alive: now - a.heartbeat_timestamp <= downTimeMs,
    availability_zone: a.availability_zone,
    description: a.description,
    configurations: jsonFromDb(a.configurations),
    resource_versions: a.resource_versions ? jsonFromDb(a.resource_versions) : {},
    resources_synced: a.resources_synced === null ? null : a.resources_synced === 1,
    load: a.load,
    created_at: iso(a.created_at),
    started_at: iso(a.started_at),
    heartbeat_timestamp: iso(a.heartbeat_timestamp),
  }));
}
