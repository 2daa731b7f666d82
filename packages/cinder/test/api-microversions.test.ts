import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCinder, type Project } from './fixture.ts';

describe('cinder microversioned list behaviour', () => {
  let f: Awaited<ReturnType<typeof startCinder>>;
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

  test('3.4 glance_metadata and 3.22 snapshot metadata filters; 3.31 unknown filters a 400 for non-admins; 3.33 resource_filters', async () => {
    const imaged = await newVolume('imaged');
    const plain = await newVolume('plain');
    // As a volume made from an image records it (the clone path copies these rows).
    await f.volumes.setMetadata(imaged.id, 'image', { os_distro: 'cirros-mv' }, false);
    const ids = (r: { body: { volumes?: { id: string }[]; snapshots?: { id: string }[] } }) => (r.body.volumes ?? r.body.snapshots ?? []).map((x) => x.id).sort();
    const filter = `glance_metadata=${encodeURIComponent(JSON.stringify({ os_distro: 'cirros-mv' }))}&all_tenants=1`;
    assert.deepEqual(ids(await f.admin.at('3.4').get(`/volumes?${filter}`)), [imaged.id]);
    // Below 3.4 the filter does not exist; non-admins have it dropped before 3.31 and refused from 3.31.
    assert.ok(ids(await f.admin.at('3.3').get(`/volumes?${filter}`)).includes(plain.id));
    const dropped = ids(await a.member.at('3.30').get(`/volumes?${filter}`));
    assert.ok(dropped.includes(imaged.id) && dropped.includes(plain.id));
    const refused = await a.member.at('3.31').get(`/volumes?${filter}`);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.badRequest.message, 'Invalid filters glance_metadata are found in query options.');
    assert.equal((await a.member.at('3.31').get('/volumes?name=plain&all_tenants=1')).status, 200);
    assert.equal((await a.member.at('3.31').get('/snapshots?bogus=1')).status, 400);
    assert.equal((await f.admin.at('3.4').get('/volumes?glance_metadata=notadict&all_tenants=1')).status, 400);

    const s1 = (await a.member.at('3.22').post('/snapshots', { snapshot: { volume_id: plain.id, metadata: { tier: 'gold' } } })).body.snapshot;
    const s2 = (await a.member.at('3.22').post('/snapshots', { snapshot: { volume_id: plain.id, metadata: { tier: 'lead' } } })).body.snapshot;
    const meta = `metadata=${encodeURIComponent("{'tier': 'gold'}")}`;
    assert.deepEqual(ids(await a.member.at('3.22').get(`/snapshots?${meta}`)), [s1.id]);
    assert.deepEqual(ids(await a.member.at('3.22').get(`/snapshots/detail?${meta}&offset=1`)), []);
    assert.deepEqual(ids(await a.member.at('3.21').get(`/snapshots?${meta}`)), [s1.id, s2.id].sort());
    assert.equal((await a.member.at('3.22').get('/snapshots?metadata=[1]')).status, 400);

    assert.equal((await a.member.at('3.32').get('/resource_filters')).status, 404);
    const all = (await a.member.at('3.33').get('/resource_filters')).body.resource_filters;
    assert.ok(all.some((r: { resource: string; filters: string[] }) => r.resource === 'volume' && r.filters.includes('metadata') && !r.filters.includes('glance_metadata')));
    assert.deepEqual((await a.member.at('3.33').get('/resource_filters?resource=snapshot')).body.resource_filters, [
      { resource: 'snapshot', filters: ['name', 'status', 'volume_id', 'metadata', 'availability_zone', 'consumes_quota'] },
    ]);
    assert.deepEqual((await a.member.at('3.33').get('/resource_filters?resource=nothing')).body.resource_filters, []);
  });

  test('3.12 volumes summary, 3.36 its distinct metadata; all_tenants only for admins', async () => {
    const c = await f.project('mv-summary');
    const mk = async (size: number, metadata: Record<string, string>) => {
      const v = (await c.member.post('/volumes', { volume: { size, metadata } })).body.volume;
      await f.waitFor(c.member, 'volumes', v.id, ['available']);
      return v;
    };
    assert.deepEqual((await c.member.at('3.12').get('/volumes/summary')).body, { 'volume-summary': { total_count: 0, total_size: 0 } });
    await mk(1, { tier: 'gold', zone: 'a' });
    await mk(2, { tier: 'lead' });
    const gone = await mk(3, { tier: 'tin' });
    assert.equal((await c.member.delete(`/volumes/${gone.id}`)).status, 202);
    for (let i = 0; i < 100 && (await c.member.get(`/volumes/${gone.id}`)).status !== 404; i++) await new Promise((r) => setTimeout(r, 50));

    assert.equal((await c.member.at('3.11').get('/volumes/summary')).status, 404);
    assert.deepEqual((await c.member.at('3.12').get('/volumes/summary?name=nothing')).body, { 'volume-summary': { total_count: 2, total_size: 3 } });
    const s36 = (await c.member.at('3.36').get('/volumes/summary')).body['volume-summary'];
    assert.deepEqual(s36, { total_count: 2, total_size: 3, metadata: { tier: ['gold', 'lead'], zone: ['a'] } });
    // A member's all_tenants is ignored; an admin's covers every project.
    assert.equal((await c.member.at('3.12').get('/volumes/summary?all_tenants=1')).body['volume-summary'].total_count, 2);
    assert.ok((await f.admin.at('3.12').get('/volumes/summary?all_tenants=1')).body['volume-summary'].total_count > 2);
    assert.equal((await f.admin.at('3.12').get('/volumes/summary?all_tenants=maybe')).status, 400);
    assert.equal((await c.reader.at('3.12').get('/volumes/summary')).status, 200);
  });

  test('3.23 force in volume delete: ignored below, admin-only from 3.23', async () => {
    const v = await newVolume('stuck');
    assert.equal((await f.admin.post(`/v3/${a.id}/volumes/${v.id}/action`, { 'os-reset_status': { status: 'maintenance' } })).status, 202);
    assert.equal((await f.admin.at('3.22').delete(`/v3/${a.id}/volumes/${v.id}?force=true`)).status, 400);
    assert.equal((await a.member.at('3.23').delete(`/volumes/${v.id}?force=true`)).status, 403);
    assert.equal((await f.admin.at('3.23').delete(`/v3/${a.id}/volumes/${v.id}?force=maybe`)).status, 400);
    assert.equal((await f.admin.at('3.23').delete(`/v3/${a.id}/volumes/${v.id}?force=true`)).status, 202);
    for (let i = 0; i < 100 && (await a.member.get(`/volumes/${v.id}`)).status !== 404; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await a.member.get(`/volumes/${v.id}`)).status, 404);
  });

  test('3.3/3.5 user messages for volumes left in error: event ids and texts as upstream, project-scoped, filters and paging, delete', async () => {
    const m = await f.project('mv-messages');
    const other = await f.project('mv-messages-other');
    assert.equal((await f.admin.post(`/v3/${f.adminProjectId}/types`, { volume_type: { name: 'nowhere-mv', extra_specs: { volume_backend_name: 'nowhere' } } })).status, 200);
    const unplaced = (await m.member.post('/volumes', { volume: { size: 1, volume_type: 'nowhere-mv' } })).body.volume;
    await f.waitFor(m.member, 'volumes', unplaced.id, ['error']);
    assert.ok(f.fake, 'the fixture runs the fake volume driver');
    f.fake.failNext.add('createVolume');
    const broken = (await m.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(m.member, 'volumes', broken.id, ['error']);

    assert.equal((await m.member.at('3.2').get('/messages')).status, 404);
    const all = (await m.member.at('3.3').get('/messages')).body.messages;
    assert.deepEqual(
      all.map((x: Record<string, unknown>) => [x.resource_uuid, x.event_id, x.user_message, x.resource_type, x.message_level]),
      [
        [unplaced.id, 'VOLUME_VOLUME_001_003', 'schedule allocate volume:Could not find any available weighted backend.', 'VOLUME', 'ERROR'],
        [broken.id, 'VOLUME_VOLUME_008_012', 'create volume from backend storage:Driver failed to create the volume.', 'VOLUME', 'ERROR'],
      ],
    );
    const first = all[0];
    assert.match(first.request_id, /^req-/);
    assert.ok(Date.parse(first.guaranteed_until) - Date.parse(first.created_at) >= 29 * 86400_000);
    assert.deepEqual((await m.reader.at('3.3').get(`/messages/${first.id}`)).body.message, first);
    assert.deepEqual((await other.member.at('3.5').get('/messages')).body.messages, []);
    assert.equal((await other.member.at('3.3').get(`/messages/${first.id}`)).status, 404);

    // 3.5: newest first by default, filters, sort, marker paging.
    const mv5 = m.member.at('3.5');
    const ids = (r: { body: { messages: { id: string }[] } }) => r.body.messages.map((x) => x.id);
    assert.deepEqual(ids(await mv5.get('/messages')), [all[1].id, all[0].id]);
    assert.deepEqual(ids(await m.member.at('3.4').get('/messages?event_id=VOLUME_VOLUME_008_012')), [all[0].id, all[1].id]);
    assert.deepEqual(ids(await mv5.get('/messages?event_id=VOLUME_VOLUME_008_012')), [all[1].id]);
    assert.deepEqual(ids(await mv5.get(`/messages?resource_uuid=${unplaced.id}`)), [all[0].id]);
    assert.deepEqual(ids(await mv5.get('/messages?nothing=1')), []);
    const page1 = await mv5.get('/messages?sort=created_at:asc&limit=1');
    assert.deepEqual(ids(page1), [all[0].id]);
    assert.deepEqual(ids(await mv5.get(`/messages${new URL(page1.body.messages_links[0].href).search}`)), [all[1].id]);
    assert.equal((await mv5.get('/messages?sort=user_message:asc')).status, 400);
    assert.equal((await mv5.get('/messages?marker=00000000-0000-0000-0000-000000000000')).status, 404);
    assert.equal((await m.member.at('3.31').get('/messages?nothing=1')).status, 400);

    assert.equal((await m.reader.at('3.3').delete(`/messages/${first.id}`)).status, 403);
    assert.equal((await other.member.at('3.3').delete(`/messages/${first.id}`)).status, 404);
    assert.equal((await m.member.at('3.3').delete(`/messages/${first.id}`)).status, 204);
    assert.equal((await m.member.at('3.3').get(`/messages/${first.id}`)).status, 404);
    assert.deepEqual(ids(await mv5.get('/messages')), [all[1].id]);
  });

  test('3.60 created_at/updated_at comparisons on volume lists; bad operators and times a 400', async () => {
    const t = await f.project('mv-times');
    const mk = async (name: string) => {
      const v = (await t.member.post('/volumes', { volume: { size: 1, name } })).body.volume;
      await f.waitFor(t.member, 'volumes', v.id, ['available']);
      return (await t.member.get(`/volumes/${v.id}`)).body.volume;
    };
    const older = await mk('older');
    await new Promise((r) => setTimeout(r, 20));
    const newer = await mk('newer');
    const cut = new Date((Date.parse(`${older.created_at}Z`) + Date.parse(`${newer.created_at}Z`)) / 2).toISOString();
    const names = async (query: string, version = '3.60') => ((await t.member.at(version).get(`/volumes?${query}`)).body.volumes as { name: string }[]).map((v) => v.name).sort();
    assert.deepEqual(await names(`created_at=gt:${cut}`), ['newer']);
    assert.deepEqual(await names(`created_at=lte:${cut.replace('Z', '')}`), ['older']);
    assert.deepEqual(await names(`created_at=gte:2000-01-01,lt:${cut}`), ['older']);
    assert.deepEqual(await names(`created_at=gt:${cut}`, '3.30'), ['newer', 'older']);
    const badOp = await t.member.at('3.60').get('/volumes?created_at=after:2020-01-01');
    assert.equal(badOp.status, 400);
    assert.equal(badOp.body.badRequest.message, 'Invalid after operator');
    const badTime = await t.member.at('3.60').get('/volumes?updated_at=gt:yesterday');
    assert.equal(badTime.status, 400);
    assert.equal(badTime.body.badRequest.message, 'Invalid yesterday value');
  });

  test('3.34 inexact `name~` filter: substring match for admins, a 400 for non-admins (default resource_filters)', async () => {
    const names = async (version: string, query: string) => ((await f.admin.at(version).get(`/v3/${a.id}/volumes?all_tenants=1&project_id=${a.id}&${query}`)).body.volumes as { name: string }[]).map((v) => v.name).sort();
    assert.deepEqual(await names('3.34', 'name~=t-'), ['t-a', 't-b', 't-c']);
    assert.deepEqual(await names('3.34', 'name~=ount'), ['counted']);
    assert.ok((await names('3.33', 'name~=t-')).includes('plain'));
    const refused = await a.member.at('3.34').get('/volumes?name~=t-');
    assert.equal(refused.status, 400);
    assert.equal(refused.body.badRequest.message, 'Invalid filters name~ are found in query options.');
  });
});
