import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthContext } from '@onestack/core/context.ts';
import { isApiError, notFound, unauthorized, validationError } from '@onestack/core/errors.ts';
import type { IssueRequest } from '../domain/token-provider.ts';
import { ec2CredentialId, ec2SignatureMatches, parseEc2Blob, type Credential, type Ec2SignedRequest } from '../domain/credential-manager.ts';
import { parseJson } from '../domain/json-columns.ts';
import { forbiddenAction, requireUnrestricted } from './app-cred-routes.ts';
import { tokenBody } from './auth-routes.ts';
import type { ApiDeps } from './context.ts';
import { allowed, authOf, authorize, collectionLinks, selfLink } from './context.ts';

const properties = {
  blob: { type: 'string' },
  project_id: { type: ['string', 'null'] },
  type: { type: 'string' },
  user_id: { type: 'string' },
};

const createBody = {
  type: 'object',
  properties: {
    credential: {
      type: 'object',
      properties: { id: { type: 'string' }, ...properties },
      additionalProperties: true,
      required: ['blob', 'type', 'user_id'],
      if: { properties: { type: { const: 'ec2' } } },
      then: { required: ['blob', 'type', 'user_id', 'project_id'] },
    },
  },
  required: ['credential'],
};

const updateBody = {
  type: 'object',
  properties: { credential: { type: 'object', properties, additionalProperties: true, minProperties: 1 } },
  required: ['credential'],
};

const listQuery = { type: 'object', properties: { user_id: { type: 'string' }, type: { type: 'string' } } };

interface CredentialBody {
  id?: string | null;
  blob?: string;
  project_id?: string | null;
  type?: string;
  user_id?: string;
  [extra: string]: unknown;
}

type CredentialParams = { credential_id: string };
type Ec2Params = { user_id: string; credential_id: string };

const CRED_SCOPE = 'Credential project does not match the project scope of the delegated token';
const EC2_SCOPE = 'EC2 credential project does not match the project scope of the delegated token';

/** How old a signed request may be (upstream's [credential] auth_ttl default, 15 minutes). */
const EC2_AUTH_TTL_MS = 15 * 60_000;

/**
 * /v3/credentials; /v3/users/{user_id}/credentials/OS-EC2, the ec2 credentials
 * among them in EC2's shape; and /v3/ec2tokens, which authenticates with them.
 */
