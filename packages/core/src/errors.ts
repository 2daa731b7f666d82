/**
 * Typed errors thrown anywhere in a service and rendered at the HTTP edge in the
 * service's upstream fault format (see http/faults.ts). `code` is stable and
 * machine-readable; `status` is the HTTP status upstream answers with.
 */
export type ErrorCode =
  | 'bad_request'
  | 'validation'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'not_acceptable'
  | 'conflict'
  | 'gone'
  | 'precondition_failed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'too_many_requests'
  | 'over_quota'
  | 'internal'
  | 'not_implemented'
  | 'service_unavailable';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  validation: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  conflict: 409,
  gone: 410,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  too_many_requests: 429,
  over_quota: 413,
  internal: 500,
  not_implemented: 501,
  service_unavailable: 503,
};

export interface ErrorOptions {
  /** Overrides the status derived from the code (e.g. Keystone answers quota with 403). */
  status?: number;
  /** Extra HTTP headers to send with the fault (e.g. WWW-Authenticate, Retry-After). */
  headers?: Record<string, string>;
  /** Upstream's fault type name where a format carries one (Neutron `type`). */
  type?: string;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly type?: string;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = opts.status ?? STATUS[code];
    this.headers = opts.headers ?? {};
    this.type = opts.type;
  }
}

export const badRequest = (msg: string, opts?: ErrorOptions) => new ApiError('bad_request', msg, opts);
export const validationError = (msg: string, opts?: ErrorOptions) => new ApiError('validation', msg, opts);
export const unauthorized = (msg = 'The request you have made requires authentication.', opts?: ErrorOptions) =>
  new ApiError('unauthorized', msg, opts);
export const forbidden = (msg: string, opts?: ErrorOptions) => new ApiError('forbidden', msg, opts);
export const notFound = (msg: string, opts?: ErrorOptions) => new ApiError('not_found', msg, opts);
export const conflict = (msg: string, opts?: ErrorOptions) => new ApiError('conflict', msg, opts);
export const notImplemented = (msg: string, opts?: ErrorOptions) => new ApiError('not_implemented', msg, opts);

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}
