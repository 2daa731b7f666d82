import type { Readable } from 'node:stream';

/**
 * Header names lower-case; values are "WSGI strings" as upstream's py3 Swift
 * keeps them: each UTF-8 byte one latin-1 character, which is what Node's HTTP
 * parser hands us and writes back, so metadata bytes survive untouched.
 */
export type Headers = Record<string, string>;

/** Who keystoneauth found behind the token (upstream's env_identity). */
export interface Identity {
  userId: string;
  userName?: string;
  projectId?: string;
  projectName?: string;
  projectDomainId?: string;
  userDomainId?: string;
  roles: string[];
  serviceRoles: string[];
}

/** Per-request state shared along the pipeline (upstream's WSGI environ keys). */
export interface RequestEnv {
  transId: string;
  /** scheme://host the client addressed, for absolute Location headers as swob makes them. */
  hostUrl?: string;
  /** swift.authorize: undefined when allowed, else the denial. */
  authorize?: (req: SwiftRequest) => SwiftResponse | undefined;
  /** Set by authorize when the caller owns the account (swift_owner). */
  swiftOwner?: boolean;
  /** Set by keystoneauth for a reseller admin (reseller_request): only such callers set account quotas. */
  resellerRequest?: boolean;
  /** Set by auth when a token named a user (REMOTE_USER): a denial is then 403, not 401. */
  remoteUser?: boolean;
  identity?: Identity;
  /** The ACL the controller found for this request (req.acl upstream). */
  acl?: string;
  /** A subrequest that must skip authorization (make_pre_authed_request). */
  preAuthed?: boolean;
  /** The middleware that issued a subrequest (swift.source), for logs. */
  source?: string;
  /** Middleware state, keyed by middleware name. */
  extra: Record<string, unknown>;
}

export interface SwiftRequest {
  method: string;
  /** Percent-decoded path as a JS string, e.g. /v1/AUTH_p/c/o. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  /** Request body; absent when there is none. */
  body?: Readable;
  env: RequestEnv;
  /** Client address, for logs and referrer checks. */
  remoteAddr?: string;
}

export type Body = Buffer | Readable | string | undefined;

export interface SwiftResponse {
  status: number;
  headers: Headers;
  body?: Body;
}

export type Handler = (req: SwiftRequest) => Promise<SwiftResponse>;
/** A pipeline stage: upstream's WSGI filter, wrapping what comes after it. */
export type Middleware = (next: Handler) => Handler;
