/**
 * Keystone's options, named as upstream's keystone.conf where one exists
 * ([token] expiration → token_expiration, [security_compliance] … → the same
 * names) so that an operator's knowledge carries over.
 */
export interface KeystoneConfig {
  /** Base URL advertised in links and the catalog, e.g. http://127.0.0.1:5000 */
  publicUrl: string;
  tokenProvider: 'fernet';
  tokenExpiration: number; // seconds
  allowExpiredWindow: number; // seconds
  keyRepository: string; // fernet key dir
  maxActiveKeys: number;
  credentialKeyRepository: string;
  passwordHashAlgorithm: 'bcrypt' | 'pbkdf2_sha512';
  passwordHashRounds: number;
  maxPasswordLength: number;
  listLimit: number | null;
  lockoutFailureAttempts: number | null;
  lockoutDuration: number; // seconds
  passwordExpiresDays: number | null;
  uniqueLastPasswordCount: number;
  minimumPasswordAge: number; // days
  changePasswordUponFirstUse: boolean;
  passwordRegex: string | null;
  passwordRegexDescription: string | null;
  disableUserAccountDaysInactive: number | null;
  domainSpecificDrivers: boolean;
  domainConfigDir: string | null;
  policyFile: string | null;
  enforceScope: boolean;
  hostname: string;
}

export const KEYSTONE_DEFAULTS: Omit<KeystoneConfig, 'publicUrl' | 'keyRepository' | 'credentialKeyRepository'> = {
  tokenProvider: 'fernet',
  tokenExpiration: 3600,
  allowExpiredWindow: 172800,
  maxActiveKeys: 3,
  passwordHashAlgorithm: 'bcrypt',
  passwordHashRounds: 12,
  maxPasswordLength: 4096,
  listLimit: null,
  lockoutFailureAttempts: null,
  lockoutDuration: 1800,
  passwordExpiresDays: null,
  uniqueLastPasswordCount: 0,
  minimumPasswordAge: 0,
  changePasswordUponFirstUse: false,
  passwordRegex: null,
  passwordRegexDescription: null,
  disableUserAccountDaysInactive: null,
  domainSpecificDrivers: false,
  domainConfigDir: null,
  policyFile: null,
  enforceScope: false,
  hostname: 'localhost',
};
