export type { TokenValidator } from './token-validator.ts';
export { HttpTokenValidator, type HttpTokenValidatorOptions, type ValidatorLogger } from './http-token-validator.ts';
export { KeystoneSession, type KeystoneSessionOptions, type ServiceCredentials } from './keystone-session.ts';
