import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import type { AuthContext } from '../context.ts';
import { isApiError, unauthorized } from '../errors.ts';
import { badResponse, discard, identityUnavailable, KeystoneSession, readJson, type ServiceCredentials } from './keystone-session.ts';
import type { TokenValidator } from './token-validator.ts';

/**
 * keystonemiddleware's auth_token for a service running apart from Keystone:
 * validates user tokens with GET /v3/auth/tokens under the service's own token,
 * caches the answers, and polls OS-REVOKE so a revoked token stops working
 * within seconds rather than at the end of the cache lifetime.
 */

/** The part of a pino logger the validator writes to. */
export interface ValidatorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface HttpTokenValidatorOptions {
  /** Keystone's public endpoint, with or without the trailing /v3. */
  authUrl: string;
  /** The service user the validator authenticates as. */
  serviceCredentials: ServiceCredentials;
  /** How long a validated token is trusted without asking again (token_cache_time). */
  cacheTtlMs?: number;
  /** How long a token Keystone refused is refused without asking again. */
  negativeCacheTtlMs?: number;
  revocationPollMs?: number;
  /** Per request to Keystone; past it Keystone counts as unavailable. */
  requestTimeoutMs?: number;
  /** Per cache (valid and refused tokens each). */
  maxCacheEntries?: number;
  clock?: Clock;
  logger?: ValidatorLogger;
  fetch?: typeof fetch;
}

/** What a revocation event can match on, as Keystone's own revocation check reads a token. */
interface TokenFacts {
  userId: string;
  projectId?: string;
  /** The user's domain and the project's domain or the scoped domain. */
  domainIds: string[];
  roleIds: string[];
  auditId?: string;
  auditChainId?: string;
  issuedAt: number;
}

interface RevocationEvent {
  userId?: string;
  projectId?: string;
  domainId?: string;
  roleId?: string;
  auditId?: string;
  auditChainId?: string;
  issuedBefore: number;
  revokedAt: number;
}

interface CachedToken {
  ctx: AuthContext;
  facts: TokenFacts;
  until: number;
}

/**
 * Events are re-fetched this far behind the newest one seen: Keystone processes
 * commit events out of timestamp order by a few milliseconds, and an event
 * committed behind the high-water mark must not be missed.
 */
