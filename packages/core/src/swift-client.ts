/**
 * A Swift v1 client for services that keep data in Swift (Glance's swift
 * store, Cinder's backups), doing what upstream's drivers ask of
 * python-swiftclient: bodies streamed both ways (nothing held whole in
 * memory), every PUT checked against the MD5 of what was sent (swiftclient's
 * put_object checksum), a token renewed once when Swift refuses it (401), and
 * requests whose body can be sent again retried on transient failures.
 */
import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Where the client's token comes from: fixed (a caller's own token), or a service session that can renew it. */
export interface TokenSource {
  token(): Promise<string>;
  /** Swift refused `token` (401): answers whether asking token() again may give a different one. */
  refused(token: string): boolean;
}

/** The caller's own token (upstream's preauthtoken): nothing to renew. */
export function fixedToken(token: string): TokenSource {
  return { token: async () => token, refused: () => false };
}

/** A service's Keystone session (KeystoneSession): refused tokens are forgotten and reissued. */
export function sessionTokens(session: { tokenId(): Promise<string>; forgetToken(id: string): void }): TokenSource {
  return {
    token: () => session.tokenId(),
    refused: (token) => {
      session.forgetToken(token);
      return true;
    },
  };
}

export class SwiftError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SwiftError';
  }
}

/** Bytes (sent again on a retry) or a stream (sent once, never buffered). */
export type SwiftBody = Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array | string>;

export interface SwiftClientOptions {
  /** The account's storage URL (…/v1/AUTH_<project id>), or how to find it (from a catalog) on first use. */
  account: string | (() => Promise<string>);
  auth: TokenSource;
  /** Attempts and first backoff for requests whose body can be sent again (upstream drivers' @retry); default once. */
  retry?: { attempts: number; backoffMs: number };
  /** Swift silent this long before answering is a failure (the body that follows is not timed). */
  timeoutMs?: number;
}

export interface ObjectRead {
  stream: Readable;
  /** The whole object's size, whether or not a range was asked for. */
  size: number;
  headers: http.IncomingHttpHeaders;
}

interface RequestOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: SwiftBody;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const LIST_PAGE = 10_000;

const isBytes = (b: SwiftBody | undefined): b is Uint8Array => b instanceof Uint8Array;
const unquote = (etag: string | string[] | undefined) => (Array.isArray(etag) ? etag[0] : etag)?.replace(/"/g, '');

async function* hashed(body: Exclude<SwiftBody, Uint8Array>, md5: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    md5.update(buf);
    yield buf;
  }
}

function drain(res: http.IncomingMessage): Promise<void> {
  res.resume();
  return new Promise((resolve) => {
    if (res.complete || res.destroyed) return resolve();
    res.once('end', resolve);
    res.once('close', resolve);
  });
}

