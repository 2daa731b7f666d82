/**
 * Domain-specific identity configuration, as upstream's
 * `[identity] domain_specific_drivers_enabled`: a directory of
 * `keystone.<domain name>.conf` files, each with `[identity] driver = ldap`
 * and an `[ldap]` section using upstream's option names, so an operator's
 * existing files work unchanged.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FilterParser, type Filter } from 'ldapts';
import { ConfigError, defineGroup, loadConfig, opt, type GroupValues } from '@onestack/core/config/index.ts';

const FILE_HEAD = 'keystone.';
const FILE_TAIL = '.conf';

export const domainIdentityOptions = defineGroup('identity', {
  driver: opt.string({ default: 'sql', choices: ['sql', 'ldap'] as const, help: 'Identity backend of this domain.' }),
});

export const ldapOptions = defineGroup('ldap', {
  url: opt.string({ default: 'ldap://localhost', help: 'LDAP server URL(s), comma separated; the first that answers is used.' }),
  randomize_urls: opt.bool({ default: false, help: 'Try the URLs in a random order per process.' }),
  user: opt.string({ help: 'Bind DN of the service account used for searches; unset binds anonymously.' }),
  password: opt.string({ secret: true, help: 'Password of the service account.' }),
  suffix: opt.string({ default: 'cn=example,cn=com', help: 'Default search base when user_tree_dn/group_tree_dn are unset.' }),
  query_scope: opt.string({ default: 'one', choices: ['one', 'sub'] as const, help: 'Search one level below the tree DN or the whole subtree.' }),
  page_size: opt.int({ default: 0, min: 0, help: 'Results per page for paged searches; 0 disables paging.' }),
  alias_dereferencing: opt.string({
    default: 'default',
    choices: ['never', 'searching', 'always', 'finding', 'default'] as const,
    help: 'Alias dereferencing for searches.',
  }),
  debug_level: opt.int({ default: 0, min: -1, help: 'python-ldap debug level: accepted for compatibility, ignored.' }),
  chase_referrals: opt.bool({ default: false, help: 'Referral chasing: not supported, referrals are ignored.' }),
  user_tree_dn: opt.string({ help: 'Search base for users; default ou=Users,<suffix>.' }),
  user_filter: opt.string({ help: 'Extra LDAP filter every user entry must match.' }),
  user_objectclass: opt.string({ default: 'inetOrgPerson', help: 'Object class of user entries.' }),
  user_id_attribute: opt.string({ default: 'cn', help: 'Attribute holding the (single-valued) user id.' }),
  user_name_attribute: opt.string({ default: 'sn', help: 'Attribute holding the user name.' }),
  user_description_attribute: opt.string({ default: 'description', help: 'Attribute holding the user description.' }),
  user_mail_attribute: opt.string({ default: 'mail', help: 'Attribute holding the user email.' }),
  user_pass_attribute: opt.string({ default: 'userPassword', help: 'Password attribute: unused, authentication binds as the user.' }),
  user_enabled_attribute: opt.string({ default: 'enabled', help: 'Attribute telling whether the user is enabled.' }),
  user_enabled_invert: opt.bool({ default: false, help: 'The enabled attribute means disabled (a lock flag).' }),
  user_enabled_mask: opt.int({ default: 0, min: 0, help: 'Bit of an integer enabled attribute that means disabled (2 for userAccountControl); 0: not a bitmask.' }),
  user_enabled_default: opt.string({ default: 'True', help: 'Value assumed when the enabled attribute is missing (an integer such as 512 with a mask).' }),
  user_attribute_ignore: opt.list({ default: ['default_project_id'], help: 'User attributes not read from LDAP.' }),
  user_default_project_id_attribute: opt.string({ help: 'Attribute holding the default project id.' }),
  user_enabled_emulation: opt.bool({ default: false, help: 'Users are enabled when they are members of user_enabled_emulation_dn.' }),
  user_enabled_emulation_dn: opt.string({ help: 'Group of enabled users; default cn=enabled_users,<user_tree_dn>.' }),
  user_enabled_emulation_use_group_config: opt.bool({ default: false, help: 'Read the emulation group with group_member_attribute and group_objectclass.' }),
  user_additional_attribute_mapping: opt.list({ help: 'ldap_attr:user_attr pairs exposing more LDAP attributes on users.' }),
  group_tree_dn: opt.string({ help: 'Search base for groups; default ou=UserGroups,<suffix>.' }),
  group_filter: opt.string({ help: 'Extra LDAP filter every group entry must match.' }),
  group_objectclass: opt.string({ default: 'groupOfNames', help: 'Object class of group entries.' }),
  group_id_attribute: opt.string({ default: 'cn', help: 'Attribute holding the (single-valued) group id.' }),
  group_name_attribute: opt.string({ default: 'ou', help: 'Attribute holding the group name.' }),
  group_member_attribute: opt.string({ default: 'member', help: 'Attribute listing the group members.' }),
  group_members_are_ids: opt.bool({ default: false, help: 'Members are user ids (posixGroup memberUid) rather than DNs.' }),
  group_desc_attribute: opt.string({ default: 'description', help: 'Attribute holding the group description.' }),
  group_attribute_ignore: opt.list({ help: 'Group attributes not read from LDAP.' }),
  group_additional_attribute_mapping: opt.list({ help: 'ldap_attr:group_attr pairs exposing more LDAP attributes on groups.' }),
  group_ad_nesting: opt.bool({ default: false, help: 'Resolve nested groups with Active Directory\'s LDAP_MATCHING_RULE_IN_CHAIN.' }),
  tls_cacertfile: opt.string({ help: 'CA certificate file for ldaps:// and use_tls.' }),
  tls_cacertdir: opt.string({ help: 'Directory of CA certificate files for ldaps:// and use_tls.' }),
  use_tls: opt.bool({ default: false, help: 'StartTLS on an ldap:// URL.' }),
  tls_req_cert: opt.string({ default: 'demand', choices: ['demand', 'never', 'allow'] as const, help: 'Whether the server certificate must verify.' }),
  connection_timeout: opt.int({ default: -1, min: -1, help: 'Seconds to wait for a TCP connection; -1: the built-in default.' }),
  use_pool: opt.bool({ default: true, help: 'Keep service-account connections open and reuse them.' }),
  pool_size: opt.int({ default: 10, min: 1, help: 'Service-account connections kept open.' }),
  pool_retry_max: opt.int({ default: 3, min: 0, help: 'Reconnection attempts after a connection fails.' }),
  pool_retry_delay: opt.float({ default: 0.1, min: 0, help: 'Seconds between reconnection attempts.' }),
  pool_connection_timeout: opt.int({ default: -1, min: -1, help: 'Seconds to wait for a TCP connection of the pool; -1: connection_timeout.' }),
  pool_connection_lifetime: opt.int({ default: 600, min: 1, help: 'Seconds after which a pooled connection is replaced.' }),
  use_auth_pool: opt.bool({ default: true, help: 'Reuse connections for end-user password binds.' }),
  auth_pool_size: opt.int({ default: 100, min: 1, help: 'Connections kept for end-user binds.' }),
  auth_pool_connection_lifetime: opt.int({ default: 60, min: 1, help: 'Seconds after which an end-user bind connection is replaced.' }),
});

/** Operation timeout: upstream has none, but a hung directory must not hang token requests forever. */
const DEFAULT_OPERATION_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface LdapEntityConfig {
  treeDn: string;
  objectClass: string;
  /** The operator's filter, parsed once; never built from request input. */
  filter?: Filter;
  idAttribute: string;
  /** Keystone attribute → LDAP attribute, ignored attributes left out. */
  attributes: Record<string, string>;
  /** LDAP attribute → extra Keystone attribute. */
  additional: Record<string, string>;
}

