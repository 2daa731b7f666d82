import { notFound, unauthorized } from '@onestack/core/errors.ts';
import { FernetTokenFormatter, InvalidTokenError, randomAuditId, type TokenPayload } from '../tokens/token-formatter.ts';
import { loadKeys } from '../tokens/fernet-keys.ts';
import type { FernetKey } from '../tokens/fernet.ts';
import type { CatalogEntry } from './catalog-manager.ts';
import type { Project } from './resource-manager.ts';
import type { Role, Target } from './assignment-manager.ts';
import type { User } from './identity-manager.ts';
import type { Keystone } from './keystone.ts';

/** Everything a validated token stands for, as the token body and the auth context need it. */
export interface TokenData {
  id: string;
  payload: TokenPayload;
  user: User;
  userDomain: Project;
  project?: Project;
  projectDomain?: Project;
  domain?: Project;
  system?: 'all';
  roles: Role[];
  /** Scoped to `[keystone] admin_project_name`: its admins are cloud admins (policy's is_admin_project). */
  isAdminProject: boolean;
  appCred?: { id: string; name: string; restricted: boolean; accessRules?: unknown[] };
}

export interface IssueRequest {
  userId: string;
  methods: string[];
  scope?: Target;
  /** When rescoping: the parent token's audit chain and its expiry (a child never outlives it). */
  parent?: { auditIds: string[]; expiresAt: number };
  appCred?: { id: string; roleIds: string[]; expiresAt: number | null };
}

/** The part of a token's data that depends only on its user, scope and application credential. */
type ScopeData = Omit<TokenData, 'id' | 'payload' | 'system'>;

interface CacheEntry {
  generation: number;
  /** The key set the token was decrypted with: a rotation that prunes its key must not leave it valid. */
  keys: readonly FernetKey[];
  data: TokenData;
  /** Rendered bodies by variant (with/without catalog), reused by GET /v3/auth/tokens. */
  bodies: Map<string, string>;
}

const CACHE_MAX = 50_000;

/**
 * Issues and validates non-persistent Fernet tokens. Validation is
 * decrypt + a handful of lookups; its result is cached per token until any
 * identity change or revocation bumps the Keystone generation counter.
 */
export class TokenProvider {
  readonly formatter: FernetTokenFormatter;
  private readonly keys: () => readonly FernetKey[];
  private readonly cache = new Map<string, CacheEntry>();
  private scopes: { generation: number; entries: Map<string, ScopeData> } = { generation: -1, entries: new Map() };
  /**
   * Exact issue times (ms) of tokens minted by this process, by audit id. The
   * token itself only carries whole seconds, which would make a token minted
   * right after a revocation in the same second look revoked.
   */
  private readonly issuedAtMs = new Map<string, number>();

  constructor(private readonly ks: Keystone) {
    const dir = ks.config.keyRepository;
    this.keys = () => loadKeys(dir, ks.clock);
    this.formatter = new FernetTokenFormatter({ keys: this.keys });
  }

  async issue(req: IssueRequest): Promise<TokenData> {
    const now = this.ks.clock.now();
    let expiresAt = now + this.ks.config.tokenExpiration * 1000;
    if (req.parent) expiresAt = Math.min(expiresAt, req.parent.expiresAt);
    if (req.appCred?.expiresAt) expiresAt = Math.min(expiresAt, req.appCred.expiresAt);
    const auditIds = [randomAuditId()];
    if (req.parent) auditIds.push(req.parent.auditIds[req.parent.auditIds.length - 1]!);
    const scope = req.scope;
    const payload: TokenPayload = {
      userId: req.userId,
      methods: req.methods,
      expiresAt,
      issuedAt: Math.floor(now / 1000) * 1000,
      auditIds,
      ...(scope && 'projectId' in scope ? { projectId: scope.projectId } : {}),
      ...(scope && 'domainId' in scope ? { domainId: scope.domainId } : {}),
      ...(scope && 'system' in scope ? { system: 'all' as const } : {}),
      ...(req.appCred ? { appCredId: req.appCred.id } : {}),
    };
    const id = this.formatter.create(payload);
    if (this.issuedAtMs.size >= CACHE_MAX) this.issuedAtMs.delete(this.issuedAtMs.keys().next().value!);
    this.issuedAtMs.set(auditIds[0]!, now);
    // Building the data checks the scope (roles present, project enabled) exactly as validation will.
    const data = await this.build(id, payload);
    return data;
  }

  /**
   * The token's data, or 404 as upstream answers for a token that is not valid
   * (garbage, expired, revoked), so `openstack token ...` prints the same thing.
   */
  async validate(token: string, opts: { allowExpired?: boolean } = {}): Promise<TokenData> {
    await this.ks.sync.poll();
    const gen = this.ks.generation;
    const hit = this.cache.get(token);
    const keys = this.keys();
    let data: TokenData;
    if (hit && hit.generation === gen && hit.keys === keys) {
      data = hit.data;
    } else {
      let payload: TokenPayload;
      try {
        payload = this.formatter.validate(token);
      } catch (e) {
        if (e instanceof InvalidTokenError) throw notFound('Could not recognize Fernet token');
        throw e;
      }
      data = await this.build(token, payload);
      this.remember(token, { generation: gen, keys, data, bodies: new Map() });
    }
    const now = this.ks.clock.now();
    const windowMs = opts.allowExpired ? this.ks.config.allowExpiredWindow * 1000 : 0;
    if (data.payload.expiresAt + windowMs <= now) throw notFound('The token has expired.');
    return data;
  }

