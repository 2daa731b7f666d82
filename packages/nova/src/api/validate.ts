import { badRequest } from '@onestack/core/errors.ts';

/** jsonschema-style refusals, worded as upstream's ValidationError messages. */
export const invalid = (field: string, value: unknown, why: string) => badRequest(`Invalid input for field/attribute ${field}. Value: ${typeof value === 'string' ? value : JSON.stringify(value)}. ${why}`);

export const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

export function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(field, v, `${JSON.stringify(v)} is not of type 'object'`);
  return v as Record<string, unknown>;
}

export function str(v: unknown, field: string, o: { min?: number; max?: number; pattern?: RegExp } = {}): string {
  if (typeof v !== 'string') throw invalid(field, v, `${JSON.stringify(v)} is not of type 'string'`);
  if (o.min !== undefined && v.length < o.min) throw invalid(field, v, `'${v}' is too short`);
  if (o.max !== undefined && v.length > o.max) throw invalid(field, v, `'${v}' is too long`);
  if (o.pattern && !o.pattern.test(v)) throw invalid(field, v, `'${v}' does not match '${o.pattern.source}'`);
  return v;
}

/** A name that is not only whitespace and has no leading/trailing blanks (upstream's name parameter). */
export function name(v: unknown, field = 'name'): string {
  const s = str(v, field, { min: 1, max: 255 });
  if (s.trim() !== s || s.trim() === '') throw invalid(field, v, `'${s}' does not match '^(?! )[\\S ]*(?<! )$'`);
  return s;
}

export function int(v: unknown, field: string, o: { min?: number; max?: number } = {}): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(field, v, `${JSON.stringify(v)} is not of type 'integer', 'string'`);
  if (o.min !== undefined && n < o.min) throw invalid(field, v, `${n} is less than the minimum of ${o.min}`);
  if (o.max !== undefined && n > o.max) throw invalid(field, v, `${n} is greater than the maximum of ${o.max}`);
  return n;
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['true', 'false', 't', 'f', 'yes', 'no', 'y', 'n', 'on', 'off', '1', '0'].includes(v.toLowerCase())) return ['true', 't', 'yes', 'y', 'on', '1'].includes(v.toLowerCase());
  throw invalid(field, v, `${JSON.stringify(v)} is not of type 'boolean', 'string'`);
}

export function metadata(v: unknown, field = 'metadata'): Record<string, string> {
  const o = obj(v, field);
  for (const [k, val] of Object.entries(o)) {
    if (k.length < 1 || k.length > 255) throw invalid(field, v, `'${k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'`);
    if (typeof val !== 'string') throw invalid(field, v, `${JSON.stringify(val)} is not of type 'string'`);
    if (val.length > 255) throw invalid(field, v, `'${val}' is too long`);
  }
  return o as Record<string, string>;
}

/** An action's argument that must be null (upstream's schema `{'type': 'null'}`). */
export function nullArg(v: unknown, field: string): null {
  if (v !== null) throw invalid(field, v, `${JSON.stringify(v)} is not of type 'null'`);
  return null;
}

export function noExtra(o: Record<string, unknown>, allowed: string[], field = ''): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length) throw badRequest(`Additional properties are not allowed (${extra.map((e) => `'${e}'`).join(', ')} ${extra.length > 1 ? 'were' : 'was'} unexpected)${field ? ` in ${field}` : ''}`);
}

export function tag(v: unknown): string {
  const t = str(v, 'tags', { min: 1, max: 60 });
  if (t.includes('/') || t.includes(',')) throw invalid('tags', v, `'${t}' does not match '^[^,/]*$'`);
  return t;
}

/** parameter_types.hostname (2.90): letters, digits and inner hyphens, 2–63 long. */
export function hostname(v: unknown): string {
  return str(v, 'hostname', { min: 2, max: 63, pattern: /^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$/ });
}