export interface LdapConfig {
  urls: string[];
  /** Service account; the password is a function so it never shows in logs, JSON or util.inspect. */
  bind?: { dn: string; password: () => string };
  scope: 'one' | 'sub';
  pageSize: number;
  derefAliases?: 'never' | 'search' | 'find' | 'always';
  users: LdapEntityConfig;
  groups: LdapEntityConfig & { memberAttribute: string; membersAreIds: boolean; adNesting: boolean };
  enabled: {
    attribute?: string;
    invert: boolean;
    mask: number;
    default: string;
    /** Membership of this group means enabled, as upstream's user_enabled_emulation. */
    emulation?: { dn: string; memberAttribute: string; objectClass: string; membersAreIds: boolean };
  };
  tls: { startTls: boolean; ca?: string[]; rejectUnauthorized: boolean } | undefined;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
  pool: { size: number; retryMax: number; retryDelayMs: number; lifetimeMs: number };
  authPool: { size: number; lifetimeMs: number };
}

export interface DomainConfig {
  domainName: string;
  file: string;
  driver: 'ldap';
  ldap: LdapConfig;
}

export interface LoadedDomainConfigs {
  configs: DomainConfig[];
  warnings: string[];
}

const DEREF = { never: 'never', searching: 'search', finding: 'find', always: 'always' } as const;

/**
 * Reads every keystone.<domain name>.conf under `dir` (recursively, as
 * upstream walks it). Problems in any file are reported together. Mapping
 * names to domain ids is the caller's job: upstream warns and skips a file
 * naming an unknown domain.
 */
