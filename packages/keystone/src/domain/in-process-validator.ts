import type { AuthContext } from '@onestack/core/context.ts';
import { isApiError, unauthorized } from '@onestack/core/errors.ts';
import type { TokenValidator } from '@onestack/core/auth/token-validator.ts';
import type { Keystone } from './keystone.ts';
import type { TokenData } from './token-provider.ts';

/**
 * Token validation without HTTP, for Keystone's own routes and for every
 * service sharing its process in the all-in-one. The token provider caches;
 * this only reshapes its answer into the context the policy engine reads.
 */
export class InProcessTokenValidator implements TokenValidator {
  private readonly contexts = new WeakMap<TokenData, AuthContext>();

  constructor(private readonly ks: Keystone) {}

  async validate(token: string): Promise<AuthContext> {
    let data: TokenData;
    try {
      data = await this.ks.tokens.validate(token);
    } catch (e) {
      if (isApiError(e) && (e.status === 404 || e.status === 401)) throw unauthorized();
      throw e;
    }
    let ctx = this.contexts.get(data);
    if (!ctx) {
      ctx = toAuthContext(data);
      this.contexts.set(data, ctx);
    }
    return ctx;
  }
}

export function toAuthContext(data: TokenData): AuthContext {
  const p = data.payload;
  return {
    userId: data.user.id,
    userName: data.user.name,
    userDomainId: data.userDomain.id,
    userDomainName: data.userDomain.name,
    projectId: data.project?.id,
    projectName: data.project?.name,
    projectDomainId: data.projectDomain?.id,
    projectDomainName: data.projectDomain?.name,
    domainId: data.domain?.id,
    domainName: data.domain?.name,
    system: data.system,
    roles: data.roles.map((r) => r.name),
    roleIds: data.roles.map((r) => r.id),
    methods: p.methods,
    auditIds: p.auditIds,
    expiresAt: p.expiresAt,
    isAdminProject: data.isAdminProject,
    applicationCredentialId: data.appCred?.id,
  };
}
