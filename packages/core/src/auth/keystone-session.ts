import { systemClock, type Clock } from '../clock.ts';
import { ApiError } from '../errors.ts';

/** A service's own Keystone user ([keystone_authtoken] username, password …). */
export interface ServiceCredentials {
  username: string;
  password: string;
  userDomainName: string;
  projectName: string;
  projectDomainName: string;
}

export interface KeystoneSessionOptions {
  clock?: Clock;
  fetch?: typeof fetch;
  /** Per request to Keystone; past it Keystone counts as unavailable. */
  timeoutMs?: number;
  /** Leaves the catalog out of the service token: smaller answers, but serviceId() finds nothing. */
  nocatalog?: boolean;
}

/** keystoneauth's MIN_TOKEN_LIFE_SECONDS: a token this close to expiry is replaced before use. */
const MIN_TOKEN_LIFE_MS = 120_000;

interface CatalogEntry {
  id: string;
  type: string;
  endpoints?: { interface: string; url: string; region_id?: string; region?: string }[];
}

interface ServiceToken {
  id: string;
  expiresAt: number;
  catalog: CatalogEntry[];
}

/**
 * A service's session with Keystone as its service user (keystoneauth's
 * session upstream, under keystonemiddleware and oslo.limit): a
 * project-scoped token, renewed before it expires or when Keystone stops
 * accepting it, shared by concurrent callers.
 */
export class KeystoneSession {
  private readonly baseUrl: string;
  private current?: ServiceToken;
  private pending?: Promise<ServiceToken>;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly nocatalog: boolean;

  /** `authUrl` is Keystone's public endpoint, with or without the trailing /v3. */
  constructor(
    authUrl: string,
    private readonly creds: ServiceCredentials,
    opts: KeystoneSessionOptions = {},
  ) {
    this.baseUrl = authUrl.replace(/\/+$/, '').replace(/\/v3$/, '');
    this.clock = opts.clock ?? systemClock;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.nocatalog = opts.nocatalog ?? false;
  }

  /** The id of this service type's entry in the catalog (limits are registered against it). */
  async serviceId(type: string): Promise<string> {
    const token = await this.token();
    const entry = token.catalog.find((e) => e.type === type);
    if (!entry) throw identityUnavailable(`no "${type}" service in the catalog of ${this.creds.username}'s token`);
    return entry.id;
  }

  /**
   * The URL of this service type's endpoint in the service token's catalog
   * (upstream's endpoint_type and region filters), project placeholders
   * already filled in by Keystone.
   */
  async endpointUrl(type: string, opts: { interface?: string; region?: string } = {}): Promise<string> {
    const iface = (opts.interface ?? 'public').replace(/URL$/, '');
    const token = await this.token();
    const url = token.catalog
      .filter((e) => e.type === type)
      .flatMap((e) => e.endpoints ?? [])
      .find((ep) => ep.interface === iface && (!opts.region || (ep.region_id ?? ep.region) === opts.region))?.url;
    if (!url) throw identityUnavailable(`no ${iface} "${type}" endpoint${opts.region ? ` in ${opts.region}` : ''} in the catalog of ${this.creds.username}'s token`);
    return url;
  }

  /** GET a Keystone path as the service user, as parsed JSON. */
  async get(path: string): Promise<unknown> {
    const res = await this.request('GET', path);
    if (res.status !== 200) throw await badResponse(res, `to GET ${path.split('?')[0]}`);
    return res.json();
  }

  /**
   * A request under the service token, renewed once if Keystone no longer
   * accepts it; any other answer is the caller's to read.
   */
  async request(method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
    let token = await this.token();
    let res = await this.send(method, path, { ...headers, 'X-Auth-Token': token.id });
    if (res.status !== 401) return res;
    await discard(res);
    if (this.current === token) this.current = undefined;
    token = await this.token();
    res = await this.send(method, path, { ...headers, 'X-Auth-Token': token.id });
    if (res.status === 401) throw await badResponse(res, 'to a fresh service token');
    return res;
  }

  /** The service token's id, for calling another service's API as this service user (renewed as request() renews it). */
  async tokenId(): Promise<string> {
    return (await this.token()).id;
  }

  /** Forgets a token another service refused (401), so the next tokenId() issues a fresh one. */
  forgetToken(id: string): void {
    if (this.current?.id === id) this.current = undefined;
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
      this.nocatalog ? '/v3/auth/tokens?nocatalog' : '/v3/auth/tokens',
      { 'Content-Type': 'application/json' },
      JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: c.username, domain: { name: c.userDomainName }, password: c.password } } },
          scope: { project: { name: c.projectName, domain: { name: c.projectDomainName } } },
        },
      }),
    );
    if (res.status !== 201) throw await badResponse(res, `authenticating service user ${c.username}`, c.password);
    const id = res.headers.get('x-subject-token');
    const body = (await readJson(res)) as { token?: { expires_at?: unknown; catalog?: CatalogEntry[] } } | undefined;
    const expiresAt = typeof body?.token?.expires_at === 'string' ? Date.parse(body.token.expires_at) : NaN;
    if (!id || Number.isNaN(expiresAt)) throw identityUnavailable('malformed service token response');
    this.current = { id, expiresAt, catalog: body?.token?.catalog ?? [] };
    return this.current;
  }

  private async send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Response> {
    try {
      return await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { Accept: 'application/json', ...headers },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw identityUnavailable(`${method} ${this.baseUrl}${path.split('?')[0]} failed`, e);
    }
  }
}

/** Keystone's failures reach the client as a bare 503 (as keystonemiddleware's do); the reason is kept for the log. */
export function identityUnavailable(reason: string, cause?: unknown): ApiError {
  return new ApiError('service_unavailable', 'Identity service unavailable', { cause: new Error(reason, { cause }) });
}

/**
 * Anything but the expected answer is Keystone's or our configuration's fault,
 * never the caller's. Keystone may echo what it was sent, so `secret` is cut
 * out of the body before it can reach a log.
 */
export async function badResponse(res: Response, doing: string, secret?: string): Promise<ApiError> {
  let detail = (await res.text().catch(() => '')).slice(0, 500);
  if (secret) detail = detail.split(secret).join('***');
  return identityUnavailable(`identity service answered HTTP ${res.status} ${doing}: ${detail}`);
}

export async function readJson(res: Response): Promise<unknown> {
  try {
    return await res.json();
  } catch {
    return undefined;
  }
}

export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}
