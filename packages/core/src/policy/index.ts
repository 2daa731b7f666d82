export type { Check, Credentials, Target } from './checks.ts';
export {
  credentialsFromAuth,
  type DeprecatedRule,
  Enforcer,
  type EnforcerOptions,
  InvalidScopeError,
  type Operation,
  type PolicyLogger,
  PolicyNotRegisteredError,
  type RuleDefault,
  type ScopeType,
} from './enforcer.ts';
export { type ListRule, PolicyParseError, parseRule } from './parser.ts';
export { generateSampleYaml } from './sample.ts';
