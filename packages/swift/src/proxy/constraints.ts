import { plainError } from './responses.ts';
import type { SwiftRequest, SwiftResponse } from './types.ts';
import { checkUtf8Bytes } from './wsgi-strings.ts';

/** upstream's swift.conf [swift-constraints] defaults (constraints.py). */
export interface Constraints {
  max_file_size: number;
  max_meta_name_length: number;
  max_meta_value_length: number;
  max_meta_count: number;
  max_meta_overall_size: number;
  max_header_size: number;
  max_object_name_length: number;
  container_listing_limit: number;
  account_listing_limit: number;
  max_account_name_length: number;
  max_container_name_length: number;
  extra_header_count: number;
  valid_api_versions: string[];
}

export const DEFAULT_CONSTRAINTS: Constraints = {
  max_file_size: 5368709122,
  max_meta_name_length: 128,
  max_meta_value_length: 256,
  max_meta_count: 90,
  max_meta_overall_size: 4096,
  max_header_size: 8192,
  max_object_name_length: 1024,
  container_listing_limit: 10000,
  account_listing_limit: 10000,
  max_account_name_length: 256,
  max_container_name_length: 256,
  extra_header_count: 0,
  valid_api_versions: ['v1', 'v1.0'],
};

const byteLength = (s: string) => Buffer.byteLength(s, 'latin1');

/** check_metadata: header values, metadata names and sizes for one target type. */
export function checkMetadata(c: Constraints, req: SwiftRequest, target: 'account' | 'container' | 'object'): SwiftResponse | undefined {
  const prefix = `x-${target}-meta-`;
  let count = 0;
  let size = 0;
  for (const [key, value] of Object.entries(req.headers)) {
    if (byteLength(value) > c.max_header_size) return plainError(400, `Header value too long: ${key.slice(0, c.max_meta_name_length)}`);
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    if (!name) return plainError(400, 'Metadata name cannot be empty');
    if (target !== 'object' && (!checkUtf8Bytes(Buffer.from(name, 'latin1')) || (value && !checkUtf8Bytes(Buffer.from(value, 'latin1'))))) {
      return plainError(400, 'Metadata must be valid UTF-8');
    }
    count++;
    size += byteLength(name) + byteLength(value);
    if (byteLength(name) > c.max_meta_name_length) return plainError(400, `Metadata name too long: ${prefix}${name}`);
    if (byteLength(value) > c.max_meta_value_length) return plainError(400, `Metadata value longer than ${c.max_meta_value_length}: ${prefix}${name}`);
    if (count > c.max_meta_count) return plainError(400, `Too many metadata items; max ${c.max_meta_count}`);
    if (size > c.max_meta_overall_size) return plainError(400, `Total metadata too large; max ${c.max_meta_overall_size}`);
  }
  return undefined;
}

/**
 * check_delete_headers: X-Delete-After becomes X-Delete-At (now + after);
 * both must be integers in the future.
 */
export function checkDeleteHeaders(req: SwiftRequest, nowS: number): SwiftResponse | undefined {
  const after = req.headers['x-delete-after'];
  if (after !== undefined) {
    if (!/^\s*-?\d+\s*$/.test(after)) return plainError(400, 'Non-integer X-Delete-After');
    const n = parseInt(after, 10);
    if (n < 0) return plainError(400, 'X-Delete-After in past');
    req.headers['x-delete-at'] = String(Math.floor(nowS + n));
    delete req.headers['x-delete-after'];
  }
  const at = req.headers['x-delete-at'];
  if (at !== undefined) {
    if (!/^\s*-?\d+(\.\d+)?\s*$/.test(at)) return plainError(400, 'Non-integer X-Delete-At');
    const n = Math.floor(Number(at));
    if (n <= nowS) return plainError(400, 'X-Delete-At in past');
    req.headers['x-delete-at'] = String(n);
  }
  return undefined;
}

/** check_object_creation: size, length, name, content type, expiry and metadata of an object PUT. */
export function checkObjectCreation(c: Constraints, req: SwiftRequest, objectName: string, nowS: number): SwiftResponse | undefined {
  const cl = req.headers['content-length'];
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.toLowerCase() !== 'chunked') return plainError(501, `Invalid Transfer-Encoding header value`);
  if (cl !== undefined && !/^\d+$/.test(cl.trim())) return plainError(400, `Invalid Content-Length header value`);
  if (cl !== undefined && Number(cl) > c.max_file_size) return plainError(413, 'Your request is too large.');
  if (cl === undefined && te?.toLowerCase() !== 'chunked') return plainError(411, 'Missing Content-Length header.');
  const nameLen = Buffer.byteLength(objectName, 'utf8');
  if (nameLen > c.max_object_name_length) return plainError(400, `Object name length of ${nameLen} longer than ${c.max_object_name_length}`);
  if (req.headers['content-type'] === undefined) return plainError(400, 'No content type');
  const bad = checkDeleteHeaders(req, nowS);
  if (bad) return bad;
  if (!checkUtf8Bytes(Buffer.from(req.headers['content-type'], 'latin1'))) return plainError(400, 'Invalid Content-Type');
  return checkMetadata(c, req, 'object');
}
