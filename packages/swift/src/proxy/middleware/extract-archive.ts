/**
 * upstream's bulk extract-archive: `PUT /v1/<account>[/<container>[/<prefix>]]
 * ?extract-archive=tar|tar.gz|tar.bz2` unpacks the body as it streams in;
 * each regular file becomes an object (its first path element the container,
 * created when missing, unless the URL names one), each PUT a subrequest with
 * the caller's authorization. The report counts files created and lists
 * failures, as upstream's.
 */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { splitSwiftPath } from '../paths.ts';
import { discard, isSuccess, statusTitle } from '../responses.ts';
import { TarError, tarEntries } from '../tar.ts';
import type { Handler, Headers, SwiftRequest } from '../types.ts';
import { quote } from '../wsgi-strings.ts';
import { subRequest } from './segments.ts';

export const EXTRACT_LIMITS = { max_containers_per_extraction: 10000, max_failed_extractions: 1000 };
const MAX_PATH_LENGTH = 256 + 1024 + 2;

export interface ExtractReport {
  doc: Record<string, unknown>;
  errors: [string, string][];
}

const statusLine = (s: number) => `${s} ${statusTitle(s)}`;

/** Fails the whole extraction with this status and message (upstream raises an HTTPException). */
class Fail extends Error {
  constructor(
    readonly status: number,
    readonly body = '',
  ) {
    super(body);
  }
}

/** Object headers from pax records, as upstream's pax_key_to_swift_header. */
function paxHeader(key: string): string | undefined {
  for (const p of ['SCHILY.xattr.user.', 'LIBARCHIVE.xattr.user.']) {
    if (!key.startsWith(p)) continue;
    const rest = key.slice(p.length);
    if (rest === 'mime_type') return 'content-type';
    if (rest.startsWith('meta.')) return `x-object-meta-${rest.slice(5).toLowerCase()}`;
  }
  return undefined;
}

/** The decompressed body; bzip2 through the system's bzip2 (Node has none). */
function decompressed(body: Readable, kind: string): { stream: AsyncIterable<Buffer>; done: () => void } {
  if (kind === 'tar') return { stream: body, done: () => undefined };
  if (kind === 'tar.gz') {
    const gunzip = createGunzip();
    body.pipe(gunzip);
    return { stream: gunzip, done: () => gunzip.destroy() };
  }
  const child = spawn('bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  child.stderr.resume();
  body.pipe(child.stdin);
  const stream = (async function* () {
    for await (const c of child.stdout) yield c as Buffer;
    const code = child.exitCode ?? (await new Promise<number | null>((r) => child.once('exit', r)));
    if (code !== 0) throw new TarError('bzip2 data is invalid');
  })();
  return { stream, done: () => child.kill() };
}

async function ensureContainer(next: Handler, req: SwiftRequest, path: string): Promise<{ created: boolean; failure?: number }> {
  const head = await next(subRequest(req, 'EA', 'HEAD', path));
  discard(head.body);
  if (isSuccess(head.status)) return { created: false };
  if (head.status !== 404) return { created: false, failure: head.status };
  const put = await next(subRequest(req, 'EA', 'PUT', path));
  discard(put.body);
  return isSuccess(put.status) ? { created: true } : { created: false, failure: put.status };
}

export async function extractArchive(next: Handler, req: SwiftRequest, kind: string, maxFileSize: number): Promise<ExtractReport> {
  const doc: Record<string, unknown> = { 'Response Status': statusLine(201), 'Response Body': '', 'Number Files Created': 0 };
  const errors: [string, string][] = [];
  const p = splitSwiftPath(req.path);
  let failedType = 400;
  let cleanup = () => {};
  try {
    if (req.headers['content-length'] === undefined && (req.headers['transfer-encoding'] ?? '').toLowerCase() !== 'chunked') throw new Fail(411);
    if (!p?.account || !req.body) throw new Fail(404);
    const base = [p.container, p.obj].filter(Boolean).join('/').replace(/\/+$/, '');
    const d = decompressed(req.body, kind);
    cleanup = d.done;
    const accessed = new Set<string>();
    let containersCreated = 0;
    for await (const entry of tarEntries(d.stream)) {
      if (errors.length >= EXTRACT_LIMITS.max_failed_extractions) break;
      if (entry.type !== '0' && entry.type !== '7') continue;
      let objPath = entry.name.replace(/^\.\//, '').replace(/^\/+/, '');
      if (base) objPath = `${base}/${objPath}`;
      if (!objPath.includes('/')) continue; // a file at the top level has no container
      const shown = quote(objPath.slice(0, MAX_PATH_LENGTH));
      const container = objPath.slice(0, objPath.indexOf('/'));
      if (entry.size > maxFileSize) {
        errors.push([shown, statusLine(413)]);
        continue;
      }
      let containerFailure: [string, string] | undefined;
      if (!accessed.has(container)) {
        const contPath = `/${p.version}/${p.account}/${container}`;
        const c = await ensureContainer(next, req, contPath);
        if (c.created && ++containersCreated > EXTRACT_LIMITS.max_containers_per_extraction) {
          throw new Fail(400, `More than ${EXTRACT_LIMITS.max_containers_per_extraction} containers to create from tar.`);
        }
        if (c.failure !== undefined) {
          if (c.failure === 401) throw new Fail(401);
          containerFailure = [quote(contPath.slice(0, MAX_PATH_LENGTH)), statusLine(c.failure)];
        }
      }
      const headers: Headers = { 'content-length': String(entry.size) };
      for (const [k, v] of Object.entries(req.headers)) if (k === 'x-delete-at' || k === 'x-delete-after' || k.startsWith('x-object-meta-')) headers[k] = v;
      for (const [k, v] of Object.entries(entry.pax)) {
        const h = paxHeader(k);
        if (h) headers[h] = Buffer.from(v, 'utf8').toString('latin1');
      }
      const res = await next(subRequest(req, 'EA', 'PUT', `/${p.version}/${p.account}/${objPath}`, { headers, body: Readable.from(entry.body) }));
      discard(res.body);
      accessed.add(container);
      if (isSuccess(res.status)) {
        (doc['Number Files Created'] as number)++;
        continue;
      }
      if (containerFailure) errors.push(containerFailure);
      if (res.status === 401) {
        errors.push([shown, statusLine(401)]);
        throw new Fail(401);
      }
      if (res.status >= 500) failedType = 502;
      errors.push([shown, statusLine(res.status)]);
    }
    if (errors.length) doc['Response Status'] = statusLine(failedType);
    else if (!doc['Number Files Created']) {
      doc['Response Status'] = statusLine(400);
      doc['Response Body'] = 'Invalid Tar File: No Valid Files';
    }
  } catch (e) {
    if (e instanceof Fail) {
      doc['Response Status'] = statusLine(e.status);
      doc['Response Body'] = e.body;
    } else if (e instanceof TarError || (e as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      doc['Response Status'] = statusLine(400);
      doc['Response Body'] = `Invalid Tar File: ${(e as Error).message}`;
    } else throw e;
  } finally {
    cleanup();
  }
  return { doc, errors };
}
