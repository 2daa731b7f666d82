import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type Project } from './fixture.ts';

/** 3.15: volume metadata carries upstream's ETag (md5 of Python's JSON of it); an update with a stale If-Match is a 412. */
describe('cinder volume metadata ETags (3.15)', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
  let p: Project;
  before(async () => {
    f = await startCinder();
    p = await f.project('etags');
  });
  after(() => f?.close());

  test('ETag on GET, If-Match checked on PUT from 3.15, ignored before', async () => {
    const v = (await p.member.post('/volumes', { volume: { size: 1, metadata: { a: 'b', k: 'v\u00e9' } } })).body.volume;
    await f.waitFor(p.member, 'volumes', v.id, ['available']);
    const path = `/volumes/${v.id}/metadata`;
    assert.equal((await p.member.at('3.14').get(path)).headers.get('etag'), null);
    const got = await p.member.at('3.15').get(path);
    // hashlib.md5(json.dumps({'metadata': {'a': 'b', 'k': 'v\u00e9'}}).encode()).hexdigest()
    assert.equal(got.headers.get('etag'), '23475c88224449123f69fd947fa57eb3');

    const stale = await p.member.at('3.15').put(path, { metadata: { x: 'y' } }, { 'if-match': '"0123456789abcdef0123456789abcdef"' });
    assert.equal(stale.status, 412);
    assert.equal((await p.member.at('3.15').put(`${path}/a`, { meta: { a: 'c' } }, { 'if-match': 'nope' })).status, 412);
    assert.deepEqual((await p.member.get(path)).body.metadata, { a: 'b', k: 'v\u00e9' });
    // Before 3.15 the header means nothing; from 3.15 the current ETag passes.
    assert.equal((await p.member.at('3.14').put(`${path}/a`, { meta: { a: 'c' } }, { 'if-match': 'nope' })).status, 200);
    const etag = (await p.member.at('3.15').get(path)).headers.get('etag')!;
    const ok = await p.member.at('3.15').put(path, { metadata: { x: 'y' } }, { 'if-match': `"${etag}"` });
    assert.equal(ok.status, 200);
    assert.deepEqual((await p.member.get(path)).body.metadata, { x: 'y' });
  });
});