const REVOCATION_OVERLAP_MS = 5_000;
/** Longer than any Keystone token format; a longer value is garbage and not worth a round trip. */
const MAX_TOKEN_LENGTH = 8192;
/** Visible ASCII only: anything else cannot be sent in a header, so it cannot be a token. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

const silentLogger: ValidatorLogger = { info() {}, warn() {}, error() {} };

export class HttpTokenValidator implements TokenValidator {
  private readonly session: KeystoneSession;
  private readonly cacheTtlMs: number;
  private readonly negativeCacheTtlMs: number;
  private readonly pollMs: number;
  private readonly maxEntries: number;
  private readonly clock: Clock;
  private readonly log: ValidatorLogger;

  private readonly valid = new Map<string, CachedToken>();
  private readonly refused = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<AuthContext>>();

  private pollStarted = false;
  private closed = false;
  private pollTimer?: NodeJS.Timeout;
  private pollRunning?: Promise<void>;
  private pollFailing = false;
  /** revoked_at of the newest event seen; undefined until one is, so the first poll fetches them all. */
  private revokedThrough?: number;
  /** Events inside the overlap window, so re-fetched ones are not applied twice. */
  private readonly seenEvents = new Map<string, number>();
  /** Bumped by every batch of new events: an answer obtained across a bump is not cached. */
  private revocationEpoch = 0;

  constructor(opts: HttpTokenValidatorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.session = new KeystoneSession(opts.authUrl, opts.serviceCredentials, {
      clock: this.clock,
      fetch: opts.fetch,
      timeoutMs: opts.requestTimeoutMs,
      nocatalog: true,
    });
    this.cacheTtlMs = opts.cacheTtlMs ?? 300_000;
    this.negativeCacheTtlMs = opts.negativeCacheTtlMs ?? 5_000;
    this.pollMs = opts.revocationPollMs ?? 2_000;
    this.maxEntries = opts.maxCacheEntries ?? 10_000;
    this.log = opts.logger ?? silentLogger;
  }

  async validate(token: string): Promise<AuthContext> {
    if (token.length > MAX_TOKEN_LENGTH || !TOKEN_CHARS.test(token)) throw unauthorized();
    this.startPolling();
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now();
    const hit = this.valid.get(key);
    if (hit) {
      if (hit.until > now) return hit.ctx;
      this.valid.delete(key);
    }
    const refusedUntil = this.refused.get(key);
    if (refusedUntil !== undefined) {
      if (refusedUntil > now) throw unauthorized();
      this.refused.delete(key);
    }
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.lookup(token, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Stops revocation polling (waiting for a poll under way); later answers are no longer cached. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    await this.pollRunning;
  }

  private async lookup(token: string, key: string): Promise<AuthContext> {
    try {
      return await this.fetchToken(token, key);
    } catch (e) {
      // The 503 reaches the client bare (as keystonemiddleware's does): the reason is only in this log line.
      if (isApiError(e) && e.code === 'service_unavailable') {
        this.log.error({ err: e.cause, token_hash: shortHash(key) }, 'cannot validate token');
      }
      throw e;
    }
  }

  private async fetchToken(token: string, key: string): Promise<AuthContext> {
    const epoch = this.revocationEpoch;
    const res = await this.session.request('GET', '/v3/auth/tokens?nocatalog', { 'X-Subject-Token': token });
    if (res.status === 404) {
      await discard(res);
      this.remember(this.refused, key, this.clock.now() + this.negativeCacheTtlMs);
      this.log.info({ token_hash: shortHash(key) }, 'token refused by the identity service');
      throw unauthorized();
    }
    if (res.status !== 200) throw await badResponse(res, 'validating a token', token);
    const parsed = parseToken(await readJson(res));
    if (!parsed) throw identityUnavailable('malformed token validation response');
    // An event that arrived meanwhile may revoke this very token after Keystone vouched for it.
    if (epoch === this.revocationEpoch && !this.closed) {
      const until = Math.min(this.clock.now() + this.cacheTtlMs, parsed.ctx.expiresAt);
      this.remember(this.valid, key, { ...parsed, until });
    }
    return parsed.ctx;
  }

  private remember<V>(cache: Map<string, V>, key: string, value: V): void {
    if (cache.size >= this.maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(key, value);
  }

  private startPolling(): void {
    if (this.pollStarted || this.closed) return;
    this.pollStarted = true;
    this.schedulePoll(0);
  }

  private schedulePoll(delay: number): void {
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.pollRunning = this.pollOnce().finally(() => {
        this.pollRunning = undefined;
        if (!this.closed) this.schedulePoll(this.pollMs);
      });
    }, delay);
    // A background refresh must not be what keeps a process alive.
    this.pollTimer.unref();
  }

  private async pollOnce(): Promise<void> {
    try {
      const since =
        this.revokedThrough === undefined
          ? ''
          : `?since=${encodeURIComponent(new Date(this.revokedThrough - REVOCATION_OVERLAP_MS).toISOString())}`;
      const res = await this.session.request('GET', `/v3/OS-REVOKE/events${since}`);
      if (res.status !== 200) throw await badResponse(res, 'listing revocation events');
      const body = (await readJson(res)) as { events?: unknown } | undefined;
      if (!Array.isArray(body?.events)) throw identityUnavailable('malformed revocation event list');
      this.applyEvents(body.events);
      if (this.pollFailing) this.log.info({}, 'revocation events reachable again');
      this.pollFailing = false;
    } catch (e) {
      // Cached tokens stay usable meanwhile, as they would under keystonemiddleware; say so once, not every poll.
      if (!this.pollFailing) {
        this.log.warn({ err: isApiError(e) ? e.cause : e }, 'cannot poll revocation events; cached tokens are not being re-checked');
      }
      this.pollFailing = true;
    }
  }

  private applyEvents(raw: unknown[]): void {
    const fresh: RevocationEvent[] = [];
    for (const r of raw) {
      const event = parseEvent(r);
      if (!event) continue;
      const key = JSON.stringify(r);
      if (this.seenEvents.has(key)) continue;
      this.seenEvents.set(key, event.revokedAt);
      this.revokedThrough = Math.max(this.revokedThrough ?? event.revokedAt, event.revokedAt);
      fresh.push(event);
    }
    if (this.revokedThrough !== undefined) {
      const horizon = this.revokedThrough - REVOCATION_OVERLAP_MS;
      for (const [key, at] of this.seenEvents) if (at < horizon) this.seenEvents.delete(key);
    }
    if (fresh.length === 0) return;
    this.revocationEpoch++;
    let dropped = 0;
    for (const [key, entry] of this.valid) {
      if (fresh.some((e) => revokes(e, entry.facts))) {
        this.valid.delete(key);
        dropped++;
      }
    }
    this.log.info({ events: fresh.length, dropped }, 'revocation events applied to the token cache');
  }
}

