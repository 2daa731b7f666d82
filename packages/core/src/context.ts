/**
 * The request context every service's domain code receives: who is calling, in
 * what scope, and the request id to log and propagate. Built by the auth
 * middleware from a validated token (see auth/).
 */
export interface AuthContext {
  userId: string;
  userName?: string;
  userDomainId: string;
  userDomainName?: string;
  /** Exactly one of projectId, domainId, system is set for a scoped token. */
  projectId?: string;
  projectName?: string;
  projectDomainId?: string;
  projectDomainName?: string;
  domainId?: string;
  domainName?: string;
  system?: 'all';
  roles: string[];
  roleIds?: string[];
  /** Token methods (password, token, application_credential …). */
  methods: string[];
  auditIds: string[];
  expiresAt: number;
  isAdminProject?: boolean;
  applicationCredentialId?: string;
  /** Roles of the X-Service-Token, when a service calls on a user's behalf. */
  serviceRoles?: string[];
  serviceUserId?: string;
}

export interface RequestContext {
  requestId: string;
  /** Absent on unauthenticated routes (version documents, token issue). */
  auth?: AuthContext;
  /** Microversion negotiated for this request, when the service has them. */
  microversion?: { major: number; minor: number };
}
