import type { Kysely } from 'kysely';
import { notFound, unauthorized } from '@onestack/core/errors.ts';
import type { KeystoneDB } from '../db/schema.ts';
import { bool } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { verifyPassword } from './passwords.ts';

export interface AppCredForToken {
  id: string;
  name: string;
  userId: string;
  projectId: string | null;
  system: string | null;
  roleIds: string[];
  unrestricted: boolean;
  expiresAt: number | null;
  accessRules: { id: string; service: string; path: string; method: string }[];
}

/** Application credentials: a user's delegated, role-limited secret for one project. */
export class AppCredManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  async getForToken(id: string): Promise<AppCredForToken> {
    const row = await this.db.selectFrom('application_credential').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`Could not find Application Credential: ${id}.`);
    const roles = await this.db.selectFrom('application_credential_role').select('role_id').where('application_credential_id', '=', id).execute();
    const rules = await this.db
      .selectFrom('access_rule')
      .innerJoin('application_credential_access_rule as l', 'l.access_rule_id', 'access_rule.id')
      .select(['access_rule.id', 'access_rule.service', 'access_rule.path', 'access_rule.method'])
      .where('l.application_credential_id', '=', id)
      .execute();
    return {
      id: row.id,
      name: row.name,
      userId: row.user_id,
      projectId: row.project_id,
      system: row.system,
      roleIds: roles.map((r) => r.role_id),
      unrestricted: bool(row.unrestricted),
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      accessRules: rules,
    };
  }

  /** The `application_credential` auth method: by id, or by name with the owning user. */
  async authenticate(ref: { id?: string; name?: string; userId?: string }, secret: string): Promise<AppCredForToken> {
    let id = ref.id;
    if (!id && ref.name && ref.userId) {
      const row = await this.db.selectFrom('application_credential').select('id').where('user_id', '=', ref.userId).where('name', '=', ref.name).executeTakeFirst();
      id = row?.id;
    }
    if (!id) throw unauthorized('Invalid application credential.');
    const row = await this.db.selectFrom('application_credential').select(['secret_hash']).where('id', '=', id).executeTakeFirst();
    if (!row || !(await verifyPassword(secret, row.secret_hash))) throw unauthorized('Invalid application credential.');
    const ac = await this.getForToken(id);
    if (ac.expiresAt !== null && ac.expiresAt <= this.ks.clock.now()) throw unauthorized('Application credential has expired.');
    return ac;
  }
}
