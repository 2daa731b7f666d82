import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, badRequest, notFound } from '@onestack/core/errors.ts';
import { baseUrlOf } from '@onestack/core/http/index.ts';
import { applyChange, checkCreateAllowed, createRequest, draftOf } from '../domain/image-rules.ts';
import type { Image } from '../domain/image.ts';
import { authOf, enforce, imageFor, ImagePolicy, viewerOf, type ApiDeps } from './context.ts';
import { parsePatch, patchDraftOf } from './image-patch.ts';
import { parseListQuery } from './list-query.ts';
import { imageView, taskView } from './views.ts';

type Query = Record<string, string | string[] | undefined>;

/** /v2/images: create, list, show, JSON Patch update, delete, (de)activate and tags, as glance/api/v2/images.py. */
export function registerImageRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { images, config, validator } = deps;

  app.post('/v2/images', async (req, reply) => {
    const body = requireObject(req.body);
    checkCreateAllowed(body);
    validator.check(body);
    const create = createRequest(body);
    const viewer = viewerOf(deps, req);
    const owner = create.owner === undefined ? (viewer.projectId ?? null) : create.owner;
    const target = { project_id: owner, owner, visibility: create.visibility };
    try {
      enforce(deps, req, 'add_image', target);
    } catch (e) {
      if (owner !== (authOf(req).projectId ?? null)) throw new ApiError('forbidden', `You are not permitted to create images owned by '${owner}'`);
      throw e;
    }
    if (create.visibility === 'public') enforce(deps, req, 'publicize_image', target);
    if (create.visibility === 'community') enforce(deps, req, 'communitize_image', target);
    const image = await images.create({ ...create, owner }, viewer);
    reply
      .code(201)
      .header('Location', `${baseUrlOf(req, config.publicUrl)}/v2/images/${image.id}`)
      .header('OpenStack-image-import-methods', config.importMethods.join(','))
      .header('OpenStack-image-store-ids', config.stores.map((s) => s.id).join(','));
    return imageView(image);
  });

  app.get('/v2/images', async (req) => {
    const auth = authOf(req);
    enforce(deps, req, 'get_images', { project_id: auth.projectId ?? null });
    const query = req.query as Query;
    const { markerId, ...parsed } = parseListQuery(query, { limitDefault: config.limitParamDefault, limitMax: config.apiLimitMax });
    const viewer = viewerOf(deps, req);
    let marker: Image | undefined;
    if (markerId !== undefined) marker = await images.get(markerId, viewer).catch(() => Promise.reject(badRequest(`No image found with ID ${markerId}`)));
    const found = await images.repo.list({ ...parsed, projectId: viewer.projectId, isAdmin: viewer.isAdmin, marker });
    const visible = found.filter((image) => new ImagePolicy(deps, req, image, viewer).check('get_image'));
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (k === 'marker' || v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    }
    const body: Record<string, unknown> = { images: visible.map(imageView), first: params.size ? `/v2/images?${params}` : '/v2/images', schema: '/v2/schemas/images' };
    // The database filled the page, so more may follow, whatever policy then hid.
    if (visible.length > 0 && found.length === parsed.limit) {
      params.set('marker', visible[visible.length - 1].id);
      body.next = `/v2/images?${params}`;
    }
    return body;
  });

  app.get('/v2/images/:image_id', async (req) => imageView((await imageFor(deps, req, 'get_image')).image));

  app.get('/v2/images/:image_id/tasks', async (req) => {
    const { image } = await imageFor(deps, req, 'get_image');
    return { tasks: (await images.repo.tasksOf(image.id)).map(taskView) };
  });

  app.patch('/v2/images/:image_id', async (req) => {
    const draftVersion = patchDraftOf(req.headers['content-type']);
    const changes = parsePatch(req.body, draftVersion, validator);
    const viewer = viewerOf(deps, req);
    const saved = await images.update(idOf(req), viewer, (image) => {
      const policy = new ImagePolicy(deps, req, image, viewer);
      if (changes.length === 0) return undefined;
      const draft = draftOf(image);
      for (const change of changes) {
        const root = change.path[0];
        if (root === 'locations') {
          refuseLocations(policy, change.op, change.value);
          continue;
        }
        const ownerByNonAdmin = change.op === 'replace' && root === 'owner' && !viewer.isAdmin;
        if (!ownerByNonAdmin) {
          if (root === 'visibility' && change.op !== 'remove') policy.enforceVisibility(change.value);
          policy.enforce('modify_image');
        }
        applyChange(draft, change, { isAdmin: viewer.isAdmin });
      }
      return draft;
    });
    return imageView(saved);
  });

  app.delete('/v2/images/:image_id', async (req, reply) => {
    const { image, viewer } = await imageFor(deps, req, 'delete_image');
    await images.delete(image, viewer);
    reply.code(204).send();
  });

  app.delete('/v2/stores/:store_id/:image_id', async (req, reply) => {
    const viewer = viewerOf(deps, req);
    const id = idOf(req);
    const image = await images.get(id, viewer).catch(() => Promise.reject(notFound(`Failed to find image ${id}`)));
    const policy = new ImagePolicy(deps, req, image, viewer);
    policy.enforce('get_image_location');
    policy.enforce('delete_image_location');
    await images.deleteFromStore(image, (req.params as { store_id: string }).store_id, viewer);
    reply.code(204).send();
  });

  for (const action of ['deactivate', 'reactivate'] as const) {
    app.post(`/v2/images/:image_id/actions/${action}`, async (req, reply) => {
      const { image, viewer } = await imageFor(deps, req, action);
      await images[action](image, viewer);
      reply.code(204).send();
    });
  }

  app.put('/v2/images/:image_id/tags/:tag_value', async (req, reply) => {
    const tag = (req.params as { tag_value: string }).tag_value;
    validator.check({ tags: [tag] });
    const { viewer } = await imageFor(deps, req, 'modify_image');
    try {
      await images.update(idOf(req), viewer, (image) => {
        const draft = draftOf(image);
        draft.core.tags = [...new Set([...(draft.core.tags as string[]), tag])];
        return draft;
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 413) throw new ApiError('payload_too_large', `Image tag limit exceeded for image ${idOf(req)}: ${e.message}:`);
      throw e;
    }
    reply.code(204).send();
  });

  app.delete('/v2/images/:image_id/tags/:tag_value', async (req, reply) => {
    const tag = (req.params as { tag_value: string }).tag_value;
    const { viewer } = await imageFor(deps, req, 'modify_image');
    await images.update(idOf(req), viewer, (image) => {
      if (!image.tags.includes(tag)) throw notFound('The resource could not be found.');
      const draft = draftOf(image);
      draft.core.tags = image.tags.filter((t) => t !== tag);
      return draft;
    });
    reply.code(204).send();
  });
}

function idOf(req: FastifyRequest): string {
  return (req.params as { image_id: string }).image_id;
}

function requireObject(body: unknown): Record<string, unknown> {
  if (body === undefined) throw badRequest('Body expected in request.');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest(`Provided object does not match schema 'image': ${JSON.stringify(body)} is not of type 'object'`);
  }
  return body as Record<string, unknown>;
}

/**
 * Image locations stay hidden (show_multiple_locations is off, as upstream's
 * default), and a hidden list cannot be edited; the policy is checked first.
 */
function refuseLocations(policy: ImagePolicy, op: string, value: unknown): never {
  if (op === 'replace' && (!Array.isArray(value) || value.length === 0)) throw new ApiError('forbidden', 'Cannot set locations to empty list.');
  policy.enforce(op === 'remove' ? 'delete_image_location' : 'set_image_location');
  const verb = op === 'replace' ? 'update' : op;
  throw new ApiError('forbidden', `It's not allowed to ${verb} locations if locations are invisible.`);
}
