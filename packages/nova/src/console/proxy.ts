import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ConsoleTokens, ConsoleType } from '../domain/console-tokens.ts';
import type { ConsoleEndpoint } from '../virt/driver.ts';

/** The token a client presents: `?token=` (serial, noVNC's path) or the `token` cookie noVNC may set instead. */
function tokenOf(req: IncomingMessage): string | undefined {
  const q = new URL(req.url ?? '/', 'http://proxy').searchParams.get('token');
  if (q) return q;
  const cookie = req.headers.cookie?.split(';').map((c) => c.trim().split('=')).find(([k]) => k === 'token');
  return cookie?.[1];
}

// The package exports only core/rfb.js: its directory is two levels up.
const NOVNC_DIR = dirname(dirname(createRequire(import.meta.url).resolve('@novnc/novnc')));
const PAGE = join(dirname(fileURLToPath(import.meta.url)), 'vnc_lite.html');
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png' };

/**
 * The noVNC client for a browser: our page (the URL's vnc_lite.html, also as vnc.html and
 * vnc_auto.html, the names older console URLs use) and noVNC's own ES modules from the
 * npm package; nothing outside core/ and vendor/ is reachable.
 */
async function serveNoVnc(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://proxy').pathname));
  const file = ['/vnc_lite.html', '/vnc.html', '/vnc_auto.html'].includes(path) ? PAGE : /^\/(core|vendor)\/[^\0]+$/.test(path) && !path.includes('..') ? join(NOVNC_DIR, path) : undefined;
  const body = file && req.method === 'GET' ? await readFile(file).catch(() => undefined) : undefined;
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file!)] ?? 'application/octet-stream', 'cache-control': 'no-cache' }).end(body);
}

function refuse(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** A TCP endpoint inside another network namespace cannot be reached from here: only host-side ones. */
function dial(e: ConsoleEndpoint): Socket | undefined {
  if (e.kind === 'unix') return connect({ path: e.path });
  return e.netns ? undefined : connect({ host: e.host, port: e.port });
}

/**
 * A websocket proxy to guest consoles (upstream's nova-novncproxy and nova-serialproxy):
 * a connection is accepted only with a live token issued for this proxy's console type,
 * then bytes flow unchanged both ways (RFB for VNC, the raw tty for serial), so the
 * client speaks to QEMU itself.
 */
export class ConsoleProxy {
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('binary') ? 'binary' : false) });
  private readonly server: Server;

  constructor(
    private readonly tokens: ConsoleTokens,
    private readonly type: ConsoleType,
    private readonly logger: Logger,
  ) {
    // The serial proxy is only a websocket; the noVNC one also serves the page a browser opens.
    this.server = createServer((req, res) => {
      if (type === 'novnc') void serveNoVnc(req, res).catch(() => res.writeHead(500).end());
      else res.writeHead(404).end();
    });
    this.server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head));
  }

  async listen(o: { host: string; port: number }): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(o.port, o.host, () => resolve());
    });
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    const token = tokenOf(req);
    const auth = token ? await this.tokens.validate(token).catch(() => undefined) : undefined;
    if (!auth || auth.consoleType !== this.type) {
      this.logger.info({ type: this.type }, 'console connection refused: invalid or expired token');
      return refuse(socket, '403 Forbidden');
    }
    const backend = dial(auth.endpoint);
    if (!backend) return refuse(socket, '502 Bad Gateway');
    backend.once('error', (err) => {
      this.logger.warn({ err, instance: auth.instanceUuid }, 'console backend unreachable');
      socket.destroy();
    });
    backend.once('connect', () => {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.pipe(ws, backend));
    });
  }

  private pipe(ws: WebSocket, backend: Socket): void {
    backend.removeAllListeners('error');
    backend.on('data', (chunk) => ws.send(chunk));
    backend.on('close', () => ws.close());
    backend.on('error', () => ws.terminate());
    ws.on('message', (data) => backend.write(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)));
    ws.on('close', () => backend.destroy());
    ws.on('error', () => backend.destroy());
  }
}
