import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthContext } from '@onestack/core/context.ts';
import { badRequest, forbidden, notFound, validationError } from '@onestack/core/errors.ts';
import { generateSecret, type AccessRule, type AppCred } from '../domain/app-cred-manager.ts';
import type { Role } from '../domain/assignment-manager.ts';
import { isoTime } from '../domain/json-columns.ts';
import type { ApiDeps } from './context.ts';
import { authOf, authorize, collectionLinks, selfLink } from './context.ts';

/** Upstream's ForbiddenAction: a 403 whose reason is shown to the caller. */
export function forbiddenAction(action: string) {
  return forbidden(`You are not authorized to perform the requested action: ${action}.`);
}

/**
 * A restricted application credential's token may not mint further
 * credentials (upstream's _check_unrestricted_application_credential);
 * `what` names them as upstream's two messages do.
 */
export async function requireUnrestricted(deps: ApiDeps, auth: AuthContext, what: string): Promise<void> {
  if (!auth.applicationCredentialId || !auth.methods.includes('application_credential')) return;
  const ac = await deps.ks.appCreds.get(auth.applicationCredentialId);
  if (!ac.unrestricted) throw forbiddenAction(`Using method 'application_credential' is not allowed for managing additional ${what}`);
}

const BAD_REQUEST_TAIL = 'The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.';

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?Z$/;

/** Upstream's parse_expiration_date: ISO 8601 read as UTC, and not in the past. */
function parseExpiresAt(value: string, now: number): number {
  const m = ISO_TIME.exec(value.endsWith('Z') ? value : `${value}Z`);
  const [y, mo, d, h, mi, s] = (m?.slice(1, 7) ?? []).map((p) => Number(p ?? 0));
  const ms = m ? Date.UTC(y!, mo! - 1, d!, h, mi, s, Math.floor(Number(m[7] ?? 0) * 1000)) : NaN;
  const t = new Date(ms);
  if (Number.isNaN(ms) || t.getUTCMonth() !== mo! - 1 || t.getUTCDate() !== d || t.getUTCHours() !== h || t.getUTCMinutes() !== mi) {
    throw badRequest(`Timestamp not in expected format. ${BAD_REQUEST_TAIL}`);
  }
  if (ms < now) throw badRequest(`The 'expires_at' must not be before now. ${BAD_REQUEST_TAIL}`);
  return ms;
}

/** Datetimes as upstream's JSON serialiser renders them: microseconds, no zone designator. */
const naiveTime = (ms: number | null) => isoTime(ms)?.replace(/Z$/, '') ?? null;

const idString = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-]+$' };
const name = { type: 'string', minLength: 1, maxLength: 255, pattern: '[\\S]+' };

const createBody = {
  type: 'object',
  properties: {
    application_credential: {
      type: 'object',
      properties: {
        id: { type: 'string' },
        name,
        description: { type: ['string', 'null'] },
        secret: { type: ['string', 'null'] },
        expires_at: { type: ['string', 'null'] },
        project_id: { type: 'string' },
        system: { type: ['string', 'null'] },
        unrestricted: { type: ['boolean', 'null'] },
        roles: {
          type: 'array',
          items: { type: 'object', properties: { id: idString, name }, minProperties: 1, maxProperties: 1, additionalProperties: false },
        },
        access_rules: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: idString,
              path: { type: 'string', minLength: 0, maxLength: 225, pattern: '^/\\.*' },
              service: idString,
              method: { type: 'string', enum: ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT'] },
            },
          },
        },
      },
      additionalProperties: false,
      required: ['name'],
    },
  },
  required: ['application_credential'],
  additionalProperties: false,
};

interface CreateBody {
  application_credential: {
    name: string;
    description?: string | null;
    secret?: string | null;
    expires_at?: string | null;
    unrestricted?: boolean | null;
    roles?: ({ id: string } | { name: string })[];
    access_rules?: Partial<AccessRule>[];
  };
}

type UserParams = { user_id: string };
type AppCredParams = UserParams & { application_credential_id: string };
type AccessRuleParams = UserParams & { access_rule_id: string };