export function loadDomainConfigs(dir: string): LoadedDomainConfigs {
  const warnings: string[] = [];
  if (!existsSync(dir)) return { configs: [], warnings: [`Unable to locate domain config directory: ${dir}`] };
  const problems: string[] = [];
  const configs: DomainConfig[] = [];
  for (const file of walk(dir)) {
    const base = file.slice(file.lastIndexOf('/') + 1);
    // "keystone.conf" itself is not a domain file.
    if (!base.startsWith(FILE_HEAD) || !base.endsWith(FILE_TAIL) || base.split('.').length < 3) continue;
    try {
      const loaded = loadDomainConfigFile(file);
      const twice = configs.find((c) => c.domainName === loaded.config.domainName);
      if (twice) problems.push(`domain ${loaded.config.domainName} is configured twice: ${twice.file} and ${file}`);
      configs.push(loaded.config);
      warnings.push(...loaded.warnings);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems.map((p) => `${file}: ${p}`));
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return { configs, warnings };
}

function* walk(dir: string): Generator<string> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) yield* walk(path);
    else if (st.isFile()) yield path;
  }
}

export function loadDomainConfigFile(file: string): { config: DomainConfig; warnings: string[] } {
  const base = file.slice(file.lastIndexOf('/') + 1);
  const domainName = base.slice(FILE_HEAD.length, -FILE_TAIL.length);
  // Environment overrides are for the service's own file, not per-domain ones.
  const { config, warnings } = loadConfig([domainIdentityOptions, ldapOptions] as const, { file, env: {} });
  if (config.identity.driver === 'sql') {
    // The default backend is already SQL, and upstream allows only one.
    throw new ConfigError([
      `The Keystone domain-specific configuration has specified more than one SQL driver (only one is permitted): ${file}.`,
    ]);
  }
  return { config: { domainName, file, driver: 'ldap', ldap: ldapConfig(config.ldap, warnings) }, warnings };
}

