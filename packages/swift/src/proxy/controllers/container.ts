import { cleanAcl } from '../acl.ts';
import { checkMetadata } from '../constraints.ts';
import { listingFormat, notAcceptable, renderListing } from '../listing.ts';
import { discard, plainError, readBody, respond } from '../responses.ts';
import { normalTimestamp } from '../timestamps.ts';
import type { Headers, SwiftRequest, SwiftResponse } from '../types.ts';
import { accountInfo, autocreateAccount } from './account.ts';
import {
  backendHeaders,
  backendPath,
  clientHeaders,
  containerKey,
  getOrHead,
  makeRequests,
  stripOwnerHeaders,
  transferHeaders,
  type ContainerInfo,
  type ProxyContext,
} from './base.ts';

export function parseContainerInfo(status: number, h: Headers): ContainerInfo {
  const pick = (prefix: string) => Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return {
    status,
    readAcl: h['x-container-read'],
    writeAcl: h['x-container-write'],
    objectCount: Number(h['x-container-object-count'] ?? 0),
    bytes: Number(h['x-container-bytes-used'] ?? 0),
    meta: pick('x-container-meta-'),
    sysmeta: pick('x-container-sysmeta-'),
    headers: h,
    versionsLocation: h['x-versions-location'],
    historyLocation: h['x-history-location'],
  };
}

/** HEAD of the container, cached (get_container_info). */
export async function containerInfo(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<ContainerInfo> {
  const key = containerKey(account, container);
  const cached = ctx.infoCache.get<ContainerInfo>(key);
  if (cached) return cached;
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const res = await getOrHead(ctx, ctx.rings.container, partition, nodes, 'HEAD', (n) => backendPath(n, partition, account, container), backendHeaders(req));
  if (res.backend) discard(res.backend.body);
  const info = parseContainerInfo(res.status, res.headers);
  if (res.status >= 200 && res.status < 300) ctx.infoCache.set(key, info);
  return info;
}

function nameTooLong(ctx: ProxyContext, container: string): SwiftResponse | undefined {
  const len = Buffer.byteLength(container, 'utf8');
  if (len > ctx.constraints.max_container_name_length) return plainError(400, `Container name length of ${len} longer than ${ctx.constraints.max_container_name_length}`);
  return undefined;
}

/** Validates and cleans X-Container-Read/-Write in place (clean_acl). */
function cleanAcls(req: SwiftRequest): SwiftResponse | undefined {
  for (const h of ['x-container-read', 'x-container-write']) {
    const v = req.headers[h];
    if (v === undefined) continue;
    try {
      req.headers[h] = cleanAcl(h, v);
    } catch (e) {
      return plainError(400, (e as Error).message);
    }
  }
  return undefined;
}

/** One account node per container node, so each account hears of the container (X-Account-Host …). */
function accountHeaders(ctx: ProxyContext, account: string, count: number): Headers[] {
  const { partition, nodes } = ctx.rings.account.getNodes(account);
  return Array.from({ length: count }, (_, i) => {
    const n = nodes[i % nodes.length];
    return { 'x-account-host': `${n.ip}:${n.port}`, 'x-account-partition': String(partition), 'x-account-device': n.device };
  });
}

export async function containerGetOrHead(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, container);
  if (bad) return bad;
  const format = listingFormat(req);
  if (!format) return notAcceptable();
  if (req.method === 'GET') {
    const limit = req.query.get('limit');
    if (limit !== null && /^-?\d+$/.test(limit) && Number(limit) > ctx.constraints.container_listing_limit) {
      return plainError(412, `Maximum limit is ${ctx.constraints.container_listing_limit}`);
    }
  }
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const q = new URLSearchParams(req.query);
  q.set('format', 'json');
  const res = await getOrHead(ctx, ctx.rings.container, partition, nodes, req.method as 'GET' | 'HEAD', (n) => `${backendPath(n, partition, account, container)}?${q}`, backendHeaders(req));
  if (req.env.authorize) {
    req.env.acl = res.status >= 200 && res.status < 300 ? res.headers['x-container-read'] : undefined;
    const denied = req.env.authorize(req);
    if (denied) {
      discard(res.body);
      return denied;
    }
  }
  if (res.status < 200 || res.status >= 300) {
    discard(res.body);
    return respond(res.status === 404 ? 404 : res.status);
  }
  ctx.infoCache.set(containerKey(account, container), parseContainerInfo(res.status, res.headers));
  const h = clientHeaders(res.headers);
  h['x-storage-policy'] = ctx.policyName;
  stripOwnerHeaders(ctx, req, h);
  if (req.method === 'HEAD') {
    discard(res.body);
    return { ...renderListing('container', container, [], format, h, 'HEAD'), status: 204 };
  }
  const body = await readBody(res.body);
  const entries = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>[]) : [];
  return renderListing('container', container, entries, format, h, req.method);
}

