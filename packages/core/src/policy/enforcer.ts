/**
 * oslo.policy's Enforcer: registered defaults in code, an operator's overrides
 * file on top (reloaded when it changes), deprecated rule names, and scope_types
 * with enforce_scope / enforce_new_defaults (both default to true, as upstream
 * now does).
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { type Clock, systemClock } from '../clock.ts';
import type { AuthContext } from '../context.ts';
import { forbidden } from '../errors.ts';
import { type Check, type Credentials, OrCheck, type RuleTable, type Target, TrueCheck } from './checks.ts';
import { type ListRule, PolicyParseError, parseRule } from './parser.ts';

export type ScopeType = 'system' | 'domain' | 'project';

export interface Operation {
  path: string;
  method: string;
}

export interface DeprecatedRule {
  name: string;
  checkStr: string;
  deprecatedReason?: string;
  deprecatedSince?: string;
}

export interface RuleDefault {
  name: string;
  checkStr: string;
  description?: string;
  operations?: readonly Operation[];
  scopeTypes?: readonly ScopeType[];
  /** The rule this one replaces, under its old name and/or old check string. */
  deprecatedRule?: DeprecatedRule;
  deprecatedForRemoval?: boolean;
  deprecatedReason?: string;
  deprecatedSince?: string;
}

export interface PolicyLogger {
  warn(msg: string): void;
}

export interface EnforcerOptions {
  defaults: readonly RuleDefault[];
  /** policy.yaml (or policy.json); a missing file means no overrides until it appears. */
  overrideFile?: string;
  /** Refuse tokens whose scope the rule's scopeTypes do not list; otherwise only warn. */
  enforceScope?: boolean;
  /** Ignore deprecated check strings; otherwise a changed default is or'd with the old one. */
  enforceNewDefaults?: boolean;
  /** How often the hot path may stat the overrides file. */
  reloadIntervalMs?: number;
  clock?: Clock;
  logger?: PolicyLogger;
}

export class PolicyNotRegisteredError extends Error {
  constructor(name: string) {
    super(`Policy ${name} has not been registered`);
    this.name = 'PolicyNotRegisteredError';
  }
}

/** The reason behind a scope refusal, kept as the cause of the 403 (upstream's InvalidScope). */
export class InvalidScopeError extends Error {
  constructor(rule: RuleDefault, tokenScope: ScopeType) {
    const scopes = `[${(rule.scopeTypes ?? []).map((s) => `'${s}'`).join(', ')}]`;
    super(`"${rule.name}": "${rule.checkStr}" requires a scope of ${scopes}, request was made with ${tokenScope} scope.`);
    this.name = 'InvalidScopeError';
  }
}

/** The credentials oslo.context builds for a request (`to_policy_values()`). */
export function credentialsFromAuth(auth: AuthContext): Credentials {
  return {
    user_id: auth.userId,
    user_domain_id: auth.userDomainId,
    project_id: auth.projectId,
    project_domain_id: auth.projectDomainId,
    domain_id: auth.domainId,
    system_scope: auth.system,
    system: auth.system,
    roles: auth.roles,
    // keystonemiddleware treats a token without the flag as from the admin project.
    is_admin_project: auth.isAdminProject ?? true,
    service_user_id: auth.serviceUserId,
    service_roles: auth.serviceRoles ?? [],
  };
}

// A request authorizes many times against one AuthContext (list filtering checks each item).
const credentialsCache = new WeakMap<AuthContext, Credentials>();

interface Registered {
  rule: RuleDefault;
  check: Check;
  deprecatedCheck?: Check;
}

export class Enforcer {
  private readonly registered = new Map<string, Registered>();
  private rules: RuleTable;
  private readonly overrideFile: string | undefined;
  private readonly enforceScope: boolean;
  private readonly enforceNewDefaults: boolean;
  private readonly reloadIntervalMs: number;
  private readonly clock: Clock;
  private readonly logger: PolicyLogger;
  private fileStamp: string;
  private nextFileCheck: number;
  private readonly scopeWarned = new Set<string>();

