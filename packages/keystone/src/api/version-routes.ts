import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from './context.ts';

/** Identity API v3.14, the version upstream's Zed and later report. */
function v3(deps: ApiDeps) {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${deps.ks.config.publicUrl}/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

export function registerVersionRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/', { config: { public: true } }, async (_req, reply) => {
    reply.code(300);
    return { versions: { values: [v3(deps)] } };
  });
  app.get('/v3', { config: { public: true } }, async () => ({ version: v3(deps) }));
}