  /** The user a token claims to be for (not a validation: policy targets need only this). */
  ownerOf(token: string): string | undefined {
    const hit = this.cache.get(token);
    if (hit) return hit.data.user.id;
    try {
      return this.formatter.validate(token).userId;
    } catch {
      return undefined;
    }
  }

  /** A rendered body cached beside the token's data (GET /v3/auth/tokens answers from it). */
  cachedBody(token: string, variant: string): string | undefined {
    return this.cache.get(token)?.bodies.get(variant);
  }

  storeBody(token: string, variant: string, body: string): void {
    this.cache.get(token)?.bodies.set(variant, body);
  }

  async revokeToken(token: string): Promise<void> {
    const data = await this.validate(token);
    await this.ks.revocations.revoke({ auditId: data.payload.auditIds[0]!, expiresAt: data.payload.expiresAt });
  }

  async catalog(data: TokenData): Promise<CatalogEntry[]> {
    return this.ks.catalog.catalogFor(data.project?.id, data.user.id);
  }

  private remember(token: string, entry: CacheEntry): void {
    if (this.cache.size >= CACHE_MAX) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(token, entry);
  }

  private async build(id: string, p: TokenPayload): Promise<TokenData> {
    const scope = await this.scope(p);
    const facts = {
      userId: scope.user.id,
      projectId: scope.project?.id,
      domainIds: [scope.user.domainId, ...(scope.project?.domainId ? [scope.project.domainId] : []), ...(scope.domain ? [scope.domain.id] : [])],
      roleIds: scope.roles.map((r) => r.id),
      auditId: p.auditIds[0]!,
      auditChainId: p.auditIds[p.auditIds.length - 1]!,
      issuedAt: this.issuedAtMs.get(p.auditIds[0]!) ?? p.issuedAt,
    };
    if (this.ks.revocations.isRevoked(facts)) throw notFound('The token has been revoked.');
    return { id, payload: p, system: p.system, ...scope };
  }

  /**
   * Who the token is for and what it may do: the same for every token of one
   * user, scope and application credential, so it is computed once per
   * Keystone generation (any identity change starts a new one). This is what
   * makes token issue and first validations cheap.
   */
  private async scope(p: TokenPayload): Promise<ScopeData> {
    if (this.scopes.generation !== this.ks.generation) this.scopes = { generation: this.ks.generation, entries: new Map() };
    const key = `${p.userId}|${p.projectId ?? ''}|${p.domainId ?? ''}|${p.system ?? ''}|${p.appCredId ?? ''}`;
    const { entries } = this.scopes;
    let found = entries.get(key);
    if (!found) {
      found = await this.resolveScope(p);
      if (entries.size >= CACHE_MAX) entries.clear();
      entries.set(key, found);
    }
    return found;
  }

  private async resolveScope(p: TokenPayload): Promise<ScopeData> {
    const { identity, resource, assignment } = this.ks;
    const user = await identity.findUser(p.userId);
    if (!user) throw notFound('Could not find user for the token.');
    if (!user.enabled) throw notFound(`User ${user.id} is disabled.`);
    const userDomain = await resource.getDomain(user.domainId).catch(() => undefined);
    if (!userDomain?.enabled) throw notFound('The user domain is disabled.');

    let project: Project | undefined;
    let projectDomain: Project | undefined;
    let domain: Project | undefined;
    let roles: Role[] = [];
    if (p.projectId) {
      project = await resource.findProject(p.projectId);
      if (!project || project.isDomain) throw notFound(`Could not find project: ${p.projectId}.`);
      projectDomain = await resource.getDomain(project.domainId!);
      if (!project.enabled || !projectDomain.enabled) throw notFound(`Project ${project.id} is disabled.`);
      for (const pid of await resource.parentIds(project.id)) {
        const anc = await resource.findProject(pid);
        if (anc && !anc.enabled) throw notFound(`Project ${project.id} is disabled.`);
      }
      roles = await assignment.effectiveRoles(user.id, { projectId: project.id });
    } else if (p.domainId) {
      domain = await resource.findProject(p.domainId);
      if (!domain?.isDomain || !domain.enabled) throw notFound(`Domain ${p.domainId} is disabled or missing.`);
      roles = await assignment.effectiveRoles(user.id, { domainId: domain.id });
    } else if (p.system) {
      roles = await assignment.effectiveRoles(user.id, { system: 'all' });
    }
    let appCred: TokenData['appCred'];
    if (p.appCredId) {
      const ac = await this.ks.appCreds.getForToken(p.appCredId);
      roles = roles.filter((r) => ac.roleIds.includes(r.id));
      appCred = { id: ac.id, name: ac.name, restricted: !ac.unrestricted, accessRules: ac.accessRules };
    }
    const scoped = Boolean(p.projectId || p.domainId || p.system);
    if (scoped && roles.length === 0) {
      throw unauthorized('User has no access to the requested scope.');
    }
    return {
      user,
      userDomain,
      project,
      projectDomain,
      domain,
      roles,
      isAdminProject: project !== undefined && project.name === this.ks.config.adminProject.name && projectDomain?.name === this.ks.config.adminProject.domainName,
      appCred,
    };
  }
}
