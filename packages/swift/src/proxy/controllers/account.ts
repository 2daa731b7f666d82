import { backendRequest } from '../backend-client.ts';
import { checkMetadata } from '../constraints.ts';
import { listingFormat, notAcceptable, renderListing } from '../listing.ts';
import { discard, plainError, readBody, respond } from '../responses.ts';
import { formatTimestamp, normalTimestamp } from '../timestamps.ts';
import type { Headers, SwiftRequest, SwiftResponse } from '../types.ts';
import {
  accountKey,
  backendHeaders,
  backendPath,
  clientHeaders,
  getOrHead,
  makeRequests,
  stripOwnerHeaders,
  transferHeaders,
  type AccountInfo,
  type ProxyContext,
} from './base.ts';

function pickPrefixed(h: Headers, prefix: string): Headers {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}

/** HEAD of the account, cached (get_account_info). */
export async function accountInfo(ctx: ProxyContext, req: SwiftRequest, account: string): Promise<AccountInfo> {
  const cached = ctx.infoCache.get<AccountInfo>(accountKey(account));
  if (cached) return cached;
  const { partition, nodes } = ctx.rings.account.getNodes(account);
  const res = await getOrHead(ctx, ctx.rings.account, partition, nodes, 'HEAD', (n) => backendPath(n, partition, account), backendHeaders(req));
  if (res.backend) discard(res.backend.body);
  const h = res.headers;
  const info: AccountInfo = {
    status: res.status,
    containerCount: Number(h['x-account-container-count'] ?? 0),
    objectCount: Number(h['x-account-object-count'] ?? 0),
    bytes: Number(h['x-account-bytes-used'] ?? 0),
    meta: pickPrefixed(h, 'x-account-meta-'),
    sysmeta: pickPrefixed(h, 'x-account-sysmeta-'),
    headers: h,
  };
  if (info.status >= 200 && info.status < 300) ctx.infoCache.set(accountKey(account), info);
  return info;
}

/** Creates the account on its nodes (autocreate_account), as the first container PUT of a project does. */
export async function autocreateAccount(ctx: ProxyContext, req: SwiftRequest, account: string): Promise<boolean> {
  const { partition, nodes } = ctx.rings.account.getNodes(account);
  const ts = normalTimestamp();
  const r = await makeRequests(ctx, ctx.rings.account, partition, nodes, 'PUT', (n) => backendPath(n, partition, account), () =>
    backendHeaders(req, { 'x-timestamp': ts, 'x-trans-id': req.env.transId }),
  );
  ctx.infoCache.clear(accountKey(account));
  return r.status >= 200 && r.status < 300;
}

function nameTooLong(ctx: ProxyContext, account: string): SwiftResponse | undefined {
  const len = Buffer.byteLength(account, 'utf8');
  if (len > ctx.constraints.max_account_name_length) return plainError(400, `Account name length of ${len} longer than ${ctx.constraints.max_account_name_length}`);
  return undefined;
}

function policyHeaders(ctx: ProxyContext, h: Headers): void {
  // The storage servers report per-policy stats by index; clients see the policy's name.
  for (const [k, v] of Object.entries(h)) {
    const m = /^x-account-storage-policy-(\d+)-(.*)$/.exec(k);
    if (!m || m[1] !== '0') continue;
    delete h[k];
    h[`x-account-storage-policy-${ctx.policyName.toLowerCase()}-${m[2]}`] = v;
  }
}

export async function accountGetOrHead(ctx: ProxyContext, req: SwiftRequest, account: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, account);
  if (bad) return bad;
  const format = listingFormat(req);
  if (!format) return notAcceptable();
  if (req.method === 'GET') {
    const limit = req.query.get('limit');
    if (limit !== null && (!/^-?\d+$/.test(limit) || Number(limit) > ctx.constraints.account_listing_limit)) {
      if (/^-?\d+$/.test(limit)) return plainError(412, `Maximum limit is ${ctx.constraints.account_listing_limit}`);
    }
  }
  const { partition, nodes } = ctx.rings.account.getNodes(account);
  const q = new URLSearchParams(req.query);
  q.set('format', 'json');
  const res = await getOrHead(ctx, ctx.rings.account, partition, nodes, req.method as 'GET' | 'HEAD', (n) => `${backendPath(n, partition, account)}?${q}`, backendHeaders(req));
  if (res.status === 404) {
    if (res.backend) discard(res.backend.body);
    if (res.headers['x-account-status']?.toLowerCase() === 'deleted') return respond(410);
    if (!ctx.accountAutocreate) return respond(404);
    // An account nobody wrote to yet looks empty to its owner (account_listing_response).
    const now = formatTimestamp(Date.now() / 1000);
    const h: Headers = { 'x-account-container-count': '0', 'x-account-object-count': '0', 'x-account-bytes-used': '0', 'x-timestamp': now, 'x-put-timestamp': now };
    return renderListing('account', account, [], format, h, req.method);
  }
  if (res.status < 200 || res.status >= 300) {
    return { status: res.status, headers: clientHeaders(res.headers), body: res.body };
  }
  const h = clientHeaders(res.headers);
  policyHeaders(ctx, h);
  stripOwnerHeaders(ctx, req, h);
  if (req.method === 'HEAD') {
    discard(res.body);
    const r = renderListing('account', account, [], format, h, 'HEAD');
    return { ...r, status: 204 };
  }
  const body = await readBody(res.body);
  const entries = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>[]) : [];
  return renderListing('account', account, entries, format, h, req.method);
}

export async function accountPost(ctx: ProxyContext, req: SwiftRequest, account: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, account) ?? checkMetadata(ctx.constraints, req, 'account');
  if (bad) return bad;
  const { partition, nodes } = ctx.rings.account.getNodes(account);
  const send = () => {
    const ts = normalTimestamp();
    const extra = transferHeaders(req, 'account');
    stripOwnerHeaders(ctx, req, extra);
    return makeRequests(ctx, ctx.rings.account, partition, nodes, 'POST', (n) => backendPath(n, partition, account), () => backendHeaders(req, { ...extra, 'x-timestamp': ts }));
  };
  let r = await send();
  if (r.status === 404 && ctx.accountAutocreate) {
    await autocreateAccount(ctx, req, account);
    r = await send();
  }
  ctx.infoCache.clear(accountKey(account));
  return respond(r.status === 204 ? 204 : r.status);
}

export { backendRequest };
