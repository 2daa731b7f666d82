import type { FastifyError, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { KeystoneSession } from '@onestack/core/auth/keystone-session.ts';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { Database } from '@onestack/core/db/index.ts';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { Enforcer } from '@onestack/core/policy/index.ts';
import { sessionTokens, SwiftClient } from '@onestack/core/swift-client.ts';
import type { ApiDeps } from './api/context.ts';
import { registerDataRoutes } from './api/data-routes.ts';
import { registerDiscoveryRoutes } from './api/discovery-routes.ts';
import { PATCH_MEDIA_TYPES } from './api/image-patch.ts';
import { registerImageRoutes } from './api/image-routes.ts';
import { registerMemberRoutes } from './api/member-routes.ts';
import { ImageValidator } from './api/schemas.ts';
import type { GlanceConfig, StoreConfig } from './conf.ts';
import type { GlanceDB } from './db/schema.ts';
import { ImageData } from './domain/image-data.ts';
import { ImageRepo } from './domain/image-repo.ts';
import { ImageService } from './domain/images.ts';
import { ImageNotifier, type NotificationSink } from './domain/notifier.ts';
import { Quotas, UnifiedLimits } from './domain/quotas.ts';
import { FileStore } from './drivers/file-store.ts';
import type { ImageStore } from './drivers/image-store.ts';
import { StagingArea } from './drivers/staging-area.ts';
import { SwiftImageStore } from './drivers/swift-store.ts';
import { glancePolicies } from './policies/index.ts';

export interface GlanceDeps {
  database: Database<GlanceDB>;
  config: GlanceConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  notifications?: NotificationSink;
  /** Validates X-Auth-Token (Keystone's in-process validator, or HttpTokenValidator). */
  tokens?: TokenValidator;
  /** Keystone's public URL, advertised in WWW-Authenticate. */
  authUri?: string;
  /** Glance's own Keystone session, for unified limits and swift stores; required when config.useKeystoneLimits or a store is swift. */
  keystone?: KeystoneSession;
}

export interface GlanceApp {
  app: FastifyInstance;
  images: ImageService;
  data: ImageData;
  enforcer: Enforcer;
}

const ROUTES: ((app: FastifyInstance, deps: ApiDeps) => void)[] = [registerDiscoveryRoutes, registerImageRoutes, registerDataRoutes, registerMemberRoutes];

/** Builds the Image API on a migrated database: stores, domain layer, policy and routes. */
export async function createGlanceApp(deps: GlanceDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): Promise<GlanceApp> {
  const { config } = deps;
  const stores = new Map<string, ImageStore>(config.stores.map((s) => [s.id, createStore(s, deps)]));
  const staging = new StagingArea(config.stateDir);
  // Writes a crash interrupted leave temporary files; nothing else can own them at start.
  for (const store of [...stores.values(), staging]) if (store instanceof FileStore) await store.removePartials();
  if (config.useKeystoneLimits && !deps.keystone) throw new Error('[glance] use_keystone_limits needs a Keystone session for the service user');
  const limits = config.useKeystoneLimits ? new UnifiedLimits(deps.keystone!, { regionName: config.regionName, cacheMs: config.limitsCacheMs, clock: deps.clock }) : undefined;
  const repo = new ImageRepo(deps.database, deps.clock);
  const images = new ImageService({
    repo,
    config,
    stores,
    staging,
    notifier: new ImageNotifier(deps.notifications, config.hostname, deps.logger),
    quotas: new Quotas(repo, limits),
    ids: deps.ids,
    clock: deps.clock,
    logger: deps.logger,
  });
  const data = new ImageData(images);
  const enforcer = new Enforcer({
    defaults: glancePolicies,
    overrideFile: config.policyFile,
    enforceScope: config.enforceScope,
    enforceNewDefaults: true,
    clock: deps.clock,
    logger: { warn: (msg) => deps.logger.warn(msg) },
  });
  const app = createHttpServer({ service: 'glance', faultFormat: 'glance', logger: deps.logger, tokens: deps.tokens, authUri: deps.authUri, ...http });
  // Image data streams straight from the request to the store: never buffered, never size-limited by the JSON body limit.
  const passThrough = (_req: unknown, payload: NodeJS.ReadableStream, done: (err: FastifyError | null, body?: unknown) => void) => done(null, payload);
  app.addContentTypeParser('application/octet-stream', passThrough);
  // Any other type reaches the route, which answers upstream's 415 in its own words.
  app.addContentTypeParser('*', passThrough);
  app.addContentTypeParser(Object.keys(PATCH_MEDIA_TYPES), { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, (body as string).trim() === '' ? undefined : JSON.parse(body as string));
    } catch {
      done(badRequest('Malformed JSON in request body.') as unknown as FastifyError, undefined);
    }
  });
  const apiDeps: ApiDeps = { images, data, enforcer, config, validator: new ImageValidator(config) };
  const methods = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    for (const m of [route.method].flat()) if (m !== 'HEAD') (methods.get(route.url) ?? methods.set(route.url, new Set()).get(route.url)!).add(m);
  });
  for (const register of ROUTES) register(app, apiDeps);
  rejectOtherMethods(app, methods);
  return { app, images, data, enforcer };
}

/** A swift store reaches Swift as Glance's service user, in that user's own account (upstream's single-tenant store). */
function createStore(s: StoreConfig, deps: GlanceDeps): ImageStore {
  if (s.type === 'file') return new FileStore(s.dir, { id: s.id });
  const session = deps.keystone;
  if (!session) throw new Error(`[glance] the swift store ${s.id} needs a Keystone session for the service user`);
  const client = new SwiftClient({
    account: s.endpoint || (() => session.endpointUrl('object-store', { interface: s.endpointType, region: deps.config.regionName })),
    auth: sessionTokens(session),
  });
  return new SwiftImageStore(s.id, client, s);
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** A known path asked with a method it does not take: 405 with Allow, as upstream's RejectMethodController. */
function rejectOtherMethods(app: FastifyInstance, methods: Map<string, Set<string>>): void {
  for (const [url, allowed] of [...methods]) {
    if (url === '/' || url === '/healthcheck' || url === '/metrics') continue;
    const others = METHODS.filter((m) => !allowed.has(m));
    if (others.length === 0) continue;
    const allow = [...allowed].join(', ');
    app.route({
      method: others,
      url,
      handler: async (req) => {
        throw new ApiError('method_not_allowed', `The method ${req.method} is not allowed for this resource.`, { headers: { Allow: allow } });
      },
    });
  }
}