function checkPolicy(ctx: ProxyContext, req: SwiftRequest): SwiftResponse | undefined {
  const p = req.headers['x-storage-policy'];
  if (p === undefined) return undefined;
  if (p.toLowerCase() !== ctx.policyName.toLowerCase()) return plainError(400, `Invalid X-Storage-Policy '${p}'`);
  return undefined;
}

export async function containerPut(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, container) ?? checkMetadata(ctx.constraints, req, 'container') ?? cleanAcls(req) ?? checkPolicy(ctx, req);
  if (bad) return bad;
  let acct = await accountInfo(ctx, req, account);
  if (acct.status === 404 && ctx.accountAutocreate) {
    await autocreateAccount(ctx, req, account);
    acct = await accountInfo(ctx, req, account);
  }
  if (acct.status < 200 || acct.status >= 300) return respond(acct.status === 404 ? 404 : 503);
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const ts = normalTimestamp();
  const extra = transferHeaders(req, 'container');
  stripOwnerHeaders(ctx, req, extra);
  const acctHeaders = accountHeaders(ctx, account, nodes.length);
  const r = await makeRequests(ctx, ctx.rings.container, partition, nodes, 'PUT', (n) => backendPath(n, partition, account, container), (i) =>
    backendHeaders(req, { ...extra, ...acctHeaders[i], 'x-timestamp': ts, 'x-backend-storage-policy-index': '0' }),
  );
  ctx.infoCache.clear(containerKey(account, container));
  return respond(r.status);
}

export async function containerPost(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, container) ?? checkMetadata(ctx.constraints, req, 'container') ?? cleanAcls(req);
  if (bad) return bad;
  // The policy is fixed at creation; a POST naming one changes nothing.
  delete req.headers['x-storage-policy'];
  const acct = await accountInfo(ctx, req, account);
  if (acct.status === 404 && !ctx.accountAutocreate) return respond(404);
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const ts = normalTimestamp();
  const extra = transferHeaders(req, 'container');
  stripOwnerHeaders(ctx, req, extra);
  const r = await makeRequests(ctx, ctx.rings.container, partition, nodes, 'POST', (n) => backendPath(n, partition, account, container), () =>
    backendHeaders(req, { ...extra, 'x-timestamp': ts }),
  );
  ctx.infoCache.clear(containerKey(account, container));
  return respond(r.status);
}

export async function containerDelete(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<SwiftResponse> {
  const bad = nameTooLong(ctx, container);
  if (bad) return bad;
  const { partition, nodes } = ctx.rings.container.getNodes(account, container);
  const ts = normalTimestamp();
  const acctHeaders = accountHeaders(ctx, account, nodes.length);
  const r = await makeRequests(ctx, ctx.rings.container, partition, nodes, 'DELETE', (n) => backendPath(n, partition, account, container), (i) =>
    backendHeaders(req, { ...acctHeaders[i], 'x-timestamp': ts, 'x-backend-storage-policy-index': '0' }),
  );
  ctx.infoCache.clear(containerKey(account, container));
  // A container server answers 202 for a container that was already gone.
  if (r.status === 202) return respond(404);
  return respond(r.status);
}
