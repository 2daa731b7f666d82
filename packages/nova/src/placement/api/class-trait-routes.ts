import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CODES, badRequest, conflict, notFound } from '../domain/errors.ts';
import { CUSTOM_RC_PATTERN, CUSTOM_TRAIT_PATTERN } from '../domain/names.ts';
import { allowOnly, atLeast, authorize, body, query, requireJson, selfLink, since, single, type ApiDeps } from './context.ts';
import { cacheHeaders } from './provider-routes.ts';

type Named = FastifyRequest<{ Params: { name: string } }>;

const RC_BODY = {
  type: 'object',
  properties: { name: { type: 'string', pattern: '^CUSTOM_[A-Z0-9_]+$', maxLength: 255 } },
  required: ['name'],
  additionalProperties: false,
};

const rcView = (name: string) => ({ name, links: [selfLink(`/resource_classes/${name}`)] });

const INVALID_TRAIT =
  'The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix "CUSTOM_" and use following characters: "A"-"Z", "0"-"9" and "_"';

export function registerClassAndTraitRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const p = deps.providers;

  app.get('/resource_classes', async (req, reply) => {
    authorize(deps, req, 'placement:resource_classes:list');
    cacheHeaders(req, reply);
    return { resource_classes: (await p.listResourceClasses()).map(rcView) };
  });

  app.post('/resource_classes', async (req, reply) => {
    since(req, '1.2');
    authorize(deps, req, 'placement:resource_classes:create');
    requireJson(req);
    const { name } = body<{ name: string }>(req, RC_BODY);
    if (!(await p.createResourceClass(name))) throw conflict(`Conflicting resource class already exists: ${name}`, CODES.DUPLICATE_NAME);
    return reply.code(201).header('location', `/resource_classes/${name}`).send();
  });

  app.get('/resource_classes/:name', async (req: Named, reply) => {
    authorize(deps, req, 'placement:resource_classes:show');
    const { name } = req.params;
    if (!(await p.resourceClassExists(name))) throw notFound(`No such resource class ${name}.`);
    cacheHeaders(req, reply);
    return rcView(name);
  });

  app.put('/resource_classes/:name', async (req: Named, reply) => {
    since(req, '1.2');
    authorize(deps, req, 'placement:resource_classes:update');
    const { name } = req.params;
    if (atLeast(req, '1.7')) {
      // 1.7: PUT is an idempotent create of a custom class, with no body.
      if (!CUSTOM_RC_PATTERN.test(name) || name.length > 255) throw badRequest(`JSON does not validate: '${name}' does not match '^CUSTOM\\\\_[A-Z0-9_]+$'`);
      const created = await p.createResourceClass(name);
      reply.header('location', `/resource_classes/${name}`);
      cacheHeaders(req, reply);
      return reply.code(created ? 201 : 204).send();
    }
    requireJson(req);
    const data = body<{ name: string }>(req, RC_BODY);
    if (!(await p.resourceClassExists(name))) throw notFound(`No such resource class ${name}.`);
    await p.renameResourceClass(name, data.name);
    return rcView(data.name);
  });

  app.delete('/resource_classes/:name', async (req: Named, reply) => {
    since(req, '1.2');
    authorize(deps, req, 'placement:resource_classes:delete');
    await p.deleteResourceClass(req.params.name);
    return reply.code(204).send();
  });

  app.get('/traits', async (req, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:traits:list');
    const q = query(req);
    allowOnly(q, (k) => k === 'name' || k === 'associated');
    const filter: { startsWith?: string; in?: string[]; associated?: boolean } = {};
    const name = single(q, 'name');
    if (name !== undefined) {
      if (name.startsWith('startswith:')) filter.startsWith = name.slice('startswith:'.length);
      else if (name.startsWith('in:')) filter.in = name.slice(3).split(',');
      else {
        throw badRequest(
          `Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: "${name}"`,
        );
      }
    }
    const associated = single(q, 'associated');
    if (associated !== undefined) {
      const v = associated.toLowerCase();
      if (v !== 'true' && v !== 'false') throw badRequest(`Invalid query string parameters: '${associated}' is not one of ['true', 'false']`);
      filter.associated = v === 'true';
    }
    cacheHeaders(req, reply);
    return { traits: await p.listTraits(filter) };
  });

  app.get('/traits/:name', async (req: Named, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:traits:show');
    if (!(await p.traitExists(req.params.name))) throw notFound(`No such trait(s): ${req.params.name}.`);
    cacheHeaders(req, reply);
    return reply.code(204).send();
  });

  app.put('/traits/:name', async (req: Named, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:traits:update');
    const { name } = req.params;
    if (!CUSTOM_TRAIT_PATTERN.test(name) || name.length > 255) throw badRequest(INVALID_TRAIT);
    const created = await p.createTrait(name);
    reply.header('location', `/traits/${name}`);
    cacheHeaders(req, reply);
    return reply.code(created ? 201 : 204).send();
  });

  app.delete('/traits/:name', async (req: Named, reply) => {
    since(req, '1.6');
    authorize(deps, req, 'placement:traits:delete');
    await p.deleteTrait(req.params.name);
    return reply.code(204).send();
  });
}
