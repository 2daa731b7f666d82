import type { AuthContext } from '../context.ts';

/**
 * How a service turns an `X-Auth-Token` into an AuthContext. The all-in-one wires
 * Keystone's own validator in-process; a service running alone validates over
 * HTTP against Keystone (http-token-validator.ts). Either throws an ApiError
 * `unauthorized` for a token that is garbage, expired or revoked.
 */
export interface TokenValidator {
  validate(token: string): Promise<AuthContext>;
}
