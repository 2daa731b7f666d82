import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultGlanceValues, glanceConfig, type GlanceValues } from './conf.ts';

const config = (over: Partial<GlanceValues>) => glanceConfig({ ...defaultGlanceValues(), ...over } as GlanceValues, { stateDir: '/srv/os', publicUrl: 'http://x', hostname: 'h' });
const MiB = 1024 * 1024;

describe('glance store configuration', () => {
  it('keeps the file store alone by default', () => {
    const c = config({});
    assert.deepEqual(c.stores, [{ id: 'file', type: 'file', dir: '/srv/os/glance/images/file' }]);
    assert.equal(c.defaultBackend, 'file');
  });

  it('default_store = swift adds a swift store beside the file one and makes it the default, with upstream-sized segments', () => {
    const c = config({ default_store: 'swift' });
    assert.deepEqual(c.stores.map((s) => `${s.id}:${s.type}`), ['file:file', 'swift:swift']);
    assert.equal(c.defaultBackend, 'swift');
    assert.deepEqual(c.stores[1], { id: 'swift', type: 'swift', container: 'glance', createContainer: true, largeObjectSize: 5120 * MiB, chunkSize: 200 * MiB, endpoint: '', endpointType: 'publicURL' });
  });

  it('default_store picks an enabled backend of that type, and refuses to disagree with default_backend', () => {
    const c = config({ enabled_backends: ['file:file', 'objects:swift'], default_store: 'swift', swift_store_container: 'images', swift_store_large_object_chunk_size: 64 });
    assert.deepEqual(c.stores.map((s) => s.id), ['file', 'objects']);
    assert.equal(c.defaultBackend, 'objects');
    assert.equal(c.stores[1].type === 'swift' && c.stores[1].chunkSize, 64 * MiB);
    assert.throws(() => config({ enabled_backends: ['file:file', 'objects:swift'], default_store: 'swift', default_backend: 'file' }), /disagree/);
    assert.throws(() => config({ enabled_backends: ['swift:file'], default_store: 'swift' }), /another type/);
    assert.throws(() => config({ enabled_backends: ['x:rbd'] }), /unsupported type "rbd" \(supported: file, swift\)/);
    assert.throws(() => config({ default_store: 'swift', swift_store_container: 'a/b' }), /invalid container/);
  });
});
