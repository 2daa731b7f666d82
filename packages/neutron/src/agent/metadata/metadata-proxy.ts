/**
 * The metadata proxy: 169.254.169.254:80 inside router (and DHCP) namespaces, telling the
 * metadata service which instance asks, as upstream's haproxy + neutron-metadata-agent pair
 * does. The guest is identified by the namespace's networks and the connection's source
 * address (a compute:* port with that fixed IP → device_id is the instance, project_id its
 * project); the request goes on to the metadata service with X-Instance-ID, X-Tenant-ID,
 * X-Instance-ID-Signature (HMAC-SHA256 of the instance id under the shared secret) and
 * X-Forwarded-For. Whatever the guest sent in those headers is dropped first. An address
 * that is no instance's gets 404.
 *
 * Design: the listening socket is bound inside the namespace by a short-lived helper and
 * handed back (namespace-listener.ts), and this process serves it. Upstream runs a haproxy
 * per namespace forwarding to the agent's unix socket; here the agent *is* the far end of
 * that socket, so the extra process buys nothing, and no proxy outlives onestack.
 */
import http from 'node:http';
import type { Server, Socket } from 'node:net';
import { signInstanceId } from '@onestack/core/http/instance-signature.ts';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { IpLib } from '../linux/ip-lib.ts';
import type { RouterNamespaceHooks } from '../l3/l3-agent.ts';
import type { RouterState } from '../l3/router-state.ts';
import { listenInNamespace } from './namespace-listener.ts';

export const METADATA_ADDRESS = '169.254.169.254';

export interface InstanceIdentity {
  instanceId: string;
  projectId: string;
}

/** Which instance has `ip` on one of `networkIds` (upstream: get_ports by network and fixed IP, device_owner compute:*). */
export type InstanceLookup = (query: { ip: string; networkIds: string[] }) => Promise<InstanceIdentity | undefined>;

/** The port fields the lookup needs. */
export interface PortForLookup {
  networkId: string;
  deviceOwner: string;
  deviceId: string;
  projectId: string;
  fixedIps: string[];
}

/** An InstanceLookup over a port query (the server's port list or an RPC). */
export function instanceLookupFromPorts(listPorts: (filter: { networkIds: string[]; ip: string }) => Promise<PortForLookup[]>): InstanceLookup {
  return async ({ ip, networkIds }) => {
    const ports = await listPorts({ networkIds, ip });
    const port = ports.find(
      (p) => networkIds.includes(p.networkId) && p.deviceOwner.startsWith('compute:') && p.deviceId !== '' && p.fixedIps.includes(ip),
    );
    return port ? { instanceId: port.deviceId, projectId: port.projectId } : undefined;
  };
}

export interface MetadataProxyOptions {
  ipLib: IpLib;
  logger: ExecLogger;
  /** The metadata service (Nova's, [DEFAULT] nova_metadata_host/port upstream), e.g. http://127.0.0.1:8775. */
  metadataUrl: string;
  /** [DEFAULT] metadata_proxy_shared_secret; Nova's [neutron] metadata_proxy_shared_secret must be the same. */
  sharedSecret: string;
  lookup: InstanceLookup;
  /** 80 unless a test says otherwise. */
  port?: number;
  timeoutMs?: number;
}

export interface ProxyScope {
  /** Networks whose guests this namespace serves. */
  networkIds: string[];
  /** Where 169.254.169.254/32 goes in the namespace: `lo` in a router, the DHCP port in a qdhcp namespace. */
  device: string;
}

interface Entry {
  socket: Server;
  scope: ProxyScope;
  http: http.Server;
  connections: Set<Socket>;
}

const DROPPED_REQUEST_HEADERS = new Set([
  'x-instance-id',
  'x-tenant-id',
  'x-instance-id-signature',
  'x-forwarded-for',
  'x-neutron-network-id',
  'x-neutron-router-id',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
]);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer']);

function sourceAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export class MetadataProxy implements RouterNamespaceHooks {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly target: URL;

  constructor(private readonly opts: MetadataProxyOptions) {
    this.port = opts.port ?? 80;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.target = new URL(opts.metadataUrl);
  }

  /** Namespaces served now. */
  namespaces(): string[] {
    return [...this.entries.keys()];
  }

  /** Serves metadata in `namespace` for `scope`'s networks; idempotent, and updates the networks. */
  async ensure(namespace: string, scope: ProxyScope): Promise<void> {
    const running = this.pending.get(namespace);
    if (running) await running;
    const entry = this.entries.get(namespace);
    if (entry?.socket.listening) {
      entry.scope = scope;
      return;
    }
    const start = this.start(namespace, scope).finally(() => this.pending.delete(namespace));
    this.pending.set(namespace, start);
    await start;
  }

  private async start(namespace: string, scope: ProxyScope): Promise<void> {
    const ip = this.opts.ipLib;
    const cidr = `${METADATA_ADDRESS}/32`;
    const [link] = await ip.addrList(namespace, scope.device);
    if (!link?.addr_info.some((a) => `${a.local}/${a.prefixlen}` === cidr)) {
      await ip.addrAdd(namespace, scope.device, cidr, { mayExist: true });
    }
    const socket = await listenInNamespace(ip, this.opts.logger, namespace, { host: METADATA_ADDRESS, port: this.port });
    const entry: Entry = { socket, scope, http: http.createServer(), connections: new Set() };
    entry.http.on('request', (req, res) => void this.handle(entry, req, res));
    entry.http.requestTimeout = this.timeoutMs;
    socket.on('connection', (conn: Socket) => {
      entry.connections.add(conn);
      conn.once('close', () => entry.connections.delete(conn));
      entry.http.emit('connection', conn);
    });
    this.entries.set(namespace, entry);
  }

  /** Stops serving `namespace` (before it is deleted: the socket would keep it alive). */
  async stop(namespace: string): Promise<void> {
    const entry = this.entries.get(namespace);
    if (!entry) return;
    this.entries.delete(namespace);
    // close() waits for open connections (an idle keep-alive would hold it forever): end them too.
    const closed = new Promise<void>((resolve) => entry.socket.close(() => resolve()));
    for (const conn of entry.connections) conn.destroy();
    await closed;
  }

  async close(): Promise<void> {
    for (const ns of [...this.entries.keys()]) await this.stop(ns);
  }

  // L3 agent hooks: a router serves the guests of every network it has an interface on.
  async routerReady(namespace: string, router: RouterState): Promise<void> {
    if (router.interfaces.length === 0) return this.stop(namespace);
    await this.ensure(namespace, { networkIds: [...new Set(router.interfaces.map((i) => i.networkId))], device: 'lo' });
  }

  async routerRemoving(namespace: string): Promise<void> {
    await this.stop(namespace);
  }

  private async handle(entry: Entry, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ip = sourceAddress(req.socket);
    let identity: InstanceIdentity | undefined;
    try {
      identity = await this.opts.lookup({ ip, networkIds: entry.scope.networkIds });
    } catch (err) {
      this.opts.logger.warn({ ip, err: (err as Error).message }, 'metadata instance lookup failed');
      return plain(res, 500, 'An unknown error has occurred.');
    }
    if (!identity) return plain(res, 404, 'Not Found');

    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!DROPPED_REQUEST_HEADERS.has(name) && value !== undefined) headers[name] = value;
    headers['x-forwarded-for'] = ip;
    headers['x-instance-id'] = identity.instanceId;
    headers['x-tenant-id'] = identity.projectId;
    headers['x-instance-id-signature'] = signInstanceId(this.opts.sharedSecret, identity.instanceId);
    const base = this.target.pathname.replace(/\/$/, '');
    const upstream = http.request(
      {
        protocol: this.target.protocol,
        hostname: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: base + (req.url ?? '/'),
        headers,
        timeout: this.timeoutMs,
      },
      (answer) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
        res.writeHead(answer.statusCode ?? 500, out);
        answer.pipe(res);
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error('metadata service timed out')));
    upstream.on('error', (err) => {
      this.opts.logger.warn({ ip, err: err.message }, 'metadata service unreachable');
      if (!res.headersSent) plain(res, 500, 'An unknown error has occurred.');
      else res.destroy();
    });
    req.pipe(upstream);
  }
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8' });
  res.end(`${text}\n`);
}
