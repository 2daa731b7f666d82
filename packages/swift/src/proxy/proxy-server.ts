import { preflight, withCors, type CorsConfig } from './cors.ts';
import { plainError, respond } from './responses.ts';
import { splitSwiftPath } from './paths.ts';
import type { Handler, SwiftRequest, SwiftResponse } from './types.ts';
import { accountGetOrHead, accountPost } from './controllers/account.ts';
import type { ProxyContext } from './controllers/base.ts';
import { containerDelete, containerGetOrHead, containerPost, containerPut } from './controllers/container.ts';
import { objectDelete, objectGetOrHead, objectPost, objectPut } from './controllers/object.ts';

type Controller = (ctx: ProxyContext, req: SwiftRequest, ...names: string[]) => Promise<SwiftResponse>;

interface Route {
  fn: Controller;
  /** delay_denial: the controller authorizes once it knows the container's ACL. */
  delayDenial: boolean;
}

const ACCOUNT: Record<string, Route> = {
  GET: { fn: accountGetOrHead, delayDenial: false },
  HEAD: { fn: accountGetOrHead, delayDenial: false },
  POST: { fn: accountPost, delayDenial: false },
};
const CONTAINER: Record<string, Route> = {
  GET: { fn: containerGetOrHead, delayDenial: true },
  HEAD: { fn: containerGetOrHead, delayDenial: true },
  PUT: { fn: containerPut, delayDenial: false },
  POST: { fn: containerPost, delayDenial: false },
  DELETE: { fn: containerDelete, delayDenial: false },
};
const OBJECT: Record<string, Route> = {
  GET: { fn: objectGetOrHead, delayDenial: true },
  HEAD: { fn: objectGetOrHead, delayDenial: true },
  PUT: { fn: objectPut, delayDenial: true },
  POST: { fn: objectPost, delayDenial: true },
  DELETE: { fn: objectDelete, delayDenial: true },
};

/**
 * The proxy application at the end of the pipeline (upstream's
 * Application.handle_request): picks the account, container or object
 * controller, refuses methods it lacks with 405, and authorizes at once those
 * that do not wait for an ACL.
 */
export function proxyServer(ctx: ProxyContext, cors: CorsConfig): Handler {
  return async (req) => {
    // The reserved namespace (names with NUL) is for the pipeline's own requests only; subrequests a client steers (copy, bulk) are refused as at the front door.
    if (req.path.includes('\0') && (req.headers['x-backend-allow-reserved-names'] ?? '').toLowerCase() !== 'true') return plainError(412, 'Invalid UTF8 or contains NULL');
    const parts = splitSwiftPath(req.path);
    if (!parts || !parts.account) return respond(404);
    if (!ctx.constraints.valid_api_versions.includes(parts.version)) return respond(400, `Invalid path: ${req.path}`);
    const table = parts.obj !== undefined ? OBJECT : parts.container !== undefined ? CONTAINER : ACCOUNT;
    if (req.method === 'OPTIONS') return preflight(ctx, cors, req, [...Object.keys(table), 'OPTIONS'], parts.account, parts.container);
    const route = table[req.method];
    if (!route) {
      const r = respond(405);
      r.headers.allow = Object.keys(table).sort().join(', ');
      return r;
    }
    const names = [parts.account, parts.container, parts.obj].filter((x): x is string => x !== undefined);
    const call = async (r: SwiftRequest): Promise<SwiftResponse> => {
      if (!route.delayDenial && r.env.authorize && !r.env.preAuthed) {
        r.env.acl = undefined;
        const denied = r.env.authorize(r);
        if (denied) return denied;
      }
      if (r.env.preAuthed) r.env.authorize = undefined;
      return route.fn(ctx, r, ...names);
    };
    return parts.container === undefined ? call(req) : withCors(ctx, cors, req, parts.account, parts.container, call);
  };
}
