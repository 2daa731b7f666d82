import { join } from 'node:path';
import { defineGroup, opt } from '@onestack/core/config/index.ts';

/**
 * Keystone's options in the [keystone] section, named as upstream's
 * keystone.conf options where one exists ([token] expiration →
 * token_expiration, [security_compliance] lockout_failure_attempts → the same
 * name) so an operator's knowledge carries over.
 */
export const keystoneOptions = defineGroup('keystone', {
  port: opt.port({ default: 5000, help: 'Port of the Identity API.' }),
  database_connection: opt.string({
    default: '',
    secret: true,
    help: 'Database URL (sqlite:///path, postgresql://…, mysql://…). Empty: <state_dir>/keystone/keystone.db.',
  }),
  token_expiration: opt.int({ default: 3600, min: 60, help: 'Lifetime of a token, in seconds ([token] expiration).' }),
  allow_expired_window: opt.int({ default: 172800, min: 0, help: 'How long after expiry a token still validates with ?allow_expired=1, in seconds.' }),
  key_repository: opt.string({ default: '', help: 'Fernet key repository. Empty: <state_dir>/keystone/fernet-keys.' }),
  max_active_keys: opt.int({ default: 3, min: 1, help: 'Fernet keys kept when rotating ([fernet_tokens] max_active_keys).' }),
  credential_key_repository: opt.string({ default: '', help: 'Fernet keys encrypting credential blobs ([credential] key_repository). Empty: <state_dir>/keystone/credential-keys.' }),
  password_hash_algorithm: opt.string({ default: 'bcrypt', choices: ['bcrypt', 'pbkdf2_sha512'] as const, help: 'Hash for new passwords ([identity] password_hash_algorithm).' }),
  password_hash_rounds: opt.int({ default: 12, min: 4, max: 31, help: 'bcrypt cost or PBKDF2 iterations ([identity] password_hash_rounds).' }),
  max_password_length: opt.int({ default: 4096, min: 1, help: 'Longest password accepted ([identity] max_password_length).' }),
  lockout_failure_attempts: opt.int({ default: 0, min: 0, help: 'Failed password authentications before the user is locked out; 0 disables lockout.' }),
  lockout_duration: opt.int({ default: 1800, min: 1, help: 'Seconds a locked-out user stays locked.' }),
  password_expires_days: opt.int({ default: 0, min: 0, help: 'Days a password is valid; 0 means passwords never expire.' }),
  unique_last_password_count: opt.int({ default: 0, min: 0, help: 'How many of the last passwords a new one must differ from (includes the new one).' }),
  minimum_password_age: opt.int({ default: 0, min: 0, help: 'Days a user must keep a password before changing it again.' }),
  change_password_upon_first_use: opt.bool({ default: false, help: 'Force users to change a password an administrator set before using it.' }),
  password_regex: opt.string({ default: '', help: 'Regular expression new passwords must match; empty accepts any.' }),
  password_regex_description: opt.string({ default: '', help: 'Human-readable description of password_regex, shown when a password fails it.' }),
  disable_user_account_days_inactive: opt.int({ default: 0, min: 0, help: 'Disable users who have not authenticated for this many days; 0 disables the check.' }),
  domain_specific_drivers_enabled: opt.bool({ default: false, help: 'Read per-domain identity configuration (e.g. LDAP) from domain_config_dir.' }),
  domain_config_dir: opt.string({ default: '', help: 'Directory of keystone.<domain name>.conf files. Empty: <state_dir>/keystone/domains.' }),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/keystone/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: false, help: 'Refuse tokens whose scope a rule does not list ([oslo_policy] enforce_scope).' }),
  admin_project_name: opt.string({ default: 'admin', help: 'Project whose admins are cloud administrators ([resource] admin_project_name).' }),
  admin_project_domain_name: opt.string({ default: 'Default', help: 'Domain of admin_project_name.' }),
});

export interface KeystoneConfig {
  publicUrl: string;
  hostname: string;
  tokenExpiration: number;
  allowExpiredWindow: number;
  keyRepository: string;
  maxActiveKeys: number;
  credentialKeyRepository: string;
  passwordHashAlgorithm: 'bcrypt' | 'pbkdf2_sha512';
  passwordHashRounds: number;
  maxPasswordLength: number;
  lockoutFailureAttempts: number | null;
  lockoutDuration: number;
  passwordExpiresDays: number | null;
  uniqueLastPasswordCount: number;
  minimumPasswordAge: number;
  changePasswordUponFirstUse: boolean;
  passwordRegex: string | null;
  passwordRegexDescription: string | null;
  disableUserAccountDaysInactive: number | null;
  domainConfigDir: string | null;
  policyFile: string;
  enforceScope: boolean;
  adminProject: { name: string; domainName: string };
}

type KeystoneValues = { [K in keyof typeof keystoneOptions.options]: unknown };

export function keystoneConfig(v: KeystoneValues, o: { stateDir: string; publicUrl: string; hostname: string }): KeystoneConfig {
  const dir = join(o.stateDir, 'keystone');
  const orNull = (n: unknown) => (Number(n) > 0 ? Number(n) : null);
  return {
    publicUrl: o.publicUrl,
    hostname: o.hostname,
    tokenExpiration: Number(v.token_expiration),
    allowExpiredWindow: Number(v.allow_expired_window),
    keyRepository: String(v.key_repository || join(dir, 'fernet-keys')),
    maxActiveKeys: Number(v.max_active_keys),
    credentialKeyRepository: String(v.credential_key_repository || join(dir, 'credential-keys')),
    passwordHashAlgorithm: v.password_hash_algorithm as KeystoneConfig['passwordHashAlgorithm'],
    passwordHashRounds: Number(v.password_hash_rounds),
    maxPasswordLength: Number(v.max_password_length),
    lockoutFailureAttempts: orNull(v.lockout_failure_attempts),
    lockoutDuration: Number(v.lockout_duration),
    passwordExpiresDays: orNull(v.password_expires_days),
    uniqueLastPasswordCount: Number(v.unique_last_password_count),
    minimumPasswordAge: Number(v.minimum_password_age),
    changePasswordUponFirstUse: Boolean(v.change_password_upon_first_use),
    passwordRegex: (v.password_regex as string) || null,
    passwordRegexDescription: (v.password_regex_description as string) || null,
    disableUserAccountDaysInactive: orNull(v.disable_user_account_days_inactive),
    domainConfigDir: v.domain_specific_drivers_enabled ? String(v.domain_config_dir || join(dir, 'domains')) : null,
    policyFile: String(v.policy_file || join(dir, 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
    adminProject: { name: String(v.admin_project_name), domainName: String(v.admin_project_domain_name) },
  };
}

/** Defaults for tests and tools that build a Keystone without a config file. */
export function defaultKeystoneConfig(o: { stateDir: string; publicUrl: string }): KeystoneConfig {
  const values = Object.fromEntries(Object.entries(keystoneOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as KeystoneValues;
  return keystoneConfig(values, { ...o, hostname: 'localhost' });
}
