/**
 * Small HTTP helpers shared by the storage servers. The servers are plain
 * node:http handlers: object bodies stream straight between socket and file,
 * and the backend protocol is header-driven, so a framework buys little here.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body = '',
    readonly headers: Record<string, string> = {},
  ) {
    super(body || `HTTP ${status}`);
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Request Entity Too Large',
  416: 'Requested Range Not Satisfiable',
  422: 'Unprocessable Entity',
  499: 'Client Disconnect',
  500: 'Internal Error',
  507: 'Insufficient Storage',
};

/** Upstream (swob) error bodies are a short HTML page; plain text keeps it readable and the proxy never shows them. */
export function sendError(res: ServerResponse, status: number, body?: string, headers: Record<string, string> = {}): void {
  const text = body ?? `<html><h1>${REASONS[status] ?? 'Error'}</h1><p>${REASONS[status] ?? ''}</p></html>`;
  send(res, status, text, { 'Content-Type': 'text/html; charset=UTF-8', ...headers });
}

export function send(res: ServerResponse, status: number, body: string | Buffer = '', headers: Record<string, string | number> = {}): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Length', buf.length);
  res.end(buf);
}

export interface BackendPath {
  device: string;
  partition: string;
  account?: string;
  container?: string;
  object?: string;
}

/**
 * Splits `/<device>/<partition>[/<account>[/<container>[/<object...>]]]`
 * (percent-decoded) as upstream's split_and_validate_path: the object keeps
 * its slashes, and device/partition may not be "." or "..".
 */
export function splitBackendPath(rawUrl: string, minSegs: number, maxSegs: number): BackendPath {
  const q = rawUrl.indexOf('?');
  const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new HttpError(400, 'Invalid UTF8 or contains NULL');
  }
  // Reserved names (a leading NUL, object versioning's hidden containers) are the proxy's to refuse; storage takes them (check_utf8 internal).
  if (!path.startsWith('/')) throw new HttpError(400, 'Invalid path');
  const segs = path.slice(1).split('/');
  // The last segment keeps the rest of the path (object names contain slashes).
  const parts = segs.length > maxSegs ? [...segs.slice(0, maxSegs - 1), segs.slice(maxSegs - 1).join('/')] : segs;
  if (parts.length < minSegs || parts.slice(0, minSegs).some((p) => p === '')) throw new HttpError(400, `Invalid path: ${rawPath}`);
  // Trailing empty optional segments mean absent ("/d/p/a/" is the account).
  while (parts.length > minSegs && parts[parts.length - 1] === '') parts.pop();
  if (parts.some((p) => p === '')) throw new HttpError(400, `Invalid path: ${rawPath}`);
  const [device, partition, account, container, object] = parts;
  if (device === '.' || device === '..' || partition === '.' || partition === '..') throw new HttpError(400, `Invalid device or partition: ${rawPath}`);
  return { device, partition, account, container, object };
}

export function query(rawUrl: string): URLSearchParams {
  const q = rawUrl.indexOf('?');
  return new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : '');
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function readBody(req: IncomingMessage, limit = 4 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The verb of a backend request. Node's HTTP parser (llhttp) rejects methods
 * it does not know, REPLICATE and SSYNC among them, with a 400 before any
 * handler runs; so onestack spells them `POST` + `X-Backend-Verb: REPLICATE`.
 */
export function backendVerb(req: IncomingMessage): string {
  const v = req.method === 'POST' ? req.headers['x-backend-verb'] : undefined;
  return typeof v === 'string' && v ? v.toUpperCase() : (req.method ?? '');
}

export function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

/** Keep-alive agent for server-to-server updates (object → container → account). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface BackendRequest {
  host: string; // "ip:port"
  device: string;
  partition: string;
  method: string;
  /** Already unquoted: "/a/c/o". */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
}

export interface BackendResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function quotePath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/** One request to another storage server, as upstream's http_connect + getresponse with conn/node timeouts. */
export function backendRequest(r: BackendRequest): Promise<BackendResponse> {
  const colon = r.host.lastIndexOf(':');
  const hostname = r.host.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(r.host.slice(colon + 1));
  const path = `/${encodeURIComponent(r.device)}/${encodeURIComponent(r.partition)}${quotePath(r.path)}`;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body) headers['Content-Length'] = r.body.length;
    else if (r.method !== 'GET' && r.method !== 'HEAD') headers['Content-Length'] = 0;
    const req = http.request({ hostname, port, path, method: r.method, headers, agent });
    const connTimer = setTimeout(() => req.destroy(new Error('connection timeout')), r.connTimeoutMs ?? 500);
    const nodeTimer = setTimeout(() => req.destroy(new Error('node timeout')), (r.connTimeoutMs ?? 500) + (r.nodeTimeoutMs ?? 3000));
    req.on('socket', (s) => {
      if (!s.connecting) clearTimeout(connTimer);
      else s.once('connect', () => clearTimeout(connTimer));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(nodeTimer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on('error', (e) => {
        clearTimeout(nodeTimer);
        reject(e);
      });
    });
    req.on('error', (e) => {
      clearTimeout(connTimer);
      clearTimeout(nodeTimer);
      reject(e);
    });
    req.end(r.body);
  });
}

/** Zips upstream's comma lists (X-Container-Host + X-Container-Device) into update targets. */
export function updateTargets(hosts: string | undefined, devices: string | undefined, partition: string | undefined): { host: string; device: string; partition: string }[] | null {
  if (!hosts || !partition) return [];
  const hs = hosts.split(',').map((h) => h.trim());
  const ds = (devices ?? '').split(',').map((d) => d.trim());
  if (hs.length !== ds.length) return null;
  return hs.map((host, i) => ({ host, device: ds[i], partition }));
}