/** Checks and normalises the [ldap] values; throws ConfigError listing every problem. */
function ldapConfig(v: GroupValues<typeof ldapOptions.options>, warnings: string[]): LdapConfig {
  const problems: string[] = [];
  const urls = v.url.split(/[\s,]+/).filter(Boolean);
  if (urls.length === 0) problems.push('[ldap] url is empty');
  for (const u of urls) {
    if (!/^ldaps?:\/\/[^/]*\/?$/i.test(u)) problems.push(`[ldap] url ${u} is not an ldap:// or ldaps:// URL (host and port only)`);
  }
  if (v.randomize_urls) shuffle(urls);
  const ldaps = urls.some((u) => /^ldaps:/i.test(u));
  if (v.use_tls && ldaps) problems.push('Invalid TLS / LDAPS combination');
  let tls: LdapConfig['tls'];
  if (v.use_tls || ldaps) {
    if (!v.tls_cacertfile && !v.tls_cacertdir) {
      problems.push('You need to set tls_cacertfile or tls_cacertdir if use_tls is true or url uses ldaps: scheme.');
    } else if (v.tls_cacertfile && !isFile(v.tls_cacertfile)) {
      problems.push(`tls_cacertfile ${v.tls_cacertfile} not found or is not a file`);
    } else if (!v.tls_cacertfile && !isDir(v.tls_cacertdir)) {
      problems.push(`tls_cacertdir ${v.tls_cacertdir} not found or is not a directory`);
    } else {
      tls = {
        startTls: v.use_tls,
        ca: v.tls_cacertfile ? [v.tls_cacertfile] : readdirSync(v.tls_cacertdir).map((f) => join(v.tls_cacertdir, f)).filter(isFile),
        rejectUnauthorized: v.tls_req_cert === 'demand',
      };
    }
  }
  if ((v.user === '') !== (v.password === '')) {
    warnings.push('[ldap] user and password must both be set to bind as a service account; searches bind anonymously');
  }
  if (v.chase_referrals) warnings.push('[ldap] chase_referrals is not supported: referrals are ignored');

  const parseFilter = (name: string, text: string): Filter | undefined => {
    if (!text) return undefined;
    const wrapped = text.startsWith('(') ? text : `(${text})`;
    // Values escape parentheses as \28 and \29, so every literal one is syntax; ldapts forgives a missing ')'.
    if (wrapped.split('(').length !== wrapped.split(')').length) {
      problems.push(`[ldap] ${name} is not a valid LDAP filter: unbalanced parentheses`);
      return undefined;
    }
    try {
      return FilterParser.parseString(wrapped);
    } catch (e) {
      problems.push(`[ldap] ${name} is not a valid LDAP filter: ${(e as Error).message}`);
      return undefined;
    }
  };
  const mapping = (name: string, items: readonly string[]): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const item of items) {
      const parts = item.split(':');
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        warnings.push(`Invalid additional attribute mapping: "${item}" in [ldap] ${name}. Format must be <ldap_attribute>:<keystone_attribute>`);
      } else {
        out[parts[0]] = parts[1];
      }
    }
    return out;
  };
  const attributes = (pairs: Record<string, string>, ignore: readonly string[]) =>
    Object.fromEntries(Object.entries(pairs).filter(([k, a]) => a !== '' && !ignore.includes(k)));

  const userTreeDn = v.user_tree_dn || `ou=Users,${v.suffix}`;
  const users: LdapEntityConfig = {
    treeDn: userTreeDn,
    objectClass: v.user_objectclass,
    filter: parseFilter('user_filter', v.user_filter),
    idAttribute: v.user_id_attribute,
    attributes: attributes(
      {
        name: v.user_name_attribute,
        email: v.user_mail_attribute,
        description: v.user_description_attribute,
        enabled: v.user_enabled_attribute,
        default_project_id: v.user_default_project_id_attribute,
      },
      v.user_attribute_ignore,
    ),
    additional: mapping('user_additional_attribute_mapping', v.user_additional_attribute_mapping),
  };
  const groups: LdapConfig['groups'] = {
    treeDn: v.group_tree_dn || `ou=UserGroups,${v.suffix}`,
    objectClass: v.group_objectclass,
    filter: parseFilter('group_filter', v.group_filter),
    idAttribute: v.group_id_attribute,
    attributes: attributes({ name: v.group_name_attribute, description: v.group_desc_attribute }, v.group_attribute_ignore),
    additional: mapping('group_additional_attribute_mapping', v.group_additional_attribute_mapping),
    memberAttribute: v.group_member_attribute,
    membersAreIds: v.group_members_are_ids,
    adNesting: v.group_ad_nesting,
  };
  if (!users.attributes.name) problems.push('"" is not a valid value for "user_name_attribute"');
  if (!groups.attributes.name) problems.push('"" is not a valid value for "group_name_attribute"');
  if (v.user_enabled_mask !== 0 && !/^\d+$/.test(v.user_enabled_default)) {
    problems.push(`[ldap] user_enabled_default must be an integer when user_enabled_mask is set, got "${v.user_enabled_default}"`);
  }

  if (problems.length) throw new ConfigError(problems);
  const seconds = (n: number, fallback: number) => (n > 0 ? n * 1000 : fallback);
  // Every connection here is pooled, so the pool's own setting wins when given, as it does upstream.
  const connectTimeoutMs = seconds(v.pool_connection_timeout, seconds(v.connection_timeout, DEFAULT_CONNECT_TIMEOUT_MS));
  return {
    urls,
    bind: v.user && v.password ? { dn: v.user, password: () => v.password } : undefined,
    scope: v.query_scope,
    pageSize: v.page_size,
    derefAliases: v.alias_dereferencing === 'default' ? undefined : DEREF[v.alias_dereferencing],
    users,
    groups,
    enabled: {
      attribute: users.attributes.enabled,
      invert: v.user_enabled_invert,
      mask: v.user_enabled_mask,
      default: v.user_enabled_default,
      emulation: v.user_enabled_emulation
        ? {
            dn: v.user_enabled_emulation_dn || `cn=enabled_users,${userTreeDn}`,
            memberAttribute: v.user_enabled_emulation_use_group_config ? v.group_member_attribute : 'member',
            objectClass: v.user_enabled_emulation_use_group_config ? v.group_objectclass : 'groupOfNames',
            membersAreIds: v.user_enabled_emulation_use_group_config && v.group_members_are_ids,
          }
        : undefined,
    },
    tls,
    connectTimeoutMs,
    operationTimeoutMs: DEFAULT_OPERATION_TIMEOUT_MS,
    pool: {
      size: v.use_pool ? v.pool_size : 1,
      retryMax: v.pool_retry_max,
      retryDelayMs: v.pool_retry_delay * 1000,
      lifetimeMs: v.use_pool ? v.pool_connection_lifetime * 1000 : 0,
    },
    authPool: {
      size: v.use_pool && v.use_auth_pool ? v.auth_pool_size : 1,
      lifetimeMs: v.use_pool && v.use_auth_pool ? v.auth_pool_connection_lifetime * 1000 : 0,
    },
  };
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
}

/**
 * The public id of an entity from a mapped backend, as upstream's sha256 id
 * generator: SHA-256 over the mapping's values in the order of their sorted
 * keys (domain_id, entity_type, local_id), hex encoded. Deterministic, so every
 * Keystone process and upstream itself give an LDAP user the same id.
 */
export function publicIdFor(domainId: string, localId: string, entityType: 'user' | 'group'): string {
  return createHash('sha256').update(domainId, 'utf8').update(entityType, 'utf8').update(localId, 'utf8').digest('hex');
}
