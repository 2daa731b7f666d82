import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ManualClock } from '../clock.ts';
import { ApiError } from '../errors.ts';
import { KeystoneSession, type KeystoneSessionOptions } from './keystone-session.ts';

const HOUR = 3_600_000;
const SERVICE = { username: 'glance', password: 's3cret', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' };
const CATALOG = [
  { id: 'svc-identity', type: 'identity' },
  { id: 'svc-image', type: 'image' },
];

const clock = new ManualClock();
let server: Server;
let url = '';
/** Service tokens Keystone accepts; deleting one is revoking it. */
const live = new Set<string>();
const issued: string[] = [];
let issuedCount = 0;
let limitsStatus = 200;

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const u = new URL(req.url!, url);
      const send = (status: number, json: unknown, headers: Record<string, string> = {}) =>
        res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(json));
      if (req.method === 'POST' && u.pathname === '/v3/auth/tokens') {
        issued.push(req.url!);
        const user = JSON.parse(body).auth.identity.password.user;
        if (user.password !== SERVICE.password) return send(401, { error: { message: `bad password ${user.password}` } });
        const id = `svc-${++issuedCount}`;
        live.add(id);
        const token = { expires_at: new Date(clock.now() + HOUR).toISOString(), ...(u.searchParams.has('nocatalog') ? {} : { catalog: CATALOG }) };
        return send(201, { token }, { 'X-Subject-Token': id });
      }
      if (!live.has(String(req.headers['x-auth-token']))) return send(401, { error: { code: 401 } });
      if (req.method === 'GET' && u.pathname === '/v3/limits') return send(limitsStatus, { limits: [{ service_id: u.searchParams.get('service_id') }] });
      send(404, { error: { code: 404 } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  live.clear();
  issued.length = 0;
  limitsStatus = 200;
  clock.set(Date.UTC(2026, 0, 1));
});

const session = (opts: KeystoneSessionOptions = {}, creds = SERVICE) => new KeystoneSession(`${url}/v3/`, creds, { clock, ...opts });

async function unavailable(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => assert.fail('expected a 503'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApiError && err.status === 503, String(err));
  return err;
}

describe('KeystoneSession', () => {
  test('finds a service in its token’s catalog and reads Keystone under that one token', async () => {
    const s = session();
    const [id] = await Promise.all([s.serviceId('image'), s.serviceId('image')]);
    assert.equal(id, 'svc-image');
    assert.deepEqual(await s.get(`/v3/limits?service_id=${id}`), { limits: [{ service_id: 'svc-image' }] });
    assert.deepEqual(issued, ['/v3/auth/tokens']);
    await unavailable(s.serviceId('compute'));
  });

  test('nocatalog leaves the catalog out', async () => {
    await session({ nocatalog: true }).request('GET', '/v3/limits');
    assert.deepEqual(issued, ['/v3/auth/tokens?nocatalog']);
  });

  test('replaces its token shortly before it expires', async () => {
    const s = session();
    await s.get('/v3/limits');
    clock.advance(HOUR - 121_000);
    await s.get('/v3/limits');
    assert.equal(issued.length, 1);
    clock.advance(2_000);
    await s.get('/v3/limits');
    assert.equal(issued.length, 2);
  });

  test('renews a token Keystone stopped accepting and retries once', async () => {
    const s = session();
    await s.get('/v3/limits');
    live.clear();
    assert.deepEqual(await s.get('/v3/limits'), { limits: [{ service_id: null }] });
    assert.equal(issued.length, 2);
  });

  test('Keystone’s failures are 503s that keep the password out of the reason', async () => {
    const err = await unavailable(session({}, { ...SERVICE, password: 'wrong-pw' }).get('/v3/limits'));
    assert.doesNotMatch(String((err.cause as Error).message), /wrong-pw/);
    limitsStatus = 500;
    await unavailable(session().get('/v3/limits'));
  });
});
