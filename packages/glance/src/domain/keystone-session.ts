import { systemClock, type Clock } from '@onestack/core/clock.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { ServiceCredentials } from '@onestack/core/auth/index.ts';

/** keystoneauth's MIN_TOKEN_LIFE_SECONDS: a token this close to expiry is replaced before use. */
const MIN_TOKEN_LIFE_MS = 120_000;

interface CatalogEntry {
  id: string;
  type: string;
}

interface ServiceToken {
  id: string;
  expiresAt: number;
  catalog: CatalogEntry[];
}

/**
 * Glance's own session with Keystone as its service user (what oslo.limit's
 * keystoneauth session is upstream): a project-scoped token with its catalog,
 * renewed before it expires or when Keystone stops accepting it.
 */
export class KeystoneSession {
  private readonly baseUrl: string;
  private current?: ServiceToken;
  private pending?: Promise<ServiceToken>;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;

  constructor(
    authUrl: string,
    private readonly creds: ServiceCredentials,
    opts: { clock?: Clock; fetch?: typeof fetch; timeoutMs?: number } = {},
  ) {
    this.baseUrl = authUrl.replace(/\/+$/, '').replace(/\/v3$/, '');
    this.clock = opts.clock ?? systemClock;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The id of this service type's entry in the catalog (limits are registered against it). */
  async serviceId(type: string): Promise<string> {
    const token = await this.token();
    const entry = token.catalog.find((e) => e.type === type);
    if (!entry) throw unavailable(`no "${type}" service in the catalog of ${this.creds.username}'s token`);
    return entry.id;
  }

  /** GET a Keystone path as the service user, as parsed JSON. */
  async get(path: string): Promise<unknown> {
    let token = await this.token();
    let res = await this.send('GET', path, { 'X-Auth-Token': token.id });
    if (res.status === 401) {
      await res.body?.cancel();
      if (this.current === token) this.current = undefined;
      token = await this.token();
      res = await this.send('GET', path, { 'X-Auth-Token': token.id });
    }
    if (res.status !== 200) throw unavailable(`identity service answered HTTP ${res.status} to GET ${path.split('?')[0]}`);
    return res.json();
  }

  private token(): Promise<ServiceToken> {
    const t = this.current;
    if (t && this.clock.now() < t.expiresAt - MIN_TOKEN_LIFE_MS) return Promise.resolve(t);
    this.pending ??= this.issue().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async issue(): Promise<ServiceToken> {
    const c = this.creds;
    const res = await this.send(
      'POST',
      '/v3/auth/tokens',
      { 'Content-Type': 'application/json' },
      JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: c.username, domain: { name: c.userDomainName }, password: c.password } } },
          scope: { project: { name: c.projectName, domain: { name: c.projectDomainName } } },
        },
      }),
    );
    if (res.status !== 201) {
      await res.body?.cancel();
      throw unavailable(`identity service answered HTTP ${res.status} authenticating service user ${c.username}`);
    }
    const id = res.headers.get('x-subject-token');
    const body = (await res.json()) as { token?: { expires_at?: string; catalog?: CatalogEntry[] } };
    const expiresAt = Date.parse(body.token?.expires_at ?? '');
    if (!id || Number.isNaN(expiresAt)) throw unavailable('malformed service token response');
    this.current = { id, expiresAt, catalog: body.token?.catalog ?? [] };
    return this.current;
  }

  private async send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Response> {
    try {
      return await this.fetch(`${this.baseUrl}${path}`, { method, headers: { Accept: 'application/json', ...headers }, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      throw unavailable(`${method} ${this.baseUrl}${path.split('?')[0]} failed`, e);
    }
  }
}

function unavailable(reason: string, cause?: unknown): ApiError {
  return new ApiError('service_unavailable', 'Identity service unavailable', { cause: new Error(reason, { cause }) });
}
