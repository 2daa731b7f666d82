import type { Transaction } from 'kysely';
import { badRequest } from '@onestack/core/errors.ts';
import type { KeystoneDB, PasswordRow, UserRow } from '../db/schema.ts';
import type { User } from './identity-manager.ts';
import { bool, int } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

const DAY_MS = 86_400_000;

/**
 * Upstream's security compliance rules for SQL users' passwords ([security_compliance]):
 * lockout after failed attempts, strength regex, history, minimum age, expiry and
 * change upon first use.
 */
export class PasswordRules {
  constructor(private readonly ks: Keystone) {}

  private get conf() {
    return this.ks.config;
  }

  /** Whether `password` is the one `hash` was made from, under the configured algorithm. */
  matches(password: string, hash: string): Promise<boolean> {
    return verifyPassword(password, hash, this.policy);
  }

  /** A self-chosen password must be used minimum_password_age days before the user may change it again. */
  checkMinimumAge(current: PasswordRow | undefined, now: number): void {
    const days = this.conf.minimumPasswordAge;
    if (days > 0 && current && bool(current.self_service) && now < Number(current.created_at) + days * DAY_MS) {
      const daysLeft = Math.floor((Number(current.created_at) + days * DAY_MS - now) / DAY_MS);
      throw badRequest(
        `You cannot change your password at this time due to the minimum password age. Once you change your password, it must be used for ${days} day(s) before it can be changed. Please try again in ${daysLeft} day(s) or contact your administrator to reset your password.`,
      );
    }
  }

  /** Whether lockout_failure_attempts failures within lockout_duration lock the user out now. */
  isLockedOut(row: UserRow, user: User, now: number): boolean {
    const max = this.conf.lockoutFailureAttempts;
    if (!max || user.options.ignore_lockout_failure_attempts === true) return false;
    if (row.failed_auth_count < max || row.failed_auth_at === null) return false;
    return now < Number(row.failed_auth_at) + this.conf.lockoutDuration * 1000;
  }

  async recordFailure(row: UserRow, now: number): Promise<void> {
    if (!this.conf.lockoutFailureAttempts) return;
    // A lockout that has expired starts a fresh count.
    const expired = row.failed_auth_at !== null && now >= Number(row.failed_auth_at) + this.conf.lockoutDuration * 1000;
    const count = expired ? 1 : row.failed_auth_count + 1;
    await this.ks.db.updateTable('user').set({ failed_auth_count: count, failed_auth_at: now }).where('id', '=', row.id).execute();
  }

  checkStrength(password: string): void {
    const pattern = this.conf.passwordRegex;
    // Python's re.match: anchored at the start only.
    if (pattern && !new RegExp(`^(?:${pattern})`).test(password)) {
      throw badRequest(`The password does not match the requirements: ${this.conf.passwordRegexDescription ?? 'None'}.`);
    }
  }

  /** The new password may not be any of the last unique_last_password_count ones (the current one included). */
  async checkHistory(userId: string, password: string): Promise<void> {
    const n = this.conf.uniqueLastPasswordCount;
    if (n <= 0) return;
    const recent = await this.ks.db.selectFrom('password').select('hash').where('user_id', '=', userId).orderBy('created_at', 'desc').limit(n).execute();
    for (const r of recent) {
      if (await this.matches(password, r.hash)) {
        throw badRequest(`The new password cannot be identical to a previous password. The total number which includes the new password must be unique is ${n}.`);
      }
    }
  }

  /** Makes `hash` the user's current password, keeping only the history the rules need. */
  async insert(
    tx: Transaction<KeystoneDB>,
    userId: string,
    hash: string,
    o: { selfService: boolean; now: number; options: Record<string, unknown> },
  ): Promise<void> {
    // Creation times order a user's passwords, so they must differ even within one millisecond.
    const previous = await tx.selectFrom('password').select('created_at').where('user_id', '=', userId).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
    const createdAt = previous ? Math.max(o.now, Number(previous.created_at) + 1) : o.now;
    await tx
      .insertInto('password')
      .values({
        id: this.ks.ids.hex(),
        user_id: userId,
        hash,
        created_at: createdAt,
        expires_at: this.expiry(createdAt, o.selfService, o.options),
        self_service: int(o.selfService),
      })
      .execute();
    // Old passwords beyond the history window are useless; keep the table small.
    const keep = Math.max(this.conf.uniqueLastPasswordCount, 1);
    const old = await tx.selectFrom('password').select('id').where('user_id', '=', userId).orderBy('created_at', 'desc').offset(keep).limit(1000).execute();
    if (old.length) await tx.deleteFrom('password').where('id', 'in', old.map((o2) => o2.id)).execute();
    await tx.updateTable('user').set({ failed_auth_count: 0, failed_auth_at: null }).where('id', '=', userId).execute();
  }

  /**
   * As upstream: a password an administrator set must be changed before use
   * (it is born expired) when change_password_upon_first_use is on; otherwise it
   * lives password_expires_days, to the second; the user options exempt.
   */
  private expiry(createdAt: number, selfService: boolean, options: Record<string, unknown>): number | null {
    if (!selfService && this.conf.changePasswordUponFirstUse && options.ignore_change_password_upon_first_use !== true) return createdAt;
    const days = this.conf.passwordExpiresDays;
    if (!days || options.ignore_password_expiry === true) return null;
    return Math.floor((createdAt + days * DAY_MS) / 1000) * 1000;
  }

  private get policy() {
    return { algorithm: this.conf.passwordHashAlgorithm, maxPasswordLength: this.conf.maxPasswordLength };
  }

  /** A hash of a new password under the configured algorithm and rounds. */
  hash(password: string): Promise<string> {
    return hashPassword(password, { ...this.policy, rounds: this.conf.passwordHashRounds });
  }

  /** The user's current (latest) password. */
  async current(userId: string): Promise<PasswordRow | undefined> {
    return this.ks.db.selectFrom('password').selectAll().where('user_id', '=', userId).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
  }
}
