import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { conflict, forbidden, notFound, unauthorized, validationError } from '@onestack/core/errors.ts';
import type { AccessRuleRow, ApplicationCredentialRow, KeystoneDB } from '../db/schema.ts';
import { bool, int } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { hashPassword, verifyPassword, type PasswordHashOptions } from './passwords.ts';

export interface AccessRule {
  id: string;
  service: string;
  path: string;
  method: string;
}

export interface AppCred {
  id: string;
  name: string;
  description: string | null;
  userId: string;
  projectId: string | null;
  system: string | null;
  roleIds: string[];
  unrestricted: boolean;
  expiresAt: number | null;
  accessRules: AccessRule[];
}

/** What the token path reads (token-provider.ts, auth-routes.ts). */
export type AppCredForToken = AppCred;

/** An access rule as a request gives it: by id (an existing rule of the user), or by its fields. */
export type AccessRuleRef = Partial<AccessRule>;

export interface AppCredCreate {
  name: string;
  description?: string | null;
  /** The secret in clear; only its hash is stored. */
  secret: string;
  userId: string;
  projectId: string;
  roleIds: string[];
  expiresAt?: number | null;
  unrestricted?: boolean;
  accessRules?: AccessRuleRef[];
}

/** Upstream's generated secret: 64 random bytes, urlsafe base64 without padding. */
export function generateSecret(): string {
  return randomBytes(64).toString('base64url');
}

