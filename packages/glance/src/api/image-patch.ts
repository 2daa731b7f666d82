import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { READ_ONLY } from '../domain/image.ts';
import { isReservedName, readOnly, reserved, type Change } from '../domain/image-rules.ts';
import type { ImageValidator } from './schemas.ts';

/** The two JSON Patch media types upstream accepts, and the draft of JSON Schema change each follows. */
export const PATCH_MEDIA_TYPES: Record<string, 4 | 10> = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
};

const OPERATIONS = ['add', 'remove', 'replace'] as const;

/** Only `locations` goes deeper than one level (/locations/N). */
const PATH_DEPTH: Record<string, Partial<Record<Change['op'], number>>> = { locations: { add: 2, remove: 2, replace: 1 } };

export function patchDraftOf(contentType: string | undefined): 4 | 10 {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const draft = PATCH_MEDIA_TYPES[type];
  if (draft !== undefined) return draft;
  const allowed = Object.keys(PATCH_MEDIA_TYPES).sort().join(', ');
  throw new ApiError('unsupported_media_type', `Image PATCH expects Content-Type one of: ${allowed}`, { headers: { 'Accept-Patch': allowed } });
}

/** images.py RequestDeserializer.update: the body decoded into changes, each checked on its own. */
export function parsePatch(body: unknown, draft: 4 | 10, validator: ImageValidator): Change[] {
  if (body === undefined) throw badRequest('Body expected in request.');
  if (!Array.isArray(body)) throw badRequest('Request body must be a JSON array of operation objects.');
  return body.map((raw) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('Operations must be JSON objects.');
    const r = raw as Record<string, unknown>;
    const op = draft === 10 ? operationD10(r) : operationD4(r);
    const pointer = draft === 10 ? pathD10(r) : r[op];
    const path = decodePointer(String(pointer));
    const depth = PATH_DEPTH[path[0]]?.[op] ?? 1;
    if (path.length !== depth) throw badRequest(`Invalid JSON pointer for this resource: '/${path.join('/')}'`);
    const change: Change = { op, path, draft };
    if (op !== 'remove') {
      if (!('value' in r)) throw badRequest(`Operation "${op}" requires a member named "value".`);
      change.value = r.value;
    }
    validateChange(change, validator);
    return change;
  });
}

function operationD10(r: Record<string, unknown>): Change['op'] {
  const op = r.op;
  if (op === undefined) throw badRequest(`Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  if (!(OPERATIONS as readonly unknown[]).includes(op)) {
    throw badRequest(`Invalid operation: \`${String(op)}\`. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  }
  return op as Change['op'];
}

function operationD4(r: Record<string, unknown>): Change['op'] {
  const present = OPERATIONS.filter((o) => o in r);
  if (present.length > 1) throw badRequest('Operation objects must contain only one member named "add", "remove", or "replace".');
  if (present.length === 0) throw badRequest('Operation objects must contain exactly one member named "add", "remove", or "replace".');
  return present[0];
}

function pathD10(r: Record<string, unknown>): unknown {
  if (!('path' in r)) throw badRequest("Unable to find 'path' in JSON Schema change");
  return r.path;
}

/** The restricted JSON pointers upstream accepts (_validate_json_pointer, _decode_json_pointer). */
function decodePointer(pointer: string): string[] {
  if (!pointer.startsWith('/')) throw badRequest(`Pointer \`${pointer}\` does not start with "/".`);
  if (/\/\s*?\//.test(pointer.slice(1))) throw badRequest(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw badRequest(`Pointer \`${pointer}\` end with "/".`);
  if (pointer.slice(1).trim() === '/') throw badRequest(`Pointer \`${pointer}\` does not contains valid token.`);
  if (/~[^01]/.test(pointer) || pointer.endsWith('~')) throw badRequest(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence.`);
  return pointer
    .replace(/^\/+/, '')
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~').trim());
}

/** _validate_change: read-only and reserved attributes, then the value against the image schema. */
function validateChange(change: Change, validator: ImageValidator): void {
  const root = change.path[0];
  if ((READ_ONLY as readonly string[]).includes(root)) throw readOnly(root);
  if (isReservedName(root)) throw reserved(root);
  if (change.op === 'remove') return;
  if (change.path.length === 1) validator.check({ [root]: change.value });
  // /locations/N adds one element to the only array attribute a pointer may reach into.
  else if (root === 'locations') validator.check({ [root]: [change.value] });
}
