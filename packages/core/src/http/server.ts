import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RequestContext } from '../context.ts';
import { ApiError, isApiError, unauthorized } from '../errors.ts';
import type { TokenValidator } from '../auth/token-validator.ts';
import { renderFault, type FaultFormat } from './faults.ts';
import { MicroversionNegotiator, type MicroversionConfig } from './microversion.ts';
import { createValidators, describeValidationError } from './validation.ts';
import { registerOpsRoutes } from './ops-routes.ts';
import type { Metrics } from '../metrics.ts';

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext;
  }
  interface FastifyContextConfig {
    /** Reachable without a token (version documents, token issue). */
    public?: boolean;
  }
}

export interface HttpServerOptions {
  service: string;
  faultFormat: FaultFormat;
  logger: Logger;
  /** Validates X-Auth-Token on every non-public route. */
  tokens?: TokenValidator;
  /** Advertised in WWW-Authenticate on 401, as keystonemiddleware does. */
  authUri?: string;
  microversions?: MicroversionConfig;
  /** oslo.middleware sizelimit's default is 112 KiB. */
  bodyLimit?: number;
  tls?: { certFile: string; keyFile: string };
  /** Serves /healthcheck (reporting this version) and /metrics, and times every request into them. */
  ops?: { version: string; metrics?: Metrics };
}

const MALFORMED_BODY: Record<FaultFormat, string> = {
  keystone:
    'Expecting to find valid JSON in request body. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.',
  compute: 'Malformed request body',
  neutron: 'Malformed request body',
  placement: 'Malformed JSON',
  glance: 'Malformed request body',
  swift: 'Malformed request body',
};

const UNEXPECTED: Record<FaultFormat, string> = {
  keystone: 'An unexpected error prevented the server from fulfilling your request.',
  compute: 'Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.',
  neutron: 'Request Failed: internal server error while processing your request.',
  placement: 'An unexpected error occurred.',
  glance: 'An unexpected error occurred.',
  swift: 'An unexpected error occurred.',
};

export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.logger,
    // Requests are logged once, on completion, by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 114688,
    genReqId: () => `req-${randomUUID()}`,
    requestIdHeader: false,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 },
    ...(opts.tls ? { https: { cert: readFileSync(opts.tls.certFile), key: readFileSync(opts.tls.keyFile) } } : {}),
  }) as unknown as FastifyInstance;

  const validators = createValidators();
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? validators.body : validators.query).compile(schema),
  );
  app.setSchemaErrorFormatter((errors, dataVar) => {
    const err = new ApiError('validation', describeValidationError(opts.faultFormat, errors as never, dataVar));
    return err as unknown as Error;
  });

  // An empty body is legal for actions with no input; fastify would reject it.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiError('bad_request', MALFORMED_BODY[opts.faultFormat]) as unknown as FastifyError, undefined);
    }
  });

  const negotiator = opts.microversions ? new MicroversionNegotiator(opts.microversions) : undefined;
  app.decorateRequest('ctx', null as unknown as RequestContext);
  app.addHook('onRequest', async (req, reply) => {
    req.ctx = { requestId: req.id };
    reply.header('x-openstack-request-id', req.id);
    if (negotiator) {
      const root = opts.microversions!.unversionedRoot && (req.url === '/' || req.url.startsWith('/?'));
      const v = negotiator.negotiate(root ? {} : req.headers);
      req.ctx.microversion = v;
      reply.headers(negotiator.responseHeaders(v));
    }
    if (opts.tokens && !req.routeOptions.config?.public) {
      await authenticate(req, opts.tokens);
    }
  });

  // Access lines carry only fixed, safe fields: skipping redaction saves a sixth of a cached token validation.
  const accessLog = opts.logger.child({}, { redact: [] });
  app.addHook('onResponse', async (req, reply) => {
    const seconds = reply.elapsedTime / 1000;
    accessLog.info(
      { request_id: req.id, method: req.method, path: req.routeOptions.url ?? req.url.split('?')[0], status: reply.statusCode, ms: Math.round(seconds * 1000) },
      'request',
    );
    opts.ops?.metrics?.observeHttpRequest(req.method, req.routeOptions.url ?? 'unknown', reply.statusCode, seconds);
  });

  if (opts.ops) registerOpsRoutes(app, { service: opts.service, ...opts.ops });

  app.setNotFoundHandler((req, reply) => {
    sendFault(reply, new ApiError('not_found', 'The resource could not be found.'), opts, req.id);
  });

  app.setErrorHandler((error: FastifyError | ApiError, req, reply) => {
    sendFault(reply, toApiError(error, opts.faultFormat, req, opts.logger), opts, req.id);
  });

  return app;
}

async function authenticate(req: FastifyRequest, tokens: TokenValidator): Promise<void> {
  const token = header(req, 'x-auth-token');
  if (!token) throw unauthorized();
  req.ctx.auth = await tokens.validate(token);
  const serviceToken = header(req, 'x-service-token');
  if (serviceToken) {
    const svc = await tokens.validate(serviceToken);
    req.ctx.auth = { ...req.ctx.auth, serviceRoles: svc.roles, serviceUserId: svc.userId };
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function toApiError(error: FastifyError | ApiError, format: FaultFormat, req: FastifyRequest, logger: Logger): ApiError {
  if (isApiError(error)) return error;
  const fe = error as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError('payload_too_large', 'Request is too large.');
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ApiError('unsupported_media_type', `Content type '${req.headers['content-type'] ?? ''}' is not supported.`);
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new ApiError('bad_request', MALFORMED_BODY[format]);
  }
  if (fe.validation) return new ApiError('validation', fe.message);
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ApiError('bad_request', fe.message, { status: fe.statusCode });
  }
  logger.error({ err: error, request_id: req.id, method: req.method, url: req.url }, 'unexpected error');
  return new ApiError('internal', `${UNEXPECTED[format]} (HTTP 500) (Request-ID: ${req.id})`);
}

export function sendFault(reply: FastifyReply, err: ApiError, opts: Pick<HttpServerOptions, 'faultFormat' | 'authUri'>, requestId: string) {
  const fault = renderFault(opts.faultFormat, err, requestId);
  if (err.status === 401 && opts.authUri) reply.header('WWW-Authenticate', `Keystone uri="${opts.authUri}"`);
  reply.headers(err.headers).code(err.status).type(fault.contentType).send(fault.body);
}
