import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FaultFormat } from './faults.ts';

/**
 * Bodies are validated strictly, as upstream's jsonschema validators do: no type
 * coercion ("1" is not an integer) and unknown attributes rejected where the
 * schema says so (fastify's default would silently strip them). Query strings
 * and path parameters are strings on the wire, so those are coerced.
 */
export function createValidators() {
  const body = addFormats.default(new Ajv.default({ allErrors: false, verbose: true, coerceTypes: false, useDefaults: false, strict: false }));
  const query = addFormats.default(
    new Ajv.default({ allErrors: false, verbose: true, coerceTypes: "array", useDefaults: true, strict: false, removeAdditional: false }),
  );
  return { body, query };
}

/** One human-readable line per upstream's style for the first failing rule. */
export function describeValidationError(format: FaultFormat, errors: ErrorObject[], dataVar: string): string {
  const e = errors[0];
  if (!e) return 'Invalid input.';
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let reason: string;
  switch (e.keyword) {
    case 'additionalProperties':
      reason = `Additional properties are not allowed ('${(e.params as { additionalProperty: string }).additionalProperty}' was unexpected)`;
      break;
    case 'required':
      reason = `'${(e.params as { missingProperty: string }).missingProperty}' is a required property`;
      break;
    case 'type':
      reason = `${JSON.stringify(valueAt(e))} is not of type '${(e.params as { type: string }).type}'`;
      break;
    case 'enum':
      reason = `${JSON.stringify(valueAt(e))} is not one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
      break;
    case 'minLength':
      reason = `${JSON.stringify(valueAt(e))} is too short`;
      break;
    case 'maxLength':
      reason = `${JSON.stringify(valueAt(e))} is too long`;
      break;
    default:
      reason = e.message ?? 'is invalid';
  }
  if (format === 'compute') {
    return path.length
      ? `Invalid input for field/attribute ${path[path.length - 1]}. Value: ${String(valueAt(e))}. ${reason}`
      : reason;
  }
  const where = path.length ? path.join('/') : dataVar === 'body' ? '' : dataVar;
  return where ? `Invalid input for field '${where}': ${reason}` : reason;
}

function valueAt(e: ErrorObject): unknown {
  return (e as ErrorObject & { data?: unknown }).data;
}
