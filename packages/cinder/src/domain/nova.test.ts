import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NovaHttp } from './nova.ts';

interface Seen {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A fake Nova on loopback: records each request and answers with the status the test sets. */
function fakeNova(): Promise<{ server: Server; url: string; seen: Seen[]; answer: { status: number } }> {
  const seen: Seen[] = [];
  const answer = { status: 200 };
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: JSON.parse(data) });
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify({ events: [] }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, answer })));
}

function logger() {
  const errors: unknown[] = [];
  return { errors, error: (o: unknown) => void errors.push(o) };
}

const VOLUME = '5b0c3e3e-0d4a-4d43-9d52-5a3c1c7f0b11';
const SERVERS = ['0e1c5a5c-3e49-4f0f-8d2a-6b0c2a1e4f10', '7d6b4c1a-2f3e-4a5b-9c8d-1e2f3a4b5c6d'];

describe('NovaHttp: volume-extended through os-server-external-events', () => {
  let nova: Awaited<ReturnType<typeof fakeNova>>;
  before(async () => (nova = await fakeNova()));
  after(() => new Promise<void>((r) => nova.server.close(() => r())));

  const session = (url: () => string) => ({ tokenId: async () => 'cinder-service-token', endpointUrl: async (type: string) => (type === 'compute' ? url() : Promise.reject(new Error(`no ${type}`))) });

  it('posts one event per server with the volume as tag, at 2.51, with the service token', async () => {
    const log = logger();
    await new NovaHttp({ session: session(() => `${nova.url}/v2.1`), logger: log }).extendVolume(SERVERS, VOLUME);
    const req = nova.seen.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/v2.1/os-server-external-events');
    assert.equal(req.headers['x-auth-token'], 'cinder-service-token');
    assert.equal(req.headers['openstack-api-version'], 'compute 2.51');
    assert.deepEqual(req.body, { events: SERVERS.map((server_uuid) => ({ name: 'volume-extended', server_uuid, tag: VOLUME })) });
    assert.deepEqual(log.errors, []);
  });

  it('sends nothing for a volume without servers', async () => {
    const before = nova.seen.length;
    await new NovaHttp({ session: session(() => nova.url), logger: logger() }).extendVolume([], VOLUME);
    assert.equal(nova.seen.length, before);
  });

  it('logs, never throws, when Nova refuses, answers 207 or cannot be reached', async () => {
    for (const status of [207, 403, 500]) {
      nova.answer.status = status;
      const log = logger();
      await new NovaHttp({ session: session(() => nova.url), logger: log }).extendVolume(SERVERS.slice(0, 1), VOLUME);
      assert.equal(log.errors.length, 1, `answer ${status}`);
      assert.equal((log.errors[0] as { status: number }).status, status);
    }
    nova.answer.status = 200;
    const closed = await fakeNova();
    await new Promise<void>((r) => closed.server.close(() => r()));
    const log = logger();
    await new NovaHttp({ session: session(() => closed.url), logger: log }).extendVolume(SERVERS, VOLUME);
    assert.equal(log.errors.length, 1, 'connection refused is logged');
    const noCompute = logger();
    await new NovaHttp({ session: { tokenId: async () => 't', endpointUrl: async () => Promise.reject(new Error('no compute in the catalog')) }, logger: noCompute }).extendVolume(SERVERS, VOLUME);
    assert.match(String((noCompute.errors[0] as { err: string }).err), /no compute/);
  });
});

describe('NovaHttp: swap volume through os-volume_attachments', () => {
  let nova: Awaited<ReturnType<typeof fakeNova>>;
  before(async () => (nova = await fakeNova()));
  after(() => new Promise<void>((r) => nova.server.close(() => r())));
  const session = { tokenId: async () => 'cinder-service-token', endpointUrl: async () => `${nova.url}/v2.1/` };
  const NEW = '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';

  it('PUTs the new volume on the old one\'s attachment of the server, with the service token; only 202 is success', async () => {
    nova.answer.status = 202;
    await new NovaHttp({ session, logger: logger() }).swapVolume(SERVERS[0]!, VOLUME, NEW);
    const req = nova.seen.at(-1)!;
    assert.deepEqual([req.method, req.url, req.headers['x-auth-token']], ['PUT', `/v2.1/servers/${SERVERS[0]}/os-volume_attachments/${VOLUME}`, 'cinder-service-token']);
    assert.deepEqual(req.body, { volumeAttachment: { volumeId: NEW } });
    for (const status of [400, 409]) {
      nova.answer.status = status;
      await assert.rejects(new NovaHttp({ session, logger: logger() }).swapVolume(SERVERS[0]!, VOLUME, NEW), new RegExp(`Nova answered ${status}`));
    }
  });
});

describe('NovaHttp: os-assisted-volume-snapshots', () => {
  let nova: Awaited<ReturnType<typeof fakeNova>>;
  before(async () => (nova = await fakeNova()));
  after(() => new Promise<void>((r) => nova.server.close(() => r())));
  const client = () => new NovaHttp({ session: { tokenId: async () => 'cinder-service-token', endpointUrl: async () => `${nova.url}/v2.1` }, logger: logger() });
  const info = { snapshot_id: 'a6f3c1d2-0b4e-4c5d-8e9f-0a1b2c3d4e5f', type: 'qcow2' as const, new_file: 'snapshot-a6f3c1d2-0b4e-4c5d-8e9f-0a1b2c3d4e5f.qcow2.nova', id: 'a6f3c1d2-0b4e-4c5d-8e9f-0a1b2c3d4e5f' };

  it("posts upstream's body (volume_id, create_info) with the service token", async () => {
    nova.answer.status = 200;
    await client().createVolumeSnapshot(VOLUME, info);
    const req = nova.seen.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/v2.1/os-assisted-volume-snapshots');
    assert.equal(req.headers['x-auth-token'], 'cinder-service-token');
    assert.deepEqual(req.body, { snapshot: { volume_id: VOLUME, create_info: info } });
  });

  it('throws when Nova refuses (then Nova reports nothing)', async () => {
    for (const status of [400, 403, 409]) {
      nova.answer.status = status;
      await assert.rejects(client().createVolumeSnapshot(VOLUME, info), new RegExp(`Nova answered ${status}`));
    }
    nova.answer.status = 200;
  });
});
