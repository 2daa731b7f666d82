import type { FastifyInstance, FastifyRequest } from 'fastify';
import { notFound, validationError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import type { Project } from '../domain/resource-manager.ts';
import type { ApiDeps } from './context.ts';
import { authorize, collectionLinks, queryBool } from './context.ts';
import { domainView } from './views.ts';
import { BOOLEAN, extraOf, inCallerDomain, listTarget, normalized, queryString, requireMatchingId, wrapped } from './request-helpers.ts';
import { PROJECT_OPTIONS, RESOURCE_NAME, TAGS } from './project-routes.ts';

/** /v3/domains, as keystone/api/domains.py: domains are projects acting as domains. */
export function registerDomainRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.get('/v3/domains', async (req) => {
    authorize(deps, req, 'identity:list_domains', listTarget(req, (id) => ({ domain: { id } })));
    const q = req.query as Record<string, unknown>;
    const domains = await ks.resource.listProjects({ isDomain: true, name: queryString(q.name), enabled: queryBool(queryString(q.enabled)) });
    return { domains: inCallerDomain(req, domains, (d) => d.id).map((d) => domainView(deps, d)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/domains', { schema: { body: wrapped('domain', { ...DOMAIN, explicit_domain_id: { type: 'string' } }, { required: ['name'] }) } }, async (req, reply) => {
    authorize(deps, req, 'identity:create_domain');
    const body = normalized((req.body as { domain: DomainBody }).domain) as DomainBody;
    const id = body.explicit_domain_id;
    // Upstream accepts an explicit id only in its own format: a UUID4 as 32 lowercase hex digits.
    if (id !== undefined && !/^[0-9a-f]{32}$/.test(id)) throw validationError('Domain ID does not conform to required UUID format.');
    const domain = await ks.resource.createProject({
      id,
      name: body.name!,
      description: body.description ?? undefined,
      enabled: body.enabled,
      isDomain: true,
      tags: body.tags,
      options: body.options,
      extra: extraOf(body, DOMAIN_COLUMNS),
    });
    reply.code(201);
    return { domain: domainView(deps, domain) };
  });

  app.get('/v3/domains/:domain_id', async (req) => {
    const { id, domain, target } = await domainTarget(deps, req);
    authorize(deps, req, 'identity:get_domain', target);
    return { domain: domainView(deps, await ks.resource.loadTags(mustExist(domain, id))) };
  });

  app.patch('/v3/domains/:domain_id', { schema: { body: wrapped('domain', DOMAIN, { minProperties: 1 }) } }, async (req) => {
    const { id, domain, target } = await domainTarget(deps, req);
    authorize(deps, req, 'identity:update_domain', target);
    mustExist(domain, id);
    const body = (req.body as { domain: DomainBody }).domain;
    requireMatchingId(body, id);
    const updated = await ks.resource.updateProject(
      id,
      { name: body.name, description: body.description ?? undefined, enabled: body.enabled, tags: body.tags, options: body.options, extra: extraOf(body, DOMAIN_COLUMNS) },
      true,
    );
    return { domain: domainView(deps, updated) };
  });

  app.delete('/v3/domains/:domain_id', async (req, reply) => {
    const { id, domain, target } = await domainTarget(deps, req);
    authorize(deps, req, 'identity:delete_domain', target);
    await ks.resource.deleteProject(mustExist(domain, id).id, true);
    reply.code(204).send();
  });
}

/** The domain a route names; a missing one leaves the target empty (see projectTarget). */
async function domainTarget(deps: ApiDeps, req: FastifyRequest): Promise<{ id: string; domain: Project | undefined; target: Target }> {
  const id = (req.params as { domain_id: string }).domain_id;
  const found = await deps.ks.resource.findProject(id);
  const domain = found?.isDomain ? found : undefined;
  return { id, domain, target: { domain_id: id, target: domain ? { domain: domainView(deps, domain) } : {} } };
}

function mustExist(domain: Project | undefined, id: string): Project {
  if (!domain) throw notFound(`Could not find domain: ${id}.`);
  return domain;
}

interface DomainBody {
  id?: string;
  explicit_domain_id?: string;
  name?: string;
  description?: string | null;
  enabled?: boolean;
  tags?: string[];
  options?: Record<string, unknown>;
}

/** Domains carry no hierarchy attributes: whatever else is sent is kept as an extra, as upstream. */
const DOMAIN_COLUMNS = ['id', 'explicit_domain_id', 'name', 'description', 'enabled', 'tags', 'options', 'links', 'domain_id', 'parent_id', 'is_domain'];

const DOMAIN = {
  description: { type: ['string', 'null'], maxLength: 255 },
  enabled: BOOLEAN,
  name: RESOURCE_NAME,
  options: PROJECT_OPTIONS,
  tags: TAGS,
};
