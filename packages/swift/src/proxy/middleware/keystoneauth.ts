import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { AuthContext } from '@onestack/core/context.ts';
import { parseAcl, referrerAllowed } from '../acl.ts';
import { respond } from '../responses.ts';
import { splitSwiftPath } from '../paths.ts';
import type { Identity, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';

export interface KeystoneAuthConfig {
  resellerPrefix: string;
  operatorRoles: string[];
  resellerAdminRole: string;
  serviceRoles: string[];
  projectReaderRoles: string[];
  systemReaderRoles: string[];
  allowNamesInAcls: boolean;
  defaultDomainId: string;
  /** Advertised in WWW-Authenticate on 401 (as authtoken does). */
  authUri?: string;
}

function toIdentity(a: AuthContext, serviceRoles: string[]): Identity {
  return {
    userId: a.userId,
    userName: a.userName,
    projectId: a.projectId,
    projectName: a.projectName,
    projectDomainId: a.projectDomainId,
    userDomainId: a.userDomainId,
    roles: a.roles,
    serviceRoles,
  };
}

/**
 * authtoken (with delay_auth_decision) and keystoneauth: a valid token sets
 * the identity; none, or a bad one, leaves the request anonymous, which only
 * referrer ACLs can admit. Controllers call env.authorize once they know the
 * container's ACL.
 */
export function keystoneAuth(tokens: TokenValidator | undefined, conf: KeystoneAuthConfig): Middleware {
  const lower = (xs: string[]) => xs.map((x) => x.toLowerCase());
  const operatorRoles = new Set(lower(conf.operatorRoles));
  const serviceRolesConf = new Set(lower(conf.serviceRoles));
  const readerRoles = new Set(lower(conf.projectReaderRoles));
  const systemReaders = new Set(lower(conf.systemReaderRoles));
  const resellerAdmin = conf.resellerAdminRole.toLowerCase();

  const denied = (req: SwiftRequest): SwiftResponse => {
    if (req.env.remoteUser) return respond(403);
    const r = respond(401);
    if (conf.authUri) r.headers['www-authenticate'] = `Keystone uri='${conf.authUri}'`;
    return r;
  };

  const crossTenant = (id: Identity, groups: string[]): string | undefined => {
    const tenants = [id.projectId, '*', ...(conf.allowNamesInAcls && id.projectDomainId === conf.defaultDomainId && id.userDomainId === conf.defaultDomainId ? [id.projectName] : [])];
    const users = [id.userId, '*', ...(conf.allowNamesInAcls && id.projectDomainId === conf.defaultDomainId && id.userDomainId === conf.defaultDomainId ? [id.userName] : [])];
    for (const t of tenants) for (const u of users) if (t && u && groups.includes(`${t}:${u}`)) return `${t}:${u}`;
    return undefined;
  };

  const unconfirmed = (req: SwiftRequest, obj: string | undefined, referrers: string[], groups: string[]): boolean | undefined => {
    if (referrerAllowed(req.headers.referer, referrers)) return Boolean(obj) || groups.includes('.rlistings');
    return undefined;
  };

  const authorize = (id: Identity) => (req: SwiftRequest): SwiftResponse | undefined => {
    req.env.swiftOwner = false;
    if (req.method === 'OPTIONS') return undefined;
    const parts = splitSwiftPath(req.path);
    if (!parts) return respond(404);
    const { account, container, obj } = parts;
    const { referrers, groups } = parseAcl(req.env.acl);
    const roles = lower(id.roles);
    const svcRoles = lower(id.serviceRoles);
    if (roles.includes(resellerAdmin)) {
      req.env.swiftOwner = true;
      return undefined;
    }
    if (roles.some((r) => systemReaders.has(r)) && (req.method === 'GET' || req.method === 'HEAD')) return undefined;
    if (!container && !obj && req.method === 'DELETE') return denied(req);
    if (groups.length && crossTenant(id, groups)) return undefined;
    const viaReferrer = unconfirmed(req, obj, referrers, groups);
    if (viaReferrer) return undefined;
    if (!account || !id.projectId || account !== `${conf.resellerPrefix}${id.projectId}`) return denied(req);
    const isOperator = roles.some((r) => operatorRoles.has(r));
    const hasService = svcRoles.some((r) => serviceRolesConf.has(r));
    if (isOperator && (serviceRolesConf.size === 0 || hasService)) {
      req.env.swiftOwner = true;
      return undefined;
    }
    if (roles.some((r) => readerRoles.has(r)) && (req.method === 'GET' || req.method === 'HEAD')) return undefined;
    if (viaReferrer !== undefined) return denied(req);
    const lowerGroups = lower(groups);
    if (roles.some((r) => lowerGroups.includes(r))) return undefined;
    return denied(req);
  };

  const authorizeAnonymous = (req: SwiftRequest): SwiftResponse | undefined => {
    if (req.method === 'OPTIONS') return undefined;
    const parts = splitSwiftPath(req.path);
    if (!parts) return respond(404);
    if (!parts.account?.startsWith(conf.resellerPrefix)) return denied(req);
    const { referrers, groups } = parseAcl(req.env.acl);
    return unconfirmed(req, parts.obj, referrers, groups) ? undefined : denied(req);
  };

  return (next) => async (req) => {
    // A temp URL has authorized the request already (swift.authorize_override).
    if (req.env.preAuthed || req.env.extra.tempurl) return next(req);
    const token = req.headers['x-auth-token'] ?? req.headers['x-storage-token'];
    let auth: AuthContext | undefined;
    if (token && tokens) {
      auth = await tokens.validate(token).catch(() => undefined);
    }
    if (auth) {
      let svcRoles: string[] = [];
      const st = req.headers['x-service-token'];
      if (st && tokens) svcRoles = (await tokens.validate(st).catch(() => undefined))?.roles ?? [];
      const id = toIdentity(auth, svcRoles);
      req.env.identity = id;
      if (lower(id.roles).includes(resellerAdmin)) req.env.resellerRequest = true;
      req.env.remoteUser = true;
      req.env.authorize = authorize(id);
    } else if (!req.env.authorize) {
      req.env.authorize = authorizeAnonymous;
    }
    return next(req);
  };
}
