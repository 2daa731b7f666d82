import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound, unauthorized, validationError } from '@onestack/core/errors.ts';
import type { Target } from '@onestack/core/policy/index.ts';
import type { ExpiryOperator, PasswordExpiryFilter, User, UserFilter } from '../domain/identity-manager.ts';
import { EXPIRY_OPERATORS } from '../domain/identity-manager.ts';
import type { ApiDeps } from './context.ts';
import { authOf, authorize, collectionLinks, queryBool } from './context.ts';
import { groupView, projectView, userView } from './views.ts';
import { BOOLEAN, callerDomain, extraOf, ID_STRING, inCallerDomain, listTarget, normalized, NULLABLE_STRING, optionsSchema, queryString, requireMatchingId, wrapped } from './request-helpers.ts';

/** /v3/users, a user's password, groups and projects, as keystone/api/users.py. */
export function registerUserRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.get('/v3/users', async (req) => {
    authorize(deps, req, 'identity:list_users', listTarget(req, (domainId) => ({ domain_id: domainId })));
    const users = await ks.identity.listUsers({ ...userFilter(req.query as Record<string, unknown>), domainId: listDomain(deps, req) });
    return { users: inCallerDomain(req, users, (u) => u.domainId).map((u) => userView(deps, u)), links: collectionLinks(deps, req) };
  });

  app.post('/v3/users', { schema: { body: wrapped('user', { ...USER, domain_id: ID_STRING }, { required: ['name'] }) } }, async (req, reply) => {
    const raw = (req.body as { user: UserBody }).user;
    authorize(deps, req, 'identity:create_user', { target: { user: raw } });
    const body = normalized(raw) as UserBody;
    const user = await ks.identity.createUser({
      name: body.name!,
      domainId: body.domain_id || callerDomain(req),
      enabled: body.enabled,
      defaultProjectId: body.default_project_id,
      description: body.description,
      email: body.email,
      password: body.password,
      options: body.options,
      extra: extraOf(body, USER_COLUMNS),
    });
    reply.code(201);
    return { user: userView(deps, user) };
  });

  app.get('/v3/users/:user_id', async (req) => {
    const { id, user, target } = await userTarget(deps, req);
    authorize(deps, req, 'identity:get_user', target);
    return { user: userView(deps, existingUser(user, id)) };
  });

  app.patch('/v3/users/:user_id', { schema: { body: wrapped('user', USER, { minProperties: 1 }) } }, async (req) => {
    const { id, user, target } = await userTarget(deps, req);
    authorize(deps, req, 'identity:update_user', target);
    const current = existingUser(user, id);
    const body = (req.body as { user: UserBody }).user;
    requireMatchingId(body, id);
    if (body.domain_id !== undefined && body.domain_id !== current.domainId) throw validationError('Cannot change Domain ID');
    const updated = await ks.identity.updateUser(id, {
      name: body.name,
      enabled: body.enabled,
      defaultProjectId: body.default_project_id,
      description: body.description,
      email: body.email,
      password: body.password,
      options: body.options,
      extra: extraOf(body, USER_COLUMNS),
    });
    return { user: userView(deps, updated) };
  });

  app.delete('/v3/users/:user_id', async (req, reply) => {
    const { id, user, target } = await userTarget(deps, req);
    authorize(deps, req, 'identity:delete_user', target);
    await ks.identity.deleteUser(existingUser(user, id).id);
    reply.code(204).send();
  });

  // Works without a token, as upstream: the original password is the proof, and
  // a user whose password expired has no other way to get one.
  app.post('/v3/users/:user_id/password', { config: { public: true }, schema: { body: PASSWORD_CHANGE } }, async (req, reply) => {
    const { original_password, password } = (req.body as { user: { original_password: string; password: string } }).user;
    await ks.identity.changePassword((req.params as { user_id: string }).user_id, original_password, password);
    reply.code(204).send();
  });

  app.get('/v3/users/:user_id/groups', async (req) => {
    const { id, user, target } = await userTarget(deps, req);
    authorize(deps, req, 'identity:list_groups_for_user', target);
    existingUser(user, id);
    const name = queryString((req.query as Record<string, unknown>).name);
    const groups = (await ks.identity.listGroupsForUser(id)).filter((g) => name === undefined || g.name === name);
    return { groups: inCallerDomain(req, groups, (g) => g.domainId).map((g) => groupView(deps, g)), links: collectionLinks(deps, req) };
  });

  app.get('/v3/users/:user_id/projects', async (req) => {
    const { id, user, target } = await userTarget(deps, req);
    authorize(deps, req, 'identity:list_user_projects', target);
    existingUser(user, id);
    const q = req.query as Record<string, unknown>;
    const projects = await ks.resource.listProjects({
      ids: await ks.assignment.projectsForUser(id),
      domainId: queryString(q.domain_id),
      name: queryString(q.name),
      enabled: queryBool(queryString(q.enabled)),
    });
    return { projects: projects.map((p) => projectView(deps, p)), links: collectionLinks(deps, req) };
  });
}

