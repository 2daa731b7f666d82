import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Notification } from '@onestack/core/bus/bus.ts';
import { startCinder, type CinderClient, type CinderFixture, type Project } from './fixture.ts';

/**
 * Generic volume groups as upstream's API: group types and specs (3.11), groups
 * (3.13, volumes 3.25, reset 3.20, replication 3.38), group snapshots (3.14,
 * reset 3.19, paging 3.29), volumes' group_id (3.10 filter, 3.13 create/view),
 * snapshots' group_snapshot_id, project_id for admins (3.58), groups quota.
 */
describe('cinder generic volume groups (fake driver)', () => {
  let f: CinderFixture & { fake?: import('../src/drivers/fake-driver.ts').FakeVolumeDriver };
  let p: Project;
  let other: Project;
  let admin: CinderClient;
  let gtype: { id: string; name: string };
  let vtype: { id: string; name: string };
  let vtype2: { id: string; name: string };
  const events: Notification[] = [];
  const sawEvent = async (type: string) => {
    for (let i = 0; i < 100 && !events.some((e) => e.event_type === type); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(events.some((e) => e.event_type === type), `${type} in ${events.map((e) => e.event_type).join(',')}`);
    return events.find((e) => e.event_type === type)!;
  };
  const mv = (c: CinderClient, v = '3.38') => c.at(v);
  const groupOf = async (c: CinderClient, id: string, query = '') => {
    await f.volumes.drain();
    return (await mv(c).get(`/groups/${id}${query}`)).body.group;
  };
  const newGroup = async (name: string, types = [vtype.name]) => {
    const res = await mv(p.member).post('/groups', { group: { name, group_type: gtype.name, volume_types: types } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const g = await groupOf(p.member, res.body.group.id);
    assert.equal(g.status, 'available');
    return g;
  };
  const newMember = async (groupId: string, name: string, type = vtype.name) => {
    const res = await mv(p.member).post('/volumes', { volume: { size: 1, name, group_id: groupId, volume_type: type } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return f.waitFor(p.member.at('3.13'), 'volumes', res.body.volume.id, ['available']);
  };

  before(async () => {
    f = await startCinder({ config: { quota_groups: 10, quota_volumes: 30, default_group_type: 'gt-default' } });
    p = await f.project('grp-a');
    other = await f.project('grp-b');
    admin = f.admin.at('3.38');
    await f.ks.bus.subscribe('notifications', `cinder-groups-test-${process.pid}`, async (n) => void events.push(n), { eventTypes: ['group.*', 'group_snapshot.*'] });
    vtype = (await f.admin.post('/types', { volume_type: { name: 'grp-vt' } })).body.volume_type;
    vtype2 = (await f.admin.post('/types', { volume_type: { name: 'grp-vt2' } })).body.volume_type;
  });
  after(() => f?.close());

  test('group types and group_specs (3.11): admin writes, members read public ones, default, version too low', async () => {
    assert.equal((await f.admin.at('3.10').get('/group_types')).status, 404);
    const created = await admin.post('/group_types', { group_type: { name: 'gt-default', description: 'd', group_specs: { consistent_group_snapshot_enabled: '<is> False' } } });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    gtype = created.body.group_type;
    assert.deepEqual(created.body.group_type, { id: gtype.id, name: 'gt-default', description: 'd', is_public: true, group_specs: { consistent_group_snapshot_enabled: '<is> False' } });
    const dup = await admin.post('/group_types', { group_type: { name: 'gt-default' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.conflictingRequest.message, 'Group Type gt-default already exists.');
    assert.equal((await mv(p.member).post('/group_types', { group_type: { name: 'mine' } })).status, 403);
    assert.equal((await admin.post('/group_types', { group_type: { name: 'x', color: 'red' } })).status, 400);
    const priv = (await admin.post('/group_types', { group_type: { name: 'gt-private', is_public: false } })).body.group_type;

    // Members see public types without their specs (group:access_group_types_specs is admin).
    const seen = (await mv(p.member).get('/group_types')).body.group_types;
    assert.deepEqual(seen.map((t: { id: string }) => t.id), [gtype.id]);
    assert.ok(!('group_specs' in seen[0]));
    assert.equal((await mv(p.member).get(`/group_types/${priv.id}`)).status, 404);
    const missing = await mv(p.member).get('/group_types/1d0b1a0e-0000-4000-8000-000000000000');
    assert.equal(missing.body.itemNotFound.message, 'Group type 1d0b1a0e-0000-4000-8000-000000000000 could not be found.');
    assert.deepEqual((await admin.get('/group_types?is_public=false')).body.group_types.map((t: { id: string }) => t.id), [priv.id]);
    assert.equal((await mv(p.member).get('/group_types/default')).body.group_type.id, gtype.id);

    // Update and delete, admin only.
    assert.equal((await admin.put(`/group_types/${priv.id}`, { group_type: {} })).body.badRequest.message, 'Specify group type name, description or a combination thereof.');
    assert.equal((await admin.put(`/group_types/${priv.id}`, { group_type: { name: '  ' } })).status, 400);
    const up = await admin.put(`/group_types/${priv.id}`, { group_type: { description: 'private one', is_public: true } });
    assert.equal(up.status, 200);
    assert.equal(up.body.group_type.is_public, true);
    assert.equal((await mv(p.member).delete(`/group_types/${priv.id}`)).status, 403);
    assert.equal((await admin.delete(`/group_types/${priv.id}`)).status, 202);
    assert.equal((await admin.get(`/group_types/${priv.id}`)).status, 404);

    // group_specs CRUD.
    const specs = `/group_types/${gtype.id}/group_specs`;
    assert.equal((await admin.post(specs, { group_specs: { k1: 'v1', k2: 'v2' } })).status, 202);
    assert.deepEqual((await admin.get(specs)).body.group_specs, { consistent_group_snapshot_enabled: '<is> False', k1: 'v1', k2: 'v2' });
    assert.deepEqual((await admin.get(`${specs}/k1`)).body, { k1: 'v1' });
    assert.equal((await admin.put(`${specs}/k1`, { k2: 'x' })).body.badRequest.message, 'Request body and URI mismatch');
    assert.deepEqual((await admin.put(`${specs}/k1`, { k1: 'v1b' })).body, { k1: 'v1b' });
    assert.equal((await admin.delete(`${specs}/k2`)).status, 202);
    const gone = await admin.delete(`${specs}/k2`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.itemNotFound.message, `Group Type ${gtype.id} has no specs with key k2.`);
    assert.equal((await mv(p.member).get(specs)).status, 403);
    assert.equal((await admin.get('/group_types/1d0b1a0e-0000-4000-8000-000000000000/group_specs')).status, 404);
  });

  test('groups (3.13): create, bad input, show, list with volumes (3.25), volumes in a group, isolation, notifications', async () => {
    assert.equal((await p.member.at('3.12').get('/groups')).status, 404);
    const bad = async (body: unknown, status: number, message?: string | RegExp) => {
      const res = await mv(p.member).post('/groups', body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      const m = res.body.badRequest?.message ?? res.body.itemNotFound?.message;
      if (typeof message === 'string') assert.equal(m, message);
      else if (message) assert.match(m, message);
    };
    await bad({ group: { group_type: 'nope', volume_types: [vtype.name] } }, 404, 'Group type with name nope could not be found.');
    await bad({ group: { group_type: '1d0b1a0e-0000-4000-8000-000000000000', volume_types: [vtype.name] } }, 404, 'Group type 1d0b1a0e-0000-4000-8000-000000000000 could not be found.');
    await bad({ group: { group_type: gtype.name, volume_types: ['no-such-type'] } }, 404, 'Volume type no-such-type could not be found.');
    await bad({ group: { group_type: gtype.name } }, 400, /'volume_types' is a required property/);
    await bad({ group: { group_type: gtype.name, volume_types: [] } }, 400, /is too short/);
    await bad({ group: { group_type: gtype.name, volume_types: [vtype.name], availability_zone: 'elsewhere' } }, 400, "Invalid input received: Availability zone 'elsewhere' is invalid.");
    assert.equal((await f.database.db.selectFrom('groups').select('id').execute()).length, 0, 'nothing half made');

    const created = await mv(p.member).post('/groups', { group: { name: ' g1 ', description: 'first', group_type: gtype.id, volume_types: [vtype.name, vtype2.id] } });
    assert.equal(created.status, 202);
    assert.deepEqual(Object.keys(created.body.group).sort(), ['id', 'name']);
    assert.equal(created.body.group.name, 'g1');
    const g = await groupOf(p.member, created.body.group.id);
    assert.equal(g.status, 'available');
    assert.equal(g.group_type, gtype.id);
    assert.deepEqual([...g.volume_types].sort(), [vtype.id, vtype2.id].sort());
    assert.equal(g.replication_status, 'disabled');
    assert.equal(g.group_snapshot_id, null);
    assert.ok(!('project_id' in g));
    assert.equal((await f.admin.at('3.58').get(`/v3/${p.id}/groups/${g.id}`)).body.group.project_id, p.id);
    assert.ok(!('replication_status' in (await p.member.at('3.37').get(`/groups/${g.id}`)).body.group));
    assert.ok(!('group_snapshot_id' in (await p.member.at('3.13').get(`/groups/${g.id}`)).body.group));
    assert.equal((await sawEvent('group.create.end')).publisher_id, 'group.cinder-host');

    // A volume in the group: its type must be one of the group's, and named.
    const noType = await mv(p.member).post('/volumes', { volume: { size: 1, group_id: g.id } });
    assert.equal(noType.body.badRequest.message, 'Invalid input received: volume_type must be provided when creating a volume in a group.');
    const wrongType = await mv(p.member).post('/volumes', { volume: { size: 1, group_id: g.id, volume_type: '__DEFAULT__' } });
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.body.badRequest.message, 'Invalid input received: Invalid volume_type provided: __DEFAULT__ (requested type must be supported by this group).');
    const m1 = await newMember(g.id, 'm1');
    assert.equal(m1.group_id, g.id);
    assert.ok(!('group_id' in (await p.member.at('3.12').get(`/volumes/${m1.id}`)).body.volume));
    const loose = (await p.member.post('/volumes', { volume: { size: 1, name: 'loose', volume_type: vtype.name } })).body.volume;
    await f.waitFor(p.member, 'volumes', loose.id, ['available']);

    // 3.10 group_id filter; 3.25 volumes in the group view with list_volume.
    assert.deepEqual((await p.member.at('3.10').get(`/volumes?group_id=${g.id}`)).body.volumes.map((v: { id: string }) => v.id), [m1.id]);
    assert.equal((await p.member.at('3.9').get(`/volumes?group_id=${g.id}`)).body.volumes.length, 2, 'before 3.10 the filter is dropped');
    assert.deepEqual((await mv(p.member).get(`/groups/${g.id}?list_volume=true`)).body.group.volumes, [m1.id]);
    assert.ok(!('volumes' in (await mv(p.member).get(`/groups/${g.id}`)).body.group));
    assert.ok(!('volumes' in (await p.member.at('3.24').get(`/groups/${g.id}?list_volume=true`)).body.group));
    const detail = (await mv(p.member).get('/groups/detail?list_volume=true')).body.groups;
    assert.deepEqual(detail.map((x: { volumes: string[] }) => x.volumes), [[m1.id]]);
    assert.deepEqual((await mv(p.member).get('/groups')).body.groups, [{ id: g.id, name: 'g1' }]);

    // Another project sees nothing of it.
    assert.equal((await mv(other.member).get(`/groups/${g.id}`)).status, 404);
    assert.equal((await mv(other.member).get(`/groups/${g.id}`)).body.itemNotFound.message, `Group ${g.id} could not be found.`);
    assert.equal((await mv(other.member).get('/groups')).body.groups.length, 0);
    assert.equal((await mv(other.member).post(`/groups/${g.id}/action`, { delete: {} })).status, 404);
    assert.equal((await mv(other.member).post('/volumes', { volume: { size: 1, group_id: g.id, volume_type: vtype.name } })).status, 404);
    assert.equal((await mv(p.reader).put(`/groups/${g.id}`, { group: { name: 'x' } })).status, 403);
    assert.equal((await admin.get(`/v3/${p.id}/groups?all_tenants=1`)).body.groups.some((x: { id: string }) => x.id === g.id), true);

    // A member cannot be deleted alone, even forced; quota shows the group.
    const del = await p.member.delete(`/volumes/${m1.id}`);
    assert.equal(del.status, 400);
    assert.match(del.body.badRequest.message, /belong to a group/);
    assert.equal((await f.admin.at('3.23').delete(`/v3/${p.id}/volumes/${m1.id}?force=true`)).status, 400);
    const quota = (await p.member.get(`/os-quota-sets/${p.id}?usage=true`)).body.quota_set;
    assert.equal(quota.groups.in_use, 1);
    assert.equal(quota.groups.limit, 10);
  });

  test('group update: name, add_volumes and remove_volumes with upstream checks', async () => {
    const g = await newGroup('upd');
    const member = await newMember(g.id, 'u-member');
    const other1 = (await p.member.post('/volumes', { volume: { size: 1, volume_type: vtype.name } })).body.volume;
    const wrong = (await p.member.post('/volumes', { volume: { size: 1 } })).body.volume;
    await f.waitFor(p.member, 'volumes', other1.id, ['available']);
    await f.waitFor(p.member, 'volumes', wrong.id, ['available']);
    const put = (group: Record<string, unknown>) => mv(p.member).put(`/groups/${g.id}`, { group });
    const msg = async (group: Record<string, unknown>) => (await put(group)).body.badRequest?.message;

    assert.match(await msg({}), /is not valid under any of the given schemas/);
    assert.equal(await msg({ name: 'upd' }), `Invalid Group: Cannot update group ${g.id} because no valid name, description, add_volumes, or remove_volumes were provided.`);
    assert.equal(await msg({ add_volumes: other1.id, remove_volumes: other1.id }), `Invalid volume: UUIDs ['${other1.id}'] are in both add and remove volume list.`);
    const defaultType = await f.database.db.selectFrom('volume_types').select('id').where('name', '=', '__DEFAULT__').executeTakeFirstOrThrow();
    assert.equal(await msg({ add_volumes: wrong.id }), `Invalid volume: Cannot add volume ${wrong.id} to group ${g.id} because volume type ${defaultType.id} is not supported by the group.`);
    assert.equal(await msg({ add_volumes: '5a5a5a5a-0000-4000-8000-000000000000' }), `Invalid volume: Cannot add volume 5a5a5a5a-0000-4000-8000-000000000000 to group ${g.id} because volume cannot be found.`);
    assert.equal(await msg({ remove_volumes: other1.id }), `Invalid volume: Cannot remove volume ${other1.id} from group ${g.id} because it is not in the group.`);
    await f.database.db.updateTable('volumes').set({ status: 'error' }).where('id', '=', other1.id).execute();
    assert.equal(await msg({ add_volumes: other1.id }), `Invalid volume: Cannot add volume ${other1.id} to group ${g.id} because volume is in an invalid state: error. Valid states are: ('available', 'in-use').`);
    await f.database.db.updateTable('volumes').set({ status: 'available' }).where('id', '=', other1.id).execute();

    const ok = await put({ name: 'renamed', add_volumes: `${other1.id},`, remove_volumes: member.id });
    assert.equal(ok.status, 202);
    const after = await groupOf(p.member, g.id, '?list_volume=true');
    assert.equal(after.name, 'renamed');
    assert.equal(after.status, 'available');
    assert.deepEqual(after.volumes, [other1.id]);
    assert.equal((await p.member.at('3.13').get(`/volumes/${member.id}`)).body.volume.group_id, null);
    await sawEvent('group.update.end');
    // The volume now in a group cannot join another.
    const g2 = await newGroup('upd2');
    const res = await mv(p.member).put(`/groups/${g2.id}`, { group: { add_volumes: other1.id } });
    assert.equal(res.body.badRequest.message, `Invalid volume: Cannot add volume ${other1.id} to group ${g2.id} because it is already in group ${g.id}.`);
    // Members change only while the group is available.
    await f.database.db.updateTable('groups').set({ status: 'error' }).where('id', '=', g.id).execute();
    assert.equal(await msg({ add_volumes: member.id }), 'Invalid Group: Group status must be available.');
  });

  test('group snapshots (3.14), groups from them and from a group, delete with delete-volumes', async () => {
    assert.equal((await p.member.at('3.13').get('/group_snapshots')).status, 404);
    const g = await newGroup('snapped', [vtype.name, vtype2.name]);
    const a = await newMember(g.id, 'sa');
    const b = await newMember(g.id, 'sb', vtype2.name);
    f.fake!.write(a.id, 0, Buffer.from('before-a'));
    f.fake!.write(b.id, 0, Buffer.from('before-b'));

    const made = await mv(p.member).post('/group_snapshots', { group_snapshot: { group_id: g.id, name: 'gs1' } });
    assert.equal(made.status, 202, JSON.stringify(made.body));
    assert.deepEqual(made.body.group_snapshot, { id: made.body.group_snapshot.id, name: 'gs1', group_type_id: gtype.id });
    const gsId = made.body.group_snapshot.id;
    await f.volumes.drain();
    const gs = (await mv(p.member).get(`/group_snapshots/${gsId}`)).body.group_snapshot;
    assert.equal(gs.status, 'available');
    assert.equal(gs.group_id, g.id);
    const snaps = (await p.member.at('3.14').get('/snapshots/detail')).body.snapshots.filter((s: { group_snapshot_id: string }) => s.group_snapshot_id === gsId);
    assert.deepEqual(snaps.map((s: { volume_id: string }) => s.volume_id).sort(), [a.id, b.id].sort());
    assert.ok(snaps.every((s: { status: string }) => s.status === 'available'));
    assert.ok(!('group_snapshot_id' in (await p.member.at('3.13').get(`/snapshots/${snaps[0].id}`)).body.snapshot));
    await sawEvent('group_snapshot.create.end');
    // Such a snapshot goes only with its group snapshot; the group only once its snapshots are gone.
    assert.match((await p.member.delete(`/snapshots/${snaps[0].id}`)).body.badRequest.message, /must not be part of a group/);
    assert.equal((await mv(p.member).post(`/groups/${g.id}/action`, { delete: { 'delete-volumes': true } })).body.badRequest.message, 'Invalid Group: Group has existing snapshots.');

    f.fake!.write(a.id, 0, Buffer.from('after--a'));
    const fromSnap = await mv(p.member).post('/groups/action', { 'create-from-src': { group_snapshot_id: gsId, name: 'restored' } });
    assert.equal(fromSnap.status, 202, JSON.stringify(fromSnap.body));
    const restored = await groupOf(p.member, fromSnap.body.group.id, '?list_volume=true');
    assert.equal(restored.status, 'available');
    assert.equal(restored.group_snapshot_id, gsId);
    assert.equal(restored.volumes.length, 2);
    const datas = restored.volumes.map((id: string) => f.fake!.read(id, 0)?.toString()).sort();
    assert.deepEqual(datas, ['before-a', 'before-b']);

    const clone = await mv(p.member).post('/groups/action', { 'create-from-src': { source_group_id: g.id } });
    assert.equal(clone.status, 202);
    const cloned = await groupOf(p.member, clone.body.group.id, '?list_volume=true');
    assert.equal(cloned.source_group_id, g.id);
    assert.deepEqual(cloned.volumes.map((id: string) => f.fake!.read(id, 0)?.toString()).sort(), ['after--a', 'before-b']);
    assert.match((await mv(p.member).post('/groups/action', { 'create-from-src': {} })).body.badRequest.message, /not valid under any of the given schemas/);
    assert.equal((await mv(p.member).post('/groups/action', { 'create-from-src': { group_snapshot_id: '1d0b1a0e-0000-4000-8000-000000000000' } })).body.itemNotFound.message, 'GroupSnapshot 1d0b1a0e-0000-4000-8000-000000000000 could not be found.');
    assert.equal((await mv(other.member).post('/groups/action', { 'create-from-src': { source_group_id: g.id } })).status, 404);

    // Delete: without delete-volumes a group with members is refused; with it the members go too.
    const plain = await mv(p.member).post(`/groups/${cloned.id}/action`, { delete: {} });
    assert.equal(plain.status, 400);
    assert.equal(plain.body.badRequest.message, `Invalid Group: Group ${cloned.id} still contains volumes. The delete-volumes flag is required to delete it.`);
    assert.equal((await mv(p.member).post(`/groups/${cloned.id}/action`, { delete: { 'delete-volumes': true } })).status, 202);
    await f.volumes.drain();
    assert.equal((await mv(p.member).get(`/groups/${cloned.id}`)).status, 404);
    for (const id of cloned.volumes) {
      assert.equal((await p.member.get(`/volumes/${id}`)).status, 404);
      assert.ok(!f.fake!.has(id));
    }
    await sawEvent('group.delete.end');

    // Group snapshot delete takes its snapshots; then the source group can go.
    assert.equal((await mv(p.member).delete(`/group_snapshots/${gsId}`)).status, 202);
    await f.volumes.drain();
    assert.equal((await mv(p.member).get(`/group_snapshots/${gsId}`)).status, 404);
    assert.equal((await p.member.get(`/snapshots/${snaps[0].id}`)).status, 404);
    assert.equal((await mv(p.member).post(`/groups/${g.id}/action`, { delete: { 'delete-volumes': true } })).status, 202);
    await f.volumes.drain();
    assert.equal((await p.member.get(`/volumes/${a.id}`)).status, 404);
  });

  test('reset_status (3.19, 3.20), group snapshot paging (3.29), replication actions (3.38), groups quota', async () => {
    const g = await newGroup('misc');
    const ids: string[] = [];
    for (const name of ['s-b', 's-a', 's-c']) {
      ids.push((await mv(p.member).post('/group_snapshots', { group_snapshot: { group_id: g.id, name } })).body.group_snapshot.id);
      await new Promise((r) => setTimeout(r, 5));
    }
    await f.volumes.drain();
    const names = (r: { body: { group_snapshots: { id: string; name: string }[] } }) => r.body.group_snapshots.filter((s) => ids.includes(s.id)).map((s) => s.name);
    assert.deepEqual(names(await p.member.at('3.28').get('/group_snapshots?sort=name:asc&limit=1')), ['s-c', 's-a', 's-b'], 'before 3.29 no sort or limit');
    assert.deepEqual(names(await p.member.at('3.29').get('/group_snapshots?sort=name:asc')), ['s-a', 's-b', 's-c']);
    const page = await p.member.at('3.29').get('/group_snapshots/detail?sort=name:asc&limit=2');
    assert.deepEqual(names(page), ['s-a', 's-b']);
    assert.equal(new URL(page.body.group_snapshot_links[0].href).searchParams.get('marker'), ids[0]);
    assert.deepEqual(names(await p.member.at('3.29').get(`/group_snapshots?sort=name:asc&marker=${ids[0]}`)), ['s-c']);
    assert.deepEqual(names(await p.member.at('3.29').get('/group_snapshots?sort=name:asc&offset=1&limit=1')), ['s-b']);
    assert.deepEqual(names(await p.member.at('3.29').get('/group_snapshots?name=s-c')), ['s-c']);

    // reset_status: admin only, upstream's statuses, version-gated.
    const gs = `/group_snapshots/${ids[0]}/action`;
    assert.equal((await p.member.at('3.18').post(gs, { reset_status: { status: 'error' } })).status, 404);
    assert.equal((await mv(p.member).post(gs, { reset_status: { status: 'error' } })).status, 403);
    const badSnap = await admin.post(`/v3/${p.id}${gs}`, { reset_status: { status: 'bogus' } });
    assert.equal(badSnap.status, 400);
    assert.match(badSnap.body.badRequest.message, /^Invalid GroupSnapshot Status: Group snapshot status: bogus is invalid/);
    assert.equal((await admin.post(`/v3/${p.id}${gs}`, { reset_status: { status: 'ERROR' } })).status, 202);
    assert.equal((await mv(p.member).get(`/group_snapshots/${ids[0]}`)).body.group_snapshot.status, 'error');
    const ga = `/v3/${p.id}/groups/${g.id}/action`;
    assert.equal((await f.admin.at('3.19').post(ga, { reset_status: { status: 'error' } })).status, 404);
    assert.equal((await admin.post(ga, { reset_status: { status: 'nope' } })).status, 400);
    assert.equal((await admin.post(ga, { reset_status: { status: 'error' } })).status, 202);
    assert.equal((await groupOf(p.member, g.id)).status, 'error');

    // Replication: no replication group type here, so upstream's 400 for each action.
    for (const action of ['enable_replication', 'disable_replication', 'failover_replication', 'list_replication_targets']) {
      const res = await mv(p.member).post(`/groups/${g.id}/action`, { [action]: {} });
      assert.equal(res.status, 400, action);
      assert.equal(res.body.badRequest.message, `Invalid group type: Group ${g.id} is not a replication group type.`);
      assert.equal((await p.member.at('3.37').post(`/groups/${g.id}/action`, { [action]: {} })).status, 404);
    }

    // Groups quota: a project allowed one group gets a 413 for the second.
    const q = await f.project('grp-q');
    assert.equal((await f.admin.put(`/os-quota-sets/${q.id}`, { quota_set: { groups: 1 } })).status, 200);
    const body = { group: { group_type: gtype.id, volume_types: [vtype.id] } };
    assert.equal((await mv(q.member).post('/groups', body)).status, 202);
    const over = await mv(q.member).post('/groups', body);
    assert.equal(over.status, 413);
    assert.equal(over.body.overLimit.message, 'Maximum number of groups allowed (1) exceeded');
    assert.equal((await f.database.db.selectFrom('groups').select('id').where('project_id', '=', q.id).execute()).length, 1);
    // A group type in use cannot go.
    const inUse = await admin.delete(`/group_types/${gtype.id}`);
    assert.equal(inUse.status, 400);
    assert.equal(inUse.body.badRequest.message, 'Target group type is still in use.');
  });
});
