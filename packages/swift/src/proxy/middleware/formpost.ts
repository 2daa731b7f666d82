/**
 * upstream's formpost: a browser form POSTed as multipart/form-data to a
 * container (or a prefix in it) uploads its files without a token, when the
 * form's signature is an HMAC of path, redirect, max_file_size,
 * max_file_count and expires under one of the account's or container's
 * Temp-URL keys. Files are streamed to the object PUTs as they arrive.
 */
import { createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import { accountInfo } from '../controllers/account.ts';
import type { ProxyContext } from '../controllers/base.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { MimeInvalid, multipartParts, parseDisposition } from '../multipart.ts';
import { splitSwiftPath } from '../paths.ts';
import { readBody, statusTitle } from '../responses.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { strToWsgi } from '../wsgi-strings.ts';
import { subRequest } from './segments.ts';
import { equal, parseSig } from './tempurl.ts';

const MAX_VALUE_LENGTH = 4096;
const ALLOWED_DIGESTS = ['sha1', 'sha256', 'sha512'];

class FormInvalid extends Error {}
class FormUnauthorized extends Error {}
class FileTooLarge extends Error {}

const text = (status: number, body: string): SwiftResponse => ({ status, headers: { 'content-type': 'text/plain' }, body });

async function keysFor(ctx: ProxyContext, req: SwiftRequest): Promise<string[]> {
  const p = splitSwiftPath(req.path);
  if (!p?.account || !p.container || !ctx.constraints.valid_api_versions.includes(p.version)) return [];
  const a = await accountInfo(ctx, req, p.account);
  const c = await containerInfo(ctx, req, p.account, p.container);
  return [a.meta['temp-url-key'], a.meta['temp-url-key-2'], c.meta['temp-url-key'], c.meta['temp-url-key-2']].filter((k): k is string => Boolean(k));
}

const asInt = (v: string | undefined, err: string): number => {
  if (!v) return 0;
  if (!/^-?\d+$/.test(v.trim())) throw new FormInvalid(err);
  return Number(v);
};

function checkSignature(req: SwiftRequest, attrs: Record<string, string>, keys: string[]): void {
  if (!keys.length) throw new FormUnauthorized('invalid signature');
  if (asInt(attrs.expires, 'expired not an integer') < Date.now() / 1000) throw new FormUnauthorized('form expired');
  const body = Buffer.from([req.path, attrs.redirect ?? '', attrs.max_file_size || '0', attrs.max_file_count || '0', attrs.expires || '0'].join('\n'), 'utf8');
  const sig = parseSig(attrs.signature ?? '');
  if (!sig || !ALLOWED_DIGESTS.includes(sig.algo)) throw new FormUnauthorized('invalid signature');
  const ok = keys.some((k) => equal(createHmac(sig.algo, Buffer.from(k, 'latin1')).update(body).digest('hex'), sig.hex));
  if (!ok) throw new FormUnauthorized('invalid signature');
}

/** The file's bytes, refused past max_file_size (upstream's _CappedFileLikeObject). */
async function* capped(body: AsyncIterable<Buffer>, max: number, onExceeded: () => void): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > max) {
      onExceeded();
      throw new FileTooLarge('max_file_size exceeded');
    }
    yield c;
  }
}

interface Outcome {
  status: number;
  headers: Headers;
  body?: Buffer;
}

async function uploadFile(next: Handler, req: SwiftRequest, attrs: Record<string, string>, body: AsyncIterable<Buffer>, keys: string[]): Promise<Outcome> {
  checkSignature(req, attrs, keys);
  const maxSize = asInt(attrs.max_file_size, 'max_file_size not an integer');
  const headers: Headers = { 'transfer-encoding': 'chunked' };
  if (attrs.x_delete_at !== undefined) headers['x-delete-at'] = String(asInt(attrs.x_delete_at, 'x_delete_at not an integer: Unix timestamp required.'));
  if (attrs.x_delete_after !== undefined) headers['x-delete-after'] = String(asInt(attrs.x_delete_after, 'x_delete_after not an integer: Number of seconds required.'));
  if (attrs['content-type'] !== undefined) headers['content-type'] = attrs['content-type'] || 'application/octet-stream';
  if (attrs['content-encoding'] !== undefined) headers['content-encoding'] = attrs['content-encoding'];
  let path = req.path;
  if (!path.endsWith('/') && path.split('/').length - 1 < 4) path += '/';
  path += attrs.filename || 'filename';
  let tooLarge = false;
  const sub = subRequest(req, 'FP', 'PUT', path, { headers, body: Readable.from(capped(body, maxSize, () => (tooLarge = true))) });
  sub.env.preAuthed = true;
  const res = await next(sub);
  const resBody = await readBody(res.body).catch(() => Buffer.alloc(0));
  if (tooLarge) throw new FileTooLarge('max_file_size exceeded');
  return { status: res.status, headers: res.headers, body: resBody };
}

