import Ajv, { type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { ApiError, validationError } from '../errors.ts';

/**
 * Request bodies checked the way upstream's Python services check them
 * (nova/cinder `api/validation`: jsonschema Draft 4 plus their own format
 * checkers), answering with the same first error and the same words:
 * "Invalid input for field/attribute <last path element>. Value: <str(value)>.
 * <jsonschema message>", or the bare message at the top level.
 *
 * Python's validator raises the first error it meets walking the schema in the
 * order its keys are written; Ajv walks keywords in its own order, so every
 * error is collected and the one Python would meet first is chosen (schemas
 * must keep upstream's key order for that).
 */
export interface UpstreamFormat {
  check(value: unknown): boolean;
  /** The error upstream's checker raises itself instead of "'x' is not a 'format'" (InvalidName, InvalidInput …). */
  error?(value: unknown): ApiError;
}

export interface UpstreamSchemaOptions {
  formats?: Record<string, UpstreamFormat>;
}

/** Python's repr() of a JSON value, as jsonschema puts values into its messages. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return pyStrRepr(v);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return String(v);
}

/** Python's str(): strings as they are, everything else as repr. */
export const pyStr = (v: unknown): string => (typeof v === 'string' ? v : pyRepr(v));

function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return quote + (quote === "'" ? body.replace(/'/g, "\\'") : body) + quote;
}

type VerboseError = ErrorObject & { data?: unknown; parentSchema?: Record<string, unknown> };

export class UpstreamSchemaValidator {
  private readonly ajv: Ajv.default;
  private readonly formats: Record<string, UpstreamFormat>;
  private readonly compiled = new WeakMap<object, ValidateFunction>();

  constructor(opts: UpstreamSchemaOptions = {}) {
    this.formats = opts.formats ?? {};
    this.ajv = new Ajv.default({ allErrors: true, verbose: true, coerceTypes: false, useDefaults: false, strict: false, validateFormats: true });
    for (const [name, f] of Object.entries(this.formats)) this.ajv.addFormat(name, { validate: (v: string) => f.check(v) });
    // upstream's _SchemaValidator compares strings of digits with minimum/maximum too ("0" for a size is below 1).
    this.ajv.addKeyword({
      keyword: 'numericString',
      type: 'string',
      schemaType: 'boolean',
      errors: true,
      validate: function check(_on: boolean, data: string, schema?: AnySchemaObject) {
        const parent = schema as { minimum?: number; maximum?: number } | undefined;
        const n = Number(data);
        if (data.trim() === '' || Number.isNaN(n)) return true;
        const fail = (keyword: string, limit: number, words: string) => {
          (check as unknown as { errors: Partial<VerboseError>[] }).errors = [{ keyword, params: { limit }, message: `${pyRepr(n)} ${words} ${limit}`, data }];
          return false;
        };
        if (parent?.minimum !== undefined && n < parent.minimum) return fail('minimum', parent.minimum, 'is less than the minimum of');
        if (parent?.maximum !== undefined && n > parent.maximum) return fail('maximum', parent.maximum, 'is greater than the maximum of');
        return true;
      },
    });
  }

  /** Throws upstream's 400 for the first error Python would report; returns the body as given. */
  check<T = Record<string, unknown>>(schema: object, data: unknown): T {
    let validate = this.compiled.get(schema);
    if (!validate) this.compiled.set(schema, (validate = this.ajv.compile(schema)));
    if (validate(data)) return data as T;
    const errors = (validate.errors ?? []) as VerboseError[];
    throw this.describe(pickFirst(schema, errors), errors);
  }

  private describe(e: VerboseError, all: VerboseError[]): ApiError {
    if (e.keyword === 'format') {
      const custom = this.formats[(e.params as { format: string }).format]?.error?.(e.data);
      if (custom) return custom;
    }
    const path = e.instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const message = jsonschemaMessage(e, all);
    return validationError(path.length ? `Invalid input for field/attribute ${path[path.length - 1]}. Value: ${pyStr(e.data)}. ${message}` : message);
  }
}

/** Drops what jsonschema does not report (the branches of anyOf/oneOf) and orders the rest as Python walks the schema. */
function pickFirst(root: object, errors: VerboseError[]): VerboseError {
  const reported = errors.filter((e) => !/\/(anyOf|oneOf)\/\d+\//.test(e.schemaPath));
  const ranked = (reported.length ? reported : errors).map((e, i) => ({ e, i, order: schemaOrder(root, e.schemaPath) }));
  ranked.sort((a, b) => compareOrder(a.order, b.order) || a.i - b.i);
  return ranked[0].e;
}

function compareOrder(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The position of each step of a schema path among its siblings, in the order the schema's keys were written. */
function schemaOrder(root: object, schemaPath: string): number[] {
  const segs = schemaPath
    .replace(/^#\/?/, '')
    .split('/')
    .filter((s) => s !== '')
    .map((s) => decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~'));
  const out: number[] = [];
  let node: unknown = root;
  for (let i = 0; i < segs.length && node && typeof node === 'object'; i++) {
    const here = node as Record<string, unknown>;
    const key = segs[i];
    out.push(Object.keys(here).indexOf(key));
    const child = here[key];
    if (i + 1 < segs.length && child && typeof child === 'object' && ['properties', 'patternProperties', 'anyOf', 'oneOf', 'allOf', 'items'].includes(key)) {
      const members = child as Record<string, unknown>;
      const name = segs[++i];
      out.push(Array.isArray(members) ? Number(name) : Object.keys(members).indexOf(name));
      node = members[name as never];
    } else node = child;
  }
  return out;
}

/** jsonschema 4's wording of one error. */
function jsonschemaMessage(e: VerboseError, all: VerboseError[]): string {
  const p = e.params as Record<string, unknown>;
  const v = pyRepr(e.data);
  switch (e.keyword) {
    case 'type':
      return `${v} is not of type ${String(p.type).split(',').map((t) => `'${t}'`).join(', ')}`;
    case 'required':
      return `'${String(p.missingProperty)}' is a required property`;
    case 'additionalProperties': {
      const extras = all.filter((x) => x.keyword === 'additionalProperties' && x.instancePath === e.instancePath && x.schemaPath === e.schemaPath).map((x) => String((x.params as { additionalProperty: string }).additionalProperty));
      extras.sort();
      const joined = extras.map((x) => pyRepr(x)).join(', ');
      const patterns = Object.keys((e.parentSchema?.patternProperties ?? {}) as object).sort();
      if (patterns.length) return `${joined} ${extras.length === 1 ? 'does' : 'do'} not match any of the regexes: ${patterns.map((x) => pyRepr(x)).join(', ')}`;
      return `Additional properties are not allowed (${joined} ${extras.length === 1 ? 'was' : 'were'} unexpected)`;
    }
    case 'enum':
      return `${v} is not one of ${pyRepr(p.allowedValues)}`;
    case 'const':
      return `${pyRepr(p.allowedValue)} was expected`;
    case 'minLength':
      return p.limit === 1 ? `${v} should be non-empty` : `${v} is too short`;
    case 'maxLength':
      return `${v} is too long`;
    case 'minProperties':
      return p.limit === 1 ? `${v} should be non-empty` : `${v} does not have enough properties`;
    case 'maxProperties':
      return `${v} has too many properties`;
    case 'minimum':
      return typeof e.data === 'string' && e.message ? e.message : `${v} is less than the minimum of ${String(p.limit)}`;
    case 'maximum':
      return typeof e.data === 'string' && e.message ? e.message : `${v} is greater than the maximum of ${String(p.limit)}`;
    case 'pattern':
      return `${v} does not match ${pyRepr(p.pattern)}`;
    case 'format':
      return `${v} is not a ${pyRepr(p.format)}`;
    case 'anyOf':
    case 'oneOf':
      return p.passingSchemas ? `${v} is valid under each of the given schemas` : `${v} is not valid under any of the given schemas`;
    default:
      return e.message ?? 'is invalid';
  }
}
