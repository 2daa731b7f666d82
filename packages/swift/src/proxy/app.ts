import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import { createHttpServer } from '@onestack/core/http/server.ts';
import type { Metrics } from '@onestack/core/metrics.ts';
import { ErrorLimiter, type BackendTimeouts } from './backend-client.ts';
import type { Constraints } from './constraints.ts';
import { InfoCache, type ProxyContext } from './controllers/base.ts';
import type { CorsConfig } from './cors.ts';
import { InfoRegistry, swiftSection } from './info.ts';
import { bulk } from './middleware/bulk.ts';
import { copyMiddleware } from './middleware/copy.ts';
import { dlo } from './middleware/dlo.ts';
import { formPost } from './middleware/formpost.ts';
import { gatekeeper } from './middleware/gatekeeper.ts';
import { keystoneAuth, type KeystoneAuthConfig } from './middleware/keystoneauth.ts';
import { objectVersioning } from './middleware/object-versioning.ts';
import { accountQuotas, containerQuotas } from './middleware/quotas.ts';
import { slo } from './middleware/slo.ts';
import { staticWeb } from './middleware/staticweb.ts';
import { symlink } from './middleware/symlink.ts';
import { tempUrl } from './middleware/tempurl.ts';
import { versionedWrites } from './middleware/versioned-writes.ts';
import { proxyServer } from './proxy-server.ts';
import { plainError, respond } from './responses.ts';
import type { ProxyRings } from './ring.ts';
import { newTransId } from './timestamps.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from './types.ts';
import { checkUtf8Bytes, unquoteBytes } from './wsgi-strings.ts';

export interface ProxyConfig {
  constraints: Constraints;
  timeouts: BackendTimeouts;
  accountAutocreate: boolean;
  policyName: string;
  recheckMs: number;
  errorSuppressionLimit: number;
  errorSuppressionIntervalMs: number;
  keystoneauth: KeystoneAuthConfig;
  cors: CorsConfig;
  /** staticweb's url_base: scheme://host its redirects name instead of the request's. */
  staticwebUrlBase?: string;
  /** bulk's yield_frequency: how often a running extract-archive sends a whitespace byte. */
  bulkYieldFrequencyMs?: number;
  /** symlink's symloop_max: links a GET or HEAD follows in a row. */
  symloopMax?: number;
  /** Enabled optional middleware, by upstream's filter names. */
  middleware: string[];
}

export interface ProxyDeps {
  rings: ProxyRings;
  config: ProxyConfig;
  logger: Logger;
  tokens?: TokenValidator;
  metrics?: Metrics;
  version: string;
  tls?: { certFile: string; keyFile: string };
}

export interface ProxyApp {
  app: FastifyInstance;
  /** The whole pipeline, for tests and in-process callers. */
  handle: Handler;
  info: InfoRegistry;
  ctx: ProxyContext;
}

const OWNER_HEADERS = [
  'x-container-read',
  'x-container-write',
  'x-container-sync-key',
  'x-container-sync-to',
  'x-account-meta-temp-url-key',
  'x-account-meta-temp-url-key-2',
  'x-container-meta-temp-url-key',
  'x-container-meta-temp-url-key-2',
  'x-account-access-control',
];

/** The middleware stack in upstream's pipeline order, ending in the proxy application. */
export function buildPipeline(deps: ProxyDeps, ctx: ProxyContext, info: InfoRegistry): Handler {
  // bulk sits after auth (upstream: before): its subrequests then carry the caller's identity without re-validating the token per line.
  const stages: Middleware[] = [gatekeeper, tempUrl(ctx, info), formPost(ctx, info), keystoneAuth(deps.tokens, deps.config.keystoneauth), staticWeb(ctx, info, deps.config.staticwebUrlBase), bulk(info, deps.config.constraints.max_file_size, deps.config.bulkYieldFrequencyMs), copyMiddleware, containerQuotas(ctx, info), accountQuotas(ctx, info), slo(info), dlo(info), versionedWrites(ctx, info), objectVersioning(ctx, info), symlink(info, deps.config.symloopMax)];
  return stages.reduceRight<Handler>((next, mw) => mw(next), proxyServer(ctx, deps.config.cors));
}

