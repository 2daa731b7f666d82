import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import type { ConsoleAuthTokenRow, NovaDB } from '../db/schema.ts';
import type { ConsoleEndpoint } from '../virt/driver.ts';

export type ConsoleType = 'novnc' | 'serial';

export interface ConsoleAuth {
  instanceUuid: string;
  consoleType: ConsoleType;
  endpoint: ConsoleEndpoint;
  accessUrlBase: string;
  expires: number;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Console auth tokens (upstream's nova.objects.ConsoleAuthToken): a random uuid handed
 * out once in the console URL, only its hash stored. Issuing a token for an instance and
 * console type replaces earlier ones, so one URL is live per console at a time; expired
 * tokens are removed as new ones are issued, and a server's go with it (Instances.markDeleted).
 */
export class ConsoleTokens {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ttlMs: number,
  ) {}

  async issue(a: Omit<ConsoleAuth, 'expires'>): Promise<{ token: string; expires: number }> {
    const token = randomUUID();
    const now = this.clock.now();
    const expires = now + this.ttlMs;
    const e = a.endpoint;
    await this.database.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('console_auth_tokens').where((eb) => eb.or([eb('expires', '<=', now), eb.and([eb('instance_uuid', '=', a.instanceUuid), eb('console_type', '=', a.consoleType)])])).execute();
      await trx
        .insertInto('console_auth_tokens')
        .values({
          token_hash: hash(token),
          console_type: a.consoleType,
          instance_uuid: a.instanceUuid,
          host: e.kind === 'tcp' ? e.host : null,
          port: e.kind === 'tcp' ? e.port : null,
          internal_access_path: e.kind === 'unix' ? e.path : null,
          netns: e.kind === 'tcp' ? (e.netns ?? null) : null,
          access_url_base: a.accessUrlBase,
          expires,
          created_at: now,
        })
        .execute();
    });
    return { token, expires };
  }

  /** The console a token opens, or undefined when it is unknown or expired. */
  async validate(token: string): Promise<ConsoleAuth | undefined> {
    const row = await this.database.db.selectFrom('console_auth_tokens').selectAll().where('token_hash', '=', hash(token)).executeTakeFirst();
    if (!row || row.expires <= this.clock.now()) return undefined;
    return toAuth(row);
  }
}

function toAuth(r: ConsoleAuthTokenRow): ConsoleAuth {
  const endpoint: ConsoleEndpoint =
    r.internal_access_path !== null
      ? { kind: 'unix', path: r.internal_access_path }
      : { kind: 'tcp', host: r.host ?? '127.0.0.1', port: r.port ?? 0, ...(r.netns ? { netns: r.netns } : {}) };
  return { instanceUuid: r.instance_uuid, consoleType: r.console_type as ConsoleType, endpoint, accessUrlBase: r.access_url_base, expires: r.expires };
}
