import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, forbidden, isApiError, notFound, unauthorized, validationError } from '@onestack/core/errors.ts';
import { isoTime } from '../domain/json-columns.ts';
import type { Target } from '../domain/assignment-manager.ts';
import type { TokenData } from '../domain/token-provider.ts';
import type { ApiDeps } from './context.ts';
import { authorize, collectionLinks, queryBool } from './context.ts';
import { domainView, projectView } from './views.ts';

/** /v3/auth/*: token issue, validate, check, revoke, and what a token may be scoped to. */
export function registerAuthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.post('/v3/auth/tokens', { config: { public: true } }, async (req, reply) => {
    const body = req.body as { auth?: AuthBody } | undefined;
    if (!body || typeof body.auth !== 'object' || body.auth === null) throw validationError("'auth' is a required property");
    const issued = await authenticate(deps, req, body.auth);
    const nocatalog = 'nocatalog' in (req.query as object);
    reply.code(201).header('X-Subject-Token', issued.id);
    return sendToken(deps, reply, issued, nocatalog, false);
  });

  app.get('/v3/auth/tokens', { exposeHeadRoute: false }, async (req, reply) => {
    const data = await subjectToken(deps, req, 'identity:validate_token');
    reply.header('X-Subject-Token', data.id);
    return sendToken(deps, reply, data, 'nocatalog' in (req.query as object), true);
  });

  app.head('/v3/auth/tokens', async (req, reply) => {
    const data = await subjectToken(deps, req, 'identity:check_token');
    reply.header('X-Subject-Token', data.id).code(200).send();
  });

  app.delete('/v3/auth/tokens', async (req, reply) => {
    const data = await subjectToken(deps, req, 'identity:revoke_token');
    await ks.revocations.revoke({ auditId: data.payload.auditIds[0]!, expiresAt: data.payload.expiresAt });
    reply.code(204).send();
  });

  app.get('/v3/auth/catalog', async (req) => {
    const data = await ks.tokens.validate(callerToken(req));
    if (!data.project && !data.domain && !data.system) throw forbidden('A project-scoped token is required to produce a service catalog.');
    return { catalog: await ks.tokens.catalog(data), links: collectionLinks(deps, req) };
  });

  app.get('/v3/auth/projects', async (req) => {
    const auth = req.ctx.auth!;
    const ids = await ks.assignment.projectsForUser(auth.userId);
    const projects = (await ks.resource.listProjects({ ids, isDomain: false })).filter((p) => p.enabled);
    return { projects: projects.map((p) => projectView(deps, p)), links: collectionLinks(deps, req) };
  });

  app.get('/v3/auth/domains', async (req) => {
    const auth = req.ctx.auth!;
    const ids = await ks.assignment.domainsForUser(auth.userId);
    const domains = (await ks.resource.listProjects({ ids, isDomain: true })).filter((d) => d.enabled);
    return { domains: domains.map((d) => domainView(deps, d)), links: collectionLinks(deps, req) };
  });

  app.get('/v3/auth/system', async (req) => {
    const auth = req.ctx.auth!;
    const roles = await ks.assignment.effectiveRoleIds(auth.userId, { system: 'all' });
    return { system: roles.size ? [{ all: true }] : [], links: collectionLinks(deps, req) };
  });

  app.get('/v3/OS-REVOKE/events', async (req) => {
    authorize(deps, req, 'identity:list_revoke_events');
    await ks.sync.poll();
    const since = (req.query as { since?: string }).since;
    const sinceMs = since ? Date.parse(since) : undefined;
    if (since && Number.isNaN(sinceMs)) throw badRequest(`Invalid since: ${since}`);
    const events = ks.revocations.list(sinceMs).map((e) => ({
      ...(e.user_id ? { user_id: e.user_id } : {}),
      ...(e.project_id ? { project_id: e.project_id } : {}),
      ...(e.domain_id ? { domain_id: e.domain_id } : {}),
      ...(e.role_id ? { role_id: e.role_id } : {}),
      ...(e.audit_id ? { audit_id: e.audit_id } : {}),
      ...(e.audit_chain_id ? { audit_chain_id: e.audit_chain_id } : {}),
      issued_before: isoTime(e.issued_before),
      revoked_at: isoTime(e.revoked_at),
      ...(e.expires_at ? { expires_at: isoTime(e.expires_at) } : {}),
    }));
    return { events, links: { self: `${ks.config.publicUrl}/v3/OS-REVOKE/events`, previous: null, next: null } };
  });
}

// ---- issuing -------------------------------------------------------------

interface UserRef {
  id?: string;
  name?: string;
  domain?: { id?: string; name?: string };
  password?: string;
}

interface AuthBody {
  identity?: {
    methods?: unknown;
    password?: { user?: UserRef };
    token?: { id?: string };
    application_credential?: { id?: string; name?: string; secret?: string; user?: UserRef };
  };
  scope?: unknown;
}

const SUPPORTED = ['password', 'token', 'application_credential'];

