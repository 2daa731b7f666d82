import { ApiError, type ErrorCode } from '@onestack/core/errors.ts';

/** Placement's error codes (placement/errors.py): clients such as Nova's report client branch on them. */
export const CODES = {
  DEFAULT: 'placement.undefined_code',
  INVENTORY_INUSE: 'placement.inventory.inuse',
  CONCURRENT_UPDATE: 'placement.concurrent_update',
  DUPLICATE_NAME: 'placement.duplicate_name',
  PROVIDER_IN_USE: 'placement.resource_provider.inuse',
  PROVIDER_CANNOT_DELETE_PARENT: 'placement.resource_provider.cannot_delete_parent',
  RESOURCE_PROVIDER_NOT_FOUND: 'placement.resource_provider.not_found',
  ILLEGAL_DUPLICATE_QUERYPARAM: 'placement.query.duplicate_key',
  QUERYPARAM_BAD_VALUE: 'placement.query.bad_value',
  QUERYPARAM_MISSING_VALUE: 'placement.query.missing_value',
} as const;

// webob's explanations, which upstream's json_error_formatter keeps in front of the detail.
const EXPLANATION: Partial<Record<ErrorCode, string>> = {
  bad_request: 'The server could not comply with the request since it is either malformed or otherwise incorrect.',
  not_found: 'The resource could not be found.',
  conflict: 'There was a conflict when trying to complete your request.',
  forbidden: 'Access was denied to this resource.',
};

/** An error whose `detail` reads as upstream's: webob's explanation, a blank line, then the message. */
export function placementError(code: ErrorCode, detail: string, type: string = CODES.DEFAULT): ApiError {
  const explanation = EXPLANATION[code];
  return new ApiError(code, explanation ? `${explanation}\n\n ${detail}  ` : detail, { type });
}

export const badRequest = (detail: string, type?: string) => placementError('bad_request', detail, type);
export const notFound = (detail: string, type?: string) => placementError('not_found', detail, type);
export const conflict = (detail: string, type?: string) => placementError('conflict', detail, type);

/** Thrown inside a write transaction when a provider's or consumer's generation moved: the caller may retry. */
export class GenerationConflict extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}
