/**
 * CORS as upstream's proxy controllers do it (cors_validation and OPTIONS):
 * a container's X-Container-Meta-Access-Control-Allow-Origin (space
 * separated, or '*'), -Expose-Headers and -Max-Age, plus the operator's
 * cors_allow_origin, decide which origins a browser may use; a preflight
 * OPTIONS is answered from them without authorization.
 */
import type { ProxyContext } from './controllers/base.ts';
import { containerInfo } from './controllers/container.ts';
import { respond } from './responses.ts';
import type { Handler, Headers, SwiftRequest, SwiftResponse } from './types.ts';

export interface CorsConfig {
  allowOrigin: string[];
  exposeHeaders: string[];
  strict: boolean;
}

interface CorsInfo {
  allowOrigin?: string;
  exposeHeaders?: string;
  maxAge?: string;
}

const SIMPLE_EXPOSED = ['cache-control', 'content-language', 'content-type', 'expires', 'last-modified', 'pragma', 'etag', 'x-timestamp', 'x-trans-id', 'x-openstack-request-id'];

async function corsInfo(ctx: ProxyContext, req: SwiftRequest, account: string, container: string): Promise<CorsInfo> {
  const info = await containerInfo(ctx, req, account, container);
  return { allowOrigin: info.meta['access-control-allow-origin'], exposeHeaders: info.meta['access-control-expose-headers'], maxAge: info.meta['access-control-max-age'] };
}

function originAllowed(conf: CorsConfig, cors: CorsInfo, origin: string): boolean {
  const allowed = new Set([...(cors.allowOrigin ?? '').split(' ').map((a) => a.trim()).filter(Boolean), ...conf.allowOrigin]);
  return allowed.has(origin) || allowed.has('*');
}

function addVary(h: Headers, v: string): void {
  h.vary = h.vary ? `${h.vary}, ${v}` : v;
}

/** The answer to OPTIONS: the allowed methods, and for a preflight of an allowed origin and method, the CORS grant. */
export async function preflight(ctx: ProxyContext, conf: CorsConfig, req: SwiftRequest, allowed: string[], account: string, container?: string): Promise<SwiftResponse> {
  const headers: Headers = { allow: allowed.join(', ') };
  const origin = req.headers.origin;
  // Account-level CORS does not exist upstream: an OPTIONS there only lists methods.
  if (!origin || !container) return { status: 200, headers: { ...headers, 'content-length': '0' } };
  const cors = await corsInfo(ctx, req, account, container);
  if (!originAllowed(conf, cors, origin) || !allowed.includes(req.headers['access-control-request-method'] ?? '')) return respond(401, undefined, headers);
  if (cors.allowOrigin?.trim() === '*') headers['access-control-allow-origin'] = '*';
  else {
    headers['access-control-allow-origin'] = origin;
    addVary(headers, 'Origin');
  }
  if (cors.maxAge !== undefined) headers['access-control-max-age'] = cors.maxAge;
  headers['access-control-allow-methods'] = allowed.join(', ');
  const wanted = new Set((req.headers['access-control-request-headers'] ?? '').split(',').map((h) => h.trim()).filter(Boolean));
  if (wanted.size) {
    headers['access-control-allow-headers'] = [...wanted].join(', ');
    addVary(headers, 'Access-Control-Request-Headers');
  }
  return { status: 200, headers: { ...headers, 'content-length': '0' } };
}

/** A container or object request from a browser (Origin set): the answer carries the CORS headers the origin may use. */
export async function withCors(ctx: ProxyContext, conf: CorsConfig, req: SwiftRequest, account: string, container: string, handler: Handler): Promise<SwiftResponse> {
  const origin = req.headers.origin;
  if (!origin) return handler(req);
  const cors = await corsInfo(ctx, req, account, container);
  const res = await handler(req);
  if (conf.strict && !originAllowed(conf, cors, origin)) return res;
  const h = res.headers;
  if (h['access-control-expose-headers'] === undefined) {
    const expose = new Set([...SIMPLE_EXPOSED, ...conf.exposeHeaders]);
    for (const k of Object.keys(h)) if (k.startsWith('x-container-meta') || k.startsWith('x-object-meta')) expose.add(k);
    for (const e of (cors.exposeHeaders ?? '').split(' ')) if (e.trim()) expose.add(e.trim().toLowerCase());
    h['access-control-expose-headers'] = [...expose].join(', ');
  }
  if (h['access-control-allow-origin'] === undefined) {
    if (cors.allowOrigin?.trim() === '*') h['access-control-allow-origin'] = '*';
    else {
      h['access-control-allow-origin'] = origin;
      addVary(h, 'Origin');
    }
  }
  return res;
}
