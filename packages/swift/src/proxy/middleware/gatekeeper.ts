import type { Middleware } from '../types.ts';

const INBOUND = /^x-(account|container|object)-sysmeta-|^x-object-transient-sysmeta-|^x-backend-/;
const OUTBOUND = /^x-(account|container|object)-sysmeta-|^x-object-transient-sysmeta-|^x-backend-/;

/**
 * upstream's gatekeeper: clients may neither set nor see system metadata or
 * backend headers; only middleware inside the pipeline uses them.
 */
export const gatekeeper: Middleware = (next) => async (req) => {
  for (const k of Object.keys(req.headers)) if (INBOUND.test(k)) delete req.headers[k];
  const res = await next(req);
  for (const k of Object.keys(res.headers)) if (OUTBOUND.test(k)) delete res.headers[k];
  return res;
};
