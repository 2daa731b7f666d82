import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../clock.ts';
import { ApiError } from '../errors.ts';
import { createHttpServer } from '../http/server.ts';
import { HttpTokenValidator, type HttpTokenValidatorOptions } from './http-token-validator.ts';

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

const SERVICE = {
  username: 'nova',
  password: 's3cret',
  userDomainName: 'Default',
  projectName: 'service',
  projectDomainName: 'Default',
};

/**
 * Just enough Keystone: password auth for the service user, token validation
 * from a table of canned bodies, and OS-REVOKE events, with counters.
 */
class FakeKeystone {
  url = '';
  private server!: Server;
  private issued = 0;
  readonly counts = { issue: 0, validate: 0, rejectedServiceToken: 0, events: 0 };
  readonly serviceTokens = new Set<string>();
  /** Subject token → body under "token"; absent means 404. */
  readonly tokens = new Map<string, Record<string, unknown>>();
  readonly events: Record<string, string>[] = [];
  readonly validateUrls: string[] = [];
  readonly sinces: (string | null)[] = [];
  /** When set, every request is answered with this status. */
  failWith?: number;
  /** When set, token validations are answered only once it resolves. */
  gate?: Promise<void>;
  private pollWaiters: { count: number; resolve: () => void }[] = [];

  constructor(private readonly clock: ManualClock) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  reset(): void {
    Object.assign(this.counts, { issue: 0, validate: 0, rejectedServiceToken: 0, events: 0 });
    this.serviceTokens.clear();
    this.tokens.clear();
    this.events.length = 0;
    this.validateUrls.length = 0;
    this.sinces.length = 0;
    this.failWith = undefined;
    this.gate = undefined;
  }

  /** Resolves once `n` more event polls have been answered. */
  polls(n: number): Promise<void> {
    return this.untilPolls(this.counts.events + n);
  }

  /** Resolves once `total` event polls have been answered since reset. */
  untilPolls(total: number): Promise<void> {
    if (this.counts.events >= total) return Promise.resolve();
    return new Promise((resolve) => this.pollWaiters.push({ count: total, resolve }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url!, this.url);
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(json));
    };
    if (this.failWith) {
      // Echoes the subject token, as some Keystone errors do, to prove it never reaches a log.
      return send(this.failWith, { error: { code: this.failWith, message: `broken for ${req.headers['x-subject-token']}` } });
    }

    if (req.method === 'POST' && url.pathname === '/v3/auth/tokens') {
      this.counts.issue++;
      const auth = JSON.parse(body).auth;
      const user = auth.identity.password.user;
      const ok =
        user.name === SERVICE.username &&
        user.password === SERVICE.password &&
        user.domain.name === 'Default' &&
        auth.scope.project.name === 'service' &&
        url.searchParams.has('nocatalog');
      if (!ok) return send(401, { error: { code: 401, message: 'The request you have made requires authentication.' } });
      const id = `svc-${++this.issued}`;
      this.serviceTokens.add(id);
      return send(201, { token: { expires_at: iso(this.clock.now() + HOUR), methods: ['password'] } }, { 'X-Subject-Token': id });
    }

    if (!this.serviceTokens.has(String(req.headers['x-auth-token']))) {
      this.counts.rejectedServiceToken++;
      return send(401, { error: { code: 401, message: 'The request you have made requires authentication.' } });
    }

    if (req.method === 'GET' && url.pathname === '/v3/auth/tokens') {
      this.counts.validate++;
      this.validateUrls.push(req.url!);
      await this.gate;
      const token = this.tokens.get(String(req.headers['x-subject-token']));
      if (!token) return send(404, { error: { code: 404, message: `Could not find token: ${req.headers['x-subject-token']}` } });
      return send(200, { token }, { 'X-Subject-Token': String(req.headers['x-subject-token']) });
    }

    if (req.method === 'GET' && url.pathname === '/v3/OS-REVOKE/events') {
      this.counts.events++;
      const since = url.searchParams.get('since');
      this.sinces.push(since);
      const events = since === null ? this.events : this.events.filter((e) => Date.parse(e.revoked_at) >= Date.parse(since));
      send(200, { events, links: { self: `${this.url}/v3/OS-REVOKE/events`, previous: null, next: null } });
      this.pollWaiters = this.pollWaiters.filter((w) => (w.count <= this.counts.events ? (w.resolve(), false) : true));
      return;
    }
    send(404, { error: { code: 404, message: 'not found' } });
  }
}

const clock = new ManualClock();
const keystone = new FakeKeystone(clock);
const validators: HttpTokenValidator[] = [];

function validator(opts: Partial<HttpTokenValidatorOptions> = {}): HttpTokenValidator {
  const v = new HttpTokenValidator({
    authUrl: keystone.url,
    serviceCredentials: SERVICE,
    clock,
    revocationPollMs: 20,
    ...opts,
  });
  validators.push(v);
  return v;
}

