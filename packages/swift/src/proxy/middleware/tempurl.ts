import { createHmac, timingSafeEqual } from 'node:crypto';
import { accountInfo } from '../controllers/account.ts';
import type { ProxyContext } from '../controllers/base.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import type { Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { quote, strToWsgi } from '../wsgi-strings.ts';

export interface TempUrlConfig {
  methods: string[];
  allowedDigests: string[];
}

export const DEFAULT_TEMPURL: TempUrlConfig = { methods: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'], allowedDigests: ['sha1', 'sha256', 'sha512'] };

const HEX_LENGTHS: Record<number, string> = { 40: 'sha1', 64: 'sha256', 128: 'sha512' };

/** The digest and the hex signature of temp_url_sig (hex, or `<digest>:<base64>` as upstream's extract_digest_and_algorithm). */
export function parseSig(sig: string): { algo: string; hex: string } | undefined {
  const i = sig.indexOf(':');
  if (i > 0) {
    const algo = sig.slice(0, i);
    const b64 = sig.slice(i + 1).replace(/-/g, '+').replace(/_/g, '/');
    const hex = Buffer.from(b64, 'base64').toString('hex');
    return hex ? { algo, hex } : undefined;
  }
  if (!/^[0-9a-fA-F]+$/.test(sig)) return undefined;
  const algo = HEX_LENGTHS[sig.length];
  return algo ? { algo, hex: sig.toLowerCase() } : undefined;
}

function parseExpires(v: string | null, nowS: number): number | undefined {
  if (v === null) return undefined;
  let n: number;
  if (/^\d+$/.test(v)) n = Number(v);
  else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(v)) n = Date.parse(v) / 1000;
  else return 0;
  return n < nowS ? 0 : n;
}

function dispositionFormat(type: string, filename: string): string {
  return `${type}; filename="${quote(filename, ' /')}"; filename*=UTF-8''${quote(filename, '')}`;
}

function invalid(req: SwiftRequest): SwiftResponse {
  return {
    status: 401,
    headers: { 'content-type': 'text/plain', 'www-authenticate': 'Temp URL realm="tempurl"' },
    body: req.method === 'HEAD' ? undefined : '401 Unauthorized: Temp URL invalid\n',
  };
}

export const equal = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * Temporary URLs as upstream's tempurl middleware: an HMAC of method,
 * expiry and path (or `prefix:` path) under one of the account's or
 * container's Temp-URL keys admits the request without a token, to that
 * account or container only; object metadata stays hidden from such callers
 * except X-Object-Meta-Public-*.
 */
/** The tempurl that authorized a request (upstream's get_temp_url_info), kept in env.extra.tempurl. */
export interface TempUrlGrant {
  sig: string;
  expires: number;
  prefix?: string;
  inline: boolean;
}

export function tempUrl(ctx: ProxyContext, info: InfoRegistry, conf: TempUrlConfig = DEFAULT_TEMPURL): Middleware {
  info.register('tempurl', {
    methods: conf.methods,
    incoming_remove_headers: ['x-timestamp', 'x-open-expired'],
    incoming_allow_headers: [],
    outgoing_remove_headers: ['x-object-meta-*'],
    outgoing_allow_headers: ['x-object-meta-public-*'],
    allowed_digests: conf.allowedDigests,
    ...(conf.allowedDigests.includes('sha1') ? { deprecated_digests: ['sha1'] } : {}),
  });
  return (next) => async (req) => {
    if (req.method === 'OPTIONS') return next(req);
    const sigParam = req.query.get('temp_url_sig');
    const expiresParam = req.query.get('temp_url_expires');
    if (sigParam === null && expiresParam === null) return next(req);
    const expires = parseExpires(expiresParam, Date.now() / 1000);
    if (!sigParam || !expires) return invalid(req);
    const sig = parseSig(sigParam);
    if (!sig || !conf.allowedDigests.includes(sig.algo)) return invalid(req);
    const prefix = req.query.get('temp_url_prefix');
    const parts = splitSwiftPath(req.path);
    const containerRoot = (req.method === 'GET' || req.method === 'HEAD') && prefix === '';
    if (!conf.methods.includes(req.method) || !parts || parts.version !== 'v1' || !parts.account || !parts.container || (!parts.obj && !containerRoot)) return invalid(req);
    const { account, container } = parts;
    const obj = parts.obj ?? '';
    const ipRange = req.query.get('temp_url_ip_range');
    if (ipRange) return invalid(req);
    const keys: { key: string; scope: 'account' | 'container' }[] = [];
    const acct = await accountInfo(ctx, req, account);
    for (const k of ['temp-url-key', 'temp-url-key-2']) if (acct.meta[k]) keys.push({ key: acct.meta[k], scope: 'account' });
    const cont = await containerInfo(ctx, req, account, container);
    for (const k of ['temp-url-key', 'temp-url-key-2']) if (cont.meta[k]) keys.push({ key: cont.meta[k], scope: 'container' });
    if (!keys.length) return invalid(req);
    let path: string;
    if (prefix === null) path = `/v1/${account}/${container}/${obj}`;
    else {
      if (!obj.startsWith(prefix)) return invalid(req);
      path = `prefix:/v1/${account}/${container}/${prefix}`;
    }
    const methods = req.method === 'HEAD' ? ['HEAD', 'GET', 'POST', 'PUT'] : [req.method];
    let scope: 'account' | 'container' | undefined;
    for (const m of methods) {
      for (const k of keys) {
        const mac = createHmac(sig.algo, Buffer.from(k.key, 'latin1')).update(strToWsgi(`${m}\n${expiresParam}\n${path}`), 'latin1').digest('hex');
        if (equal(mac, sig.hex)) scope = k.scope;
        if (scope) break;
      }
      if (scope) break;
    }
    if (!scope) return invalid(req);
    for (const h of ['x-timestamp', 'x-open-expired', 'x-auth-token', 'x-storage-token']) delete req.headers[h];
    req.env.authorize = (r) => {
      const p = splitSwiftPath(r.path);
      const ok = p?.account === account && (scope === 'account' || p?.container === container);
      return ok ? undefined : invalid(r);
    };
    req.env.remoteUser = true;
    // What staticweb needs to sign the links of a listing it serves under a prefix tempurl.
    const signed: TempUrlGrant = { sig: sigParam, expires, prefix: prefix ?? undefined, inline: req.query.has('inline') };
    req.env.extra.tempurl = signed;
    const res = await next(req);
    const h: Headers = {};
    for (const [k, v] of Object.entries(res.headers)) if (!k.startsWith('x-object-meta-') || k.startsWith('x-object-meta-public-')) h[k] = v;
    res.headers = h;
    if ((req.method === 'GET' || req.method === 'HEAD') && res.status >= 200 && res.status < 300) {
      const filename = req.query.get('filename');
      const inline = req.query.has('inline');
      const existing = h['content-disposition'];
      let value: string;
      if (inline) value = filename ? dispositionFormat('inline', filename) : 'inline';
      else if (filename) value = dispositionFormat('attachment', filename);
      else if (existing) value = existing;
      else value = dispositionFormat('attachment', obj.replace(/\/+$/, '').split('/').pop() ?? '');
      h['content-disposition'] = strToWsgi(value).replace(/\n/g, '%0A');
      h.expires = new Date(expires * 1000).toUTCString();
    }
    return res;
  };
}
