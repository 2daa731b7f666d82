import { ApiError, badRequest } from '@onestack/core/errors.ts';

/**
 * Request body checks in upstream's words (neutron-lib's validators and the
 * API controller's body preparation): unknown attributes, wrong types and
 * bad values are 400s with `Invalid input for <attr>. Reason: …`.
 */
export type Validator = (value: unknown, attr: string) => unknown;

export const invalidInput = (attr: string, reason: string) =>
  badRequest(`Invalid input for ${attr}. Reason: ${reason}.`, { type: 'HTTPBadRequest' });

export const str =
  (max = 255): Validator =>
  (v, attr) => {
    if (typeof v !== 'string') throw invalidInput(attr, `'${String(v)}' is not a valid string`);
    if (v.length > max) throw invalidInput(attr, `'${v}' exceeds maximum length of ${max}`);
    return v;
  };

export const strOrNull =
  (max = 255): Validator =>
  (v, attr) =>
    v === null ? null : str(max)(v, attr);

export const bool: Validator = (v, attr) => {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['true', 'false'].includes(v.toLowerCase())) return v.toLowerCase() === 'true';
  if (v === 0 || v === 1) return v === 1;
  throw invalidInput(attr, `'${String(v)}' is not a valid boolean value`);
};

export const int =
  (min?: number, max?: number): Validator =>
  (v, attr) => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw invalidInput(attr, `'${String(v)}' is not an integer`);
    if (min !== undefined && n < min) throw invalidInput(attr, `'${n}' is too small - must be at least '${min}'`);
    if (max !== undefined && n > max) throw invalidInput(attr, `'${n}' is too large - must be no larger than '${max}'`);
    return n;
  };

export const intOrNull =
  (min?: number, max?: number): Validator =>
  (v, attr) =>
    v === null ? null : int(min, max)(v, attr);

export const listOf =
  (item: Validator): Validator =>
  (v, attr) => {
    if (!Array.isArray(v)) throw invalidInput(attr, `'${JSON.stringify(v)}' is not a list`);
    return v.map((x) => item(x, attr));
  };

export const oneOf =
  (...values: (string | null)[]): Validator =>
  (v, attr) => {
    if (!values.includes(v as string | null)) throw invalidInput(attr, `'${String(v)}' is not in ${JSON.stringify(values.filter((x) => x !== null))}`);
    return v;
  };

export const dict: Validator = (v, attr) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidInput(attr, `'${JSON.stringify(v)}' is not a dictionary`);
  return v;
};

export const any: Validator = (v) => v;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const uuid: Validator = (v, attr) => {
  if (typeof v !== 'string' || !UUID.test(v)) throw invalidInput(attr, `'${String(v)}' is not a valid UUID`);
  return v;
};
export const uuidOrNull: Validator = (v, attr) => (v === null ? null : uuid(v, attr));

/**
 * The member object of a create or update body (`{"network": {...}}`),
 * checked against the allowed attributes: returns the validated values.
 */
export function memberBody(body: unknown, member: string, allowed: Record<string, Validator>): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || !(member in body)) {
    throw badRequest(`Resource body required`, { type: 'HTTPBadRequest' });
  }
  const obj = (body as Record<string, unknown>)[member];
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw badRequest('Resource body required', { type: 'HTTPBadRequest' });
  return checkAttrs(obj as Record<string, unknown>, allowed);
}

export function checkAttrs(obj: Record<string, unknown>, allowed: Record<string, Validator>): Record<string, unknown> {
  const unknown = Object.keys(obj).filter((k) => !(k in allowed));
  if (unknown.length > 0) throw badRequest(`Unrecognized attribute(s) '${unknown.join(', ')}'`, { type: 'HTTPBadRequest' });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = allowed[k](v, k);
  return out;
}

/** A create body: one member or a bulk list under the collection name. */
export function createBodies(body: unknown, member: string, collection: string): { items: Record<string, unknown>[]; bulk: boolean } {
  if (typeof body === 'object' && body !== null && collection in body) {
    const list = (body as Record<string, unknown>)[collection];
    if (!Array.isArray(list) || list.length === 0) throw badRequest('Resources required', { type: 'HTTPBadRequest' });
    return { items: list.map((x) => ({ [member]: x })), bulk: true };
  }
  return { items: [body as Record<string, unknown>], bulk: false };
}

/** project_id / tenant_id of a create: the caller's own unless an admin names another. */
export function owningProject(attrs: Record<string, unknown>, caller: { projectId?: string; isAdmin: boolean }): string {
  const p = (attrs.project_id ?? attrs.tenant_id) as string | undefined;
  if (attrs.project_id !== undefined && attrs.tenant_id !== undefined && attrs.project_id !== attrs.tenant_id) {
    throw badRequest("'project_id' and 'tenant_id' do not match", { type: 'HTTPBadRequest' });
  }
  if (p === undefined || p === caller.projectId) {
    if (!caller.projectId && p === undefined) throw badRequest("Running without keystone AuthN requires that tenant_id is specified", { type: 'HTTPBadRequest' });
    return (p ?? caller.projectId)!;
  }
  if (!caller.isAdmin) {
    throw new ApiError('bad_request', "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges", { type: 'HTTPBadRequest' });
  }
  return p;
}

export const STANDARD_ATTRS: Record<string, Validator> = {
  name: str(255),
  description: str(255),
  project_id: str(255),
  tenant_id: str(255),
};
