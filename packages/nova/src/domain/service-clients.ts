import type { Readable } from 'node:stream';
import { ApiError, badRequest } from '@onestack/core/errors.ts';

/** Where a service token comes from (KeystoneSession fits). */
export interface TokenSource {
  tokenId(): Promise<string>;
  forgetToken?(id: string): void;
  get?(path: string): Promise<unknown>;
}

/**
 * Finds a service's public URL: configured, or from the service catalog the
 * service user's Keystone session sees (GET /v3/auth/catalog).
 */
export class Endpoints {
  private catalog?: Promise<{ type: string; endpoints: { interface: string; url: string }[] }[]>;

  constructor(
    private readonly session: TokenSource,
    private readonly configured: Record<string, string>,
  ) {}

  async url(type: string): Promise<string> {
    if (this.configured[type]) return this.configured[type].replace(/\/+$/, '');
    if (!this.session.get) throw new ApiError('service_unavailable', `no ${type} endpoint configured`);
    this.catalog ??= (this.session.get('/v3/auth/catalog') as Promise<{ catalog: { type: string; endpoints: { interface: string; url: string }[] }[] }>).then((b) => b.catalog);
    const entry = (await this.catalog.catch((e) => {
      this.catalog = undefined;
      throw e;
    })).find((e) => e.type === type);
    const ep = entry?.endpoints.find((e) => e.interface === 'public') ?? entry?.endpoints[0];
    if (!ep) {
      this.catalog = undefined;
      throw new ApiError('service_unavailable', `no ${type} endpoint in the service catalog`);
    }
    return ep.url.replace(/\/+$/, '');
  }
}

export interface HttpAnswer {
  status: number;
  body: any;
}

/** A JSON request to another service with a given token (the user's, or the service user's). */
export async function callJson(url: string, token: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method,
    headers: { 'x-auth-token': token, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

/** The Image API as Nova uses it. */
export class GlanceClient {
  constructor(private readonly endpoints: Endpoints) {}

  async getImage(token: string, id: string): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}`, token, 'GET');
  }

  /** Streams the image data into `write` (the service user downloads: the user's token may have expired by then). */
  async download(token: string, id: string): Promise<ReadableStream<Uint8Array>> {
    const res = await fetch(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}/file`, { headers: { 'x-auth-token': token } });
    if (res.status !== 200 || !res.body) throw new Error(`glance answered ${res.status} downloading image ${id}`);
    return res.body;
  }

  async createImage(token: string, body: Record<string, unknown>): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images`, token, 'POST', body);
  }

  async deleteImage(token: string, id: string): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}`, token, 'DELETE');
  }

  async upload(token: string, id: string, data: Readable): Promise<number> {
    const res = await fetch(`${await this.endpoints.url('image')}/v2/images/${id}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': token, 'content-type': 'application/octet-stream' },
      body: data as unknown as BodyInit,
      duplex: 'half',
    } as RequestInit);
    await res.body?.cancel();
    return res.status;
  }
}

/** The Networking API as Nova uses it (nova/network/neutron.py's job). */
export class NeutronClient {
  constructor(private readonly endpoints: Endpoints) {}

  async call(token: string, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('network')}/v2.0${path}`, token, method, body);
  }

  async expect(token: string, method: string, path: string, body: unknown, ...ok: number[]): Promise<any> {
    const r = await this.call(token, method, path, body);
    if (!ok.includes(r.status)) {
      const msg = (r.body as { NeutronError?: { message?: string } })?.NeutronError?.message ?? JSON.stringify(r.body);
      if (r.status === 400 || r.status === 409) throw badRequest(msg);
      throw new Error(`neutron answered ${r.status} to ${method} ${path}: ${msg}`);
    }
    return r.body;
  }
}
