/**
 * Evaluation side of the policy language: the check tree oslo.policy builds
 * (oslo_policy/_checks.py), with the same semantics, compiled once by parser.ts
 * and evaluated per request.
 */

/** The object of an operation: flat keys (`project_id`, `target.user.id`) or nested objects. */
export type Target = Readonly<Record<string, unknown>>;

/** What oslo.context's `to_policy_values()` hands to oslo.policy, under the same keys. */
export interface Credentials {
  user_id?: string;
  user_domain_id?: string;
  project_id?: string;
  project_domain_id?: string;
  domain_id?: string;
  system_scope?: 'all';
  /** oslo.policy's older name for system_scope; rules in the wild check either. */
  system?: 'all';
  roles: readonly string[];
  is_admin_project?: boolean;
  service_user_id?: string;
  service_roles?: readonly string[];
  [key: string]: unknown;
}

/** Rules by name, for `rule:` references; replaced whole when overrides reload. */
export type RuleTable = ReadonlyMap<string, Check>;

export abstract class Check {
  abstract evaluate(target: Target, creds: Credentials, rules: RuleTable): boolean;
  /** The canonical text oslo.policy prints, also used to compare rules. */
  abstract toString(): string;
  /** Rule names reached through `rule:`, for cycle and dangling-reference detection. */
  ruleNames(): string[] {
    return [];
  }
}

export class TrueCheck extends Check {
  evaluate(): boolean {
    return true;
  }
  toString(): string {
    return '@';
  }
}

export class FalseCheck extends Check {
  evaluate(): boolean {
    return false;
  }
  toString(): string {
    return '!';
  }
}

export class NotCheck extends Check {
  constructor(readonly rule: Check) {
    super();
  }
  evaluate(target: Target, creds: Credentials, rules: RuleTable): boolean {
    return !this.rule.evaluate(target, creds, rules);
  }
  toString(): string {
    return `not ${this.rule}`;
  }
  override ruleNames(): string[] {
    return this.rule.ruleNames();
  }
}

export class AndCheck extends Check {
  /** Mutable because the parser extends an expression in place as upstream does. */
  constructor(readonly rules: Check[]) {
    super();
  }
  evaluate(target: Target, creds: Credentials, table: RuleTable): boolean {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) if (!rules[i].evaluate(target, creds, table)) return false;
    return true;
  }
  toString(): string {
    return `(${this.rules.join(' and ')})`;
  }
  override ruleNames(): string[] {
    return this.rules.flatMap((r) => r.ruleNames());
  }
}

export class OrCheck extends Check {
  constructor(readonly rules: Check[]) {
    super();
  }
  evaluate(target: Target, creds: Credentials, table: RuleTable): boolean {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) if (rules[i].evaluate(target, creds, table)) return true;
    return false;
  }
  toString(): string {
    return `(${this.rules.join(' or ')})`;
  }
  override ruleNames(): string[] {
    return this.rules.flatMap((r) => r.ruleNames());
  }
}

/** `rule:NAME`: an unknown name fails closed, as upstream. */
export class RuleCheck extends Check {
  constructor(readonly name: string) {
    super();
  }
  evaluate(target: Target, creds: Credentials, rules: RuleTable): boolean {
    const rule = rules.get(this.name);
    return rule !== undefined && rule.evaluate(target, creds, rules);
  }
  toString(): string {
    return `rule:${this.name}`;
  }
  override ruleNames(): string[] {
    return [this.name];
  }
}

/** `role:NAME`, case-insensitive; the name may itself be a `%(key)s` substitution. */
export class RoleCheck extends Check {
  private readonly lowered: string | undefined;

  constructor(readonly match: Template) {
    super();
    this.lowered = match.isStatic ? match.source.toLowerCase() : undefined;
  }

  evaluate(target: Target, creds: Credentials): boolean {
    let wanted = this.lowered;
    if (wanted === undefined) {
      const rendered = this.match.render(target);
      if (rendered === undefined) return false;
      wanted = rendered.toLowerCase();
    }
    const roles = creds.roles;
    if (!Array.isArray(roles)) return false;
    for (let i = 0; i < roles.length; i++) {
      const role = roles[i];
      if (typeof role === 'string' && role.length === wanted.length && role.toLowerCase() === wanted) return true;
    }
    return false;
  }

  toString(): string {
    return `role:${this.match.source}`;
  }
}

/**
 * Any other `kind:match`. When `kind` is a Python literal (`'member'`, `True`, `3`)
 * the match is compared with it; otherwise `kind` is a dotted path into the
 * credentials, where a list on the way matches if any element does.
 */
export class GenericCheck extends Check {
  private readonly path: readonly string[];

  constructor(
    readonly kind: string,
    readonly match: Template,
    /** `str()` of the literal `kind` evaluates to, when it is one. */
    private readonly literal: string | undefined,
  ) {
    super();
    this.path = kind.split('.');
  }

