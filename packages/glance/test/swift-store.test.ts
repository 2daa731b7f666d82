import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { fixedToken, SwiftClient } from '@onestack/core/swift-client.ts';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { createProxyApp, type ProxyApp } from '../../swift/src/proxy/app.ts';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../../swift/src/conf.ts';
import { startStorageCluster, type StorageCluster } from '../../swift/test/storage-cluster.ts';
import { startGlance, type GlanceFixture, type Project } from './fixture.ts';

/**
 * Glance configured with `default_store = swift` over the real Swift proxy and
 * three storage nodes: images go into the `glance` container of the service
 * user's own account (the service project's), come back byte for byte, and
 * leave nothing behind when deleted.
 */
const MiB = 1024 * 1024;

describe('glance with default_store = swift', () => {
  let g: GlanceFixture;
  let cluster: StorageCluster;
  let proxy: ProxyApp;
  let p: Project;
  let service: SwiftClient;

  before(async () => {
    g = await startGlance({ config: { default_store: 'swift', swift_store_large_object_size: 2, swift_store_large_object_chunk_size: 1 } });
    const k = g.ks.ks;
    // As bootstrap grants it in `onestack up`: the glance user operates its project's account.
    const glanceUser = await k.identity.getUserByName('glance', 'default');
    const serviceProject = await k.resource.getProjectByName('service', 'default');
    await k.assignment.grant({ userId: glanceUser.id }, { projectId: serviceProject.id }, g.ks.boot.roleIds.member);
    const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
    cluster = await startStorageCluster({ logger });
    proxy = await createProxyApp({ rings: cluster.rings, config: proxyConfig({ ...defaultSwiftValues() } as SwiftValues, { authUri: g.ks.url }), logger, tokens: g.ks.tokens, version: '0.1.0' });
    const swiftUrl = await proxy.app.listen({ host: '127.0.0.1', port: 0 });
    // Swift comes up after Glance in `onestack up`: the store finds its endpoint at first use.
    await ensureEndpoints(k, { type: 'object-store', name: 'swift', regionId: 'RegionOne', urls: { public: `${swiftUrl}/v1/AUTH_%(project_id)s` } });
    const login = await g.ks.login('glance', 'glance-pw', { project: { id: serviceProject.id } });
    service = new SwiftClient({ account: `${swiftUrl}/v1/AUTH_${serviceProject.id}`, auth: fixedToken(login.token!) });
    p = await g.project('sw');
  });
  after(async () => {
    service?.close();
    await proxy?.app.close();
    await cluster?.close();
    await g?.close();
  });

  const create = async () => {
    const res = await p.member.post('/v2/images', { disk_format: 'raw', container_format: 'bare', name: 'in-swift' });
    assert.equal(res.status, 201, res.text);
    return res.body.id as string;
  };

  test('the stores show swift as the default, with its container and segment sizes', async () => {
    assert.deepEqual((await p.member.get('/v2/info/stores')).body.stores, [{ id: 'file' }, { id: 'swift', default: 'true' }]);
    const detail = (await g.admin.get('/v2/info/stores/detail')).body.stores[1];
    assert.deepEqual(detail, { id: 'swift', default: 'true', type: 'swift', properties: { container: 'glance', large_object_size: 2 * MiB, large_object_chunk_size: MiB }, weight: 0 });
  });

  test('upload, download and ranges through Swift; large images as segments; delete leaves nothing', async () => {
    const small = randomBytes(MiB + 7);
    const big = randomBytes(3 * MiB + 11);
    const ids: string[] = [];
    for (const bytes of [small, big]) {
      const id = await create();
      ids.push(id);
      const up = await p.member.upload(id, bytes);
      assert.equal(up.status, 204, await up.text());
      const img = (await p.member.get(`/v2/images/${id}`)).body;
      assert.equal(img.status, 'active');
      assert.equal(img.stores, 'swift');
      assert.equal(img.size, bytes.length);
      assert.equal(img.checksum, createHash('md5').update(bytes).digest('hex'));
      const down = await p.member.raw('GET', `/v2/images/${id}/file`);
      assert.equal(down.status, 200);
      assert.ok(Buffer.from(await down.arrayBuffer()).equals(bytes));
      const part = await p.member.raw('GET', `/v2/images/${id}/file`, undefined, { Range: `bytes=${MiB - 5}-${MiB + 5}` });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(MiB - 5, MiB + 6)));
    }
    // Objects named by image id in the service account's `glance` container; the big one as 4 segments and a manifest.
    const names = await service.list('glance');
    assert.equal(names.length, 2 + 4, names.join(' '));
    assert.ok(names.includes(ids[0]) && names.includes(ids[1]));
    assert.equal((await service.head('glance', ids[0]))?.['x-static-large-object'], undefined);
    assert.equal((await service.head('glance', ids[1]))?.['x-static-large-object'], 'True');
    const own = new SwiftClient({ account: (await service.accountUrl()).replace(/AUTH_[^/]+$/, `AUTH_${p.id}`), auth: fixedToken(p.member.token!) });
    assert.deepEqual(await own.list('glance'), [], "the member's own account holds none of it");
    own.close();
    for (const id of ids) assert.equal((await p.member.delete(`/v2/images/${id}`)).status, 204);
    assert.deepEqual(await service.list('glance'), []);
  });
});
