/**
 * upstream's symlink middleware: a zero-byte object PUT with
 * X-Symlink-Target (and X-Symlink-Target-Account) is a link that GET and
 * HEAD follow, at most symloop_max links deep. With X-Symlink-Target-Etag the
 * link is static: the target must exist with that ETag when the link is
 * made and still have it when the link is read. The target is kept as object
 * sysmeta; the container listing learns of it through the ETag the object
 * server reports (`<md5 of ''>; symlink_target=…`), which the listing shows
 * as `symlink_path` (and `symlink_etag`, `symlink_bytes`).
 */
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, readBody, respond } from '../responses.ts';
import type { Handler, Headers, Middleware, SwiftRequest, SwiftResponse } from '../types.ts';
import { quote, unquoteBytes } from '../wsgi-strings.ts';
import { parseHashParams, rewriteListing, type ListingEntry } from './json-listing.ts';
import { subRequest } from './segments.ts';

export const TGT_OBJ = 'x-symlink-target';
export const TGT_ACCT = 'x-symlink-target-account';
const TGT_ETAG = 'x-symlink-target-etag';
const TGT_BYTES = 'x-symlink-target-bytes';
const SYS_TGT_OBJ = 'x-object-sysmeta-symlink-target';
const SYS_TGT_ACCT = 'x-object-sysmeta-symlink-target-account';
export const SYS_TGT_ETAG = 'x-object-sysmeta-symlink-target-etag';
export const SYS_TGT_BYTES = 'x-object-sysmeta-symlink-target-bytes';
/** A link that does not count towards symloop_max (object versioning's). */
export const SYMLOOP_EXTEND = 'x-object-sysmeta-symloop-extend';
/** A link whose target may be in the reserved namespace: some middleware authorized it. */
export const ALLOW_RESERVED = 'x-object-sysmeta-allow-reserved-names';
export const ALLOW_RESERVED_BACKEND = 'x-backend-allow-reserved-names';
const OVERRIDE_ETAG = 'x-backend-container-update-override-etag';
/** The object server serves a link whole whatever the Range, so the link can be followed. */
const IGNORE_RANGE = 'x-backend-ignore-range-if-metadata-present';
const MD5_EMPTY = 'd41d8cd98f00b204e9800998ecf8427e';
const DEFAULT_SYMLOOP_MAX = 2;

const TARGET_FORM = 'X-Symlink-Target header must be of the form <container name>/<object name>';

/** An error answer that ends the request (upstream raises HTTPException). */
class Refusal extends Error {
  constructor(readonly response: SwiftResponse) {
    super('symlink refused');
  }
}

const refuse = (status: number, message: string, headers: Headers = {}): never => {
  throw new Refusal({ status, headers: { 'content-type': 'text/plain', ...headers }, body: message });
};

const unquoted = (v: string) => unquoteBytes(v).toString('utf8');
const normalizeEtag = (e: string | undefined) => (e === undefined ? undefined : e.replace(/^"(.*)"$/, '$1'));
/** Python's repr of a str, as upstream's error bodies carry etags. */
const pyRepr = (s: string) => `'${s}'`;