/**
 * The user a route names, looked up before policy as upstream does (a missing
 * user leaves the target empty, so only a cloud admin learns it is missing).
 * The path's ids are in the target too, as upstream's view args.
 */
export async function userTarget(deps: ApiDeps, req: FastifyRequest): Promise<{ id: string; user: User | undefined; target: Target }> {
  const params = req.params as Record<string, string>;
  const id = params.user_id;
  const user = await deps.ks.identity.findUser(id);
  return { id, user, target: { ...params, target: user ? { user: userView(deps, user) } : {} } };
}

/**
 * The domain a user or group list is of. With domain-specific drivers every
 * list is of one backend, as upstream's _get_domain_id_for_list_request: the
 * domain_id asked for, else the token's domain (a project's domain for a
 * project-scoped token); system scope lists the default backend.
 */
export function listDomain(deps: ApiDeps, req: FastifyRequest): string | undefined {
  const asked = queryString((req.query as Record<string, unknown>).domain_id);
  if (deps.ks.config.domainConfigDir === null || asked) return asked;
  const auth = authOf(req);
  if (auth.domainId) return auth.domainId;
  if (auth.projectId) return auth.projectDomainId;
  if (auth.system) return undefined;
  req.log.warn('No domain information specified as part of list request');
  throw unauthorized('No domain information specified as part of list request');
}

export function existingUser(user: User | undefined, id: string): User {
  if (!user) throw notFound(`Could not find user: ${id}.`);
  return user;
}

/** The list filters upstream supports on users: exact domain_id, name, enabled, and password_expires_at=[op:]time. */
export function userFilter(q: Record<string, unknown>): UserFilter {
  const expires = queryString(q.password_expires_at);
  return {
    domainId: queryString(q.domain_id),
    name: queryString(q.name),
    enabled: queryBool(queryString(q.enabled)),
    passwordExpires: expires === undefined ? undefined : expiryFilter(expires),
  };
}

function expiryFilter(value: string): PasswordExpiryFilter {
  // `lt:2016-12-08T22:02:00Z`; without an operator it is `eq`. Times without a zone are UTC.
  const colon = value.indexOf(':');
  const [op, time] = colon === 2 || colon === 3 ? [value.slice(0, colon), value.slice(colon + 1)] : ['eq', value];
  const at = /^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:?\d\d)?$/.test(time) ? Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(time) ? time : `${time}Z`) : NaN;
  if (Number.isNaN(at)) {
    throw badRequest(
      'Timestamp not in expected format. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.',
    );
  }
  if (!(op in EXPIRY_OPERATORS)) {
    throw validationError(`The given operator ${op} is not valid. It must be one of the following: 'eq', 'neq', 'lt', 'lte', 'gt', or 'gte'.`);
  }
  return { op: op as ExpiryOperator, at };
}

// ---- request schemas (keystone/identity/schema.py) ----------------------------

interface UserBody {
  id?: string;
  name?: string;
  domain_id?: string;
  enabled?: boolean;
  default_project_id?: string | null;
  description?: string | null;
  email?: string | null;
  password?: string | null;
  options?: Record<string, unknown>;
}

const USER_COLUMNS = ['id', 'name', 'domain_id', 'enabled', 'default_project_id', 'description', 'email', 'password', 'options', 'federated', 'links', 'password_expires_at'];

/** Users and groups (keystone/identity/schema.py). */
export const IDENTITY_NAME = { type: 'string', minLength: 1, maxLength: 255, pattern: '[\\S]+' };

/** keystone/identity/backends/resource_options.py. */
const USER_OPTIONS = optionsSchema({
  ignore_change_password_upon_first_use: BOOLEAN,
  ignore_password_expiry: BOOLEAN,
  ignore_lockout_failure_attempts: BOOLEAN,
  lock_password: BOOLEAN,
  ignore_user_inactivity: BOOLEAN,
  multi_factor_auth_rules: {
    type: 'array',
    items: { type: 'array', items: { type: 'string' }, minItems: 1, uniqueItems: true },
    uniqueItems: true,
  },
  multi_factor_auth_enabled: BOOLEAN,
});

const USER = {
  default_project_id: NULLABLE_STRING,
  description: NULLABLE_STRING,
  domain_id: { type: 'string' },
  enabled: BOOLEAN,
  name: IDENTITY_NAME,
  password: NULLABLE_STRING,
  options: USER_OPTIONS,
};

const PASSWORD_CHANGE = {
  type: 'object',
  properties: {
    user: {
      type: 'object',
      properties: { original_password: { type: 'string' }, password: { type: 'string' } },
      required: ['original_password', 'password'],
      additionalProperties: false,
    },
  },
  required: ['user'],
};