function userToken(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = clock.now();
  return {
    methods: ['password'],
    user: { domain: { id: 'default', name: 'Default' }, id: 'u1', name: 'alice', password_expires_at: null },
    audit_ids: ['audit-1'],
    expires_at: iso(now + HOUR),
    issued_at: iso(now),
    project: { domain: { id: 'd1', name: 'Dept' }, id: 'p1', name: 'demo' },
    is_domain: false,
    roles: [
      { id: 'r-member', name: 'member' },
      { id: 'r-reader', name: 'reader' },
    ],
    ...overrides,
  };
}

async function rejects(p: Promise<unknown>, status: number): Promise<ApiError> {
  const err = await p.then(
    () => assert.fail(`expected HTTP ${status}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApiError, String(err));
  assert.equal(err.status, status);
  return err;
}

before(() => keystone.start());
after(async () => {
  await Promise.all(validators.map((v) => v.close()));
  await keystone.stop();
});
beforeEach(async () => {
  await Promise.all(validators.splice(0).map((v) => v.close()));
  keystone.reset();
  clock.set(Date.UTC(2026, 0, 1));
});

describe('HttpTokenValidator', () => {
  test('a project-scoped token becomes the matching AuthContext', async () => {
    keystone.tokens.set('tok-project', userToken({ application_credential: { id: 'ac1', name: 'ci', restricted: true } }));
    const ctx = await validator().validate('tok-project');
    assert.deepEqual(ctx, {
      userId: 'u1',
      userName: 'alice',
      userDomainId: 'default',
      userDomainName: 'Default',
      projectId: 'p1',
      projectName: 'demo',
      projectDomainId: 'd1',
      projectDomainName: 'Dept',
      roles: ['member', 'reader'],
      roleIds: ['r-member', 'r-reader'],
      methods: ['password'],
      auditIds: ['audit-1'],
      expiresAt: clock.now() + HOUR,
      applicationCredentialId: 'ac1',
    });
    assert.deepEqual(keystone.validateUrls, ['/v3/auth/tokens?nocatalog']);
  });

  test('domain and system scopes, and is_admin_project when Keystone says it', async () => {
    const v = validator();
    keystone.tokens.set('tok-domain', userToken({ project: undefined, domain: { id: 'd1', name: 'Dept' } }));
    keystone.tokens.set('tok-system', userToken({ project: undefined, system: { all: true }, roles: [{ id: 'r-admin', name: 'admin' }] }));
    keystone.tokens.set('tok-unscoped', userToken({ project: undefined, roles: undefined, is_admin_project: false }));

    const domain = await v.validate('tok-domain');
    assert.equal(domain.domainId, 'd1');
    assert.equal(domain.domainName, 'Dept');
    assert.equal(domain.projectId, undefined);
    assert.equal(domain.system, undefined);

    const system = await v.validate('tok-system');
    assert.equal(system.system, 'all');
    assert.equal(system.projectId, undefined);
    assert.deepEqual(system.roles, ['admin']);

    const unscoped = await v.validate('tok-unscoped');
    assert.equal(unscoped.projectId ?? unscoped.domainId ?? unscoped.system, undefined);
    assert.deepEqual(unscoped.roles, []);
    assert.equal(unscoped.isAdminProject, false);
  });

  test('a cached token is answered without asking Keystone', async () => {
    keystone.tokens.set('tok', userToken());
    const v = validator();
    const first = await v.validate('tok');
    assert.deepEqual(await v.validate('tok'), first);
    assert.equal(keystone.counts.validate, 1);
    assert.equal(keystone.counts.issue, 1);
  });

  test('past cacheTtlMs, and past the token expiry if sooner, Keystone is asked again', async () => {
    keystone.tokens.set('tok', userToken());
    keystone.tokens.set('short', userToken({ expires_at: iso(clock.now() + 60_000) }));
    const v = validator({ cacheTtlMs: 300_000 });
    await v.validate('tok');
    await v.validate('short');
    clock.advance(299_000);
    await v.validate('tok');
    assert.equal(keystone.counts.validate, 2);
    keystone.tokens.delete('short');
    await rejects(v.validate('short'), 401);
    assert.equal(keystone.counts.validate, 3);
    clock.advance(2_000);
    await v.validate('tok');
    assert.equal(keystone.counts.validate, 4);
  });

  test('a token Keystone does not know (404) is a 401', async () => {
    const err = await rejects(validator().validate('gAAAAAB-not-a-real-token'), 401);
    assert.equal(err.code, 'unauthorized');
    assert.equal(keystone.counts.validate, 1);
  });

  test('garbage is refused, and refused again from the negative cache for a few seconds', async () => {
    const v = validator({ negativeCacheTtlMs: 5_000 });
    await rejects(v.validate('garbage'), 401);
    await rejects(v.validate('garbage'), 401);
    assert.equal(keystone.counts.validate, 1);
    clock.advance(5_001);
    await rejects(v.validate('garbage'), 401);
    assert.equal(keystone.counts.validate, 2);
    // What cannot travel in a header is refused without a round trip.
    await rejects(v.validate('bad\ntoken'), 401);
    await rejects(v.validate('x'.repeat(10_000)), 401);
    assert.equal(keystone.counts.validate, 2);
  });

  test('an unreachable Keystone is a 503, never a valid token', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((resolve) => dead.close(resolve));
    const err = await rejects(validator({ authUrl: `http://127.0.0.1:${port}/v3/` }).validate('tok'), 503);
    assert.equal(err.code, 'service_unavailable');
    assert.equal(err.message, 'Identity service unavailable');
  });

  test('a failing Keystone (5xx) is a 503 and is not remembered', async () => {
    keystone.tokens.set('a', userToken());
    keystone.tokens.set('b', userToken());
    const v = validator();
    // With the service token in hand, the failure is the validation's own.
    await v.validate('a');
    keystone.failWith = 500;
    await rejects(v.validate('b'), 503);
    keystone.failWith = 503;
    await rejects(v.validate('b'), 503);
    keystone.failWith = undefined;
    assert.equal((await v.validate('b')).userId, 'u1');
  });

  test('logs name tokens by hash, never by value', async () => {
    const lines: string[] = [];
    const record = (obj: object, msg: string) =>
      lines.push(`${msg} ${JSON.stringify(obj, (_k, val) => (val instanceof Error ? { message: val.message, cause: val.cause } : val))}`);
    const v = validator({ logger: { info: record, warn: record, error: record } });
    await rejects(v.validate('secret-garbage-token'), 401);
    keystone.failWith = 500;
    await rejects(v.validate('secret-other-token'), 503);
    assert.ok(lines.some((l) => l.includes('token_hash')));
    assert.ok(lines.some((l) => l.includes('HTTP 500')));
    assert.ok(lines.every((l) => !l.includes('secret-')), lines.join('\n'));
  });

  test('wrong service credentials are a 503, not the caller’s 401', async () => {
    keystone.tokens.set('tok', userToken());
    await rejects(validator({ serviceCredentials: { ...SERVICE, password: 'wrong' } }).validate('tok'), 503);
  });

  test('the service token is renewed when Keystone rejects it, and before it expires', async () => {
    keystone.tokens.set('a', userToken());
    keystone.tokens.set('b', userToken());
    keystone.tokens.set('c', userToken());
    // One poll only, so that only the validations meet the rejected service token.
    const v = validator({ revocationPollMs: HOUR });
    await v.validate('a');
    await keystone.untilPolls(1);
    assert.equal(keystone.counts.issue, 1);

    keystone.serviceTokens.clear();
    assert.equal((await v.validate('b')).userId, 'u1');
    assert.equal(keystone.counts.issue, 2);
    assert.equal(keystone.counts.rejectedServiceToken, 1);

    clock.advance(HOUR - 60_000);
    keystone.tokens.set('c', userToken());
    await v.validate('c');
    assert.equal(keystone.counts.issue, 3);
    assert.equal(keystone.counts.rejectedServiceToken, 1);
  });

  test('a revocation event drops the tokens it matches within one poll', async () => {
    keystone.tokens.set('mine', userToken());
    const bob = { id: 'u2', name: 'bob', domain: { id: 'default', name: 'Default' } };
    keystone.tokens.set('other-user', userToken({ user: bob, audit_ids: ['audit-2'] }));
    const v = validator();
    await v.validate('mine');
    await v.validate('other-user');
    await keystone.polls(1);
    assert.equal(keystone.sinces[0], null);

    // Keystone now refuses the revoked token; only a cache drop lets the validator notice.
    keystone.tokens.delete('mine');
    keystone.events.push({ audit_id: 'audit-1', issued_before: iso(clock.now()), revoked_at: iso(clock.now()) });
    await keystone.polls(2);
    await rejects(v.validate('mine'), 401);
    await v.validate('other-user');
    assert.equal(keystone.counts.validate, 3);
    assert.ok(keystone.sinces.at(-1));
  });

  test('an answer that crossed a revocation event is served but not cached', async () => {
    keystone.tokens.set('warm', userToken());
    keystone.tokens.set('tok', userToken());
    const v = validator();
    await v.validate('warm');
    await keystone.polls(1);
    let release!: () => void;
    keystone.gate = new Promise((resolve) => (release = resolve));
    const pending = v.validate('tok');
    keystone.events.push({ audit_id: 'audit-1', issued_before: iso(clock.now()), revoked_at: iso(clock.now()) });
    await keystone.polls(2);
    release();
    assert.equal((await pending).userId, 'u1');
    await v.validate('tok');
    assert.equal(keystone.counts.validate, 3);
  });

  test('events are matched as Keystone matches them', async () => {
    keystone.tokens.set('project', userToken());
    keystone.tokens.set('domain', userToken({ project: undefined, domain: { id: 'd9', name: 'Nine' }, audit_ids: ['audit-d'] }));
    const v = validator();
    await v.validate('project');
    await v.validate('domain');
    await keystone.polls(1);
    const before = iso(clock.now() - 1_000);
    const now = iso(clock.now());
    const misses: Record<string, string>[] = [
      { user_id: 'u2', issued_before: now, revoked_at: now },
      { project_id: 'p1', issued_before: before, revoked_at: now },
      { role_id: 'r-admin', issued_before: now, revoked_at: now },
      { project_id: 'p1', role_id: 'r-admin', issued_before: now, revoked_at: now },
    ];
    keystone.events.push(...misses);
    await keystone.polls(2);
    await v.validate('project');
    await v.validate('domain');
    assert.equal(keystone.counts.validate, 2);

    // The project's domain matches a domain event, as does the scoped domain.
    keystone.events.push({ domain_id: 'd1', role_id: 'r-reader', issued_before: now, revoked_at: now });
    await keystone.polls(2);
    await v.validate('project');
    await v.validate('domain');
    assert.equal(keystone.counts.validate, 3);

    keystone.events.push({ domain_id: 'd9', issued_before: now, revoked_at: now });
    await keystone.polls(2);
    await v.validate('project');
    await v.validate('domain');
    assert.equal(keystone.counts.validate, 4);
  });

  test('an event re-sent inside the overlap window is applied once', async () => {
    // Keystone, which knows issue times to the millisecond, still vouches for the token.
    keystone.tokens.set('tok', userToken());
    keystone.events.push({ user_id: 'u1', issued_before: iso(clock.now()), revoked_at: iso(clock.now()) });
    const v = validator();
    await v.validate('tok');
    await keystone.polls(2);
    await v.validate('tok');
    const validations = keystone.counts.validate;
    await keystone.polls(3);
    await v.validate('tok');
    assert.equal(keystone.counts.validate, validations);
    assert.equal(keystone.sinces[0], null);
    assert.ok(keystone.sinces.slice(1).every((s) => s === iso(clock.now() - 5_000)));
  });

  test('concurrent validations of one token share one request', async () => {
    keystone.tokens.set('tok', userToken());
    const v = validator();
    const results = await Promise.all(Array.from({ length: 10 }, () => v.validate('tok')));
    assert.equal(keystone.counts.validate, 1);
    assert.equal(keystone.counts.issue, 1);
    assert.ok(results.every((r) => r === results[0]));

    const refusals = await Promise.allSettled(Array.from({ length: 10 }, () => v.validate('nope')));
    assert.ok(refusals.every((r) => r.status === 'rejected' && (r.reason as ApiError).status === 401));
    assert.equal(keystone.counts.validate, 2);
  });

  test('close() stops polling', async () => {
    keystone.tokens.set('tok', userToken());
    const v = validator();
    await v.validate('tok');
    await keystone.polls(2);
    await v.close();
    const polled = keystone.counts.events;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(keystone.counts.events, polled);
  });

  test('errors render through the HTTP server: 401 with WWW-Authenticate, 503', async () => {
    keystone.tokens.set('tok', userToken());
    const logger = pino({ level: 'silent' });
    const v = validator({ logger });
    const app = createHttpServer({ service: 'nova', faultFormat: 'compute', logger, tokens: v, authUri: keystone.url });
    app.get('/whoami', async (req) => ({ user: req.ctx.auth?.userId, project: req.ctx.auth?.projectId }));
    try {
      const ok = await app.inject({ url: '/whoami', headers: { 'x-auth-token': 'tok' } });
      assert.equal(ok.statusCode, 200);
      assert.deepEqual(ok.json(), { user: 'u1', project: 'p1' });

      const bad = await app.inject({ url: '/whoami', headers: { 'x-auth-token': 'bogus' } });
      assert.equal(bad.statusCode, 401);
      assert.equal(bad.headers['www-authenticate'], `Keystone uri="${keystone.url}"`);
      assert.deepEqual(bad.json(), { unauthorized: { code: 401, message: 'The request you have made requires authentication.' } });

      keystone.failWith = 500;
      const down = await app.inject({ url: '/whoami', headers: { 'x-auth-token': 'uncached' } });
      assert.equal(down.statusCode, 503);
      assert.deepEqual(down.json(), { serviceUnavailable: { code: 503, message: 'Identity service unavailable' } });
    } finally {
      await app.close();
    }
  });
});
