import assert from 'node:assert/strict';
import pino from 'pino';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { createProxyApp, type ProxyApp } from '../src/proxy/app.ts';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../src/conf.ts';
import { startStorageCluster, type StorageCluster, type StorageNode } from './storage-cluster.ts';

export { ADMIN_PASSWORD };

/** Raw HTTP against the proxy, answering fetch Responses (Swift is headers and bytes, not JSON bodies). */
export class SwiftClient {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  withToken(token: string | undefined): SwiftClient {
    return new SwiftClient(this.baseUrl, token);
  }

  req(method: string, path: string, opts: { body?: BodyInit; headers?: Record<string, string> } = {}): Promise<Response> {
    const h: Record<string, string> = { ...(opts.headers ?? {}) };
    if (this.token) h['x-auth-token'] = this.token;
    // Redirects (formpost, staticweb) are asserted, never followed.
    return fetch(this.baseUrl + path, { method, headers: h, body: opts.body, redirect: 'manual', ...(opts.body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
  }
}

export interface SwiftProject {
  id: string;
  account: string;
  /** A member (an operator role: owns the account). */
  member: SwiftClient;
  /** A reader only. */
  reader: SwiftClient;
  memberUserId: string;
  readerUserId: string;
}

export interface SwiftFixture {
  url: string;
  ks: KeystoneFixture;
  proxy: ProxyApp;
  nodes: StorageNode[];
  cluster: StorageCluster;
  anon: SwiftClient;
  project(name: string): Promise<SwiftProject>;
  close(): Promise<void>;
}

/**
 * A real Keystone and the proxy on loopback over three real storage nodes
 * (account, container and object servers each, own device directories, one
 * zone each) and rings of three replicas built by RingBuilder.
 */
export async function startSwift(opts: { config?: Partial<SwiftValues>; cluster?: { nodes?: number; devicesPerNode?: number } } = {}): Promise<SwiftFixture> {
  const ks = await startKeystone();
  const cleanups: (() => Promise<void>)[] = [() => ks.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    const cluster = await startStorageCluster({ logger, ...opts.cluster });
    cleanups.push(() => cluster.close());
    const config = proxyConfig({ ...defaultSwiftValues(), ...opts.config } as SwiftValues, { authUri: ks.url });
    const proxy = await createProxyApp({ rings: cluster.rings, config, logger, tokens: ks.tokens, version: '0.1.0' });
    cleanups.push(() => proxy.app.close());
    const url = await proxy.app.listen({ host: '127.0.0.1', port: 0 });
    const k = ks.ks;
    const client = new SwiftClient(url);
    const project = async (name: string): Promise<SwiftProject> => {
      const p = await k.resource.createProject({ name, domainId: 'default' });
      const ids: Record<string, string> = {};
      const clients: Record<string, SwiftClient> = {};
      for (const role of ['member', 'reader'] as const) {
        const u = await k.identity.createUser({ name: `${name}-${role}`, domainId: 'default', password: `${name}-pw` });
        await k.assignment.grant({ userId: u.id }, { projectId: p.id }, ks.boot.roleIds[role]);
        ids[role] = u.id;
        clients[role] = client.withToken((await ks.login(`${name}-${role}`, `${name}-pw`, { project: { id: p.id } })).token);
      }
      return { id: p.id, account: `AUTH_${p.id}`, member: clients.member, reader: clients.reader, memberUserId: ids.member, readerUserId: ids.reader };
    };
    return { url, ks, proxy, nodes: cluster.nodes, cluster, anon: client, project, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Splits a multipart/byteranges body into its parts' Content-Range, Content-Type and bytes. */
export function multipartParts(contentType: string | null, body: Buffer): { range: string; type: string; body: Buffer }[] {
  const m = /^multipart\/byteranges;\s*boundary=(\S+)$/.exec(contentType ?? '');
  assert.ok(m, `multipart content type: ${contentType}`);
  const delim = Buffer.from(`--${m[1]}`);
  const out: { range: string; type: string; body: Buffer }[] = [];
  let at = body.indexOf(delim);
  for (;;) {
    const start = at + delim.length;
    if (body.subarray(start, start + 2).toString() === '--') return out;
    const headEnd = body.indexOf('\r\n\r\n', start);
    const head = body.subarray(start + 2, headEnd).toString();
    const next = body.indexOf(delim, headEnd);
    const h = Object.fromEntries(head.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    out.push({ range: h['content-range'], type: h['content-type'], body: body.subarray(headEnd + 4, next - 2) });
    at = next;
  }
}
