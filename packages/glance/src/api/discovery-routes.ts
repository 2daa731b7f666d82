import type { FastifyInstance, FastifyRequest } from 'fastify';
import { baseUrlOf } from '@onestack/core/http/index.ts';
import { enforce, viewerOf, type ApiDeps } from './context.ts';
import { imageSchema, imagesSchema, memberSchema, membersSchema } from './schemas.ts';

/**
 * The versions this Glance answers to, as upstream lists them with multiple
 * stores enabled and no image cache (glance/api/versions.py).
 */
const VERSIONS: [string, 'CURRENT' | 'SUPPORTED'][] = [
  ['2.15', 'SUPPORTED'],
  ['2.13', 'SUPPORTED'],
  ['2.12', 'SUPPORTED'],
  ['2.11', 'SUPPORTED'],
  ['2.10', 'SUPPORTED'],
  ['2.9', 'SUPPORTED'],
  ['2.8', 'SUPPORTED'],
  ['2.17', 'CURRENT'],
  ['2.7', 'SUPPORTED'],
  ['2.6', 'SUPPORTED'],
  ['2.5', 'SUPPORTED'],
  ['2.4', 'SUPPORTED'],
  ['2.3', 'SUPPORTED'],
  ['2.2', 'SUPPORTED'],
  ['2.1', 'SUPPORTED'],
  ['2.0', 'SUPPORTED'],
];

/** Version discovery, the JSON schemas, and /v2/info (import methods, stores, usage). */
export function registerDiscoveryRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { config } = deps;
  const versions = (req: FastifyRequest) => {
    const href = `${baseUrlOf(req, config.publicUrl)}/v2/`;
    return { versions: VERSIONS.map(([v, status]) => ({ id: `v${v}`, status, links: [{ rel: 'self', href }] })) };
  };
  // Upstream's version negotiation answers 300 for anything it cannot place, 200 when /versions is asked for.
  app.get('/', { config: { public: true } }, async (req, reply) => reply.code(300).send(versions(req)));
  app.get('/versions', { config: { public: true } }, async (req) => versions(req));

  app.get('/v2/schemas/image', async () => imageSchema(config));
  app.get('/v2/schemas/images', async () => imagesSchema(config));
  app.get('/v2/schemas/member', async () => memberSchema());
  app.get('/v2/schemas/members', async () => membersSchema());

  app.get('/v2/info/import', async () => ({
    'import-methods': { description: 'Import methods available.', type: 'array', value: config.importMethods },
  }));

  const stores = () =>
    config.stores.map((s) => ({ id: s.id, ...(s.id === config.defaultBackend ? { default: 'true' } : {}) }));
  app.get('/v2/info/stores', async () => ({ stores: stores() }));

  app.get('/v2/info/stores/detail', async (req) => {
    enforce(deps, req, 'stores_info_detail', { project_id: viewerOf(deps, req).projectId ?? null });
    return {
      stores: config.stores.map((s, i) => ({
        ...stores()[i],
        type: s.type,
        properties:
          s.type === 'file'
            ? { data_dir: s.dir, chunk_size: 65536, thin_provisioning: false }
            : { container: s.container, large_object_size: s.largeObjectSize, large_object_chunk_size: s.chunkSize },
        weight: 0,
      })),
    };
  });

  app.get('/v2/info/usage', async (req) => ({ usage: await deps.images.deps.quotas.usage(viewerOf(deps, req).projectId) }));
}