async function authenticate(deps: ApiDeps, req: FastifyRequest, auth: AuthBody): Promise<TokenData> {
  const { ks } = deps;
  const identity = auth.identity;
  if (!identity || typeof identity !== 'object') throw validationError("Invalid input for field 'identity': 'identity' is a required property");
  const methods = identity.methods;
  if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === 'string')) {
    throw validationError("Invalid input for field 'identity/methods': methods must be a non-empty list of strings");
  }
  for (const m of methods as string[]) {
    if (!SUPPORTED.includes(m)) throw unauthorized('Attempted to authenticate with an unsupported method.');
    if (!(m in identity)) throw validationError(`Invalid input for field 'identity': '${m}' is a required property`);
  }

  let userId: string | undefined;
  let parent: { auditIds: string[]; expiresAt: number } | undefined;
  let appCred: { id: string; roleIds: string[]; expiresAt: number | null; scope: Target } | undefined;
  let parentScope: Target | undefined;

  if (methods.includes('password')) {
    const ref = identity.password?.user;
    if (!ref || typeof ref.password !== 'string') throw validationError("Invalid input for field 'identity/password/user': 'password' is a required property");
    const user = await resolveUser(deps, ref);
    await ks.identity.authenticate(user, ref.password);
    userId = user;
  }
  if (methods.includes('token')) {
    const id = identity.token?.id;
    if (typeof id !== 'string') throw validationError("Invalid input for field 'identity/token': 'id' is a required property");
    const data = await ks.tokens.validate(id).catch((e: unknown) => {
      if (isApiError(e) && e.status === 404) throw unauthorized('The request you have made requires authentication.');
      throw e;
    });
    if (data.appCred) throw unauthorized('Cannot rescope a token made with an application credential.');
    if (userId && userId !== data.user.id) throw unauthorized('User IDs do not match.');
    userId = data.user.id;
    parent = { auditIds: data.payload.auditIds, expiresAt: data.payload.expiresAt };
    parentScope = data.project ? { projectId: data.project.id } : data.domain ? { domainId: data.domain.id } : data.system ? { system: 'all' } : undefined;
  }
  if (methods.includes('application_credential')) {
    const ac = identity.application_credential;
    if (!ac || typeof ac.secret !== 'string') throw validationError("Invalid input for field 'identity/application_credential': 'secret' is a required property");
    const ownerId = ac.id ? undefined : ac.user ? await resolveUser(deps, ac.user) : undefined;
    const cred = await ks.appCreds.authenticate({ id: ac.id, name: ac.name, userId: ownerId }, ac.secret);
    if (userId && userId !== cred.userId) throw unauthorized('User IDs do not match.');
    userId = cred.userId;
    const user = await ks.identity.getUser(userId);
    if (!user.enabled) throw unauthorized(`User ${userId} is disabled.`);
    appCred = { id: cred.id, roleIds: cred.roleIds, expiresAt: cred.expiresAt, scope: cred.projectId ? { projectId: cred.projectId } : { system: 'all' } };
  }
  if (!userId) throw unauthorized();

  let scope = auth.scope === undefined ? undefined : await resolveScope(deps, auth.scope);
  if (appCred) {
    if (scope) throw unauthorized('Application credentials cannot request a scope.');
    scope = appCred.scope;
  } else if (scope === undefined && parentScope === undefined && methods.includes('password')) {
    scope = await defaultScope(deps, userId);
  } else if (scope === undefined && !methods.includes('password')) {
    // A token-method request without scope keeps the parent's scope (upstream rescoping rule).
    scope = parentScope;
  }
  try {
    return await ks.tokens.issue({ userId, methods: methods as string[], scope, parent, appCred: appCred && { id: appCred.id, roleIds: appCred.roleIds, expiresAt: appCred.expiresAt } });
  } catch (e) {
    // Validation-style failures while minting are authentication failures for the caller.
    if (isApiError(e) && e.status === 404) throw unauthorized(e.message);
    throw e;
  }
}

async function resolveUser(deps: ApiDeps, ref: UserRef): Promise<string> {
  const { ks } = deps;
  try {
    if (ref.id) return (await ks.identity.getUser(ref.id)).id;
    if (!ref.name) throw validationError("Invalid input for field 'user': 'id' or 'name' is required");
    const domainId = await resolveDomain(deps, ref.domain);
    return (await ks.identity.getUserByName(ref.name, domainId)).id;
  } catch (e) {
    // Never reveal whether the user exists.
    if (isApiError(e) && e.status === 404) throw unauthorized();
    throw e;
  }
}

async function resolveDomain(deps: ApiDeps, ref: { id?: string; name?: string } | undefined): Promise<string> {
  if (!ref || (!ref.id && !ref.name)) throw validationError("Invalid input for field 'domain': 'id' or 'name' is required");
  const d = ref.id ? await deps.ks.resource.getDomain(ref.id) : await deps.ks.resource.getDomainByName(ref.name!);
  if (!d.enabled) throw unauthorized(`Domain ${d.id} is disabled.`);
  return d.id;
}

