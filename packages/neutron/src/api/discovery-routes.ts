import type { FastifyInstance, FastifyRequest } from 'fastify';
import { baseUrlOf } from '@onestack/core/http/index.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { ApiDeps, ExtensionDescriptor, NeutronModule } from './context.ts';

const UPDATED = '2024-01-01T10:00:00-00:00';

/**
 * Version discovery (`/`, `/v2.0/`) and the extension list, gathered from
 * every module so `/v2.0/extensions` lists only what is really served.
 */
export function discoveryModule(modules: () => readonly NeutronModule[]): NeutronModule {
  return {
    name: 'discovery',
    register(app: FastifyInstance, deps: ApiDeps) {
      const base = (req: FastifyRequest) => baseUrlOf(req, deps.config.publicUrl);
      const versions = (req: FastifyRequest) => ({
        versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ href: `${base(req)}/v2.0/`, rel: 'self' }] }],
      });
      app.get('/', { config: { public: true } }, async (req) => versions(req));
      app.get('/v2.0', async (req) => ({
        resources: modules()
          .flatMap((m) => m.resources ?? [])
          .map((r) => ({ name: r.name, collection: r.collection, links: [{ href: `${base(req)}/v2.0/${r.collection}`, rel: 'self' }] })),
      }));
      const extensions = () => modules().flatMap((m) => m.extensions ?? []).map(extensionView);
      app.get('/v2.0/extensions', async () => ({ extensions: extensions() }));
      app.get('/v2.0/extensions/:alias', async (req) => {
        const { alias } = req.params as { alias: string };
        const ext = extensions().find((e) => e.alias === alias);
        if (!ext) throw new ApiError('not_found', `Extension with alias ${alias} does not exist`, { type: 'HTTPNotFound' });
        return { extension: ext };
      });
    },
  };
}

function extensionView(e: ExtensionDescriptor) {
  return { name: e.name, alias: e.alias, description: e.description, updated: e.updated ?? UPDATED, links: [] };
}