  constructor(opts: EnforcerOptions) {
    this.overrideFile = opts.overrideFile;
    this.enforceScope = opts.enforceScope ?? true;
    this.enforceNewDefaults = opts.enforceNewDefaults ?? true;
    this.reloadIntervalMs = opts.reloadIntervalMs ?? 2000;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? console;
    for (const rule of opts.defaults) {
      if (this.registered.has(rule.name)) throw new Error(`Policy ${rule.name} is already registered`);
      this.registered.set(rule.name, {
        rule,
        check: parseNamed(rule.name, rule.checkStr),
        deprecatedCheck: rule.deprecatedRule && parseNamed(rule.deprecatedRule.name, rule.deprecatedRule.checkStr),
      });
    }
    this.fileStamp = this.overrideFile === undefined ? '' : stampOf(this.overrideFile);
    this.nextFileCheck = this.overrideFile === undefined ? Infinity : this.clock.now() + this.reloadIntervalMs;
    this.rules = this.buildRules(this.readOverrides());
  }

  enforce(ruleName: string, target: Target, credentials: Credentials): boolean {
    const registered = this.lookup(ruleName);
    if (this.refusedScope(registered, credentials) !== undefined) return false;
    return (this.rules.get(ruleName) as Check).evaluate(target, credentials, this.rules);
  }

  /** Throws the 403 upstream services answer with, for a denied rule and a refused scope alike. */
  authorize(ruleName: string, target: Target, auth: AuthContext): void {
    const registered = this.lookup(ruleName);
    let credentials = credentialsCache.get(auth);
    if (credentials === undefined) {
      credentials = credentialsFromAuth(auth);
      credentialsCache.set(auth, credentials);
    }
    const message = `Policy doesn't allow ${ruleName} to be performed.`;
    const refused = this.refusedScope(registered, credentials);
    if (refused !== undefined) throw forbidden(message, { cause: new InvalidScopeError(registered.rule, refused) });
    if (!(this.rules.get(ruleName) as Check).evaluate(target, credentials, this.rules)) throw forbidden(message);
  }

  private lookup(ruleName: string): Registered {
    const registered = this.registered.get(ruleName);
    if (registered === undefined) throw new PolicyNotRegisteredError(ruleName);
    if (this.clock.now() >= this.nextFileCheck) this.reloadIfChanged();
    return registered;
  }

  /** The token's scope when the rule's scopeTypes refuse it. */
  private refusedScope({ rule }: Registered, creds: Credentials): ScopeType | undefined {
    const scopes = rule.scopeTypes;
    if (scopes === undefined || scopes.length === 0) return undefined;
    const tokenScope: ScopeType = creds.system || creds.system_scope ? 'system' : creds.domain_id ? 'domain' : 'project';
    if (scopes.includes(tokenScope)) return undefined;
    if (this.enforceScope) return tokenScope;
    if (!this.scopeWarned.has(rule.name)) {
      this.scopeWarned.add(rule.name);
      this.logger.warn(
        `Policy ${rule.name} failed scope check. The token used to make the request was ${tokenScope} ` +
          `scoped but the policy requires ${scopes.join(', ')} scope. This will be refused once enforce_scope is on.`,
      );
    }
    return undefined;
  }

  private reloadIfChanged(): void {
    const file = this.overrideFile as string;
    this.nextFileCheck = this.clock.now() + this.reloadIntervalMs;
    try {
      const stamp = stampOf(file);
      if (stamp === this.fileStamp) return;
      this.fileStamp = stamp;
      this.rules = this.buildRules(this.readOverrides());
    } catch (e) {
      // A typo saved into the file must not take the API down or open it up.
      this.logger.warn(`${file}: ${(e as Error).message}; keeping the previous policy`);
    }
  }

