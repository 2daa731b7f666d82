export { defineGroup, opt } from './options.ts';
export type { AnyOpt, Group, GroupValues, Opt, OptionMap, OptType, OptValue, ParseResult } from './options.ts';
export { ConfigError, REDACTED, describeConfig, envVarName, loadConfig } from './loader.ts';
export type { Config, LoadOptions, LoadedConfig } from './loader.ts';
export { sampleConfig } from './sample.ts';
export {
  LOG_LEVELS,
  commonOptions,
  defaultStateDir,
  resolveLogDir,
  resolveLogLevel,
  resolveTls,
} from './common-options.ts';
export type { LogLevel } from './common-options.ts';
export { serviceAuthOptions, serviceIdentity } from './service-auth-options.ts';