export function registerCredentialRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { ks } = deps;

  app.post<{ Body: { credential: CredentialBody & { blob: string; type: string; user_id: string } } }>(
    '/v3/credentials',
    { schema: { body: createBody } },
    async (req, reply) => {
      const body = req.body.credential;
      const auth = authorize(deps, req, 'identity:create_credential', { target: { credential: body } });
      const ec2 = body.type.toLowerCase() === 'ec2';
      if (ec2) await requireUnrestricted(deps, auth, 'credentials');
      checkDelegatedScope(auth, body.project_id ?? null, CRED_SCOPE);
      let id = ks.ids.hex();
      let blob = body.blob;
      if (ec2) {
        const fields = parseEc2Blob(blob);
        id = ec2CredentialId(String(fields.access));
        // ec2tokens authentication with this credential stays bound to the application credential.
        if (auth.applicationCredentialId) blob = JSON.stringify({ ...fields, app_cred_id: auth.applicationCredentialId });
      }
      const created = await ks.credentials.create(id, { userId: body.user_id, projectId: body.project_id, type: body.type, blob, extra: extraOf(body) });
      reply.code(201);
      return { credential: credentialView(deps, created) };
    },
  );

  app.get<{ Querystring: { user_id?: string; type?: string } }>('/v3/credentials', { schema: { querystring: listQuery } }, async (req) => {
    const auth = authOf(req);
    authorize(deps, req, 'identity:list_credentials', auth.system ? {} : { target: { credential: { user_id: auth.userId } } });
    const all = await ks.credentials.list({ userId: req.query.user_id, type: req.query.type });
    // Each credential is checked as a GET would be: a user sees only its own.
    const visible = all.filter((c) => allowed(deps, req, 'identity:get_credential', credentialTarget(c)) && inDelegatedScope(auth, c.projectId));
    return { credentials: visible.map((c) => credentialView(deps, c)), links: collectionLinks(deps, req) };
  });

  app.get<{ Params: CredentialParams }>('/v3/credentials/:credential_id', async (req) => {
    return { credential: credentialView(deps, await authorizedCredential(deps, req, 'identity:get_credential')) };
  });

  app.patch<{ Params: CredentialParams; Body: { credential: CredentialBody } }>('/v3/credentials/:credential_id', { schema: { body: updateBody } }, async (req) => {
    const current = await authorizedCredential(deps, req, 'identity:update_credential');
    const patch = req.body.credential;
    if (current.type.toLowerCase() === 'ec2' && patch.blob !== undefined) keepEc2Binding(current.blob, patch.blob);
    if (patch.id !== undefined && patch.id !== null && patch.id !== current.id) throw validationError('Cannot change ID');
    // Checked again on the result, so an owner cannot hand the credential to someone else.
    authorize(deps, req, 'identity:update_credential', { target: { credential: { ...credentialTarget(current).target.credential, ...patch } } });
    const updated = await ks.credentials.update(current.id, {
      userId: patch.user_id,
      projectId: patch.project_id,
      type: patch.type,
      blob: patch.blob,
      extra: extraOf(patch),
    });
    return { credential: credentialView(deps, updated) };
  });

  app.delete<{ Params: CredentialParams }>('/v3/credentials/:credential_id', async (req, reply) => {
    const c = await authorizedCredential(deps, req, 'identity:delete_credential');
    await ks.credentials.delete(c.id);
    reply.code(204).send();
  });

  // ---- OS-EC2 --------------------------------------------------------------

  app.get<{ Params: { user_id: string } }>('/v3/users/:user_id/credentials/OS-EC2', async (req) => {
    const userId = req.params.user_id;
    const auth = authorize(deps, req, 'identity:ec2_list_credentials', { user_id: userId });
    await ks.identity.getUser(userId);
    const creds = (await ks.credentials.list({ userId, type: 'ec2' })).filter((c) => inDelegatedScope(auth, c.projectId));
    return { credentials: creds.map((c) => ec2View(deps, c)), links: collectionLinks(deps, req) };
  });

  app.post<{ Params: { user_id: string }; Body: { tenant_id?: unknown } | undefined }>('/v3/users/:user_id/credentials/OS-EC2', async (req, reply) => {
    const userId = req.params.user_id;
    const auth = authorize(deps, req, 'identity:ec2_create_credential', { target: { credential: { user_id: userId } } });
    await requireUnrestricted(deps, auth, 'application credentials');
    await ks.identity.getUser(userId);
    const tenantId = req.body?.tenant_id;
    if (typeof tenantId !== 'string') throw notFound(`Could not find project: ${tenantId ?? 'None'}.`);
    await ks.resource.getProject(tenantId);
    checkDelegatedScope(auth, tenantId, EC2_SCOPE);
    // uuid4 hex pairs, as upstream generates them.
    const access = randomUUID().replaceAll('-', '');
    const blob = JSON.stringify({ access, secret: randomUUID().replaceAll('-', ''), trust_id: null });
    const created = await ks.credentials.create(ec2CredentialId(access), { userId, projectId: tenantId, type: 'ec2', blob });
    reply.code(201);
    return { credential: ec2View(deps, created) };
  });

  app.get<{ Params: Ec2Params }>('/v3/users/:user_id/credentials/OS-EC2/:credential_id', async (req) => {
    return { credential: ec2View(deps, await authorizedEc2Credential(deps, req, 'identity:ec2_get_credential')) };
  });

  app.delete<{ Params: Ec2Params }>('/v3/users/:user_id/credentials/OS-EC2/:credential_id', async (req, reply) => {
    const c = await authorizedEc2Credential(deps, req, 'identity:ec2_delete_credential');
    await ks.credentials.delete(c.id);
    reply.code(204).send();
  });

  /**
   * A service (an EC2 or S3 front end) hands over a request signed with an
   * ec2 credential; the answer is a token for the credential's user on its
   * project, as upstream's ec2tokens.
   */
  app.post('/v3/ec2tokens', async (req, reply) => {
    authorize(deps, req, 'identity:ec2tokens_validate');
    const body = req.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || Object.keys(body).length === 0) throw validationError('request must include a request body');
    // Upstream has accepted all three names over the years.
    const signed = (body.credentials || body.credential || body.ec2Credentials || {}) as Ec2SignedRequest;
    if (typeof signed.access !== 'string') throw unauthorized();
    const cred = await ks.credentials.find(ec2CredentialId(signed.access));
    if (!cred || cred.type !== 'ec2') throw notFound('EC2 access key not found.');
    const blob = parseJson<Record<string, unknown>>(cred.blob);
    if (!ec2SignatureMatches(String(blob.secret ?? ''), signed)) throw unauthorized();
    const project = await ks.resource.getProject(cred.projectId ?? 'None');
    const user = await ks.identity.getUser(cred.userId);
    if (!user.enabled || !project.enabled) throw unauthorized();
    checkEc2Timestamp(signed, ks.clock.now());
    if (blob.trust_id) throw unauthorized('Trusts are not supported.');
    let appCred: IssueRequest['appCred'];
    if (typeof blob.app_cred_id === 'string') {
      const ac = await ks.appCreds.get(blob.app_cred_id);
      if (ac.projectId !== project.id || (ac.expiresAt !== null && ac.expiresAt <= ks.clock.now())) throw unauthorized();
      appCred = { id: ac.id, roleIds: ac.roleIds, expiresAt: ac.expiresAt };
    }
    const data = await ks.tokens.issue({ userId: user.id, methods: ['ec2credential'], scope: { projectId: project.id }, appCred }).catch((e: unknown) => {
      // A disabled domain or a user without roles on the project: not authenticated, as upstream.
      if (isApiError(e) && e.status === 404) throw unauthorized();
      throw e;
    });
    reply.header('X-Subject-Token', data.id);
    return { token: await tokenBody(deps, data, false) };
  });
}