/** Validates the link headers of a PUT and normalizes them in place; answers the target's path and etag. */
function prepareLink(req: SwiftRequest, account: string, container: string, obj: string): { path: string; etag?: string } {
  const raw = unquoted(req.headers[TGT_OBJ]);
  if (raw.startsWith('/')) refuse(412, TARGET_FORM);
  const i = raw.indexOf('/');
  if (i <= 0 || i === raw.length - 1) refuse(412, TARGET_FORM);
  const tContainer = raw.slice(0, i);
  const tObj = raw.slice(i + 1);
  req.headers[TGT_OBJ] = quote(`${tContainer}/${tObj}`);
  let tAccount = account;
  if (req.headers[TGT_ACCT] !== undefined) {
    const a = unquoted(req.headers[TGT_ACCT]);
    if (!a) refuse(412, 'Account name cannot be empty');
    if (a.includes('/')) refuse(412, 'Account name cannot contain slashes');
    req.headers[TGT_ACCT] = quote(a);
    tAccount = a;
  }
  if (tAccount === account && tContainer === container && tObj === obj) refuse(400, 'Symlink cannot target itself');
  const etag = normalizeEtag(req.headers[TGT_ETAG]);
  if (etag && /[;"\\]/.test(etag)) refuse(400, 'Bad X-Symlink-Target-Etag format');
  if (!etag && !req.headers['content-type']) req.headers['content-type'] = 'application/symlink';
  return { path: `/v1/${tAccount}/${tContainer}/${tObj}`, etag: etag || undefined };
}

/** Follows links from `req` (upstream's _recursive_get_head); `expectEtag` is the static link's etag the next hop must have. */
class Follower {
  private loops = 0;
  lastTarget?: string;

  constructor(
    private next: Handler,
    private symloopMax: number,
  ) {}

  async run(req: SwiftRequest, followSoft: boolean, expectEtag?: string): Promise<SwiftResponse> {
    const res = await this.next(req);
    const target = res.headers[SYS_TGT_OBJ];
    const linkEtag = res.headers[SYS_TGT_ETAG];
    if (target && (linkEtag || followSoft)) {
      discard(res.body);
      const found = linkEtag || normalizeEtag(res.headers.etag);
      if (expectEtag && expectEtag !== found) refuse(409, 'X-Symlink-Target-Etag headers do not match', this.lastTarget ? { 'content-location': this.lastTarget } : {});
      if (this.loops >= this.symloopMax) refuse(409, `Too many levels of symbolic links, maximum allowed is ${this.symloopMax}`);
      const p = splitSwiftPath(req.path)!;
      const account = res.headers[SYS_TGT_ACCT] ? unquoted(res.headers[SYS_TGT_ACCT]) : p.account!;
      const rest = unquoted(target).replace(/^\/+/, '');
      this.lastTarget = `/${p.version}/${quote(account)}/${quote(rest)}`;
      const reserved = (res.headers[ALLOW_RESERVED] ?? '').toLowerCase() === 'true';
      const headers: Headers = { ...req.headers };
      delete headers[ALLOW_RESERVED_BACKEND];
      if (reserved) headers[ALLOW_RESERVED_BACKEND] = 'true';
      const sub = subRequest(req, 'SYM', req.method, `/${p.version}/${account}/${rest}`, { headers, query: new URLSearchParams() });
      if (reserved) sub.env.preAuthed = true;
      if ((res.headers[SYMLOOP_EXTEND] ?? '').toLowerCase() !== 'true') this.loops++;
      return this.run(sub, true, linkEtag);
    }
    const finalEtag = normalizeEtag(res.headers.etag);
    if (finalEtag && expectEtag && finalEtag !== expectEtag) {
      discard(res.body);
      refuse(409, `Object Etag ${pyRepr(finalEtag)} does not match X-Symlink-Target-Etag header ${pyRepr(expectEtag)}`, this.lastTarget ? { 'content-location': this.lastTarget } : {});
    }
    if (this.lastTarget) res.headers['content-location'] = this.lastTarget;
    return res;
  }
}

/** The link's own headers for ?symlink=get (sysmeta shown as X-Symlink-*). */
function showLink(res: SwiftResponse): SwiftResponse {
  const pairs: [string, string][] = [
    [SYS_TGT_OBJ, TGT_OBJ],
    [SYS_TGT_ACCT, TGT_ACCT],
    [SYS_TGT_ETAG, TGT_ETAG],
    [SYS_TGT_BYTES, TGT_BYTES],
  ];
  for (const [sys, user] of pairs) {
    if (res.headers[sys] === undefined) continue;
    res.headers[user] = res.headers[sys];
    delete res.headers[sys];
  }
  return res;
}

async function handlePut(next: Handler, req: SwiftRequest, symloopMax: number, account: string, container: string, obj: string): Promise<SwiftResponse> {
  const cl = req.headers['content-length'];
  const hasBody = cl === undefined ? (await readBody(req.body, 1).catch(() => Buffer.alloc(2))).length > 0 : cl !== '0';
  if (hasBody) refuse(400, 'Symlink requests require a zero byte body');
  const { path, etag } = prepareLink(req, account, container, obj);
  if (etag) await pinTarget(next, req, symloopMax, path, etag);
  req.headers[SYS_TGT_OBJ] = req.headers[TGT_OBJ];
  delete req.headers[TGT_OBJ];
  if (req.headers[TGT_ACCT] !== undefined) {
    req.headers[SYS_TGT_ACCT] = req.headers[TGT_ACCT];
    delete req.headers[TGT_ACCT];
  }
  delete req.headers[TGT_ETAG];
  delete req.headers[TGT_BYTES];
  const override = [req.headers[OVERRIDE_ETAG] ?? MD5_EMPTY, `symlink_target=${req.headers[SYS_TGT_OBJ]}`];
  if (req.headers[SYS_TGT_ACCT] !== undefined) override.push(`symlink_target_account=${req.headers[SYS_TGT_ACCT]}`);
  if (req.headers[SYS_TGT_ETAG] !== undefined) override.push(`symlink_target_etag=${req.headers[SYS_TGT_ETAG]}`, `symlink_target_bytes=${req.headers[SYS_TGT_BYTES]}`);
  req.headers[OVERRIDE_ETAG] = override.join('; ');
  return next({ ...req, body: undefined, headers: { ...req.headers, 'content-length': '0' } });
}

/** A static link: the target must exist now with the given etag; its size (and type, when none given) go into the link. */
async function pinTarget(next: Handler, req: SwiftRequest, symloopMax: number, path: string, etag: string): Promise<void> {
  const f = new Follower(next, symloopMax);
  f.lastTarget = quote(path);
  const headers: Headers = {};
  for (const k of ['x-auth-token', 'x-service-token']) if (req.headers[k] !== undefined) headers[k] = req.headers[k];
  if (req.headers[ALLOW_RESERVED_BACKEND]) headers[ALLOW_RESERVED_BACKEND] = req.headers[ALLOW_RESERVED_BACKEND];
  const head = subRequest(req, 'SYM', 'HEAD', path, { headers });
  head.env.preAuthed = req.env.preAuthed;
  const res = await f.run(head, false, etag);
  discard(res.body);
  if (res.status === 404) refuse(409, 'X-Symlink-Target does not exist', { 'content-location': f.lastTarget! });
  if (!isSuccess(res.status)) throw new Refusal(respond(res.status));
  req.headers[SYS_TGT_BYTES] = res.headers['x-object-sysmeta-slo-size'] ?? res.headers['content-length'] ?? '0';
  req.headers[SYS_TGT_ETAG] = etag;
  if (!req.headers['content-type'] && res.headers['content-type']) req.headers['content-type'] = res.headers['content-type'];
}

async function handlePost(next: Handler, req: SwiftRequest, version: string, account: string): Promise<SwiftResponse> {
  if (req.headers[TGT_OBJ] !== undefined) refuse(400, 'A PUT request is required to set a symlink target');
  const res = await next(req);
  const target = res.headers[SYS_TGT_OBJ];
  if (!isSuccess(res.status) || !target) return res;
  discard(res.body);
  const h: Headers = { 'content-type': 'text/plain', location: `/${version}/${res.headers[SYS_TGT_ACCT] ?? quote(account)}/${target}` };
  if (res.headers[SYS_TGT_ETAG]) h[TGT_ETAG] = res.headers[SYS_TGT_ETAG];
  for (const [k, v] of Object.entries(res.headers)) if (k.startsWith('x-object-sysmeta-')) h[k] = v;
  return { status: 307, headers: h, body: 'The requested POST was applied to a symlink. POST directly to the target to apply requested metadata.' };
}

/** A listing entry of a link gains symlink_path (and, for a static link, symlink_etag and symlink_bytes). */
function describeLink(e: ListingEntry, version: string, account: string): ListingEntry {
  if (typeof e.hash !== 'string') return e;
  const { value, params } = parseHashParams(e.hash);
  let hash = value;
  let target: string | undefined;
  let acct = account;
  for (const [k, v] of params) {
    if (k === 'symlink_target') target = v;
    else if (k === 'symlink_target_account') acct = v;
    else if (k === 'symlink_target_etag') e.symlink_etag = v;
    else if (k === 'symlink_target_bytes') e.symlink_bytes = Number(v);
    else hash += `; ${k}=${v}`;
  }
  e.hash = hash;
  if (target) e.symlink_path = `/${version}/${acct}/${target}`;
  return e;
}

export function symlink(info: InfoRegistry, symloopMax = DEFAULT_SYMLOOP_MAX): Middleware {
  const max = symloopMax < 1 ? DEFAULT_SYMLOOP_MAX : symloopMax;
  info.register('symlink', { symloop_max: max, static_links: true });
  return (next) => async (req) => {
    const p = splitSwiftPath(req.path);
    if (!p?.account || !p.container) return next(req);
    try {
      if (!p.obj) {
        if (req.method !== 'GET') return await next(req);
        return await rewriteListing(
          next,
          req,
          'container',
          p.container,
          async (entries) => entries.map((e) => describeLink(e, p.version, quote(p.account!))),
          (body) => !body.includes('symlink_target='),
        );
      }
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (req.query.get('symlink') === 'get') return showLink(await next(req));
        const ignore = req.headers[IGNORE_RANGE];
        req.headers[IGNORE_RANGE] = ignore ? `${ignore}, ${SYS_TGT_OBJ}` : SYS_TGT_OBJ;
        return await new Follower(next, max).run(req, true);
      }
      if (req.method === 'PUT' && req.headers[TGT_OBJ] !== undefined) return await handlePut(next, req, max, p.account, p.container, p.obj);
      if (req.method === 'POST') return await handlePost(next, req, p.version, p.account);
      return await next(req);
    } catch (e) {
      if (e instanceof Refusal) return e.response;
      throw e;
    }
  };
}