/** Application credentials: a user's delegated, role-limited secret for one project. */
export class AppCredManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  /** Secrets are hashed and verified as passwords are, under the configured algorithm. */
  private get hashOptions(): PasswordHashOptions {
    const c = this.ks.config;
    return { algorithm: c.passwordHashAlgorithm, rounds: c.passwordHashRounds, maxPasswordLength: c.maxPasswordLength };
  }

  async find(id: string): Promise<AppCred | undefined> {
    const row = await this.db.selectFrom('application_credential').selectAll().where('id', '=', id).executeTakeFirst();
    return row && (await this.withLinks([row]))[0];
  }

  async get(id: string): Promise<AppCred> {
    const ac = await this.find(id);
    if (!ac) throw notFound(`Could not find Application Credential: ${id}.`);
    return ac;
  }

  getForToken(id: string): Promise<AppCredForToken> {
    return this.get(id);
  }

  async list(userId: string, filter: { name?: string } = {}): Promise<AppCred[]> {
    let q = this.db.selectFrom('application_credential').selectAll().where('user_id', '=', userId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    return this.withLinks(await q.orderBy('created_at').orderBy('id').execute());
  }

  /**
   * Stores a new application credential. Every role must be one the user holds
   * on the project (upstream's _require_user_has_role_in_project); access rules
   * reuse the user's identical or named rules, as upstream does.
   */
  async create(input: AppCredCreate): Promise<AppCred> {
    const held = await this.ks.assignment.effectiveRoleIds(input.userId, { projectId: input.projectId });
    for (const roleId of input.roleIds) {
      if (!held.has(roleId)) {
        throw validationError(
          `Invalid application credential: Could not find role assignment with role: ${roleId}, user or group: ${input.userId}, project, domain, or system: ${input.projectId}.`,
        );
      }
    }
    const id = this.ks.ids.hex();
    const row: ApplicationCredentialRow = {
      id,
      name: input.name,
      secret_hash: await hashPassword(input.secret, this.hashOptions),
      description: input.description ?? null,
      user_id: input.userId,
      project_id: input.projectId,
      system: null,
      expires_at: input.expiresAt ?? null,
      unrestricted: int(input.unrestricted),
      created_at: this.ks.clock.now(),
    };
    await this.ks.unique('application_credential', `Duplicate entry found with name ${input.name}.`, () =>
      this.db.transaction().execute(async (tx) => {
        await tx.insertInto('application_credential').values(row).execute();
        for (const roleId of new Set(input.roleIds)) {
          await tx.insertInto('application_credential_role').values({ application_credential_id: id, role_id: roleId }).execute();
        }
        const ruleIds = new Set<string>();
        for (const ref of input.accessRules ?? []) ruleIds.add(await this.resolveAccessRule(tx, input.userId, ref));
        for (const ruleId of ruleIds) {
          await tx.insertInto('application_credential_access_rule').values({ application_credential_id: id, access_rule_id: ruleId }).execute();
        }
      }),
    );
    this.ks.notifier.emit('application_credential', 'created', id);
    return this.get(id);
  }

  /** Tokens made with the credential stop validating: the token path looks the credential up. */
  async delete(id: string): Promise<void> {
    await this.get(id);
    await this.db.transaction().execute((tx) => this.purge(tx, { ids: [id] }));
    this.ks.notifier.emit('application_credential', 'deleted', id);
    this.ks.invalidate();
  }

  /**
   * Deletes the credentials matching every given filter, inside the caller's
   * transaction: upstream drops them with their user, their project, the
   * user's role on the project, or when the user is disabled.
   */
  async purge(tx: Kysely<KeystoneDB>, where: { ids?: string[]; userIds?: string[]; projectIds?: string[] }): Promise<void> {
    let q = tx.selectFrom('application_credential').select('id');
    for (const [column, values] of [['id', where.ids], ['user_id', where.userIds], ['project_id', where.projectIds]] as const) {
      if (values === undefined) continue;
      if (values.length === 0) return;
      q = q.where(column, 'in', values);
    }
    const ids = (await q.execute()).map((r) => r.id);
    if (ids.length === 0) return;
    await tx.deleteFrom('application_credential_role').where('application_credential_id', 'in', ids).execute();
    await tx.deleteFrom('application_credential_access_rule').where('application_credential_id', 'in', ids).execute();
    await tx.deleteFrom('application_credential').where('id', 'in', ids).execute();
    this.ks.invalidate();
  }

  /** The `application_credential` auth method: by id, or by name with the owning user. */
  async authenticate(ref: { id?: string; name?: string; userId?: string }, secret: string): Promise<AppCredForToken> {
    let id = ref.id;
    if (!id && ref.name && ref.userId) {
      const row = await this.db.selectFrom('application_credential').select('id').where('user_id', '=', ref.userId).where('name', '=', ref.name).executeTakeFirst();
      id = row?.id;
    }
    // Upstream answers every failure (unknown, wrong secret, expired) with the same bare 401.
    if (!id) throw unauthorized();
    const row = await this.db.selectFrom('application_credential').select(['secret_hash']).where('id', '=', id).executeTakeFirst();
    if (!row || !(await verifyPassword(secret, row.secret_hash, this.hashOptions))) throw unauthorized();
    const ac = await this.get(id);
    if (ac.expiresAt !== null && ac.expiresAt <= this.ks.clock.now()) throw unauthorized();
    return ac;
  }

  // ---- access rules ------------------------------------------------------

  async listAccessRules(userId: string, filter: { service?: string; path?: string; method?: string } = {}): Promise<AccessRule[]> {
    let q = this.db.selectFrom('access_rule').select(['id', 'service', 'path', 'method']).where('user_id', '=', userId);
    if (filter.service !== undefined) q = q.where('service', '=', filter.service);
    if (filter.path !== undefined) q = q.where('path', '=', filter.path);
    if (filter.method !== undefined) q = q.where('method', '=', filter.method);
    return q.orderBy('id').execute();
  }

  /** A rule of `userId`; another user's rule is as missing as an unknown one. */
  async getAccessRule(userId: string, id: string): Promise<AccessRule> {
    const row = await this.db.selectFrom('access_rule').select(['id', 'service', 'path', 'method']).where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
    if (!row) throw notFound(`Could not find Access Rule: ${id}.`);
    return row;
  }

  async deleteAccessRule(userId: string, id: string): Promise<void> {
    await this.getAccessRule(userId, id);
    const inUse = await this.db.selectFrom('application_credential_access_rule').select('access_rule_id').where('access_rule_id', '=', id).executeTakeFirst();
    if (inUse) throw forbidden('May not delete access rule in use');
    await this.db.deleteFrom('access_rule').where('id', '=', id).execute();
    this.ks.notifier.emit('access_rule', 'deleted', id);
  }

  /** The id of the user's rule matching `ref`, creating the rule when the user has none like it. */
  private async resolveAccessRule(tx: Transaction<KeystoneDB>, userId: string, ref: AccessRuleRef): Promise<string> {
    if (ref.id) {
      const byId = await tx.selectFrom('access_rule').select('user_id').where('id', '=', ref.id).executeTakeFirst();
      if (byId?.user_id === userId) return ref.id;
      if (byId) throw conflict(`Conflict occurred attempting to store access_rule - Duplicate entry found with ID ${ref.id}.`);
    }
    const { service, path, method } = ref;
    if (service === undefined || path === undefined || method === undefined) {
      const missing = service === undefined ? 'service' : path === undefined ? 'path' : 'method';
      throw validationError(`Invalid input for field 'access_rules': '${missing}' is a required property`);
    }
    const same = await tx
      .selectFrom('access_rule')
      .select('id')
      .where('user_id', '=', userId)
      .where('service', '=', service)
      .where('path', '=', path)
      .where('method', '=', method)
      .executeTakeFirst();
    if (same) return same.id;
    const row: AccessRuleRow = { id: ref.id ?? this.ks.ids.hex(), user_id: userId, service, path, method };
    await tx.insertInto('access_rule').values(row).execute();
    return row.id;
  }

  /** Rows with their role ids and access rules, two queries for the whole batch. */
  private async withLinks(rows: ApplicationCredentialRow[]): Promise<AppCred[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const roles = await this.db.selectFrom('application_credential_role').selectAll().where('application_credential_id', 'in', ids).execute();
    const rules = await this.db
      .selectFrom('access_rule')
      .innerJoin('application_credential_access_rule as l', 'l.access_rule_id', 'access_rule.id')
      .select(['l.application_credential_id', 'access_rule.id', 'access_rule.service', 'access_rule.path', 'access_rule.method'])
      .where('l.application_credential_id', 'in', ids)
      .orderBy('access_rule.id')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      description: row.description,
      userId: row.user_id,
      projectId: row.project_id,
      system: row.system,
      roleIds: roles.filter((r) => r.application_credential_id === row.id).map((r) => r.role_id),
      unrestricted: bool(row.unrestricted),
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      accessRules: rules.filter((r) => r.application_credential_id === row.id).map(({ id, service, path, method }) => ({ id, service, path, method })),
    }));
  }
}