/** A signed request older than the TTL is a replay (upstream's _check_timestamp); one without a timestamp is let through. */
function checkEc2Timestamp(r: Ec2SignedRequest, now: number): void {
  const stamp = r.params?.Timestamp || r.headers?.['X-Amz-Date'] || r.params?.['X-Amz-Date'];
  if (!stamp) return;
  const basic = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  // Without a zone designator the time is UTC, as Python's parse_isotime reads it.
  const at = basic
    ? Date.UTC(+basic[1]!, +basic[2]! - 1, +basic[3]!, +basic[4]!, +basic[5]!, +basic[6]!)
    : Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(stamp) ? stamp : `${stamp}Z`);
  if (Number.isNaN(at) || now > at + EC2_AUTH_TTL_MS) throw unauthorized();
}

/** Attributes beyond the model's are kept as extras and rendered back, as upstream's `extra` column. */
function extraOf(body: CredentialBody): Record<string, unknown> {
  const { id: _id, blob: _blob, project_id: _project, type: _type, user_id: _user, links: _links, ...extra } = body;
  return extra;
}

function credentialTarget(c: Credential) {
  return { target: { credential: { id: c.id, user_id: c.userId, project_id: c.projectId, type: c.type } } };
}

/**
 * A delegated token (here: an application credential's) reaches only the
 * credentials of the project it was delegated for, never project-less ones
 * such as TOTP secrets (upstream's _check_credential_project_scope).
 */
function inDelegatedScope(auth: AuthContext, projectId: string | null): boolean {
  return !auth.applicationCredentialId || projectId === (auth.projectId ?? null);
}

function checkDelegatedScope(auth: AuthContext, projectId: string | null, reason: string): void {
  if (!inDelegatedScope(auth, projectId)) throw forbiddenAction(reason);
}

/** Policy first, on the credential when it exists (upstream's _build_target_enforcement), then its existence. */
async function authorizedCredential(deps: ApiDeps, req: FastifyRequest<{ Params: CredentialParams }>, rule: string): Promise<Credential> {
  const id = req.params.credential_id;
  const c = await deps.ks.credentials.find(id);
  const auth = authorize(deps, req, rule, c ? credentialTarget(c) : {});
  if (!c) throw notFound(`Could not find credential: ${id}.`);
  checkDelegatedScope(auth, c.projectId, CRED_SCOPE);
  return c;
}

/** The binding an ec2 blob carries (trust, application credential …) cannot be changed by an update. */
function keepEc2Binding(currentBlob: string, nextBlob: string): void {
  const next = parseEc2Blob(nextBlob);
  const current = parseJson<Record<string, unknown>>(currentBlob);
  for (const key of ['trust_id', 'app_cred_id', 'access_token_id', 'access_id']) {
    if ((current[key] ?? null) !== (next[key] ?? null)) throw validationError(`${key} can not be updated for credential`);
  }
}

/** The path names the access key; the credential is found by its hash, and must exist before policy is asked. */
async function authorizedEc2Credential(deps: ApiDeps, req: FastifyRequest<{ Params: Ec2Params }>, rule: string): Promise<Credential> {
  const { ks } = deps;
  const c = await ks.credentials.get(ec2CredentialId(req.params.credential_id));
  const auth = authorize(deps, req, rule, credentialTarget(c));
  await ks.identity.getUser(req.params.user_id);
  // Upstream's "EC2 access key not found." is a security error: its reason is not shown.
  if (c.type !== 'ec2') throw unauthorized();
  checkDelegatedScope(auth, c.projectId, EC2_SCOPE);
  return c;
}

function credentialView(deps: ApiDeps, c: Credential): Record<string, unknown> {
  return { ...c.extra, id: c.id, user_id: c.userId, project_id: c.projectId, type: c.type, blob: c.blob, links: selfLink(deps, `credentials/${c.id}`) };
}

function ec2View(deps: ApiDeps, c: Credential): Record<string, unknown> {
  const blob = parseJson<Record<string, unknown>>(c.blob);
  return {
    user_id: c.userId,
    tenant_id: c.projectId,
    access: blob.access ?? null,
    secret: blob.secret ?? null,
    trust_id: blob.trust_id ?? null,
    links: selfLink(deps, `users/${c.userId}/credentials/OS-EC2/${String(blob.access)}`),
  };
}
