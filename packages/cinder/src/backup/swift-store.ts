import { createHash } from 'node:crypto';

/** Objects of one Swift account, reached with a token (upstream's swiftclient Connection with preauthurl/preauthtoken). */
export interface ObjectStore {
  ensureContainer(container: string): Promise<void>;
  /** Stores the object; fails unless Swift's ETag is the MD5 of what was sent (as upstream's SwiftObjectWriter). */
  put(container: string, name: string, data: Uint8Array): Promise<void>;
  get(container: string, name: string): Promise<Buffer>;
  /** A missing object is already deleted. */
  delete(container: string, name: string): Promise<void>;
  /** Names in the container starting with prefix (every page). */
  list(container: string, prefix: string): Promise<string[]>;
}

export class SwiftError extends Error {}

export class SwiftStore implements ObjectStore {
  constructor(
    private readonly accountUrl: string,
    private readonly token: string,
    private readonly retry: { attempts: number; backoffMs: number } = { attempts: 3, backoffMs: 2000 },
  ) {}

  private url(container: string, name?: string): string {
    const obj = name === undefined ? '' : `/${name.split('/').map(encodeURIComponent).join('/')}`;
    return `${this.accountUrl}/${encodeURIComponent(container)}${obj}`;
  }

  /** Retried as upstream's driver methods are (@retry with backup_swift_retry_attempts and a doubling backoff). */
  private async call(method: string, url: string, body?: Uint8Array, ok: number[] = []): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(url, { method, headers: { 'x-auth-token': this.token }, body: body as BodyInit | undefined });
        if (res.ok || ok.includes(res.status)) return res;
        await res.arrayBuffer().catch(() => undefined);
        throw new SwiftError(`Swift answered ${res.status} to ${method} ${new URL(url).pathname}`);
      } catch (err) {
        if (attempt >= this.retry.attempts) throw err;
        await new Promise((r) => setTimeout(r, this.retry.backoffMs * 2 ** (attempt - 1)));
      }
    }
  }

  async ensureContainer(container: string): Promise<void> {
    const head = await this.call('HEAD', this.url(container), undefined, [404]);
    if (head.status === 404) await this.call('PUT', this.url(container)).then((r) => r.arrayBuffer());
  }

  async put(container: string, name: string, data: Uint8Array): Promise<void> {
    const res = await this.call('PUT', this.url(container, name), data);
    await res.arrayBuffer();
    const md5 = createHash('md5').update(data).digest('hex');
    const etag = res.headers.get('etag')?.replace(/"/g, '');
    if (etag !== md5) throw new SwiftError(`error writing object to swift, MD5 of object in swift ${etag} is not the same as MD5 of object sent to swift ${md5}`);
  }

  async get(container: string, name: string): Promise<Buffer> {
    const res = await this.call('GET', this.url(container, name));
    return Buffer.from(await res.arrayBuffer());
  }

  async delete(container: string, name: string): Promise<void> {
    await this.call('DELETE', this.url(container, name), undefined, [404]).then((r) => r.arrayBuffer());
  }

  async list(container: string, prefix: string): Promise<string[]> {
    const names: string[] = [];
    for (;;) {
      const q = new URLSearchParams({ format: 'json', prefix, ...(names.length ? { marker: names[names.length - 1] } : {}) });
      const res = await this.call('GET', `${this.url(container)}?${q}`, undefined, [404]);
      if (res.status === 404) return names;
      const page = (await res.json()) as { name: string }[];
      if (!page.length) return names;
      names.push(...page.map((o) => o.name));
    }
  }
}