async function resolveScope(deps: ApiDeps, scope: unknown): Promise<Target | undefined> {
  if (typeof scope !== 'object' || scope === null) throw validationError("Invalid input for field 'scope': not an object");
  const s = scope as { project?: { id?: string; name?: string; domain?: { id?: string; name?: string } }; domain?: { id?: string; name?: string }; system?: { all?: boolean } };
  const given = ['project', 'domain', 'system', 'OS-TRUST:trust'].filter((k) => k in s);
  if (given.length > 1) throw validationError('Specify only one of project, domain or system in scope.');
  try {
    if (s.project) {
      const { ks } = deps;
      const p = s.project.id ? await ks.resource.getProject(s.project.id) : await ks.resource.getProjectByName(s.project.name ?? '', await resolveDomain(deps, s.project.domain));
      return { projectId: p.id };
    }
    if (s.domain) return { domainId: await resolveDomain(deps, s.domain) };
  } catch (e) {
    if (isApiError(e) && e.status === 404) throw unauthorized(e.message);
    throw e;
  }
  if (s.system) {
    if (s.system.all !== true) throw validationError("Invalid input for field 'scope/system': only {\"all\": true} is supported");
    return { system: 'all' };
  }
  if ('OS-TRUST:trust' in s) throw unauthorized('Trusts are not supported.');
  return undefined;
}

/** Without a scope, upstream scopes to the user's default project when it is usable. */
async function defaultScope(deps: ApiDeps, userId: string): Promise<Target | undefined> {
  const user = await deps.ks.identity.getUser(userId);
  if (!user.defaultProjectId) return undefined;
  const project = await deps.ks.resource.findProject(user.defaultProjectId);
  if (!project || !project.enabled || project.isDomain) return undefined;
  const roles = await deps.ks.assignment.effectiveRoleIds(userId, { projectId: project.id });
  return roles.size ? { projectId: project.id } : undefined;
}

// ---- validating ----------------------------------------------------------

function callerToken(req: FastifyRequest): string {
  const t = req.headers['x-auth-token'];
  return (Array.isArray(t) ? t[0] : t) ?? '';
}

async function subjectToken(deps: ApiDeps, req: FastifyRequest, rule: string): Promise<TokenData> {
  const raw = req.headers['x-subject-token'];
  const subject = Array.isArray(raw) ? raw[0] : raw;
  if (!subject) throw notFound('Could not find token: x-subject-token header missing');
  const allowExpired = queryBool((req.query as { allow_expired?: string }).allow_expired) === true;
  // Policy is checked before the subject is looked at, so a caller learns nothing about other tokens.
  const target = { token: { user_id: deps.ks.tokens.ownerOf(subject) } };
  authorize(deps, req, rule, { target });
  return deps.ks.tokens.validate(subject, { allowExpired });
}

async function sendToken(deps: ApiDeps, reply: FastifyReply, data: TokenData, nocatalog: boolean, cacheable: boolean): Promise<void> {
  const render = async () => JSON.stringify({ token: await tokenBody(deps, data, nocatalog) });
  const body = cacheable ? await cachedRender(deps, data, nocatalog, render) : await render();
  reply.type('application/json').send(body);
}

async function cachedRender(deps: ApiDeps, data: TokenData, nocatalog: boolean, render: () => Promise<string>): Promise<string> {
  const variant = nocatalog ? 'nocatalog' : 'catalog';
  const cached = deps.ks.tokens.cachedBody(data.id, variant);
  if (cached !== undefined) return cached;
  const body = await render();
  deps.ks.tokens.storeBody(data.id, variant, body);
  return body;
}

/** The token body exactly as upstream renders it (keystone/models/token_model.py + render_token). */
export async function tokenBody(deps: ApiDeps, data: TokenData, nocatalog: boolean): Promise<Record<string, unknown>> {
  const p = data.payload;
  const body: Record<string, unknown> = {
    methods: p.methods,
    user: {
      domain: { id: data.userDomain.id, name: data.userDomain.name },
      id: data.user.id,
      name: data.user.name,
      password_expires_at: isoTime(data.user.passwordExpiresAt),
    },
    audit_ids: p.auditIds,
    expires_at: isoTime(p.expiresAt),
    issued_at: isoTime(p.issuedAt),
  };
  if (data.project) {
    body.project = { domain: { id: data.projectDomain!.id, name: data.projectDomain!.name }, id: data.project.id, name: data.project.name };
    body.is_domain = false;
    // keystonemiddleware treats a missing flag as true: always say it.
    body.is_admin_project = data.isAdminProject;
  } else if (data.domain) {
    body.domain = { id: data.domain.id, name: data.domain.name };
  } else if (data.system) {
    body.system = { all: true };
  }
  if (data.project || data.domain || data.system) {
    body.roles = data.roles.map((r) => ({ id: r.id, name: r.name }));
    if (!nocatalog) body.catalog = await deps.ks.tokens.catalog(data);
  }
  if (data.appCred) {
    body.application_credential = { id: data.appCred.id, name: data.appCred.name, restricted: data.appCred.restricted, ...(data.appCred.accessRules?.length ? { access_rules: data.appCred.accessRules } : {}) };
  }
  return body;
}