  evaluate(target: Target, creds: Credentials): boolean {
    const match = this.match.render(target);
    if (match === undefined) return false;
    if (this.literal !== undefined) return match === this.literal;
    return findInCredentials(creds, this.path, 0, match);
  }

  toString(): string {
    return `${this.kind}:${this.match.source}`;
  }
}

/**
 * Neutron's `field:RESOURCE:FIELD=VALUE` (neutron/policy.py FieldCheck): the
 * target's FIELD compared with VALUE, or matched from its start by the
 * regular expression after a `~`. Upstream converts VALUE with the
 * attribute's converter; here the target value's own type does that job
 * (`True` for a boolean, a number for a number). A missing or null field
 * never matches, so `not field:…` is true for targets without it.
 */
export class FieldCheck extends Check {
  readonly resource: string;
  readonly field: string;
  readonly value: string;
  private readonly regex: RegExp | undefined;

  constructor(readonly match: string) {
    super();
    const colon = match.indexOf(':');
    const eq = match.indexOf('=', colon + 1);
    if (colon <= 0 || eq <= colon + 1) throw new Error(`field check "${match}" is not of the form resource:field=value`);
    this.resource = match.slice(0, colon);
    this.field = match.slice(colon + 1, eq);
    this.value = match.slice(eq + 1);
    this.regex = this.value.startsWith('~') ? new RegExp(`^(?:${this.value.slice(1)})`) : undefined;
  }

  evaluate(target: Target): boolean {
    if (!Object.hasOwn(target, this.field)) return false;
    const actual = target[this.field];
    if (actual === undefined || actual === null) return false;
    if (this.regex) return typeof actual === 'string' && this.regex.test(actual);
    switch (typeof actual) {
      case 'boolean':
        return parseBoolean(this.value) === actual;
      case 'number':
        return this.value.trim() !== '' && Number(this.value) === actual;
      case 'string':
        return actual === this.value;
      default:
        return false;
    }
  }

  toString(): string {
    return `field:${this.resource}:${this.field}=${this.value}`;
  }
}

/** neutron-lib's convert_to_boolean for the spellings a policy file uses; undefined when it is none of them. */
function parseBoolean(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (['true', '1', 't', 'yes', 'y', 'on'].includes(v)) return true;
  if (['false', '0', 'f', 'no', 'n', 'off'].includes(v)) return false;
  return undefined;
}

function findInCredentials(value: unknown, path: readonly string[], i: number, match: string): boolean {
  if (i === path.length) return pyStr(value) === match;
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, path[i])) return false;
  const next = (value as Record<string, unknown>)[path[i]];
  if (Array.isArray(next)) {
    for (const element of next) if (findInCredentials(element, path, i + 1, match)) return true;
    return false;
  }
  return findInCredentials(next, path, i + 1, match);
}

interface TemplateKey {
  flat: string;
  segments: readonly string[];
}

/**
 * The right-hand side of a check: Python's `match % target`, limited to
 * `%(key)s` and `%%`. A key is looked up as a flat key first (what Keystone's
 * flattened targets carry), then as a path through nested objects.
 */
export class Template {
  readonly isStatic: boolean;
  private readonly keys: readonly TemplateKey[];

  /** `literals` has one more element than `keys`: the text around each substitution. */
  constructor(
    readonly source: string,
    private readonly literals: readonly string[],
    keys: readonly string[],
  ) {
    this.keys = keys.map((flat) => ({ flat, segments: flat.split('.') }));
    this.isStatic = keys.length === 0;
  }

  /** undefined when a key is missing from the target: the check is then false, not an error. */
  render(target: Target): string | undefined {
    const keys = this.keys;
    if (keys.length === 0) return this.literals[0];
    let out = this.literals[0];
    for (let i = 0; i < keys.length; i++) {
      const value = pyStr(lookupTarget(target, keys[i]));
      if (value === undefined) return undefined;
      out += value + this.literals[i + 1];
    }
    return out;
  }
}

function lookupTarget(target: Target, key: TemplateKey): unknown {
  if (Object.hasOwn(target, key.flat)) return target[key.flat];
  const segments = key.segments;
  if (segments.length === 1) return undefined;
  let value: unknown = target;
  for (let i = 0; i < segments.length; i++) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, segments[i])) return undefined;
    value = (value as Record<string, unknown>)[segments[i]];
  }
  return value;
}

/**
 * Python's `str()` for the scalar values policy compares. undefined (absent) and
 * containers never match: upstream would compare a repr no rule is written against.
 */
function pyStr(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 'True' : 'False';
    case 'number':
    case 'bigint':
      return String(value);
    case 'object':
      return value === null ? 'None' : undefined;
    default:
      return undefined;
  }
}