/** /v3/users/{user_id}/application_credentials and /v3/users/{user_id}/access_rules. */
export function registerAppCredRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.post<{ Params: UserParams; Body: CreateBody }>('/v3/users/:user_id/application_credentials', { schema: { body: createBody } }, async (req, reply) => {
    const userId = req.params.user_id;
    const auth = authorize(deps, req, 'identity:create_application_credential', ownerTarget(userId));
    await requireUnrestricted(deps, auth, 'application credentials');
    if (auth.userId !== userId) throw forbiddenAction('Cannot create an application credential for another user');
    // The credential is bound to the creating token's project: without one there is nothing to bind.
    if (!auth.projectId) throw forbidden("Policy doesn't allow identity:create_application_credential to be performed.");
    const body = req.body.application_credential;
    const secret = body.secret || generateSecret();
    const created = await ks.appCreds.create({
      name: body.name,
      description: body.description,
      secret,
      userId,
      projectId: auth.projectId,
      roleIds: await requestedRoles(deps, auth, body.roles),
      expiresAt: body.expires_at ? parseExpiresAt(body.expires_at, ks.clock.now()) : null,
      unrestricted: body.unrestricted ?? false,
      accessRules: body.access_rules,
    });
    reply.code(201);
    return { application_credential: { ...(await appCredView(deps, created, new Map())), secret } };
  });

  app.get<{ Params: UserParams; Querystring: { name?: string } }>('/v3/users/:user_id/application_credentials', async (req) => {
    const userId = req.params.user_id;
    authorize(deps, req, 'identity:list_application_credentials', ownerTarget(userId));
    const roles = new Map<string, Role>();
    const list = await ks.appCreds.list(userId, { name: req.query.name });
    return { application_credentials: await Promise.all(list.map((ac) => appCredView(deps, ac, roles))), links: collectionLinks(deps, req) };
  });

  app.get<{ Params: AppCredParams }>('/v3/users/:user_id/application_credentials/:application_credential_id', async (req) => {
    const ac = await authorizedAppCred(deps, req, 'identity:get_application_credential');
    return { application_credential: await appCredView(deps, ac, new Map()) };
  });

  app.delete<{ Params: AppCredParams }>('/v3/users/:user_id/application_credentials/:application_credential_id', async (req, reply) => {
    const ac = await authorizedAppCred(deps, req, 'identity:delete_application_credential');
    await requireUnrestricted(deps, authOf(req), 'application credentials');
    await ks.appCreds.delete(ac.id);
    reply.code(204).send();
  });

  app.get<{ Params: UserParams; Querystring: { service?: string; path?: string; method?: string } }>('/v3/users/:user_id/access_rules', async (req) => {
    const userId = req.params.user_id;
    authorize(deps, req, 'identity:list_access_rules', await userTarget(deps, userId));
    const { service, path, method } = req.query;
    const rules = await ks.appCreds.listAccessRules(userId, { service, path, method });
    return { access_rules: rules.map((r) => accessRuleView(deps, userId, r)), links: collectionLinks(deps, req) };
  });

  app.get<{ Params: AccessRuleParams }>('/v3/users/:user_id/access_rules/:access_rule_id', async (req) => {
    const { user_id: userId, access_rule_id: id } = req.params;
    authorize(deps, req, 'identity:get_access_rule', await userTarget(deps, userId));
    return { access_rule: accessRuleView(deps, userId, await ks.appCreds.getAccessRule(userId, id)) };
  });

  app.delete<{ Params: AccessRuleParams }>('/v3/users/:user_id/access_rules/:access_rule_id', async (req, reply) => {
    const { user_id: userId, access_rule_id: id } = req.params;
    authorize(deps, req, 'identity:delete_access_rule', await userTarget(deps, userId));
    await ks.appCreds.deleteAccessRule(userId, id);
    reply.code(204).send();
  });
}

/** Both spellings of the owner upstream's rules use: `user_id` and `target.user.id`. */
function ownerTarget(userId: string) {
  return { user_id: userId, target: { user: { id: userId } } };
}

/** As upstream's _build_user_target_enforcement: the user only when it exists. */
async function userTarget(deps: ApiDeps, userId: string) {
  const user = await deps.ks.identity.findUser(userId);
  return user ? { target: { user: { id: user.id, domain_id: user.domainId } } } : {};
}

/**
 * The credential named in the path, authorized against its real owner rather
 * than the path's user (upstream's _update_request_user_id_attribute), so a
 * caller cannot reach another user's credential by putting their own id in
 * the path. A missing credential is a 404 only once policy has passed.
 */
async function authorizedAppCred(deps: ApiDeps, req: FastifyRequest<{ Params: AppCredParams }>, rule: string): Promise<AppCred> {
  const { user_id: userId, application_credential_id: id } = req.params;
  const ac = await deps.ks.appCreds.find(id);
  authorize(deps, req, rule, ownerTarget(ac?.userId ?? userId));
  if (!ac) throw notFound(`Could not find Application Credential: ${id}.`);
  return ac;
}

/**
 * The roles a new credential gets: those asked for (by id or name) with
 * everything they imply, which must all be in the creating token; or, when
 * none are asked for, exactly the token's roles.
 */
async function requestedRoles(deps: ApiDeps, auth: AuthContext, refs: CreateBody['application_credential']['roles']): Promise<string[]> {
  const tokenRoles = auth.roleIds ?? [];
  if (!refs?.length) return tokenRoles;
  const ids: string[] = [];
  for (const ref of refs) {
    if ('id' in ref) {
      ids.push(ref.id);
      continue;
    }
    const role = await deps.ks.assignment.findRoleByName(ref.name);
    if (!role) throw notFound(`Could not find role: ${ref.name}.`);
    ids.push(role.id);
  }
  const wanted = [...(await deps.ks.assignment.expandImplied(ids))];
  if (wanted.some((id) => !tokenRoles.includes(id))) {
    throw validationError('Invalid application credential: Cannot create an application credential with unassigned role');
  }
  return wanted;
}

async function appCredView(deps: ApiDeps, ac: AppCred, roleCache: Map<string, Role>): Promise<Record<string, unknown>> {
  const roles: Record<string, unknown>[] = [];
  for (const id of ac.roleIds) {
    let role = roleCache.get(id);
    if (!role) {
      role = await deps.ks.assignment.getRole(id);
      roleCache.set(id, role);
    }
    roles.push({ id: role.id, name: role.name, domain_id: role.domainId, description: role.description || null, options: role.options });
  }
  return {
    id: ac.id,
    name: ac.name,
    description: ac.description,
    user_id: ac.userId,
    project_id: ac.projectId,
    system: ac.system,
    expires_at: naiveTime(ac.expiresAt),
    unrestricted: ac.unrestricted,
    roles,
    ...(ac.accessRules.length ? { access_rules: ac.accessRules } : {}),
    links: selfLink(deps, `users/${ac.userId}/application_credentials/${ac.id}`),
  };
}

function accessRuleView(deps: ApiDeps, userId: string, r: AccessRule): Record<string, unknown> {
  return { id: r.id, service: r.service, path: r.path, method: r.method, links: selfLink(deps, `users/${userId}/access_rules/${r.id}`) };
}
