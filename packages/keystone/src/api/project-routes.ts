import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isApiError, notFound, validationError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import { DEFAULT_DOMAIN_ID } from '../db/schema.ts';
import type { Project } from '../domain/resource-manager.ts';
import type { ApiDeps } from './context.ts';
import { authOf, authorize, collectionLinks, queryBool } from './context.ts';
import { projectView } from './views.ts';
import { BOOLEAN, callerDomain, extraOf, ID_STRING, inCallerDomain, listTarget, normalized, NULLABLE_STRING, optionsSchema, queryString, requireMatchingId, wrapped } from './request-helpers.ts';

/** /v3/projects and their tags, as keystone/api/projects.py. */
export function registerProjectRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.get('/v3/projects', async (req) => {
    authorize(deps, req, 'identity:list_projects', listTarget(req, (domainId) => ({ domain_id: domainId })));
    const q = req.query as Record<string, unknown>;
    const projects = await ks.resource.listProjects({
      domainId: queryString(q.domain_id),
      parentId: queryString(q.parent_id),
      name: queryString(q.name),
      enabled: queryBool(queryString(q.enabled)),
      // Without is_domain, domains (projects acting as domains) are not listed.
      isDomain: queryBool(queryString(q.is_domain)) ?? false,
      tags: queryList(q.tags),
      tagsAny: queryList(q['tags-any']),
      notTags: queryList(q['not-tags']),
      notTagsAny: queryList(q['not-tags-any']),
    });
    return { projects: inCallerDomain(req, projects, (p) => p.domainId).map((p) => projectView(deps, p)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/projects', { schema: { body: wrapped('project', PROJECT, { required: ['name'] }) } }, async (req, reply) => {
    const raw = (req.body as { project: ProjectBody }).project;
    authorize(deps, req, 'identity:create_project', { target: { project: raw } });
    const body = normalized(raw) as ProjectBody;
    const isDomain = body.is_domain === true;
    const project = await ks.resource
      .createProject({
        name: body.name!,
        description: body.description ?? undefined,
        enabled: body.enabled,
        isDomain,
        // A project acting as a domain is a root: any parent (a domain_id is one) is refused.
        domainId: isDomain ? undefined : (body.domain_id ?? undefined) || callerDomain(req),
        parentId: isDomain ? body.parent_id || body.domain_id : body.parent_id,
        tags: body.tags,
        options: body.options,
        extra: extraOf(body, PROJECT_COLUMNS),
      })
      .catch((e: unknown) => {
        // Naming a missing domain or parent is a bad request here, not a missing resource.
        if (isApiError(e) && e.status === 404) throw validationError(e.message);
        throw e;
      });
    reply.code(201);
    return { project: projectView(deps, project) };
  });

  app.get('/v3/projects/:project_id', async (req) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:get_project', target);
    const found = await ks.resource.loadTags(mustExist(project, id));
    const out = projectView(deps, found);
    const q = req.query as Record<string, unknown>;
    const [parentsList, parentsIds, subtreeList, subtreeIds] = ['parents_as_list', 'parents_as_ids', 'subtree_as_list', 'subtree_as_ids'].map((k) => expandFlag(q, k));
    if (parentsList && parentsIds) throw validationError('Cannot use parents_as_list and parents_as_ids query params at the same time.');
    if (subtreeList && subtreeIds) throw validationError('Cannot use subtree_as_list and subtree_as_ids query params at the same time.');
    if (parentsList) out.parents = await visibleProjects(deps, req, await ks.resource.parentIds(id));
    if (parentsIds) out.parents = await ks.resource.parentsAsIds(id);
    if (subtreeList) out.subtree = await visibleProjects(deps, req, await ks.resource.subtreeIds(id));
    if (subtreeIds) out.subtree = await ks.resource.subtreeAsIds(id);
    return { project: out };
  });

  app.patch('/v3/projects/:project_id', { schema: { body: PROJECT_UPDATE } }, async (req) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:update_project', target);
    const found = mustExist(project, id);
    const body = (req.body as { project?: ProjectBody }).project ?? {};
    requireMatchingId(body, id);
    const updated = await ks.resource.updateProject(
      id,
      {
        name: body.name,
        description: body.description ?? undefined,
        enabled: body.enabled,
        tags: body.tags,
        options: body.options,
        extra: extraOf(body, PROJECT_COLUMNS),
        domainId: body.domain_id,
        parentId: body.parent_id,
        isDomain: body.is_domain,
      },
      found.isDomain,
    );
    return { project: projectView(deps, updated) };
  });

  app.delete('/v3/projects/:project_id', async (req, reply) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:delete_project', target);
    await ks.resource.deleteProject(id, mustExist(project, id).isDomain);
    reply.code(204).send();
  });

  // ---- tags ----------------------------------------------------------------

  app.get('/v3/projects/:project_id/tags', async (req) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:list_project_tags', target);
    const { tags } = await ks.resource.loadTags(mustExist(project, id));
    return { tags, links: { self: collectionLinks(deps, req).self } };
  });

  app.put('/v3/projects/:project_id/tags', { schema: { body: TAGS_UPDATE } }, async (req) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:update_project_tags', target);
    mustExist(project, id);
    const tags = await ks.resource.setTags(id, (req.body as { tags?: string[] }).tags ?? []);
    return { tags, links: { self: collectionLinks(deps, req).self } };
  });

  app.delete('/v3/projects/:project_id/tags', async (req, reply) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:delete_project_tags', target);
    mustExist(project, id);
    await ks.resource.setTags(id, []);
    reply.code(204).send();
  });

  app.get('/v3/projects/:project_id/tags/:value', async (req, reply) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:get_project_tag', target);
    const { tags } = await ks.resource.loadTags(mustExist(project, id));
    const value = (req.params as { value: string }).value;
    if (!tags.includes(value)) throw notFound(`Could not find project tag: ${value}.`);
    reply.code(204).send();
  });

  app.put('/v3/projects/:project_id/tags/:value', async (req, reply) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:create_project_tag', target);
    const value = (req.params as { value: string }).value;
    checkTag(value);
    // As upstream: the tag list it would make must itself be valid (80 at most, no repeats).
    const { tags } = await ks.resource.loadTags(mustExist(project, id));
    if (tags.length + 1 > MAX_TAGS) throw validationError(`Invalid input for field 'tags': a project has at most ${MAX_TAGS} tags`);
    if (tags.includes(value)) throw validationError(`Invalid input for field 'tags': ${JSON.stringify([...tags, value])} has non-unique elements`);
    await ks.resource.addTag(id, value);
    reply.code(201).header('location', `${ks.config.publicUrl}/v3/projects/${id}/tags/${encodeURIComponent(value)}`).send();
  });

  app.delete('/v3/projects/:project_id/tags/:value', async (req, reply) => {
    const { id, project, target } = await projectTarget(deps, req);
    authorize(deps, req, 'identity:delete_project_tag', target);
    mustExist(project, id);
    await ks.resource.removeTag(id, (req.params as { value: string }).value);
    reply.code(204).send();
  });
}

