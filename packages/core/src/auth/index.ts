export type { TokenValidator } from './token-validator.ts';
export {
  HttpTokenValidator,
  type HttpTokenValidatorOptions,
  type ServiceCredentials,
  type ValidatorLogger,
} from './http-token-validator.ts';