export class SwiftClient {
  private account?: Promise<string>;
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });
  private readonly retry: { attempts: number; backoffMs: number };
  private readonly timeoutMs: number;

  constructor(private readonly o: SwiftClientOptions) {
    this.retry = o.retry ?? { attempts: 1, backoffMs: 0 };
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The account URL, resolved once (a failed lookup is tried again next time). */
  accountUrl(): Promise<string> {
    const { account } = this.o;
    if (typeof account === 'string') return Promise.resolve(account.replace(/\/+$/, ''));
    this.account ??= account().then(
      (url) => url.replace(/\/+$/, ''),
      (e: unknown) => {
        this.account = undefined;
        throw e;
      },
    );
    return this.account;
  }

  /** HEAD the container and create it when missing (swiftclient's put_container), unless `create` is false: then its absence is an error. */
  async ensureContainer(container: string, o: { create?: boolean; headers?: Record<string, string> } = {}): Promise<void> {
    const head = await this.request('HEAD', container, undefined, {});
    await drain(head);
    if (head.statusCode !== 404) return this.expect(head, 'HEAD', container, [204, 200]);
    if (o.create === false) throw new SwiftError(`container ${container} does not exist in Swift`, 404);
    await this.expect(await this.request('PUT', container, undefined, { headers: o.headers }), 'PUT', container, [201, 202]);
  }

  /** Names in the container starting with `prefix`, every page; a missing container holds none. */
  async list(container: string, prefix = ''): Promise<string[]> {
    const names: string[] = [];
    for (;;) {
      const query: Record<string, string> = { format: 'json', prefix, limit: String(LIST_PAGE) };
      if (names.length) query.marker = names[names.length - 1];
      const res = await this.request('GET', container, undefined, { query });
      if (res.statusCode === 404) {
        await drain(res);
        return names;
      }
      await this.expect(res, 'GET', container, [200, 204]);
      const page = res.statusCode === 204 ? [] : ((await readJson(res)) as { name?: string; subdir?: string }[]);
      names.push(...page.flatMap((o) => (o.name === undefined ? [] : [o.name])));
      if (page.length < LIST_PAGE) return names;
    }
  }

  /**
   * Stores an object, streaming a stream body; fails unless Swift's ETag is
   * the MD5 of the bytes sent, or `expectEtag` when the object's ETag is not
   * that (an SLO manifest's). Answers the ETag.
   */
  async put(
    container: string,
    name: string,
    body: SwiftBody,
    o: { headers?: Record<string, string>; query?: Record<string, string>; signal?: AbortSignal; expectEtag?: string } = {},
  ): Promise<string> {
    const md5 = createHash('md5');
    const sent = isBytes(body) ? (md5.update(body), body) : Readable.from(hashed(body, md5));
    const res = await this.request('PUT', container, name, { headers: o.headers, query: o.query, body: sent, signal: o.signal });
    await this.expect(res, 'PUT', `${container}/${name}`, [201]);
    const etag = unquote(res.headers.etag);
    const want = o.expectEtag ?? md5.digest('hex');
    if (etag !== want) {
      throw new SwiftError(`error writing object to swift: MD5 of object in swift ${etag} is not the same as MD5 of object sent to swift ${want}`, 422);
    }
    return etag;
  }

  /** A streamed GET; a missing object is a SwiftError with status 404, an unsatisfiable range one with 416. */
  async get(container: string, name: string, o: { range?: { start: number; end: number }; query?: Record<string, string>; signal?: AbortSignal } = {}): Promise<ObjectRead> {
    const headers: Record<string, string> = o.range ? { Range: `bytes=${o.range.start}-${o.range.end}` } : {};
    const res = await this.request('GET', container, name, { headers, query: o.query, signal: o.signal });
    await this.expect(res, 'GET', `${container}/${name}`, o.range ? [206] : [200]);
    const total = res.statusCode === 206 ? /\/(\d+)$/.exec(String(res.headers['content-range']))?.[1] : res.headers['content-length'];
    const size = Number(total);
    if (total === undefined || !Number.isSafeInteger(size)) {
      res.destroy();
      throw new SwiftError(`Swift gave no size for ${container}/${name}`, 502);
    }
    return { stream: res, size, headers: res.headers };
  }

  async getBytes(container: string, name: string): Promise<Buffer> {
    const { stream } = await this.get(container, name);
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  /** The object's headers, or undefined when it does not exist. */
  async head(container: string, name: string): Promise<http.IncomingHttpHeaders | undefined> {
    const res = await this.request('HEAD', container, name, {});
    await drain(res);
    if (res.statusCode === 404) return undefined;
    await this.expect(res, 'HEAD', `${container}/${name}`, [200, 204]);
    return res.headers;
  }

  /** A missing object is already deleted. */
  async delete(container: string, name: string, o: { query?: Record<string, string> } = {}): Promise<void> {
    const res = await this.request('DELETE', container, name, { query: o.query });
    await this.expect(res, 'DELETE', `${container}/${name}`, [200, 204, 404]);
  }

  /** Closes idle connections (tests, shutdown). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** Returns when the status is one of `ok` (the body drained, but a GET's left to read), else throws with Swift's words. */
  private async expect(res: http.IncomingMessage, method: string, what: string, ok: number[]): Promise<void> {
    if (ok.includes(res.statusCode ?? 0)) {
      if (method !== 'GET') await drain(res);
      return;
    }
    let detail = '';
    for await (const c of res) if (detail.length < 300) detail += String(c);
    throw new SwiftError(`Swift answered ${res.statusCode} to ${method} ${what}${detail ? `: ${detail.trim().slice(0, 300)}` : ''}`, res.statusCode);
  }

  /**
   * One request under the token, renewed once on a 401. A body that can be
   * sent again is, on network errors and 5xx answers, up to retry.attempts
   * times with a doubling backoff; a stream is sent once.
   */
  private async request(method: string, container: string, name: string | undefined, o: RequestOptions): Promise<http.IncomingMessage> {
    const url = new URL(await this.accountUrl());
    url.pathname += `/${encodeURIComponent(container)}${name === undefined ? '' : `/${name.split('/').map(encodeURIComponent).join('/')}`}`;
    for (const [k, v] of Object.entries(o.query ?? {})) url.searchParams.set(k, v);
    const replayable = o.body === undefined || isBytes(o.body);
    const attempts = replayable ? Math.max(1, this.retry.attempts) : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        let token = await this.o.auth.token();
        let res = await this.send(method, url, token, o);
        if (res.statusCode === 401 && replayable && this.o.auth.refused(token)) {
          await drain(res);
          token = await this.o.auth.token();
          res = await this.send(method, url, token, o);
        }
        if ((res.statusCode ?? 500) < 500 || attempt >= attempts) return res;
        await drain(res);
      } catch (e) {
        if (attempt >= attempts || o.signal?.aborted) throw e;
      }
      await new Promise((r) => setTimeout(r, this.retry.backoffMs * 2 ** (attempt - 1)));
    }
  }

  private send(method: string, url: URL, token: string, o: RequestOptions): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = { ...o.headers, 'X-Auth-Token': token };
    if (isBytes(o.body)) headers['Content-Length'] = String(o.body.byteLength);
    else if (o.body !== undefined) headers['Transfer-Encoding'] = 'chunked';
    else if (method === 'PUT') headers['Content-Length'] = '0';
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, { method, headers, agent: secure ? this.httpsAgent : this.httpAgent, signal: o.signal, timeout: this.timeoutMs });
      req.once('timeout', () => req.destroy(new SwiftError(`Swift did not answer ${method} ${url.pathname} within ${this.timeoutMs} ms`, 504)));
      req.once('error', reject);
      req.once('response', (res) => {
        // From here on the caller reads at its own pace: a slow reader is not Swift's silence.
        req.setTimeout(0);
        resolve(res);
      });
      if (o.body === undefined) req.end();
      else if (isBytes(o.body)) req.end(o.body);
      else pipeline(o.body as NodeJS.ReadableStream, req).catch((e: unknown) => req.destroy(e as Error));
    });
  }
}

async function readJson(res: http.IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(c as Buffer);
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (e) {
    throw new SwiftError('Swift answered a listing that is not JSON', 502, { cause: e });
  }
}
