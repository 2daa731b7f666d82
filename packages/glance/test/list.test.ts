import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { faultMessage, startGlance, type GlanceFixture, type Project } from './fixture.ts';

describe('glance image list: visibility, filters, sorting, paging', () => {
  let g: GlanceFixture;
  let a: Project;
  let b: Project;
  const ids: Record<string, string> = {};

  const names = (res: { body: { images: { name: string }[] } }) => res.body.images.map((i) => i.name);
  const sorted = (res: { body: { images: { name: string }[] } }) => names(res).sort();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  before(async () => {
    g = await startGlance();
    a = await g.project('lista');
    b = await g.project('listb');
    const create = async (client: Project['member'], body: Record<string, unknown>) => {
      const res = await client.post('/v2/images', body);
      assert.equal(res.status, 201, res.text);
      ids[body.name as string] = res.body.id;
      // created_at has second precision on the wire: keep images apart for the time filters.
      await sleep(5);
      return res.body;
    };
    await create(a.member, { name: 'a-private', visibility: 'private', disk_format: 'raw', container_format: 'bare', tags: ['x86', 'small'], os_distro: 'debian' });
    await create(a.member, { name: 'a-shared', visibility: 'shared', disk_format: 'qcow2', container_format: 'bare', tags: ['x86'] });
    await create(a.member, { name: 'a-community', visibility: 'community', disk_format: 'qcow2', container_format: 'ovf' });
    await create(a.member, { name: 'a-hidden', visibility: 'private', os_hidden: true });
    await create(b.member, { name: 'b-private', visibility: 'private', min_ram: 128, os_distro: 'debian' });
    await create(b.member, { name: 'b-community', visibility: 'community' });
    const pub = await g.admin.post('/v2/images', { name: 'public-one', visibility: 'public', disk_format: 'iso', container_format: 'bare' });
    ids['public-one'] = pub.body.id;
    await b.member.post(`/v2/images/${ids['a-shared']}/members`, { member: b.id });
    await a.member.post(`/v2/images/${ids['a-shared']}/members`, { member: b.id });
    const up = await a.member.upload(ids['a-private'], Buffer.alloc(2048, 1));
    assert.equal(up.status, 204, await up.text());
  });
  after(() => g.close());

  it('shows each project its own, public and accepted shared images by default', async () => {
    assert.deepEqual(sorted(await a.member.get('/v2/images')), ['a-community', 'a-private', 'a-shared', 'public-one']);
    // b's membership is pending: the shared image stays out until accepted.
    assert.deepEqual(sorted(await b.member.get('/v2/images')), ['b-community', 'b-private', 'public-one']);
    assert.deepEqual(sorted(await b.member.get('/v2/images?member_status=pending')), ['a-shared', 'b-community', 'b-private', 'public-one']);
    assert.equal((await b.member.put(`/v2/images/${ids['a-shared']}/members/${b.id}`, { status: 'accepted' })).status, 200);
    assert.deepEqual(sorted(await b.member.get('/v2/images')), ['a-shared', 'b-community', 'b-private', 'public-one']);
    assert.deepEqual(sorted(await b.member.get('/v2/images?visibility=community')), ['a-community', 'b-community']);
    assert.deepEqual(sorted(await b.member.get('/v2/images?visibility=shared')), ['a-shared']);
    assert.deepEqual(sorted(await b.member.get('/v2/images?visibility=all')), ['a-community', 'a-shared', 'b-community', 'b-private', 'public-one']);
    assert.deepEqual(sorted(await a.member.get('/v2/images?os_hidden=true')), ['a-hidden']);
    // Admins see every project's images, community ones only when asked.
    assert.deepEqual(sorted(await g.admin.get('/v2/images')), ['a-private', 'a-shared', 'b-private', 'public-one']);
    assert.deepEqual(sorted(await g.admin.get('/v2/images?visibility=all')), ['a-community', 'a-private', 'a-shared', 'b-community', 'b-private', 'public-one']);
    assert.deepEqual(sorted(await a.reader.get('/v2/images')), sorted(await a.member.get('/v2/images')));
  });

  it('filters on attributes, properties, tags, sizes and formats', async () => {
    const q = (client: Project['member'], query: string) => client.get(`/v2/images?visibility=all&${query}`);
    assert.deepEqual(names(await q(a.member, 'name=a-private')), ['a-private']);
    assert.deepEqual(sorted(await q(a.member, 'name=in:a-private,"a-shared"')), ['a-private', 'a-shared']);
    assert.deepEqual(sorted(await q(a.member, `id=in:${ids['a-private']},${ids['public-one']}`)), ['a-private', 'public-one']);
    assert.deepEqual(names(await q(a.member, 'status=active')), ['a-private']);
    assert.deepEqual(sorted(await q(a.member, 'disk_format=qcow2')), ['a-community', 'a-shared']);
    assert.deepEqual(names(await q(a.member, 'container_format=ovf')), ['a-community']);
    assert.deepEqual(sorted(await q(a.member, 'disk_format=in:iso,raw')), ['a-private', 'public-one']);
    assert.deepEqual(sorted(await q(a.member, 'tag=x86')), ['a-private', 'a-shared']);
    assert.deepEqual(names(await q(a.member, 'tag=x86&tag=small')), ['a-private']);
    assert.deepEqual(sorted(await q(b.member, 'os_distro=debian')), ['b-private']);
    assert.deepEqual(names(await q(a.member, 'size_min=1024&size_max=4096')), ['a-private']);
    assert.deepEqual(names(await q(a.member, 'size_min=4097')), []);
    assert.deepEqual(sorted(await q(b.member, `owner=${a.id}`)), ['a-community', 'a-shared']);
    assert.deepEqual(names(await q(b.member, 'min_ram=128')), ['b-private']);
    assert.deepEqual(names(await q(a.member, 'protected=true')), []);
  });

  it('filters on times with operators', async () => {
    const all = (await g.admin.get('/v2/images?visibility=all&sort=created_at:asc&limit=100')).body.images;
    const pivot = all.find((i: { name: string }) => i.name === 'b-private').created_at;
    const before = (await g.admin.get(`/v2/images?visibility=all&created_at=lt:${pivot}`)).body.images.map((i: { name: string }) => i.name);
    const after = (await g.admin.get(`/v2/images?visibility=all&created_at=gte:${pivot}`)).body.images.map((i: { name: string }) => i.name);
    assert.equal(before.length + after.length, all.length);
    assert.ok(after.includes('b-private') && !before.includes('b-private'));
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal((await g.admin.get(`/v2/images?visibility=all&updated_at=gt:${future}`)).body.images.length, 0);
    assert.equal((await g.admin.get(`/v2/images?visibility=all&updated_at=lte:${future}`)).body.images.length, all.length);
    assert.equal((await g.admin.get(`/v2/images?visibility=all&created_at=neq:${future}`)).body.images.length, all.length);
  });

  it('sorts with sort_key/sort_dir and sort=', async () => {
    const q = (query: string) => g.admin.get(`/v2/images?visibility=all&${query}`);
    const byName = names(await q('sort_key=name&sort_dir=asc'));
    assert.deepEqual(byName, [...byName].sort());
    assert.deepEqual(names(await q('sort=name:desc')), [...byName].reverse());
    assert.deepEqual(names(await q('sort_key=name&sort_dir=desc')), [...byName].reverse());
    const multi = (await q('sort=disk_format:asc,name:desc')).body.images.map((i: { disk_format: string | null; name: string }) => `${i.disk_format ?? ''}/${i.name}`);
    const expected = [...multi].sort((x: string, y: string) => {
      const [fx, nx] = x.split('/');
      const [fy, ny] = y.split('/');
      return fx === fy ? ny.localeCompare(nx) : fx.localeCompare(fy);
    });
    assert.deepEqual(multi, expected);
    const created = (await q('')).body.images.map((i: { created_at: string }) => i.created_at);
    assert.deepEqual(created, [...created].sort().reverse());
  });

  it('pages with limit and marker, with next and first links', async () => {
    const first = await g.admin.get('/v2/images?visibility=all&sort_key=name&sort_dir=asc&limit=2');
    assert.equal(first.status, 200);
    assert.equal(first.body.images.length, 2);
    assert.equal(first.body.schema, '/v2/schemas/images');
    assert.equal(first.body.first, '/v2/images?visibility=all&sort_key=name&sort_dir=asc&limit=2');
    assert.equal(first.body.next, `/v2/images?visibility=all&sort_key=name&sort_dir=asc&limit=2&marker=${first.body.images[1].id}`);
    const seen: string[] = [];
    let next: string | undefined = '/v2/images?visibility=all&sort_key=name&sort_dir=asc&limit=2';
    while (next) {
      const page: { body: { images: { name: string }[]; next?: string } } = await g.admin.get(next);
      seen.push(...names(page));
      next = page.body.next;
    }
    assert.deepEqual(seen, names(await g.admin.get('/v2/images?visibility=all&sort_key=name&sort_dir=asc')));
    const none = await g.admin.get('/v2/images?marker=00000000-0000-4000-8000-000000000000');
    assert.equal(none.status, 400);
    assert.match(faultMessage(none), /No image found with ID/);
  });

  it('refuses bad list parameters', async () => {
    const cases: [string, RegExp][] = [
      ['limit=x', /limit param must be an integer/],
      ['limit=-1', /limit param must be positive/],
      ['sort_key=owner', /Invalid sort key: owner\. It must be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at\./],
      ['sort_dir=up', /Invalid sort direction: up/],
      ['sort=name:asc&sort_key=name', /Old and new sorting syntax cannot be combined/],
      ['sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc', /Number of sort dirs does not match the number of sort keys/],
      ['visibility=secret', /Invalid visibility value: secret/],
      ['member_status=maybe', /Invalid status: maybe/],
      ['os_hidden=maybe', /Invalid value 'maybe' for 'os_hidden' filter/],
      ['protected=maybe', /Invalid value 'maybe' for 'protected' filter/],
      ['size_min=big', /Unable to filter on a range with a non-numeric value\./],
      ['created_at=gt:yesterday', /Bad "created_at" query filter format\. Use ISO 8601 DateTime notation\./],
      ['created_at=around:2024-01-01T00:00:00Z', /Unable to filter on a unknown operator\./],
      ['name=like:foo', /Unable to filter by unknown operator 'like'\./],
      ['changes-since=2024-01-01', /The "changes-since" filter is no longer available on v2\./],
    ];
    for (const [query, message] of cases) {
      const res = await a.member.get(`/v2/images?${query}`);
      assert.equal(res.status, 400, `${query}: ${res.text}`);
      assert.match(faultMessage(res), message, query);
    }
  });
});
