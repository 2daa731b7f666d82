import { splitSwiftPath } from '../paths.ts';
import { discard, plainError } from '../responses.ts';
import type { Headers, Middleware, SwiftRequest } from '../types.ts';
import { quote, strToWsgi, wsgiToStr } from '../wsgi-strings.ts';

/** Object headers a copy carries from its source (besides X-Object-Meta-*). */
const COPIED = ['content-type', 'content-disposition', 'content-encoding', 'content-language', 'cache-control', 'expires', 'x-delete-at', 'x-object-manifest', 'x-static-large-object', 'x-robots-tag', 'x-symlink-target', 'x-symlink-target-account', 'x-symlink-target-etag', 'x-symlink-target-bytes'];

function parseSource(value: string): { container: string; obj: string } | undefined {
  let v = wsgiToStr(value);
  try {
    v = decodeURIComponent(v);
  } catch {
    // Taken as it is.
  }
  if (v.startsWith('/')) v = v.slice(1);
  const i = v.indexOf('/');
  if (i <= 0 || i === v.length - 1) return undefined;
  return { container: v.slice(0, i), obj: v.slice(i + 1) };
}

function subEnv(req: SwiftRequest): SwiftRequest['env'] {
  return { ...req.env, acl: undefined, swiftOwner: undefined, source: 'SSC', extra: { ...req.env.extra } };
}

/**
 * Server-side copy as upstream's copy middleware: `PUT` with X-Copy-From
 * (and X-Copy-From-Account), or `COPY` with Destination, becomes a GET of the
 * source and a PUT of its body, with the source's metadata unless
 * X-Fresh-Metadata, the request's own metadata on top.
 */
export const copyMiddleware: Middleware = (next) => async (req) => {
  const parts = splitSwiftPath(req.path);
  if (!parts?.obj || !parts.container || !parts.account) return next(req);
  if (req.method === 'COPY') {
    const dest = req.headers.destination;
    if (!dest) return plainError(412, 'Destination header required');
    const d = parseSource(dest);
    if (!d) return plainError(412, 'Destination header must be of the form <container name>/<object name>');
    const destAccount = req.headers['destination-account'] ? wsgiToStr(req.headers['destination-account']) : parts.account;
    const headers: Headers = { ...req.headers, 'x-copy-from': quote(`/${parts.container}/${parts.obj}`), 'x-copy-from-account': strToWsgi(parts.account), 'content-length': '0' };
    delete headers.destination;
    delete headers['destination-account'];
    return copyPut(next, { ...req, method: 'PUT', path: `/${parts.version}/${destAccount}/${d.container}/${d.obj}`, headers, body: undefined });
  }
  if (req.method === 'PUT' && req.headers['x-copy-from'] !== undefined) return copyPut(next, req);
  return next(req);
};

async function copyPut(next: (r: SwiftRequest) => ReturnType<ReturnType<Middleware>>, req: SwiftRequest) {
  const parts = splitSwiftPath(req.path)!;
  if (req.headers['content-length'] && req.headers['content-length'] !== '0') return plainError(400, 'Copy requests require a zero byte body');
  const src = parseSource(req.headers['x-copy-from']);
  if (!src) return plainError(412, 'X-Copy-From header must be of the form <container name>/<object name>');
  const srcAccount = req.headers['x-copy-from-account'] ? wsgiToStr(req.headers['x-copy-from-account']) : parts.account!;
  const getHeaders: Headers = {};
  for (const k of ['x-auth-token', 'x-service-token', 'referer', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']) {
    const key = k.startsWith('if-') ? `x-copy-from-${k}` : k;
    if (k.startsWith('if-')) {
      if (req.headers[key] !== undefined) getHeaders[k] = req.headers[key];
    } else if (req.headers[k] !== undefined) getHeaders[k] = req.headers[k];
  }
  const query = new URLSearchParams();
  if (req.query.get('multipart-manifest') === 'get') query.set('multipart-manifest', 'get');
  if (req.query.get('symlink') === 'get') query.set('symlink', 'get');
  // The source may be one version of a versioned object; the copy is a new object (upstream drops version-id from the sink).
  const versionId = req.query.get('version-id');
  if (versionId !== null) query.set('version-id', versionId);
  const srcPath = `/${parts.version}/${srcAccount}/${src.container}/${src.obj}`;
  const srcRes = await next({ method: 'GET', path: srcPath, query, headers: getHeaders, env: subEnv(req), remoteAddr: req.remoteAddr });
  if (srcRes.status < 200 || srcRes.status >= 300) return srcRes;
  const fresh = ['true', '1', 'yes', 'on', 't', 'y'].includes((req.headers['x-fresh-metadata'] ?? '').toLowerCase());
  const headers: Headers = {};
  if (!fresh) {
    for (const [k, v] of Object.entries(srcRes.headers)) if (k.startsWith('x-object-meta-') || COPIED.includes(k)) headers[k] = v;
  } else if (srcRes.headers['content-type']) headers['content-type'] = srcRes.headers['content-type'];
  // A manifest copied as itself keeps its manifest nature; an assembled copy is a plain object.
  if (query.get('multipart-manifest') !== 'get') delete headers['x-static-large-object'];
  for (const [k, v] of Object.entries(req.headers)) {
    if (['x-copy-from', 'x-copy-from-account', 'x-fresh-metadata', 'content-length', 'transfer-encoding', 'etag'].includes(k)) continue;
    headers[k] = v;
  }
  if (srcRes.headers['content-length'] !== undefined) headers['content-length'] = srcRes.headers['content-length'];
  else headers['transfer-encoding'] = 'chunked';
  const body = srcRes.body === undefined ? undefined : typeof srcRes.body === 'string' || Buffer.isBuffer(srcRes.body) ? (await import('node:stream')).Readable.from([Buffer.from(srcRes.body)]) : srcRes.body;
  const sinkQuery = new URLSearchParams(req.query);
  sinkQuery.delete('version-id');
  const putRes = await next({ ...req, method: 'PUT', headers, body, query: sinkQuery });
  if (putRes.status >= 200 && putRes.status < 300) {
    putRes.headers['x-copied-from'] = quote(`${src.container}/${src.obj}`);
    if (srcAccount !== parts.account || req.headers['x-copy-from-account']) putRes.headers['x-copied-from-account'] = quote(srcAccount);
    if (srcRes.headers['last-modified']) putRes.headers['x-copied-from-last-modified'] = srcRes.headers['last-modified'];
  } else discard(srcRes.body);
  return putRes;
}
