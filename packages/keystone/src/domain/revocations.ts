import type { Kysely } from 'kysely';
import type { KeystoneDB, RevocationEventRow } from '../db/schema.ts';
import type { Keystone } from './keystone.ts';

/**
 * Revocation events, upstream's model: a token is revoked when an event issued
 * after the token matches it (same user, project, domain, role, audit id or
 * audit chain). Tokens are not stored, so this is the only way to kill one.
 * Events are kept in memory; those of other Keystone processes are loaded when
 * cluster-sync.ts sees the shared generation move.
 */
export interface RevokeRequest {
  userId?: string;
  projectId?: string;
  domainId?: string;
  roleId?: string;
  auditId?: string;
  auditChainId?: string;
  /** Revoke tokens issued up to this time (default: now). */
  issuedBefore?: number;
  expiresAt?: number;
}

export interface TokenFacts {
  userId: string;
  projectId?: string;
  /** The user's domain and the project's domain or the scoped domain. */
  domainIds: string[];
  roleIds: string[];
  auditId: string;
  auditChainId: string;
  issuedAt: number;
}

export class Revocations {
  private events: RevocationEventRow[] = [];

  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  async load(): Promise<void> {
    const cutoff = this.ks.clock.now() - (this.ks.config.tokenExpiration + this.ks.config.allowExpiredWindow) * 1000;
    await this.db.deleteFrom('revocation_event').where('revoked_at', '<', cutoff).execute();
    this.events = await this.db.selectFrom('revocation_event').selectAll().orderBy('revoked_at').execute();
  }

  async revoke(r: RevokeRequest): Promise<void> {
    const now = this.ks.clock.now();
    const row: RevocationEventRow = {
      id: this.ks.ids.hex(),
      domain_id: r.domainId ?? null,
      project_id: r.projectId ?? null,
      user_id: r.userId ?? null,
      role_id: r.roleId ?? null,
      audit_id: r.auditId ?? null,
      audit_chain_id: r.auditChainId ?? null,
      issued_before: r.issuedBefore ?? now,
      expires_at: r.expiresAt ?? null,
      revoked_at: now,
    };
    await this.db.insertInto('revocation_event').values(row).execute();
    this.events.push(row);
    this.ks.invalidate();
    this.ks.notifier.emit('revocation', 'created', row.id);
  }

  isRevoked(t: TokenFacts): boolean {
    for (const e of this.events) {
      // Tokens from other processes carry whole seconds: those of the event's second count as revoked.
      if (Number(e.issued_before) < t.issuedAt) continue;
      if (e.user_id !== null && e.user_id !== t.userId) continue;
      if (e.project_id !== null && e.project_id !== t.projectId) continue;
      if (e.domain_id !== null && !t.domainIds.includes(e.domain_id)) continue;
      if (e.role_id !== null && !t.roleIds.includes(e.role_id)) continue;
      if (e.audit_id !== null && e.audit_id !== t.auditId) continue;
      if (e.audit_chain_id !== null && e.audit_chain_id !== t.auditChainId) continue;
      return true;
    }
    return false;
  }

  list(since?: number): RevocationEventRow[] {
    return since === undefined ? [...this.events] : this.events.filter((e) => Number(e.revoked_at) >= since);
  }

}