/**
 * The project a route names, looked up before policy as upstream does: a
 * missing project leaves the target empty (only a cloud admin then passes and
 * learns it is missing), so nobody else can probe which ids exist.
 */
async function projectTarget(deps: ApiDeps, req: FastifyRequest): Promise<{ id: string; project: Project | undefined; target: Target }> {
  const id = (req.params as { project_id: string }).project_id;
  const project = await deps.ks.resource.findProject(id);
  return { id, project, target: { project_id: id, target: project ? { project: projectView(deps, project) } : {} } };
}

function mustExist(project: Project | undefined, id: string): Project {
  if (!project) throw notFound(`Could not find project: ${id}.`);
  return project;
}

/** `?parents_as_list` / `?subtree_as_list` show only the projects the caller has a role on, in hierarchy order. */
async function visibleProjects(deps: ApiDeps, req: FastifyRequest, ids: string[]): Promise<{ project: Record<string, unknown> }[]> {
  const mine = new Set(await deps.ks.assignment.projectsForUser(authOf(req).userId));
  const byId = new Map((await deps.ks.resource.listProjects({ ids: ids.filter((i) => mine.has(i)) })).map((p) => [p.id, p]));
  return ids.flatMap((i) => (byId.has(i) ? [{ project: projectView(deps, byId.get(i)!) }] : []));
}

/** Upstream's query_filter_is_true for the expansion flags: present and not "0". */
function expandFlag(q: Record<string, unknown>, name: string): boolean {
  return name in q && queryString(q[name]) !== '0';
}

const MAX_TAGS = 80;

function checkTag(tag: string): void {
  if (tag.length < 1 || tag.length > 255) throw validationError(`Invalid input for field 'tag': ${JSON.stringify(tag)} must be 1 to 255 characters long`);
  if (/[,/]/.test(tag)) throw validationError(`Invalid input for field 'tag': ${JSON.stringify(tag)} does not match '^[^,/]*$'`);
}

// ---- shared by the resource and identity routes ------------------------------

/** Comma-separated list parameters (`?tags=a,b`). */
function queryList(v: unknown): string[] | undefined {
  return queryString(v)?.split(',').filter(Boolean);
}

/** Project and domain names (keystone/resource/schema.py). */
export const RESOURCE_NAME = { type: 'string', minLength: 1, maxLength: 64, pattern: '[\\S]+' };
const TAG = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^,/]*$' };
export const TAGS = { type: 'array', items: TAG, maxItems: MAX_TAGS, uniqueItems: true };
export const PROJECT_OPTIONS = optionsSchema({ immutable: BOOLEAN });

// ---- request schemas (keystone/resource/schema.py) ----------------------------

interface ProjectBody {
  id?: string;
  name?: string;
  description?: string | null;
  enabled?: boolean;
  domain_id?: string | null;
  parent_id?: string | null;
  is_domain?: boolean;
  tags?: string[];
  options?: Record<string, unknown>;
}

const PROJECT_COLUMNS = ['id', 'name', 'description', 'enabled', 'domain_id', 'parent_id', 'is_domain', 'tags', 'options', 'links'];

const PROJECT = {
  description: NULLABLE_STRING,
  domain_id: { anyOf: [ID_STRING, { type: 'null' }] },
  enabled: BOOLEAN,
  is_domain: BOOLEAN,
  parent_id: { anyOf: [ID_STRING, { type: 'null' }] },
  name: RESOURCE_NAME,
  tags: TAGS,
  options: PROJECT_OPTIONS,
};

/** Upstream's update body does not require the `project` key, nor any attribute in it. */
const PROJECT_UPDATE = wrapped(
  'project',
  { description: NULLABLE_STRING, enabled: BOOLEAN, name: RESOURCE_NAME, options: PROJECT_OPTIONS, tags: TAGS },
  {},
  { required: false },
);

const TAGS_UPDATE = { type: 'object', properties: { tags: TAGS }, additionalProperties: false };
