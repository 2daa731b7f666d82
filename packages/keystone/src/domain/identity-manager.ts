import type { Kysely, Transaction } from 'kysely';
import { badRequest, notFound, unauthorized } from '@onestack/core/errors.ts';
import type { GroupRow, KeystoneDB, UserRow } from '../db/schema.ts';
import { bool, int, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

export interface User {
  id: string;
  name: string;
  domainId: string;
  enabled: boolean;
  defaultProjectId: string | null;
  description?: string | null;
  email?: string | null;
  extra: Record<string, unknown>;
  options: Record<string, unknown>;
  passwordExpiresAt: number | null;
  createdAt?: number;
}

export interface UserCreate {
  id?: string;
  name: string;
  domainId: string;
  enabled?: boolean;
  defaultProjectId?: string | null;
  description?: string | null;
  email?: string | null;
  password?: string | null;
  extra?: Record<string, unknown>;
  options?: Record<string, unknown>;
}

export type UserUpdate = Partial<Omit<UserCreate, 'id' | 'domainId'>>;

export interface Group {
  id: string;
  name: string;
  domainId: string;
  description: string;
  extra: Record<string, unknown>;
}

const AUTH_FAILED = 'The request you have made requires authentication.';

/**
 * Users, groups and passwords, with upstream's security compliance rules
 * (lockout, password history, minimum age, expiry, first-use change).
 */
export class IdentityManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  private get conf() {
    return this.ks.config;
  }

  // ---- users -------------------------------------------------------------

  async findUser(id: string): Promise<User | undefined> {
    const row = await this.db.selectFrom('user').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toUser(row, await this.currentPasswordExpiry(id)) : undefined;
  }

  async getUser(id: string): Promise<User> {
    const u = await this.findUser(id);
    if (!u) throw notFound(`Could not find user: ${id}.`);
    return u;
  }

  async getUserByName(name: string, domainId: string): Promise<User> {
    const row = await this.db.selectFrom('user').selectAll().where('name', '=', name).where('domain_id', '=', domainId).executeTakeFirst();
    if (!row) throw notFound(`Could not find user: ${name}.`);
    return this.toUser(row, await this.currentPasswordExpiry(row.id));
  }

  async listUsers(filter: { domainId?: string; name?: string; enabled?: boolean; ids?: string[] } = {}): Promise<User[]> {
    let q = this.db.selectFrom('user').selectAll();
    if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.enabled !== undefined) q = q.where('enabled', '=', int(filter.enabled));
    if (filter.ids !== undefined) {
      if (filter.ids.length === 0) return [];
      q = q.where('id', 'in', filter.ids);
    }
    const rows = await q.orderBy('name').execute();
    return rows.map((r) => this.toUser(r, null));
  }

  async createUser(input: UserCreate): Promise<User> {
    await this.ks.resource.getDomain(input.domainId);
    const id = input.id ?? this.ks.ids.hex();
    const now = this.ks.clock.now();
    const row: UserRow = {
      id,
      domain_id: input.domainId,
      name: input.name,
      enabled: int(input.enabled ?? true),
      default_project_id: input.defaultProjectId ?? null,
      description: input.description ?? null,
      email: input.email ?? null,
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(input.options ?? {}),
      created_at: now,
      last_active_at: null,
      failed_auth_count: 0,
      failed_auth_at: null,
    };
    if (input.password) this.checkPasswordStrength(input.password);
    const hash = input.password ? await this.hash(input.password) : undefined;
    await this.ks.unique('user', `Duplicate entry found with name ${input.name} at domain ${input.domainId}.`, () =>
        this.db.transaction().execute(async (tx) => {
          await tx.insertInto('user').values(row).execute();
          if (hash) await this.insertPassword(tx, id, hash, { selfService: false, firstUse: true, now });
        }));
    this.ks.notifier.emit('user', 'created', id);
    return this.getUser(id);
  }

  async updateUser(id: string, patch: UserUpdate): Promise<User> {
    const current = await this.getUser(id);
    const set: Partial<UserRow> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    if (patch.defaultProjectId !== undefined) set.default_project_id = patch.defaultProjectId;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.email !== undefined) set.email = patch.email;
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (patch.options !== undefined) {
      const merged: Record<string, unknown> = { ...current.options };
      for (const [k, v] of Object.entries(patch.options)) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      set.options = JSON.stringify(merged);
    }
    // Re-enabling a locked-out user clears the lockout, as upstream.
    if (patch.enabled === true) {
      set.failed_auth_count = 0;
      set.failed_auth_at = null;
    }
    if (patch.password) this.checkPasswordStrength(patch.password);
    const hash = patch.password ? await this.hash(patch.password) : undefined;
    if (hash) await this.checkPasswordHistory(id, patch.password!);
    await this.ks.unique('user', `Duplicate entry found with name ${patch.name} at domain ${current.domainId}.`, () =>
        this.db.transaction().execute(async (tx) => {
          if (Object.keys(set).length) await tx.updateTable('user').set(set).where('id', '=', id).execute();
          if (hash) await this.insertPassword(tx, id, hash, { selfService: false, firstUse: true, now: this.ks.clock.now() });
        }));
    if ((patch.enabled === false && current.enabled) || hash) await this.ks.revocations.revoke({ userId: id });
    if (patch.enabled === false && current.enabled) this.ks.notifier.emit('user', 'disabled', id);
    this.ks.notifier.emit('user', 'updated', id);
    this.ks.invalidate();
    return this.getUser(id);
  }

  async deleteUser(id: string): Promise<void> {
    await this.getUser(id);
    await this.db.transaction().execute((tx) => this.purgeActors(tx, 'user', [id]));
    await this.ks.revocations.revoke({ userId: id });
    this.ks.notifier.emit('user', 'deleted', id);
    this.ks.invalidate();
  }

  /** Removes users, groups or roles and everything that refers to them. */
  async purgeActors(tx: Transaction<KeystoneDB>, kind: 'user' | 'group' | 'role', ids: string[]): Promise<void> {
    if (kind === 'user') {
      await tx.deleteFrom('password').where('user_id', 'in', ids).execute();
      await tx.deleteFrom('user_group_membership').where('user_id', 'in', ids).execute();
      await tx.deleteFrom('assignment').where('actor_id', 'in', ids).execute();
      await tx.deleteFrom('credential').where('user_id', 'in', ids).execute();
      const appCreds = await tx.selectFrom('application_credential').select('id').where('user_id', 'in', ids).execute();
      if (appCreds.length) {
        const acIds = appCreds.map((a) => a.id);
        await tx.deleteFrom('application_credential_role').where('application_credential_id', 'in', acIds).execute();
        await tx.deleteFrom('application_credential_access_rule').where('application_credential_id', 'in', acIds).execute();
        await tx.deleteFrom('application_credential').where('id', 'in', acIds).execute();
      }
      await tx.deleteFrom('access_rule').where('user_id', 'in', ids).execute();
      await tx.deleteFrom('user').where('id', 'in', ids).execute();
    } else if (kind === 'group') {
      await tx.deleteFrom('user_group_membership').where('group_id', 'in', ids).execute();
      await tx.deleteFrom('assignment').where('actor_id', 'in', ids).execute();
      await tx.deleteFrom('group').where('id', 'in', ids).execute();
    } else {
      await tx.deleteFrom('assignment').where('role_id', 'in', ids).execute();
      await tx.deleteFrom('implied_role').where((eb) => eb.or([eb('prior_role_id', 'in', ids), eb('implied_role_id', 'in', ids)])).execute();
      await tx.deleteFrom('application_credential_role').where('role_id', 'in', ids).execute();
      await tx.deleteFrom('role').where('id', 'in', ids).execute();
    }
  }

  // ---- authentication ----------------------------------------------------

  /**
   * Password check with lockout: failures are counted per user; after
   * lockout_failure_attempts the user is refused for lockout_duration seconds
   * even with the right password. Answers are the same 401 whatever the reason.
   */
  async authenticate(userId: string, password: string): Promise<User> {
    const row = await this.db.selectFrom('user').selectAll().where('id', '=', userId).executeTakeFirst();
    if (!row) throw unauthorized(AUTH_FAILED);
    const user = this.toUser(row, null);
    const now = this.ks.clock.now();
    const ignoreLockout = user.options.ignore_lockout_failure_attempts === true;
    if (this.isLockedOut(row, now) && !ignoreLockout) {
      throw unauthorized(`The account is locked for user: ${userId}.`);
    }
    const pw = await this.db
      .selectFrom('password')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    const ok = pw !== undefined && password.length <= this.conf.maxPasswordLength && (await verifyPassword(password, pw.hash));
    if (!ok) {
      await this.recordFailure(row, now);
      throw unauthorized(AUTH_FAILED);
    }
    if (!user.enabled) throw unauthorized(`User ${userId} is disabled.`);
    if (pw.expires_at !== null && pw.expires_at <= now && user.options.ignore_password_expiry !== true) {
      throw unauthorized(`The password is expired and needs to be changed for user: ${userId}.`);
    }
    if (
      this.conf.changePasswordUponFirstUse &&
      !bool(pw.self_service) &&
      user.options.ignore_change_password_upon_first_use !== true
    ) {
      throw unauthorized(`You are required to change your password upon first use for user: ${userId}.`);
    }
    if (row.failed_auth_count > 0 || this.conf.disableUserAccountDaysInactive !== null) {
      await this.db.updateTable('user').set({ failed_auth_count: 0, failed_auth_at: null, last_active_at: now }).where('id', '=', userId).execute();
    }
    return user;
  }

  private isLockedOut(row: UserRow, now: number): boolean {
    const max = this.conf.lockoutFailureAttempts;
    if (!max || row.failed_auth_count < max || row.failed_auth_at === null) return false;
    return now < Number(row.failed_auth_at) + this.conf.lockoutDuration * 1000;
  }

  private async recordFailure(row: UserRow, now: number): Promise<void> {
    if (!this.conf.lockoutFailureAttempts) return;
    // A lockout that has expired starts a fresh count.
    const expired = row.failed_auth_at !== null && now >= Number(row.failed_auth_at) + this.conf.lockoutDuration * 1000;
    const count = expired ? 1 : row.failed_auth_count + 1;
    await this.db.updateTable('user').set({ failed_auth_count: count, failed_auth_at: now }).where('id', '=', row.id).execute();
  }

  /** POST /v3/users/{id}/password: the user proves the old password. */
  async changePassword(userId: string, original: string, next: string): Promise<void> {
    const user = await this.getUser(userId);
    const pw = await this.db.selectFrom('password').selectAll().where('user_id', '=', userId).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
    const now = this.ks.clock.now();
    const lockedRow = await this.db.selectFrom('user').selectAll().where('id', '=', userId).executeTakeFirstOrThrow();
    if (this.isLockedOut(lockedRow, now) && user.options.ignore_lockout_failure_attempts !== true) {
      throw unauthorized(`The account is locked for user: ${userId}.`);
    }
    if (!pw || !(await verifyPassword(original, pw.hash))) {
      await this.recordFailure(lockedRow, now);
      throw unauthorized('The request you have made requires authentication.');
    }
    const minAgeMs = this.conf.minimumPasswordAge * 86400_000;
    if (minAgeMs > 0 && bool(pw.self_service) && now - Number(pw.created_at) < minAgeMs) {
      const days = this.conf.minimumPasswordAge;
      throw badRequest(
        `You cannot change your password at this time due to the minimum password age. Once you change your password, it must be used for ${days} day(s) before it can be changed. Please try again in ${Math.ceil((Number(pw.created_at) + minAgeMs - now) / 86400_000)} day(s) or contact your administrator to reset your password.`,
      );
    }
    this.checkPasswordStrength(next);
    await this.checkPasswordHistory(userId, next);
    const hash = await this.hash(next);
    await this.db.transaction().execute((tx) => this.insertPassword(tx, userId, hash, { selfService: true, firstUse: false, now }));
    await this.ks.revocations.revoke({ userId });
    this.ks.notifier.emit('user', 'updated', userId);
    this.ks.invalidate();
  }

  private checkPasswordStrength(password: string): void {
    if (password.length > this.conf.maxPasswordLength) {
      throw badRequest(`Invalid input for field 'password': the password is longer than ${this.conf.maxPasswordLength} characters.`);
    }
    if (this.conf.passwordRegex && !new RegExp(this.conf.passwordRegex).test(password)) {
      const why = this.conf.passwordRegexDescription ?? 'The password does not meet the requirements.';
      throw badRequest(`Password validation error: The password does not match the requirements: ${why}.`);
    }
  }

  private async checkPasswordHistory(userId: string, password: string): Promise<void> {
    const n = this.conf.uniqueLastPasswordCount;
    if (n <= 1) return;
    const recent = await this.db.selectFrom('password').select('hash').where('user_id', '=', userId).orderBy('created_at', 'desc').limit(n - 1).execute();
    for (const r of recent) {
      if (await verifyPassword(password, r.hash)) {
        throw badRequest(`The new password cannot be identical to a previous password. The total number which includes the new password must be unique is ${n}.`);
      }
    }
  }

  private async insertPassword(
    tx: Transaction<KeystoneDB>,
    userId: string,
    hash: string,
    o: { selfService: boolean; firstUse: boolean; now: number },
  ): Promise<void> {
    const days = this.conf.passwordExpiresDays;
    await tx
      .insertInto('password')
      .values({
        id: this.ks.ids.hex(),
        user_id: userId,
        hash,
        created_at: o.now,
        expires_at: days ? o.now + days * 86400_000 : null,
        self_service: int(o.selfService),
      })
      .execute();
    // Old passwords beyond the history window are useless; keep the table small.
    const keep = Math.max(this.conf.uniqueLastPasswordCount, 1);
    const old = await tx.selectFrom('password').select('id').where('user_id', '=', userId).orderBy('created_at', 'desc').offset(keep).limit(1000).execute();
    if (old.length) await tx.deleteFrom('password').where('id', 'in', old.map((o2) => o2.id)).execute();
    await tx.updateTable('user').set({ failed_auth_count: 0, failed_auth_at: null }).where('id', '=', userId).execute();
  }

  private hash(password: string): Promise<string> {
    return hashPassword(password, { algorithm: this.conf.passwordHashAlgorithm, rounds: this.conf.passwordHashRounds });
  }

  private async currentPasswordExpiry(userId: string): Promise<number | null> {
    const pw = await this.db.selectFrom('password').select('expires_at').where('user_id', '=', userId).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
    return pw?.expires_at ?? null;
  }

  // ---- groups ------------------------------------------------------------

  async getGroup(id: string): Promise<Group> {
    const row = await this.db.selectFrom('group').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`Could not find group: ${id}.`);
    return toGroup(row);
  }

  async getGroupByName(name: string, domainId: string): Promise<Group> {
    const row = await this.db.selectFrom('group').selectAll().where('name', '=', name).where('domain_id', '=', domainId).executeTakeFirst();
    if (!row) throw notFound(`Could not find group: ${name}.`);
    return toGroup(row);
  }

  async listGroups(filter: { domainId?: string; name?: string } = {}): Promise<Group[]> {
    let q = this.db.selectFrom('group').selectAll();
    if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    return (await q.orderBy('name').execute()).map(toGroup);
  }

  async createGroup(input: { name: string; domainId: string; description?: string; extra?: Record<string, unknown> }): Promise<Group> {
    await this.ks.resource.getDomain(input.domainId);
    const row: GroupRow = {
      id: this.ks.ids.hex(),
      domain_id: input.domainId,
      name: input.name,
      description: input.description ?? '',
      extra: JSON.stringify(input.extra ?? {}),
    };
    await this.ks.unique('group', `Duplicate entry found with name ${input.name} at domain ${input.domainId}.`, () => this.db.insertInto('group').values(row).execute());
    this.ks.notifier.emit('group', 'created', row.id);
    return toGroup(row);
  }

  async updateGroup(id: string, patch: { name?: string; description?: string; extra?: Record<string, unknown> }): Promise<Group> {
    const current = await this.getGroup(id);
    const set: Partial<GroupRow> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) {
      await this.ks.unique('group', `Duplicate entry found with name ${patch.name} at domain ${current.domainId}.`, () => this.db.updateTable('group').set(set).where('id', '=', id).execute());
    }
    this.ks.notifier.emit('group', 'updated', id);
    return this.getGroup(id);
  }

  async deleteGroup(id: string): Promise<void> {
    await this.getGroup(id);
    const members = await this.db.selectFrom('user_group_membership').select('user_id').where('group_id', '=', id).execute();
    await this.db.transaction().execute((tx) => this.purgeActors(tx, 'group', [id]));
    for (const m of members) await this.ks.revocations.revoke({ userId: m.user_id });
    this.ks.notifier.emit('group', 'deleted', id);
    this.ks.invalidate();
  }

  async addUserToGroup(userId: string, groupId: string): Promise<void> {
    await this.getUser(userId);
    await this.getGroup(groupId);
    await this.db.insertInto('user_group_membership').values({ user_id: userId, group_id: groupId }).onConflict((oc) => oc.doNothing()).execute();
    this.ks.notifier.emit('group', 'updated', groupId);
    this.ks.invalidate();
  }

  async removeUserFromGroup(userId: string, groupId: string): Promise<void> {
    await this.getUser(userId);
    await this.getGroup(groupId);
    const res = await this.db.deleteFrom('user_group_membership').where('user_id', '=', userId).where('group_id', '=', groupId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`User ${userId} is not a member of group ${groupId}.`);
    await this.ks.revocations.revoke({ userId });
    this.ks.notifier.emit('group', 'updated', groupId);
    this.ks.invalidate();
  }

  async isUserInGroup(userId: string, groupId: string): Promise<boolean> {
    const row = await this.db.selectFrom('user_group_membership').select('user_id').where('user_id', '=', userId).where('group_id', '=', groupId).executeTakeFirst();
    return row !== undefined;
  }

  async listGroupsForUser(userId: string): Promise<Group[]> {
    const rows = await this.db
      .selectFrom('group')
      .innerJoin('user_group_membership as m', 'm.group_id', 'group.id')
      .selectAll('group')
      .where('m.user_id', '=', userId)
      .orderBy('group.name')
      .execute();
    return rows.map(toGroup);
  }

  async listUsersInGroup(groupId: string): Promise<User[]> {
    await this.getGroup(groupId);
    const rows = await this.db
      .selectFrom('user')
      .innerJoin('user_group_membership as m', 'm.user_id', 'user.id')
      .selectAll('user')
      .where('m.group_id', '=', groupId)
      .orderBy('user.name')
      .execute();
    return rows.map((r) => this.toUser(r, null));
  }

  private toUser(row: UserRow, passwordExpiresAt: number | null): User {
    return {
      id: row.id,
      name: row.name,
      domainId: row.domain_id,
      enabled: bool(row.enabled),
      defaultProjectId: row.default_project_id,
      description: row.description,
      email: row.email,
      extra: parseJson(row.extra),
      options: parseJson(row.options),
      passwordExpiresAt,
      createdAt: Number(row.created_at),
    };
  }
}

function toGroup(row: GroupRow): Group {
  return { id: row.id, name: row.name, domainId: row.domain_id, description: row.description ?? '', extra: parseJson(row.extra) };
}

