import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { ApiError, notFound } from '../errors.ts';
import type { AuthContext } from '../context.ts';
import { createMetrics } from '../metrics.ts';
import { createHttpServer } from './server.ts';

const logger = pino({ level: 'silent' });
const auth: AuthContext = { userId: 'u1', userDomainId: 'default', projectId: 'p1', roles: ['member'], methods: ['password'], auditIds: ['a'], expiresAt: Date.now() + 60_000 };

async function listen(app: FastifyInstance): Promise<string> {
  return app.listen({ host: '127.0.0.1', port: 0 });
}

describe('core http server', () => {
  let compute: FastifyInstance;
  let computeUrl: string;
  let keystone: FastifyInstance;
  let keystoneUrl: string;

  before(async () => {
    compute = createHttpServer({
      service: 'nova',
      faultFormat: 'compute',
      logger,
      tokens: { validate: async (t) => (t === 'good' ? auth : Promise.reject(new ApiError('unauthorized', 'The request you have made requires authentication.'))) },
      authUri: 'http://127.0.0.1:5000',
      microversions: { serviceType: 'compute', min: '2.1', max: '2.96', legacyHeader: 'X-OpenStack-Nova-API-Version', unversionedRoot: true },
      bodyLimit: 1024,
    });
    compute.get('/v2.1/thing', async (req) => ({ mv: req.ctx.microversion, user: req.ctx.auth?.userId }));
    compute.post(
      '/v2.1/thing',
      { schema: { body: { type: 'object', required: ['thing'], additionalProperties: false, properties: { thing: { type: 'object', properties: { size: { type: 'integer' } } } } } } },
      async () => ({ ok: true }),
    );
    compute.get('/v2.1/missing', async () => {
      throw notFound('Instance x could not be found.');
    });
    compute.get('/v2.1/boom', async () => {
      throw new Error('secret internals');
    });
    compute.get('/', { config: { public: true } }, async () => ({ versions: [] }));
    computeUrl = await listen(compute);

    keystone = createHttpServer({ service: 'keystone', faultFormat: 'keystone', logger, ops: { version: '9.9.9', metrics: createMetrics('keystone') } });
    keystone.post('/v3/x', { schema: { body: { type: 'object', properties: { user: { type: 'object', properties: { name: { type: 'string' } } } } } } }, async () => ({}));
    keystoneUrl = await listen(keystone);
  });
  after(async () => {
    await compute.close();
    await keystone.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(computeUrl + path, { headers: { 'x-auth-token': 'good', ...headers } });

  it('negotiates microversions: default, explicit, legacy header, latest, out of range', async () => {
    const dflt = await get('/v2.1/thing');
    assert.deepEqual((await dflt.json()).mv, { major: 2, minor: 1 });
    assert.equal(dflt.headers.get('openstack-api-version'), 'compute 2.1');
    assert.match(dflt.headers.get('vary')!, /OpenStack-API-Version/);
    const v = await get('/v2.1/thing', { 'OpenStack-API-Version': 'volume 3.5, compute 2.53' });
    assert.deepEqual((await v.json()).mv, { major: 2, minor: 53 });
    assert.equal(v.headers.get('x-openstack-nova-api-version'), '2.53');
    const legacy = await get('/v2.1/thing', { 'X-OpenStack-Nova-API-Version': '2.10' });
    assert.deepEqual((await legacy.json()).mv, { major: 2, minor: 10 });
    const latest = await get('/v2.1/thing', { 'OpenStack-API-Version': 'compute latest' });
    assert.deepEqual((await latest.json()).mv, { major: 2, minor: 96 });
    const high = await get('/v2.1/thing', { 'OpenStack-API-Version': 'compute 2.200' });
    assert.equal(high.status, 406);
    assert.match((await high.json()).computeFault.message, /Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.96./);
    const bad = await get('/v2.1/thing', { 'OpenStack-API-Version': 'compute 2.x' });
    assert.equal(bad.status, 400);
    // unversionedRoot: the root versions document answers clients probing with a version above the maximum.
    assert.equal((await get('/', { 'OpenStack-API-Version': 'compute 2.200' })).status, 200);
  });

  it('requires a token except on public routes, with WWW-Authenticate on 401', async () => {
    const none = await fetch(computeUrl + '/v2.1/thing');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Keystone uri="http://127.0.0.1:5000"');
    assert.equal((await get('/v2.1/thing', { 'x-auth-token': 'bad' })).status, 401);
    assert.equal((await fetch(computeUrl + '/')).status, 200);
  });

  it('gives every response a request id', async () => {
    const a = await get('/v2.1/thing');
    const b = await get('/v2.1/missing');
    assert.match(a.headers.get('x-openstack-request-id')!, /^req-[0-9a-f-]{36}$/);
    assert.notEqual(a.headers.get('x-openstack-request-id'), b.headers.get('x-openstack-request-id'));
  });

  it('renders faults in the service format and hides internals on 500', async () => {
    const nf = await get('/v2.1/missing');
    assert.equal(nf.status, 404);
    assert.deepEqual(await nf.json(), { itemNotFound: { code: 404, message: 'Instance x could not be found.' } });
    const boom = await get('/v2.1/boom');
    assert.equal(boom.status, 500);
    const text = await boom.text();
    assert.doesNotMatch(text, /secret internals/);
    assert.match(text, new RegExp(boom.headers.get('x-openstack-request-id')!));
    const route = await get('/v2.1/nothing-here');
    assert.equal(route.status, 404);
  });

  it('validates bodies strictly with upstream-style messages', async () => {
    const post = (body: string) => fetch(computeUrl + '/v2.1/thing', { method: 'POST', headers: { 'x-auth-token': 'good', 'content-type': 'application/json' }, body });
    const extra = await post('{"thing": {}, "other": 1}');
    assert.equal(extra.status, 400);
    assert.match((await extra.json()).badRequest.message, /Additional properties are not allowed \('other' was unexpected\)/);
    const wrongType = await post('{"thing": {"size": "1"}}');
    assert.equal(wrongType.status, 400, 'no coercion of "1" to an integer');
    assert.match((await wrongType.json()).badRequest.message, /Invalid input for field\/attribute size. Value: 1. "1" is not of type 'integer'/);
    const malformed = await post('{"thing": ');
    assert.equal(malformed.status, 400);
    assert.deepEqual(await malformed.json(), { badRequest: { code: 400, message: 'Malformed request body' } });
    const big = await post(JSON.stringify({ thing: { pad: 'x'.repeat(2000) } }));
    assert.equal(big.status, 413);
    assert.equal((await big.json()).overLimit.code, 413);
  });

  it('renders keystone faults and field paths', async () => {
    const res = await fetch(keystoneUrl + '/v3/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user": {"name": 1}}' });
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'title']);
    assert.equal(body.error.title, 'Bad Request');
    assert.match(body.error.message, /Invalid input for field 'user\/name': 1 is not of type 'string'/);
  });

  it('answers health and metrics without a token, timing requests into the metrics', async () => {
    await fetch(keystoneUrl + '/v3/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const health = await fetch(keystoneUrl + '/healthcheck', { headers: { accept: 'application/json' } });
    const body = await health.json();
    assert.equal(body.version, '9.9.9');
    assert.equal(body.pid, process.pid);
    assert.equal(await (await fetch(keystoneUrl + '/healthcheck')).text(), 'OK');
    const metrics = await (await fetch(keystoneUrl + '/metrics')).text();
    assert.match(metrics, /onestack_http_request_duration_seconds_count\{[^}]*route="\/v3\/x"[^}]*\} [1-9]/);
  });
});
