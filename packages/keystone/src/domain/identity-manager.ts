import type { Kysely, Transaction } from 'kysely';
import { badRequest, notFound, unauthorized } from '@onestack/core/errors.ts';
import { insertIgnoringDuplicates } from '@onestack/core/db/index.ts';
import type { GroupRow, KeystoneDB, UserRow } from '../db/schema.ts';
import { DomainDirectories, driverGroup, driverUser, type Mapped } from './domain-directories.ts';
import { bool, int, mergeOptions, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { PasswordRules } from './password-rules.ts';

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

export type ExpiryOperator = 'lt' | 'lte' | 'gt' | 'gte' | 'eq' | 'neq';

export interface PasswordExpiryFilter {
  op: ExpiryOperator;
  at: number;
}

export interface UserFilter {
  domainId?: string;
  name?: string;
  enabled?: boolean;
  ids?: string[];
  passwordExpires?: PasswordExpiryFilter;
}

export const EXPIRY_OPERATORS: Record<ExpiryOperator, (a: number, b: number) => boolean> = {
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
  eq: (a, b) => a === b,
  neq: (a, b) => a !== b,
};

const AUTH_FAILED = 'The request you have made requires authentication.';

const passwordExpired = (userId: string) => unauthorized(`The password is expired and needs to be changed for user: ${userId}.`);
const notInGroup = (userId: string, groupId: string) => notFound(`User '${userId}' not found in group '${groupId}'`);

/**
 * Users, groups and passwords, with upstream's security compliance rules
 * (lockout, password history, minimum age, expiry, first-use change). A
 * domain may keep its users and groups in a read-only LDAP directory instead
 * (upstream's domain-specific drivers): those get public ids through
 * id_mapping, are read through the domain's driver and are never written.
 */
export class IdentityManager {
  private readonly dirs: DomainDirectories;
  private readonly passwords: PasswordRules;

  constructor(private readonly ks: Keystone) {
    this.dirs = new DomainDirectories(ks);
    this.passwords = new PasswordRules(ks);
  }

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  /** Upstream's domain-specific drivers from files (keystone.<domain name>.conf), read once at start-up. */
  loadDomainDrivers(dir: string): Promise<void> {
    return this.dirs.load(dir);
  }

  close(): Promise<void> {
    return this.dirs.close();
  }

  /** A deleted domain's directory users and groups: their public ids and everything granted to them go. */
  purgeMappings(tx: Transaction<KeystoneDB>, domainId: string): Promise<void> {
    return this.dirs.purgeMappings(tx, domainId, (kind, ids) => this.purgeActors(tx, kind, ids));
  }

  // ---- users -------------------------------------------------------------

  async findUser(id: string): Promise<User | undefined> {
    const m = await this.dirs.mapped(id, 'user');
    if (m) {
      const u = await m.driver.getUser(m.localId);
      return u && driverUser(m.domainId, id, u);
    }
    const row = await this.db.selectFrom('user').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toUser(row, (await this.passwords.current(id))?.expires_at ?? null) : undefined;
  }

  async getUser(id: string): Promise<User> {
    const u = await this.findUser(id);
    if (!u) throw notFound(`Could not find user: ${id}.`);
    return u;
  }

  async getUserByName(name: string, domainId: string): Promise<User> {
    const driver = this.dirs.driverFor(domainId);
    if (driver) {
      const u = await driver.getUserByName(name);
      if (!u) throw notFound(`Could not find user: ${name}.`);
      return (await this.dirs.usersFrom(domainId, [u]))[0]!;
    }
    const row = await this.db.selectFrom('user').selectAll().where('name', '=', name).where('domain_id', '=', domainId).executeTakeFirst();
    if (!row) throw notFound(`Could not find user: ${name}.`);
    return this.toUser(row, (await this.passwords.current(row.id))?.expires_at ?? null);
  }

  async listUsers(filter: UserFilter = {}): Promise<User[]> {
    const driver = this.dirs.driverFor(filter.domainId);
    if (driver) {
      // The directory matches names as its schema says (usually case-insensitively), as upstream.
      const users = await this.dirs.usersFrom(filter.domainId!, await driver.listUsers({ name: filter.name, enabled: filter.enabled }));
      return users.filter((u) => matches(u, { ids: filter.ids, passwordExpires: filter.passwordExpires }));
    }
    let q = this.db.selectFrom('user').selectAll();
    if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.enabled !== undefined) q = q.where('enabled', '=', int(filter.enabled));
    if (filter.ids !== undefined) {
      if (filter.ids.length === 0) return [];
      q = q.where('id', 'in', filter.ids);
    }
    return this.withExpiry(await q.orderBy('name').execute(), filter.passwordExpires);
  }

  async createUser(input: UserCreate): Promise<User> {
    await this.ks.resource.getDomain(input.domainId);
    if (this.dirs.driverFor(input.domainId)) throw this.dirs.readOnly(input.domainId);
    await this.assertDefaultProjectNotDomain(input.defaultProjectId);
    const id = input.id ?? this.ks.ids.hex();
    const now = this.ks.clock.now();
    const name = input.name.trim();
    const options = mergeOptions({}, input.options);
    const row: UserRow = {
      id,
      domain_id: input.domainId,
      name,
      enabled: int(input.enabled ?? true),
      default_project_id: input.defaultProjectId ?? null,
      description: input.description ?? null,
      email: input.email ?? null,
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(options),
      created_at: now,
      last_active_at: null,
      failed_auth_count: 0,
      failed_auth_at: null,
    };
    if (input.password) this.passwords.checkStrength(input.password);
    const hash = input.password ? await this.passwords.hash(input.password) : undefined;
    await this.ks.unique('user', `Duplicate entry found with name ${name} at domain ID ${input.domainId}.`, () =>
      this.db.transaction().execute(async (tx) => {
        await tx.insertInto('user').values(row).execute();
        if (hash) await this.passwords.insert(tx, id, hash, { selfService: false, now, options });
      }),
    );
    this.ks.notifier.emit('user', 'created', id);
    return this.getUser(id);
  }

  /**
   * An administrator's update. A new password here is an admin reset: it skips
   * the history and minimum-age rules (those bind the user's own changes) and,
   * with change_password_upon_first_use, must be changed by the user before use.
   * A null password removes the user's password.
   */
  async updateUser(id: string, patch: UserUpdate): Promise<User> {
    const current = await this.getUser(id);
    await this.dirs.refuseMapped(id, 'user');
    await this.assertDefaultProjectNotDomain(patch.defaultProjectId);
    const set: Partial<UserRow> = {};
    if (patch.name !== undefined) set.name = patch.name.trim();
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    if (patch.defaultProjectId !== undefined) set.default_project_id = patch.defaultProjectId;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.email !== undefined) set.email = patch.email;
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    const options = mergeOptions(current.options, patch.options);
    if (patch.options !== undefined) set.options = JSON.stringify(options);
    // Re-enabling a locked-out user clears the lockout, as upstream.
    if (patch.enabled === true) {
      set.failed_auth_count = 0;
      set.failed_auth_at = null;
    }
    if (patch.password) this.passwords.checkStrength(patch.password);
    const hash = patch.password ? await this.passwords.hash(patch.password) : undefined;
    const passwordChanged = patch.password !== undefined;
    await this.ks.unique('user', `Duplicate entry found with name ${set.name} at domain ID ${current.domainId}.`, () =>
      this.db.transaction().execute(async (tx) => {
        if (Object.keys(set).length) await tx.updateTable('user').set(set).where('id', '=', id).execute();
        if (hash) await this.passwords.insert(tx, id, hash, { selfService: false, now: this.ks.clock.now(), options });
        else if (patch.password === null) await tx.deleteFrom('password').where('user_id', '=', id).execute();
        // A disabled user's delegations die with it, as upstream.
        if (patch.enabled === false) await this.ks.appCreds.purge(tx, { userIds: [id] });
      }),
    );
    if ((patch.enabled === false && current.enabled) || passwordChanged) await this.ks.revocations.revoke({ userId: id });
    if (patch.enabled === false && current.enabled) this.ks.notifier.emit('user', 'disabled', id);
    this.ks.notifier.emit('user', 'updated', id);
    this.ks.invalidate();
    return this.getUser(id);
  }

  async deleteUser(id: string): Promise<void> {
    await this.getUser(id);
    await this.dirs.refuseMapped(id, 'user');
    await this.db.transaction().execute((tx) => this.purgeActors(tx, 'user', [id]));
    await this.ks.revocations.revoke({ userId: id });
    this.ks.notifier.emit('user', 'deleted', id);
    this.ks.invalidate();
  }

  /** A default project is only a convenience and need not exist, but it may not be a domain. */
  private async assertDefaultProjectNotDomain(projectId: string | null | undefined): Promise<void> {
    if (!projectId) return;
    const project = await this.ks.resource.findProject(projectId);
    if (project?.isDomain) throw badRequest(`User's default project ID cannot be a domain ID: ${projectId}`);
  }

  /** Removes users, groups or roles and everything that refers to them. */
  async purgeActors(tx: Transaction<KeystoneDB>, kind: 'user' | 'group' | 'role', ids: string[]): Promise<void> {
    if (kind === 'user') {
      await tx.deleteFrom('password').where('user_id', 'in', ids).execute();
      await tx.deleteFrom('user_group_membership').where('user_id', 'in', ids).execute();
      await tx.deleteFrom('assignment').where('actor_id', 'in', ids).execute();
      await tx.deleteFrom('credential').where('user_id', 'in', ids).execute();
      await this.ks.appCreds.purge(tx, { userIds: ids });
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
   * even with the right password. A wrong password never says why.
   */
  async authenticate(userId: string, password: string): Promise<User> {
    const m = await this.dirs.mapped(userId, 'user');
    if (m) return this.authenticateMapped(userId, m, password);
    const checked = await this.verify(userId, password);
    if (!checked) throw unauthorized(AUTH_FAILED);
    if (checked.expired) throw passwordExpired(userId);
    return checked.user;
  }

  /**
   * The directory checks the password (a bind as the user); lockout, expiry
   * and history are SQL rules and do not apply. An unreachable directory is a
   * 500 from the driver, never a wrong password.
   */
  private async authenticateMapped(userId: string, m: Mapped, password: string): Promise<User> {
    if (!(await m.driver.authenticate(m.localId, password))) throw unauthorized(AUTH_FAILED);
    const found = await m.driver.getUser(m.localId);
    if (!found) throw unauthorized(AUTH_FAILED);
    const user = driverUser(m.domainId, userId, found);
    if (!user.enabled) throw unauthorized(`The account is disabled for user: ${userId}.`);
    return user;
  }

  /**
   * Upstream's driver authenticate: who the user is when the password is
   * right (and whether that password has expired), undefined when it is wrong;
   * a locked or disabled account throws its own 401.
   */
  private async verify(userId: string, password: string): Promise<{ user: User; expired: boolean } | undefined> {
    const row = await this.db.selectFrom('user').selectAll().where('id', '=', userId).executeTakeFirst();
    if (!row) return undefined;
    const pw = await this.passwords.current(userId);
    const user = this.toUser(row, pw?.expires_at ?? null);
    const now = this.ks.clock.now();
    if (this.passwords.isLockedOut(row, user, now)) throw unauthorized(`The account is locked for user: ${userId}.`);
    if (!pw || !(await this.passwords.matches(password, pw.hash))) {
      await this.passwords.recordFailure(row, now);
      return undefined;
    }
    if (!user.enabled) throw unauthorized(`The account is disabled for user: ${userId}.`);
    if (row.failed_auth_count > 0 || this.ks.config.disableUserAccountDaysInactive !== null) {
      await this.db.updateTable('user').set({ failed_auth_count: 0, failed_auth_at: null, last_active_at: now }).where('id', '=', userId).execute();
    }
    const expired = pw.expires_at !== null && now >= Number(pw.expires_at) && user.options.ignore_password_expiry !== true;
    return { user, expired };
  }

  /**
   * POST /v3/users/{id}/password: the user proves the current password, which
   * may have expired (that is how an expired or first-use password gets
   * replaced), then the new one must pass the regex, lock_password, the
   * minimum age of a self-chosen password and the history.
   */
  async changePassword(userId: string, original: string, next: string): Promise<void> {
    const m = await this.dirs.mapped(userId, 'user');
    if (m) {
      // As upstream: the original password is checked before the backend refuses the write.
      await this.authenticateMapped(userId, m, original);
      throw this.dirs.readOnly(m.domainId);
    }
    const checked = await this.verify(userId, original);
    if (!checked) throw unauthorized(AUTH_FAILED);
    const { user } = checked;
    this.passwords.checkStrength(next);
    if (user.options.lock_password === true) {
      throw badRequest(
        'You cannot change your password at this time due to password policy disallowing password changes. Please contact your administrator to reset your password.',
      );
    }
    const now = this.ks.clock.now();
    this.passwords.checkMinimumAge(await this.passwords.current(userId), now);
    await this.passwords.checkHistory(userId, next);
    const hash = await this.passwords.hash(next);
    await this.db.transaction().execute((tx) => this.passwords.insert(tx, userId, hash, { selfService: true, now, options: user.options }));
    await this.ks.revocations.revoke({ userId });
    this.ks.notifier.emit('user', 'updated', userId);
    this.ks.invalidate();
  }

  /** Users with their current password's expiry, optionally filtered on it as `?password_expires_at=op:time` does. */
  private async withExpiry(rows: UserRow[], filter?: PasswordExpiryFilter): Promise<User[]> {
    const expiry = new Map<string, number | null>();
    if (rows.length) {
      const pws = await this.db.selectFrom('password').select(['user_id', 'expires_at']).where('user_id', 'in', rows.map((r) => r.id)).orderBy('created_at').execute();
      for (const p of pws) expiry.set(p.user_id, p.expires_at === null ? null : Number(p.expires_at));
    }
    const users = rows.map((r) => this.toUser(r, expiry.get(r.id) ?? null));
    if (!filter) return users;
    return users.filter((u) => matches(u, { passwordExpires: filter }));
  }

  // ---- groups ------------------------------------------------------------

  async findGroup(id: string): Promise<Group | undefined> {
    const m = await this.dirs.mapped(id, 'group');
    if (m) {
      const g = await m.driver.getGroup(m.localId);
      return g && driverGroup(m.domainId, id, g);
    }
    const row = await this.db.selectFrom('group').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toGroup(row) : undefined;
  }

  async getGroup(id: string): Promise<Group> {
    const g = await this.findGroup(id);
    if (!g) throw notFound(`Could not find group: ${id}.`);
    return g;
  }

  async getGroupByName(name: string, domainId: string): Promise<Group> {
    const driver = this.dirs.driverFor(domainId);
    if (driver) {
      const g = await driver.getGroupByName(name);
      if (!g) throw notFound(`Could not find group: ${name}.`);
      return (await this.dirs.groupsFrom(domainId, [g]))[0]!;
    }
    const row = await this.db.selectFrom('group').selectAll().where('name', '=', name).where('domain_id', '=', domainId).executeTakeFirst();
    if (!row) throw notFound(`Could not find group: ${name}.`);
    return toGroup(row);
  }

  async listGroups(filter: { domainId?: string; name?: string } = {}): Promise<Group[]> {
    const driver = this.dirs.driverFor(filter.domainId);
    if (driver) return this.dirs.groupsFrom(filter.domainId!, await driver.listGroups({ name: filter.name }));
    let q = this.db.selectFrom('group').selectAll();
    if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    return (await q.orderBy('name').execute()).map(toGroup);
  }

  async createGroup(input: { name: string; domainId: string; description?: string; extra?: Record<string, unknown> }): Promise<Group> {
    await this.ks.resource.getDomain(input.domainId);
    if (this.dirs.driverFor(input.domainId)) throw this.dirs.readOnly(input.domainId);
    const name = input.name.trim();
    const row: GroupRow = {
      id: this.ks.ids.hex(),
      domain_id: input.domainId,
      name,
      description: input.description ?? '',
      extra: JSON.stringify(input.extra ?? {}),
    };
    await this.ks.unique('group', `Duplicate entry found with name ${name} at domain ID ${input.domainId}.`, () => this.db.insertInto('group').values(row).execute());
    this.ks.notifier.emit('group', 'created', row.id);
    return toGroup(row);
  }

  async updateGroup(id: string, patch: { name?: string; description?: string; extra?: Record<string, unknown> }): Promise<Group> {
    const current = await this.getGroup(id);
    await this.dirs.refuseMapped(id, 'group');
    const set: Partial<GroupRow> = {};
    if (patch.name !== undefined) set.name = patch.name.trim();
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) {
      await this.ks.unique('group', `Duplicate entry found with name ${set.name} at domain ID ${current.domainId}.`, () => this.db.updateTable('group').set(set).where('id', '=', id).execute());
    }
    this.ks.notifier.emit('group', 'updated', id);
    return this.getGroup(id);
  }

  async deleteGroup(id: string): Promise<void> {
    await this.getGroup(id);
    await this.dirs.refuseMapped(id, 'group');
    const members = await this.db.selectFrom('user_group_membership').select('user_id').where('group_id', '=', id).execute();
    await this.db.transaction().execute((tx) => this.purgeActors(tx, 'group', [id]));
    for (const m of members) await this.ks.revocations.revoke({ userId: m.user_id });
    this.ks.notifier.emit('group', 'deleted', id);
    this.ks.invalidate();
  }

  async addUserToGroup(userId: string, groupId: string): Promise<void> {
    await this.getUser(userId);
    await this.getGroup(groupId);
    const directory = await this.dirs.sameBackend(userId, groupId);
    if (directory) throw this.dirs.readOnly(directory.domainId);
    await insertIgnoringDuplicates(this.db, 'user_group_membership', { user_id: userId, group_id: groupId }).execute();
    this.ks.notifier.emit('group', 'updated', groupId);
    this.ks.invalidate();
  }

  async removeUserFromGroup(userId: string, groupId: string): Promise<void> {
    await this.getUser(userId);
    await this.getGroup(groupId);
    const directory = await this.dirs.sameBackend(userId, groupId);
    if (directory) throw this.dirs.readOnly(directory.domainId);
    const res = await this.db.deleteFrom('user_group_membership').where('user_id', '=', userId).where('group_id', '=', groupId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notInGroup(userId, groupId);
    await this.ks.revocations.revoke({ userId });
    this.ks.notifier.emit('group', 'updated', groupId);
    this.ks.invalidate();
  }

  /** HEAD /v3/groups/{group_id}/users/{user_id}: a 404 naming what is missing. */
  async checkUserInGroup(userId: string, groupId: string): Promise<void> {
    await this.getGroup(groupId);
    await this.getUser(userId);
    await this.dirs.sameBackend(userId, groupId);
    if (!(await this.isUserInGroup(userId, groupId))) throw notInGroup(userId, groupId);
  }

  async isUserInGroup(userId: string, groupId: string): Promise<boolean> {
    const [user, group] = await Promise.all([this.dirs.mapped(userId, 'user'), this.dirs.mapped(groupId, 'group')]);
    if (user || group) return user !== undefined && user.driver === group?.driver && user.driver.isUserInGroup(user.localId, group.localId);
    const row = await this.db.selectFrom('user_group_membership').select('user_id').where('user_id', '=', userId).where('group_id', '=', groupId).executeTakeFirst();
    return row !== undefined;
  }

  async listGroupsForUser(userId: string): Promise<Group[]> {
    const m = await this.dirs.mapped(userId, 'user');
    if (m) return this.dirs.groupsFrom(m.domainId, await m.driver.listGroupsForUser(m.localId));
    const rows = await this.db
      .selectFrom('group')
      .innerJoin('user_group_membership as m', 'm.group_id', 'group.id')
      .selectAll('group')
      .where('m.user_id', '=', userId)
      .orderBy('group.name')
      .execute();
    return rows.map(toGroup);
  }

  async listUsersInGroup(groupId: string, filter: UserFilter = {}): Promise<User[]> {
    await this.getGroup(groupId);
    const m = await this.dirs.mapped(groupId, 'group');
    if (m) return (await this.dirs.usersFrom(m.domainId, await m.driver.listUsersInGroup(m.localId))).filter((u) => matches(u, filter));
    let q = this.db
      .selectFrom('user')
      .innerJoin('user_group_membership as m', 'm.user_id', 'user.id')
      .selectAll('user');
    if (filter.domainId !== undefined) q = q.where('user.domain_id', '=', filter.domainId);
    if (filter.name !== undefined) q = q.where('user.name', '=', filter.name);
    if (filter.enabled !== undefined) q = q.where('user.enabled', '=', int(filter.enabled));
    const rows = await q
      .where('m.group_id', '=', groupId)
      .orderBy('user.name')
      .execute();
    return this.withExpiry(rows, filter.passwordExpires);
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

/** The user list filters, applied in memory: to what a directory cannot filter, and to password expiry. */
function matches(u: User, f: UserFilter): boolean {
  const expires = f.passwordExpires;
  return (
    (f.domainId === undefined || u.domainId === f.domainId) &&
    (f.name === undefined || u.name === f.name) &&
    (f.enabled === undefined || u.enabled === f.enabled) &&
    (f.ids === undefined || f.ids.includes(u.id)) &&
    (expires === undefined || (u.passwordExpiresAt !== null && EXPIRY_OPERATORS[expires.op](u.passwordExpiresAt, expires.at)))
  );
}
