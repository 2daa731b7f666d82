/**
 * What `onestack up` needs to talk to its own cloud as a client would: the bootstrap admin's
 * project-scoped token and the public endpoints of its catalog.
 */
export async function call(method: string, url: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { 'x-auth-token': token } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  return res;
}

export interface AdminSession {
  token: string;
  projectId: string;
  /** The public endpoint of a service type, without a trailing slash; undefined when the catalog has none. */
  endpoint(type: string): string | undefined;
}

export async function adminSession(identityUrl: string, password: string): Promise<AdminSession> {
  const res = await call('POST', `${identityUrl}/auth/tokens`, undefined, {
    auth: {
      identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password } } },
      scope: { project: { name: 'admin', domain: { id: 'default' } } },
    },
  });
  const { token } = (await res.json()) as {
    token: { project: { id: string }; catalog: { type: string; endpoints: { interface: string; url: string }[] }[] };
  };
  return {
    token: res.headers.get('x-subject-token')!,
    projectId: token.project.id,
    endpoint: (type) => token.catalog.find((s) => s.type === type)?.endpoints.find((e) => e.interface === 'public')?.url.replace(/\/+$/, ''),
  };
}