export async function createProxyApp(deps: ProxyDeps): Promise<ProxyApp> {
  const c = deps.config;
  const ctx: ProxyContext = {
    rings: deps.rings,
    timeouts: c.timeouts,
    limiter: new ErrorLimiter(c.errorSuppressionLimit, c.errorSuppressionIntervalMs),
    constraints: c.constraints,
    accountAutocreate: c.accountAutocreate,
    ownerHeaders: new Set(OWNER_HEADERS),
    infoCache: new InfoCache(c.recheckMs),
    logger: deps.logger,
    recheckMs: c.recheckMs,
    policyName: c.policyName,
  };
  const info = new InfoRegistry();
  info.register('swift', swiftSection(c.constraints, { accountAutocreate: c.accountAutocreate, policyName: c.policyName, strictCorsMode: c.cors.strict }));
  const pipeline = buildPipeline(deps, ctx, info);
  const handle: Handler = async (req) => {
    try {
      return await pipeline(req);
    } catch (e) {
      deps.logger.error({ err: e, trans_id: req.env.transId, method: req.method, path: req.path }, 'unexpected error');
      return respond(500);
    }
  };

  const app = createHttpServer({ service: 'swift', faultFormat: 'swift', logger: deps.logger, tls: deps.tls, ops: { version: deps.version, metrics: deps.metrics } });
  // Bodies are streamed to the storage nodes untouched: no parsing, no size limit here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.get('/info', async (req, reply) => {
    const body = JSON.stringify(info.toJSON());
    const transId = newTransId();
    reply.header('x-trans-id', transId).header('x-openstack-request-id', transId).type('application/json; charset=UTF-8');
    return req.method === 'HEAD' ? '' : body;
  });
  // Upstream's server-side copy verb; fastify only routes methods it was told of.
  app.addHttpMethod('COPY', { hasBody: true });
  const methods = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'COPY', 'OPTIONS'];
  const scheme = deps.tls ? 'https' : 'http';
  const route = (req: FastifyRequest, reply: FastifyReply) => serve(req, reply, handle, scheme);
  app.route({ method: methods, url: '/*', handler: route });
  keepRawUrls(app);
  app.route({ method: methods, url: '/', handler: route });
  return { app, handle, info, ctx };
}

const RAW_URL = Symbol('swift raw url');

/**
 * Swift names are any UTF-8 and upstream answers a path that is not with 412;
 * fastify's router would refuse such a path with its own 400 before any hook
 * runs. So the router sees the path with every '%' escaped and the proxy reads
 * the URL as the client sent it.
 */
function keepRawUrls(app: FastifyInstance): void {
  const listeners = app.server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  app.server.removeAllListeners('request');
  app.server.on('request', (req: IncomingMessage & { [RAW_URL]?: string }, res: ServerResponse) => {
    const url = req.url ?? '/';
    req[RAW_URL] = url;
    const q = url.indexOf('?');
    req.url = (q >= 0 ? url.slice(0, q) : url).replace(/%/g, '%25') + (q >= 0 ? url.slice(q) : '');
    for (const l of listeners) l(req, res);
  });
}

function requestHeaders(raw: FastifyRequest['raw']): Headers {
  const h: Headers = {};
  for (const [k, v] of Object.entries(raw.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : v;
  return h;
}

async function serve(req: FastifyRequest, reply: FastifyReply, handle: Handler, scheme: string): Promise<void> {
  const transId = newTransId();
  const url = (req.raw as { [RAW_URL]?: string })[RAW_URL] ?? req.raw.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q >= 0 ? url.slice(0, q) : url;
  const pathBytes = unquoteBytes(rawPath);
  let res: SwiftResponse;
  if (!checkUtf8Bytes(pathBytes)) {
    res = plainError(412, 'Invalid UTF8 or contains NULL');
  } else {
    const headers = requestHeaders(req.raw);
    const hasBody = (headers['content-length'] !== undefined && headers['content-length'] !== '0') || headers['transfer-encoding'] !== undefined;
    const sreq: SwiftRequest = {
      method: req.method,
      path: pathBytes.toString('utf8'),
      query: new URLSearchParams(q >= 0 ? url.slice(q + 1) : ''),
      headers,
      body: hasBody ? req.raw : undefined,
      env: { transId, extra: {}, ...(headers.host ? { hostUrl: `${scheme}://${headers.host}` } : {}) },
      remoteAddr: req.ip,
    };
    res = await handle(sreq);
    // A body nobody read (an early error) is drained so the connection stays usable.
    if (hasBody && !req.raw.readableEnded) req.raw.resume();
  }
  send(reply, req.method, res, transId);
  return reply;
}

function send(reply: FastifyReply, method: string, res: SwiftResponse, transId: string): void {
  const h: Headers = { ...res.headers, 'x-trans-id': transId, 'x-openstack-request-id': transId };
  let body = res.body;
  if (typeof body === 'string') body = Buffer.from(body, 'utf8');
  if (Buffer.isBuffer(body)) h['content-length'] = String(body.length);
  else if (body === undefined && h['content-length'] === undefined) h['content-length'] = '0';
  if (method === 'HEAD' || res.status === 204 || res.status === 304) {
    if (body instanceof Readable) body.resume();
    body = undefined;
    if (res.status === 204 || res.status === 304) delete h['content-length'];
  }
  reply.code(res.status);
  for (const [k, v] of Object.entries(h)) reply.header(k, v);
  reply.send(body);
}