async function translateForm(ctx: ProxyContext, next: Handler, req: SwiftRequest, boundary: string): Promise<SwiftResponse> {
  const keys = await keysFor(ctx, req);
  const attrs: Record<string, string> = {};
  let outcome: Outcome | undefined;
  let message = '';
  let files = 0;
  for await (const part of multipartParts(req.body ?? Readable.from([]), boundary)) {
    const disp = parseDisposition(part.headers['content-disposition'] ?? '');
    if (disp.type === 'form-data' && disp.attrs.filename) {
      files++;
      if (files > asInt(attrs.max_file_count, 'max_file_count not an integer')) {
        outcome = { status: 400, headers: {} };
        message = 'max file count exceeded';
        break;
      }
      const fileAttrs: Record<string, string> = { ...attrs, filename: disp.attrs.filename };
      if (attrs['content-type'] === undefined && part.headers['content-type'] !== undefined) fileAttrs['content-type'] = part.headers['content-type'] || 'application/octet-stream';
      if (attrs['content-encoding'] === undefined && part.headers['content-encoding'] !== undefined) fileAttrs['content-encoding'] = part.headers['content-encoding'];
      outcome = await uploadFile(next, req, fileAttrs, part.body, keys);
      if (outcome.status < 200 || outcome.status >= 300) break;
      continue;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of part.body) {
      if (n < MAX_VALUE_LENGTH) chunks.push(c.subarray(0, MAX_VALUE_LENGTH - n));
      n += c.length;
    }
    if (disp.attrs.name) attrs[disp.attrs.name.toLowerCase()] = Buffer.concat(chunks).toString('utf8').replace(/[\r\n-]+$/, '');
  }
  if (!outcome) {
    outcome = { status: 400, headers: {} };
    message = 'no files to process';
  }
  const status = `${outcome.status} ${statusTitle(outcome.status)}`;
  const headers: Headers = {};
  for (const [k, v] of Object.entries(outcome.headers)) if (k.startsWith('access-control')) headers[k] = v;
  const title = (s: string) => s.replace(/\b\w/g, (c) => c.toUpperCase());
  const redirect = attrs.redirect;
  if (!redirect) {
    const failed = outcome.status < 200 || outcome.status >= 300;
    const body = failed && outcome.body?.length ? outcome.body : Buffer.from(message ? `${status}\r\nFormPost: ${title(message)}` : status);
    return { status: outcome.status, headers: { ...headers, 'content-type': 'text/plain' }, body };
  }
  const location = `${redirect}${redirect.includes('?') ? '&' : '?'}status=${outcome.status}&message=${encodeURIComponent(message)}`;
  return { status: 303, headers: { ...headers, location: strToWsgi(location) }, body: `<html><body><p><a href="${location}">Click to continue...</a></p></body></html>` };
}

export function formPost(ctx: ProxyContext, info: InfoRegistry): Middleware {
  info.register('formpost', { allowed_digests: ALLOWED_DIGESTS, deprecated_digests: ['sha1'] });
  return (next) => async (req) => {
    if (req.method !== 'POST') return next(req);
    const ct = parseDisposition(req.headers['content-type'] ?? '');
    if (ct.type !== 'multipart/form-data' || !ct.attrs.boundary) return next(req);
    try {
      return await translateForm(ctx, next, req, ct.attrs.boundary);
    } catch (e) {
      if (e instanceof MimeInvalid) return text(400, 'FormPost: invalid starting boundary');
      if (e instanceof FormInvalid || e instanceof FileTooLarge) return text(400, `FormPost: ${e.message}`);
      if (e instanceof FormUnauthorized) return text(401, `FormPost: ${e.message.replace(/\b\w/g, (c) => c.toUpperCase())}`);
      throw e;
    }
  };
}
