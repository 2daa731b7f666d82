import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type CinderFixture, type Project } from './fixture.ts';

describe('cinder microversioned list behaviour', () => {
  let f: CinderFixture;
  let a: Project;

  before(async () => {
    f = await startCinder();
    a = await f.project('mv-lists');
  });
  after(() => f?.close());

  const newVolume = async (name: string) => {
    const v = (await a.member.post('/volumes', { volume: { size: 1, name } })).body.volume;
    await f.waitFor(a.member, 'volumes', v.id, ['available']);
    return v;
  };

  test('3.59 transfer lists: oldest first and offset/limit before, sort keys, marker and paging from 3.59', async () => {
    const ids: string[] = [];
    for (const name of ['t-b', 't-a', 't-c']) {
      const v = await newVolume(name);
      ids.push((await a.member.post('/os-volume-transfer', { transfer: { volume_id: v.id, name } })).body.transfer.id);
      await new Promise((r) => setTimeout(r, 5));
    }
    const idsOf = (r: { body: { transfers: { id: string }[] } }) => r.body.transfers.map((t) => t.id);

    // Before 3.59: created_at ascending whatever sort is asked; offset/limit slice it.
    assert.deepEqual(idsOf(await a.member.get('/os-volume-transfer')), ids);
    assert.deepEqual(idsOf(await a.member.at('3.58').get('/volume-transfers?sort=display_name:asc')), ids);
    assert.deepEqual(idsOf(await a.member.get('/os-volume-transfer/detail?offset=1&limit=1')), [ids[1]]);

    // 3.59: upstream's default sort is created_at descending.
    const mv = a.member.at('3.59');
    assert.deepEqual(idsOf(await mv.get('/volume-transfers')), [...ids].reverse());
    assert.deepEqual(idsOf(await mv.get('/os-volume-transfer?sort_key=display_name&sort_dir=asc')), [ids[1], ids[0], ids[2]]);
    assert.deepEqual(idsOf(await mv.get('/volume-transfers/detail?sort=display_name:desc')), [ids[2], ids[0], ids[1]]);

    const first = await mv.get('/volume-transfers?sort=created_at:asc&limit=2');
    assert.deepEqual(idsOf(first), ids.slice(0, 2));
    const next = new URL(first.body.transfers_links[0].href);
    assert.equal(first.body.transfers_links[0].rel, 'next');
    assert.equal(next.searchParams.get('marker'), ids[1]);
    assert.deepEqual(idsOf(await mv.get(`/volume-transfers${next.search}`)), [ids[2]]);
    assert.deepEqual(idsOf(await mv.get(`/volume-transfers?sort=created_at:asc&offset=1`)), ids.slice(1));
    assert.equal((await mv.get('/volume-transfers?limit=5')).body.transfers_links, undefined);

    // Bad input.
    assert.equal((await mv.get('/volume-transfers?sort=crypt_hash:asc')).status, 400);
    assert.equal((await mv.get('/volume-transfers?sort=name:sideways')).status, 400);
    assert.equal((await mv.get('/volume-transfers?limit=-1')).status, 400);
    assert.equal((await mv.get('/volume-transfers?offset=x')).status, 400);
    const missing = await mv.get('/volume-transfers?marker=00000000-0000-0000-0000-000000000000');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.itemNotFound.message, 'Transfer 00000000-0000-0000-0000-000000000000 could not be found.');
    const other = await f.project('mv-other');
    assert.equal((await other.member.at('3.59').get(`/volume-transfers?marker=${ids[0]}`)).status, 404);
  });

  test('3.39 limits: an admin names another project with project_id; others and older versions read their own', async () => {
    const b = await f.project('mv-limits');
    assert.equal((await f.admin.put(`/os-quota-sets/${b.id}`, { quota_set: { volumes: 7 } })).status, 200);
    await newVolume('counted');
    const own = (await f.admin.get('/limits')).body.limits.absolute;
    assert.notEqual(own.maxTotalVolumes, 7);
    assert.equal((await f.admin.get(`/limits?project_id=${b.id}`)).body.limits.absolute.maxTotalVolumes, own.maxTotalVolumes);
    const named = (await f.admin.at('3.39').get(`/limits?project_id=${b.id}`)).body.limits;
    assert.deepEqual(named.rate, []);
    assert.equal(named.absolute.maxTotalVolumes, 7);
    assert.equal(named.absolute.totalVolumesUsed, 0);
    assert.equal((await f.admin.at('3.39').get(`/limits?tenant_id=${b.id}`)).body.limits.absolute.maxTotalVolumes, 7);
    const mine = (await a.member.at('3.39').get(`/limits?project_id=${b.id}`)).body.limits.absolute;
    assert.notEqual(mine.maxTotalVolumes, 7);
    assert.ok(mine.totalVolumesUsed >= 1);
  });
});