  private readOverrides(): Map<string, Check> {
    const file = this.overrideFile;
    if (file === undefined) return new Map();
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw e;
    }
    return parseOverrides(text, file);
  }

  /** Mirrors oslo's load_rules: file rules win, then defaults with deprecation handling. */
  private buildRules(fileRules: Map<string, Check>): RuleTable {
    const rules = new Map(fileRules);
    for (const registered of this.registered.values()) {
      if (!rules.has(registered.rule.name)) rules.set(registered.rule.name, this.effectiveDefault(registered, fileRules));
    }
    assertAcyclic(rules);
    const dangling = new Set<string>();
    for (const check of rules.values()) for (const name of check.ruleNames()) if (!rules.has(name)) dangling.add(name);
    if (dangling.size > 0) this.logger.warn(`Policy rules reference undefined rules (always false): ${[...dangling].join(', ')}`);
    return rules;
  }

  private effectiveDefault({ rule, check, deprecatedCheck }: Registered, fileRules: Map<string, Check>): Check {
    const deprecated = rule.deprecatedRule;
    if (deprecated === undefined || deprecatedCheck === undefined) return check;
    const override = deprecated.name === rule.name ? undefined : fileRules.get(deprecated.name);
    if (override !== undefined) {
      const text = override.toString();
      // An override of the old name that is neither the old default nor an alias to the
      // new name is an operator's decision, kept so that an upgrade exposes nothing new.
      if (text !== deprecatedCheck.toString() && text !== `rule:${rule.name}`) {
        this.logger.warn(
          `Policy "${deprecated.name}":"${deprecated.checkStr}" was deprecated in ` +
            `${deprecated.deprecatedSince ?? rule.deprecatedSince} in favor of "${rule.name}":"${rule.checkStr}". ` +
            `Reason: ${deprecated.deprecatedReason ?? rule.deprecatedReason}. The override of ` +
            `"${deprecated.name}" is applied to "${rule.name}"; rename it in the policy file.`,
        );
        return override;
      }
    }
    if (!this.enforceNewDefaults && deprecated.checkStr !== rule.checkStr) return new OrCheck([check, deprecatedCheck]);
    return check;
  }
}

function parseNamed(name: string, rule: string | ListRule): Check {
  try {
    return parseRule(rule);
  } catch (e) {
    if (e instanceof PolicyParseError) throw new PolicyParseError(`${name}: ${e.message}`);
    throw e;
  }
}

function stampOf(file: string): string {
  const st = statSync(file, { throwIfNoEntry: false });
  return st === undefined ? 'missing' : `${st.mtimeMs}:${st.size}:${st.ino}`;
}

/** Upstream's YAML format; JSON is read as JSON first since YAML refuses tab indentation. */
function parseOverrides(text: string, file: string): Map<string, Check> {
  let data: unknown;
  if (text.trimStart().startsWith('{')) {
    try {
      data = JSON.parse(text);
    } catch {
      data = parseYaml(text);
    }
  } else {
    data = parseYaml(text);
  }
  const rules = new Map<string, Check>();
  if (data === null || data === undefined) return rules;
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new PolicyParseError(`${file}: expected a mapping of policy names to rules`);
  }
  for (const [name, value] of Object.entries(data)) {
    if (value === null) {
      // Upstream parses a missing value as an empty list rule: always allowed.
      rules.set(name, new TrueCheck());
    } else if (typeof value === 'string' || Array.isArray(value)) {
      rules.set(name, parseNamed(name, value as string | ListRule));
    } else {
      throw new PolicyParseError(`${file}: the rule for ${name} is neither a string nor a list`);
    }
  }
  return rules;
}

function assertAcyclic(rules: RuleTable): void {
  const done = new Set<string>();
  const visiting: string[] = [];
  const visit = (name: string): void => {
    if (done.has(name)) return;
    const start = visiting.indexOf(name);
    if (start >= 0) {
      throw new PolicyParseError(`Policy rules reference each other in a cycle: ${[...visiting.slice(start), name].join(' -> ')}`);
    }
    const check = rules.get(name);
    if (check === undefined) return;
    visiting.push(name);
    for (const next of check.ruleNames()) visit(next);
    visiting.pop();
    done.add(name);
  };
  for (const name of rules.keys()) visit(name);
}
