/**
 * upstream's container_quotas and account_quotas: an object PUT that would
 * take the container or the account past its byte or object-count quota is
 * refused with 413 before any byte is stored. Sizes are the Content-Length
 * sent (a chunked upload counts as 0, as upstream) against the cached usage.
 * Container quotas are the owner's metadata; account quotas are system
 * metadata only a reseller admin sets.
 */
import type { AccountInfo, ProxyContext } from '../controllers/base.ts';
import { accountInfo } from '../controllers/account.ts';
import { containerInfo } from '../controllers/container.ts';
import type { InfoRegistry } from '../info.ts';
import { splitSwiftPath } from '../paths.ts';
import { plainError, respond } from '../responses.ts';
import type { Middleware, SwiftRequest, SwiftResponse } from '../types.ts';

const isDigits = (v: string | undefined): v is string => v !== undefined && /^\d+$/.test(v);

function contentLength(req: SwiftRequest): number {
  const n = Number(req.headers['content-length'] ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** A quota refusal, unless the caller may not write here at all (then that denial, as upstream's bad_response). */
async function exceeded(ctx: ProxyContext, req: SwiftRequest, account: string, container: string, body: string): Promise<SwiftResponse> {
  if (req.env.authorize && !req.env.preAuthed) {
    const info = await containerInfo(ctx, req, account, container);
    req.env.acl = info.writeAcl;
    const denied = req.env.authorize(req);
    if (denied) return denied;
  }
  return plainError(413, body);
}

export function containerQuotas(ctx: ProxyContext, info: InfoRegistry): Middleware {
  info.register('container_quotas', {});
  return (next) => async (req) => {
    const p = splitSwiftPath(req.path);
    if (!p?.container || !p.account) return next(req);
    if (!p.obj && (req.method === 'PUT' || req.method === 'POST')) {
      const bytes = req.headers['x-container-meta-quota-bytes'];
      if (bytes && !isDigits(bytes)) return plainError(400, 'Invalid bytes quota.');
      const count = req.headers['x-container-meta-quota-count'];
      if (count && !isDigits(count)) return plainError(400, 'Invalid count quota.');
      return next(req);
    }
    if (!p.obj || req.method !== 'PUT') return next(req);
    const c = await containerInfo(ctx, req, p.account, p.container);
    if (c.status < 200 || c.status >= 300) return next(req);
    const quotaBytes = c.meta['quota-bytes'];
    if (isDigits(quotaBytes) && Number(quotaBytes) < c.bytes + contentLength(req)) return exceeded(ctx, req, p.account, p.container, 'Upload exceeds quota.');
    const quotaCount = c.meta['quota-count'];
    if (isDigits(quotaCount) && Number(quotaCount) < c.objectCount + 1) return exceeded(ctx, req, p.account, p.container, 'Upload exceeds quota.');
    return next(req);
  };
}

const QUOTA_TYPES = ['quota-bytes', 'quota-count'] as const;

/**
 * X-Account-Quota-Bytes/-Count, their -Policy-<name> forms (the one policy,
 * index 0) and the legacy X-Account-Meta-Quota-Bytes become account sysmeta
 * for a reseller admin; anyone else naming them is refused with 403. Returns
 * the refusal, or undefined once translated.
 */
function translateAccountQuotas(req: SwiftRequest, policyName: string): SwiftResponse | undefined {
  const legacy = req.headers['x-account-meta-quota-bytes'];
  if (legacy !== undefined && !req.headers['x-account-quota-bytes']) req.headers['x-account-quota-bytes'] = legacy;
  const legacyRemove = req.headers['x-remove-account-meta-quota-bytes'];
  if (legacyRemove !== undefined && !req.headers['x-remove-account-quota-bytes']) req.headers['x-remove-account-quota-bytes'] = legacyRemove;
  const wanted: Record<string, string> = {};
  for (const t of QUOTA_TYPES) {
    for (const [header, sysmeta] of [
      [t, t],
      [`${t}-policy-${policyName.toLowerCase()}`, `${t}-policy-0`],
    ]) {
      const v = req.headers[`x-remove-account-${header}`] ? '' : req.headers[`x-account-${header}`];
      delete req.headers[`x-account-${header}`];
      if (v !== undefined) wanted[sysmeta] = v;
    }
  }
  if (!Object.keys(wanted).length) return undefined;
  if (!req.env.resellerRequest) return respond(403);
  if (Object.values(wanted).some((v) => v && !isDigits(v))) return respond(400);
  for (const [t, v] of Object.entries(wanted)) req.headers[`x-account-sysmeta-${t}`] = v;
  return undefined;
}

/** The first quota the upload would exceed, as its refusal text. */
function accountOverQuota(a: AccountInfo, bytes: number): string | undefined {
  const over = (key: string, used: number, add: number) => isDigits(a.sysmeta[key]) && Number(a.sysmeta[key]) < used + add;
  const legacyBytes = a.sysmeta['quota-bytes'] ?? a.meta['quota-bytes'];
  if (isDigits(legacyBytes) && Number(legacyBytes) < a.bytes + bytes) return 'Upload exceeds quota.';
  if (over('quota-count', a.objectCount, 1)) return 'Upload exceeds quota.';
  // One storage policy: its usage is the account's.
  if (over('quota-bytes-policy-0', a.bytes, bytes) || over('quota-count-policy-0', a.objectCount, 1)) return 'Upload exceeds policy quota.';
  return undefined;
}

export function accountQuotas(ctx: ProxyContext, info: InfoRegistry): Middleware {
  info.register('account_quotas', {});
  return (next) => async (req) => {
    const p = splitSwiftPath(req.path);
    if (!p?.account) return next(req);
    if (!p.container) {
      if (req.method === 'POST' || req.method === 'PUT') {
        const refused = translateAccountQuotas(req, ctx.policyName);
        if (refused) return refused;
      }
      const res = await next(req);
      for (const t of QUOTA_TYPES) {
        const v = res.headers[`x-account-sysmeta-${t}`];
        if (v) res.headers[`x-account-${t}`] = v;
        const pv = res.headers[`x-account-sysmeta-${t}-policy-0`];
        if (pv) res.headers[`x-account-${t}-policy-${ctx.policyName.toLowerCase()}`] = pv;
      }
      return res;
    }
    if (req.method !== 'PUT' || !p.obj || req.env.resellerRequest) return next(req);
    const refusal = accountOverQuota(await accountInfo(ctx, req, p.account), contentLength(req));
    if (refusal) return exceeded(ctx, req, p.account, p.container, refusal);
    return next(req);
  };
}
