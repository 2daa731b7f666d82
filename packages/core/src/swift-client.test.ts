import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fixedToken, SwiftClient, SwiftError, type TokenSource } from './swift-client.ts';

/**
 * The client's own rules against a scripted stand-in for Swift on loopback (the
 * real proxy is exercised by Glance's swift store and Cinder's backup tests).
 */
describe('SwiftClient', () => {
  let server: http.Server;
  let base: string;
  const seen: { method: string; url: string; token: string; body: string }[] = [];
  let script: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void = () => undefined;

  before(async () => {
    server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        seen.push({ method: req.method!, url: req.url!, token: String(req.headers['x-auth-token']), body: body.toString() });
        script(req, body, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/AUTH_p`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');
  const renewing = (): TokenSource & { issued: number } => {
    const src = {
      issued: 1,
      token: async () => `tok-${src.issued}`,
      refused: (t: string) => {
        if (t === `tok-${src.issued}`) src.issued++;
        return true;
      },
    };
    return src;
  };

  it('renews a refused token once and sends the bytes again', async () => {
    seen.length = 0;
    script = (req, body, res) => {
      if (req.headers['x-auth-token'] === 'tok-1') return void res.writeHead(401).end('no');
      res.writeHead(201, { etag: `"${md5(body)}"` }).end();
    };
    const client = new SwiftClient({ account: base, auth: renewing() });
    assert.equal(await client.put('c', 'a/b c', Buffer.from('hello')), md5('hello'));
    assert.deepEqual(seen.map((s) => [s.method, s.url, s.token, s.body]), [
      ['PUT', '/v1/AUTH_p/c/a/b%20c', 'tok-1', 'hello'],
      ['PUT', '/v1/AUTH_p/c/a/b%20c', 'tok-2', 'hello'],
    ]);
    client.close();
  });

  it('streams a body in chunks and refuses an ETag that is not the MD5 of what was sent', async () => {
    script = (_req, body, res) => res.writeHead(201, { etag: body.toString() === 'abc' ? md5('abc') : 'wrong' }).end();
    const client = new SwiftClient({ account: base, auth: fixedToken('t') });
    assert.equal(await client.put('c', 'o', Readable.from([Buffer.from('a'), 'b', Buffer.from('c')])), md5('abc'));
    await assert.rejects(client.put('c', 'o', Readable.from(['x'])), (e: unknown) => e instanceof SwiftError && /MD5 of object in swift wrong/.test(e.message));
    client.close();
  });

  it('retries bytes on 5xx with backoff but sends a stream once; a fixed token is not retried on 401', async () => {
    let calls = 0;
    script = (_req, body, res) => {
      calls++;
      if (calls < 3) return void res.writeHead(503).end();
      res.writeHead(201, { etag: md5(body) }).end();
    };
    const client = new SwiftClient({ account: base, auth: fixedToken('t'), retry: { attempts: 3, backoffMs: 1 } });
    await client.put('c', 'o', Buffer.from('x'));
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(client.put('c', 'o', Readable.from(['x'])), (e: unknown) => (e as SwiftError).status === 503);
    assert.equal(calls, 1);
    seen.length = 0;
    script = (_req, _body, res) => res.writeHead(401).end();
    await assert.rejects(client.head('c', 'o'), (e: unknown) => (e as SwiftError).status === 401);
    assert.equal(seen.length, 1);
    client.close();
  });

  it('lists every page, reads ranges with the whole size, and treats missing objects and containers as upstream', async () => {
    const names = Array.from({ length: 10_001 }, (_, i) => `o${String(i).padStart(5, '0')}`);
    script = (req, _body, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/v1/AUTH_p/gone' || url.pathname === '/v1/AUTH_p/c/missing') return void res.writeHead(404).end();
      if (url.pathname === '/v1/AUTH_p/c' && req.method === 'GET') {
        const marker = url.searchParams.get('marker') ?? '';
        const page = names.filter((n) => n > marker && n.startsWith(url.searchParams.get('prefix')!)).slice(0, Number(url.searchParams.get('limit')));
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page.map((name) => ({ name }))));
      }
      if (req.method === 'DELETE') return void res.writeHead(204).end();
      res.writeHead(206, { 'content-range': 'bytes 2-4/10' }).end('234');
    };
    const client = new SwiftClient({ account: async () => `${base}/`, auth: fixedToken('t') });
    assert.deepEqual(await client.list('c', 'o'), names);
    assert.deepEqual(await client.list('gone'), []);
    const r = await client.get('c', 'obj', { range: { start: 2, end: 4 } });
    assert.equal(r.size, 10);
    assert.equal(await new Response(Readable.toWeb(r.stream) as ReadableStream).text(), '234');
    await assert.rejects(client.get('c', 'missing'), (e: unknown) => (e as SwiftError).status === 404);
    assert.equal(await client.head('c', 'missing'), undefined);
    await client.delete('c', 'missing');
    client.close();
  });
});