/**
 * Keystone's revocation match (keystone/models/revoke_model.py): every field the
 * event sets must match the token, and the token must be issued no later than
 * issued_before. Fields this validator does not model (trusts, OAuth consumers)
 * are ignored, which only widens an event: a dropped entry is merely re-validated.
 */
function revokes(e: RevocationEvent, t: TokenFacts): boolean {
  if (e.issuedBefore < t.issuedAt) return false;
  if (e.userId !== undefined && e.userId !== t.userId) return false;
  if (e.projectId !== undefined && e.projectId !== t.projectId) return false;
  if (e.domainId !== undefined && !t.domainIds.includes(e.domainId)) return false;
  if (e.roleId !== undefined && !t.roleIds.includes(e.roleId)) return false;
  if (e.auditId !== undefined && e.auditId !== t.auditId) return false;
  if (e.auditChainId !== undefined && e.auditChainId !== t.auditChainId) return false;
  return true;
}

function parseEvent(raw: unknown): RevocationEvent | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const revokedAt = parseTime(r.revoked_at);
  if (revokedAt === undefined) return undefined;
  return {
    userId: str(r.user_id),
    projectId: str(r.project_id),
    domainId: str(r.domain_id),
    roleId: str(r.role_id),
    auditId: str(r.audit_id),
    auditChainId: str(r.audit_chain_id),
    // Without a readable bound the event is taken to cover every token: dropping is the safe mistake.
    issuedBefore: parseTime(r.issued_before) ?? Number.POSITIVE_INFINITY,
    revokedAt,
  };
}

interface Named {
  id?: unknown;
  name?: unknown;
  domain?: Named;
}

interface TokenBody {
  user?: Named;
  project?: Named;
  domain?: Named;
  system?: { all?: unknown };
  roles?: Named[];
  methods?: unknown;
  audit_ids?: unknown;
  expires_at?: unknown;
  issued_at?: unknown;
  is_admin_project?: unknown;
  application_credential?: Named;
}

/** The AuthContext keystonemiddleware's X-* headers would carry, from Keystone's token body. */
function parseToken(body: unknown): { ctx: AuthContext; facts: TokenFacts } | undefined {
  const t = (body as { token?: TokenBody } | undefined)?.token;
  if (typeof t !== 'object' || t === null) return undefined;
  const userId = str(t.user?.id);
  const userDomainId = str(t.user?.domain?.id);
  const expiresAt = parseTime(t.expires_at);
  if (!userId || !userDomainId || expiresAt === undefined) return undefined;
  const roles = Array.isArray(t.roles) ? t.roles : [];
  const auditIds = strings(t.audit_ids);
  const ctx: AuthContext = {
    userId,
    userName: str(t.user?.name),
    userDomainId,
    userDomainName: str(t.user?.domain?.name),
    roles: roles.map((r) => str(r.name)).filter((n) => n !== undefined),
    roleIds: roles.map((r) => str(r.id)).filter((n) => n !== undefined),
    methods: strings(t.methods),
    auditIds,
    expiresAt,
  };
  if (t.project) {
    ctx.projectId = str(t.project.id);
    ctx.projectName = str(t.project.name);
    ctx.projectDomainId = str(t.project.domain?.id);
    ctx.projectDomainName = str(t.project.domain?.name);
  } else if (t.domain) {
    ctx.domainId = str(t.domain.id);
    ctx.domainName = str(t.domain.name);
  } else if (t.system?.all === true) {
    ctx.system = 'all';
  }
  // Absent, keystoneauth and oslo.context take every project as the admin project; the policy engine does the same.
  if (typeof t.is_admin_project === 'boolean') ctx.isAdminProject = t.is_admin_project;
  const appCredId = str(t.application_credential?.id);
  if (appCredId) ctx.applicationCredentialId = appCredId;
  const facts: TokenFacts = {
    userId,
    projectId: ctx.projectId,
    domainIds: [userDomainId, ctx.projectDomainId, ctx.domainId].filter((d) => d !== undefined),
    roleIds: ctx.roleIds!,
    auditId: auditIds[0],
    auditChainId: auditIds[auditIds.length - 1],
    // Unknown issue time: any matching event counts, so revocation errs towards re-validation.
    issuedAt: parseTime(t.issued_at) ?? Number.NEGATIVE_INFINITY,
  };
  return { ctx, facts };
}

function parseTime(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Enough to correlate log lines about one token; the token itself is never logged. */
function shortHash(key: string): string {
  return key.slice(0, 16);
}
