import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, badRequest, forbidden } from '@onestack/core/errors.ts';
import type { ImportRequest } from '../domain/image-data.ts';
import type { ImportMethod } from '../conf.ts';
import { ImagePolicy, imageIdOf, viewerOf, type ApiDeps } from './context.ts';

const OCTET_STREAM = 'application/octet-stream';

/** Image data (glance/api/v2/image_data.py) and interoperable import (images.py import_image). */
export function registerDataRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { images, data, config } = deps;

  app.put('/v2/images/:image_id/file', async (req, reply) => {
    requireOctetStream(req);
    const size = announcedSize(req);
    const viewer = viewerOf(deps, req);
    const image = await images.get(imageIdOf(req), viewer);
    new ImagePolicy(deps, req, image, viewer).enforce('upload_image');
    const store = header(req, 'x-image-meta-store');
    await discardRestOnError(req, data.upload(image, { data: req.body as NodeJS.ReadableStream, size, signal: abortOnDisconnect(reply) }, viewer, store));
    reply.code(204).send();
  });

  app.put('/v2/images/:image_id/stage', async (req, reply) => {
    if (!config.importMethods.includes('glance-direct')) throw new ApiError('not_found', "'glance-direct' method is not available at this site.");
    requireOctetStream(req);
    const size = announcedSize(req);
    const viewer = viewerOf(deps, req);
    const image = await images.get(imageIdOf(req), viewer);
    new ImagePolicy(deps, req, image, viewer).enforce('modify_image');
    await discardRestOnError(req, data.stage(image, { data: req.body as NodeJS.ReadableStream, size, signal: abortOnDisconnect(reply) }, viewer));
    reply.code(204).send();
  });

  app.post('/v2/images/:image_id/import', async (req, reply) => {
    const body = importBody(req.body, config.importMethods);
    const request = importRequest(req, body, config.defaultBackend);
    const viewer = viewerOf(deps, req);
    const image = await images.get(imageIdOf(req), viewer);
    const policy = new ImagePolicy(deps, req, image, viewer);
    await data.startImport(image, request, viewer, () => policy.enforce(request.method === 'copy-image' ? 'copy_image' : 'modify_image'));
    reply.code(202).send();
  });

  app.get('/v2/images/:image_id/file', async (req, reply) => {
    const viewer = viewerOf(deps, req);
    const image = await images.get(imageIdOf(req), viewer);
    if (image.status === 'deactivated' && !viewer.isAdmin) throw forbidden('The requested image has been deactivated. Image data download is forbidden.');
    const policy = new ImagePolicy(deps, req, image, viewer);
    policy.enforce('download_image');
    const prefer = preferredStores(req, deps);
    if (prefer.length) {
      policy.enforce('download_from_store');
      image.locations.sort((a, b) => Number(prefer.includes(b.store)) - Number(prefer.includes(a.store)));
    }
    const range = requestedRange(req, image.size ?? 0);
    const found = image.locations.length ? await data.download(image, range) : undefined;
    if (!found) return reply.code(204).send();
    reply.header('Content-Type', OCTET_STREAM);
    if (range) {
      reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${found.size}`);
    }
    if (image.checksum) reply.header('Content-MD5', image.checksum);
    reply.header('Content-Length', String(range ? range.end - range.start + 1 : found.size));
    return reply.send(found.stream);
  });
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Upstream accepts image data only as application/octet-stream (get_content_type). */
function requireOctetStream(req: FastifyRequest): void {
  const type = header(req, 'content-type');
  const bare = type?.split(';')[0].trim().toLowerCase();
  if (bare !== OCTET_STREAM) throw new ApiError('unsupported_media_type', `Invalid content type ${bare ?? 'None'}`);
}

/** x-openstack-image-size, else Content-Length: what quota checks count before the bytes arrive. */
function announcedSize(req: FastifyRequest): number | undefined {
  const raw = header(req, 'x-openstack-image-size') ?? header(req, 'content-length');
  if (raw === undefined) return undefined;
  if (!/^\s*\d+\s*$/.test(raw)) throw badRequest('Invalid or missing image size in request headers.');
  return Number(raw) || undefined;
}

/**
 * A refused upload (413 past the size cap, 415 …) stops reading midway; the
 * rest of the body is read and dropped so that a client that sends the whole
 * body before reading the answer (python-requests does) gets to read it.
 */
async function discardRestOnError(req: FastifyRequest, work: Promise<void>): Promise<void> {
  try {
    await work;
  } catch (e) {
    if (!req.raw.readableEnded && !req.raw.destroyed) {
      req.raw.unpipe();
      req.raw.resume();
    }
    throw e;
  }
}

/** Aborts the store write when the client goes away before the answer. */
function abortOnDisconnect(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort(new ApiError('bad_request', 'The client disconnected during the upload.'));
  });
  return ac.signal;
}

interface ImportBody {
  method: { name: ImportMethod; uri?: string };
  stores?: unknown;
  all_stores?: boolean;
  all_stores_must_succeed?: boolean;
}

/** images.py _validate_import_body. */
function importBody(body: unknown, enabled: ImportMethod[]): ImportBody {
  if (body === undefined) throw badRequest('Body expected in request.');
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!('method' in b)) throw badRequest("Import request requires a 'method' field.");
  const method = b.method as Record<string, unknown> | null;
  if (typeof method !== 'object' || method === null || !('name' in method)) throw badRequest("Import request requires a 'name' field.");
  if (!enabled.includes(method.name as ImportMethod)) throw badRequest(`Unknown import method name '${String(method.name)}'.`);
  if ('all_stores_must_succeed' in b && typeof b.all_stores_must_succeed !== 'boolean') throw badRequest("'all_stores_must_succeed' must be boolean value only");
  if ('all_stores' in b && typeof b.all_stores !== 'boolean') throw badRequest("'all_stores' must be boolean value only");
  return b as unknown as ImportBody;
}

/** utils.get_stores_from_request: `all_stores`, `stores`, the X-Image-Meta-Store header or the default store. */
function importRequest(req: FastifyRequest, body: ImportBody, defaultBackend: string): ImportRequest {
  const headerStore = header(req, 'x-image-meta-store');
  const allStores = body.all_stores ?? false;
  let stores: string[];
  if (allStores) {
    if ('stores' in body || headerStore !== undefined) throw badRequest("All_stores parameter can't be used with x-image-meta-store header or stores parameter");
    stores = [];
  } else if ('stores' in body) {
    if (headerStore !== undefined) throw badRequest("Stores parameter and x-image-meta-store header can't be both specified");
    if (!Array.isArray(body.stores)) throw badRequest("'stores' must be a list of store ids");
    stores = body.stores.map(String);
  } else {
    stores = [headerStore ?? defaultBackend];
  }
  return { method: body.method.name as ImportRequest['method'], stores, allStores, allStoresMustSucceed: body.all_stores_must_succeed ?? true };
}

/** ?prefer=a,b: stores to read from first, each one enabled (image_data.py _validate_stores). */
function preferredStores(req: FastifyRequest, deps: ApiDeps): string[] {
  const raw = (req.query as { prefer?: string | string[] }).prefer;
  const value = Array.isArray(raw) ? raw.at(-1) : raw;
  const stores = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of stores) if (!deps.config.stores.some((x) => x.id === s)) throw badRequest(`Store '${s}' is not configured.`);
  return stores;
}

/**
 * The byte range asked for (wsgi.Request.get_range_from_request): `Range:
 * bytes=a-b`, `a-` or `-n`, or the legacy Content-Range; one range only.
 */
function requestedRange(req: FastifyRequest, size: number): { start: number; end: number } | undefined {
  const range = header(req, 'range');
  if (range !== undefined) {
    if (range.includes(',')) {
      throw badRequest('Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.');
    }
    const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(range);
    if (!m || (m[1] === '' && m[2] === '') || (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1]))) throw unsatisfiable('Invalid Range header.', size);
    let start: number;
    let end: number;
    if (m[1] === '') {
      const suffix = Number(m[2]);
      start = suffix < size ? size - suffix : 0;
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start >= size) throw unsatisfiable(`Invalid start position in Range header. Start position MUST be in the inclusive range [0, ${size - 1}].`, size);
    return { start, end };
  }
  const contentRange = header(req, 'content-range');
  if (contentRange !== undefined) {
    const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(contentRange);
    if (!m || Number(m[2]) < Number(m[1])) throw unsatisfiable('Invalid Content-Range header.', size);
    const start = Number(m[1]);
    const stop = Number(m[2]) + 1;
    if (m[3] === '*' && stop > size) {
      throw unsatisfiable(`Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, ${size - 1}].`, size);
    }
    if (start >= size) throw unsatisfiable(`Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, ${size - 1}].`, size);
    return { start, end: Math.min(stop, size) - 1 };
  }
  return undefined;
}

function unsatisfiable(message: string, size: number): ApiError {
  return new ApiError('bad_request', message, { status: 416, headers: { 'Content-Range': `bytes */${size}` } });
}
