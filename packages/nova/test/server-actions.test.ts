import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isAtLeast, parseVersion } from '@onestack/core/http/microversion.ts';
import { MAX_MICROVERSION } from '../src/conf.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import { startNova, type NovaClient, type NovaFixture, type Project } from './fixture.ts';

/** Resize, cold migrate, confirm/revert, createImage and rebuild on two fake hosts. */
describe('nova server actions: moves and images', () => {
  let f: NovaFixture;
  let p: Project;
  let other: Project;
  let netId: string;

  const boot = async (name: string, flavorRef = '42', imageRef = f.imageId) => {
    const r = await p.member.post('/v2.1/servers', { server: { name, imageRef, flavorRef, networks: [{ uuid: netId }] } });
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(p.member, r.body.server.id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    return r.body.server.id as string;
  };
  const act = (c = p.member, id: string, body: unknown) => c.post(`/v2.1/servers/${id}/action`, body);
  const adminView = async (id: string) => (await f.admin.get(`/v2.1/servers/${id}`)).body.server;
  const usage = async (consumer: string) => {
    const a = (await f.nova.core.placement.allocations(consumer)).allocations;
    return Object.values(a).map((x) => x.resources);
  };
  const migrationsOf = async (id: string, version = '2.59') => (await f.admin.at(version).get(`/v2.1/os-migrations?instance_uuid=${id}`)).body.migrations;

  before(async () => {
    f = await startNova();
    await f.addCompute('host1');
    await f.addCompute('host2');
    p = await f.project('movers');
    other = await f.project('others');
    const net = await p.net.post('/v2.0/networks', { network: { name: 'private' } });
    netId = net.body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.1.0.0/24', ip_version: 4 } });
  });
  after(() => f?.close());

  it('resizes to VERIFY_RESIZE with the old allocation on the migration consumer, then confirms', async () => {
    const id = await boot('rs1');
    assert.equal((await act(p.member, id, { resize: { flavorRef: '1' } })).status, 202);
    const s = await f.waitFor(p.member, id, (x) => x.status === 'VERIFY_RESIZE' || x.status === 'ERROR');
    assert.equal(s.status, 'VERIFY_RESIZE', JSON.stringify(s));
    assert.equal(s.flavor.original_name, 'm1.tiny');
    assert.equal(s['OS-EXT-STS:power_state'], 1);
    const [m] = await migrationsOf(id);
    assert.equal(m.status, 'finished');
    assert.equal(m.migration_type, 'resize');
    assert.equal(m.old_instance_type_id, '42');
    assert.equal(m.new_instance_type_id, '1');
    assert.deepEqual(await usage(id), [{ VCPU: 1, MEMORY_MB: 256, DISK_GB: 1 }]);
    assert.deepEqual(await usage(m.uuid), [{ VCPU: 1, MEMORY_MB: 128, DISK_GB: 1 }]);
    const host = (await adminView(id))['OS-EXT-SRV-ATTR:host'];
    const info = await f.computes.get(host)!.driver.getInfo(id);
    assert.equal(info.memoryMb, 256, 'the guest runs with the new flavor');

    const confirm = await act(p.member, id, { confirmResize: null });
    assert.equal(confirm.status, 204, confirm.text);
    const done = await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE');
    assert.equal(done.flavor.original_name, 'm1.tiny');
    assert.deepEqual(await usage(m.uuid), []);
    assert.equal((await migrationsOf(id))[0].status, 'confirmed');
    const actions = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.map((a: { action: string }) => a.action);
    assert.deepEqual(actions.slice(0, 2), ['confirmResize', 'resize']);
    const resize = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.find((a: { action: string }) => a.action === 'resize');
    const events = (await f.admin.get(`/v2.1/servers/${id}/os-instance-actions/${resize.request_id}`)).body.instanceAction.events.map((e: { event: string; result: string }) => `${e.event}:${e.result}`);
    assert.deepEqual(events.sort(), ['compute_finish_resize:Success', 'compute_resize_instance:Success', 'conductor_migrate_server:Success']);
    assert.equal((await act(p.member, id, { confirmResize: null })).status, 400, 'nothing left to confirm');
  });

  it('reverts a resize: old flavor, allocation and power state back', async () => {
    const id = await boot('rs2');
    assert.equal((await act(p.member, id, { 'os-stop': null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'SHUTOFF');
    assert.equal((await act(p.member, id, { resize: { flavorRef: 84 } })).status, 202);
    const s = await f.waitFor(p.member, id, (x) => x.status === 'VERIFY_RESIZE' || x.status === 'ERROR');
    assert.equal(s.status, 'VERIFY_RESIZE');
    assert.equal(s['OS-EXT-STS:power_state'], 4, 'a stopped server stays stopped');
    const [m] = await migrationsOf(id);
    assert.equal((await act(p.member, id, { revertResize: null })).status, 202);
    const back = await f.waitFor(p.member, id, (x) => x.status === 'SHUTOFF' && !x['OS-EXT-STS:task_state']);
    assert.equal(back.flavor.original_name, 'm1.nano');
    assert.deepEqual(await usage(id), [{ VCPU: 1, MEMORY_MB: 128, DISK_GB: 1 }]);
    assert.deepEqual(await usage(m.uuid), []);
    assert.equal((await migrationsOf(id))[0].status, 'reverted');
  });

  it('refuses resizes as upstream: same flavor, unknown flavor, shrinking, wrong state, lock, quota, other project', async () => {
    const id = await boot('rs3', '2');
    const same = await act(p.member, id, { resize: { flavorRef: '2' } });
    assert.equal(same.status, 400);
    assert.equal(same.body.badRequest.message, 'When resizing, instances must change flavor!');
    assert.equal((await act(p.member, id, { resize: { flavorRef: 'nope' } })).body.badRequest.message, 'Unable to locate requested flavor.');
    assert.equal((await act(p.member, id, { resize: { flavorRef: '1' } })).status, 400, 'disk 2 to 1');
    assert.equal((await act(p.member, id, { resize: {} })).status, 400);
    assert.equal((await act(other.member, id, { resize: { flavorRef: '3' } })).status, 404);
    assert.equal((await act(p.member, id, { pause: null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'PAUSED');
    const paused = await act(p.member, id, { resize: { flavorRef: '3' } });
    assert.equal(paused.status, 409);
    assert.equal(paused.body.conflictingRequest.message, `Cannot 'resize' instance ${id} while it is in vm_state paused`);
    assert.equal((await act(p.member, id, { unpause: null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE');
    assert.equal((await act(f.admin, id, { lock: null })).status, 202);
    assert.equal((await act(p.member, id, { resize: { flavorRef: '3' } })).status, 409);
    assert.equal((await act(f.admin, id, { unlock: null })).status, 202);
    const used = (await f.admin.get(`/v2.1/os-quota-sets/${p.id}/detail`)).body.quota_set.cores.in_use;
    assert.equal((await f.admin.put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { cores: used } })).status, 200);
    const quota = await act(p.member, id, { resize: { flavorRef: '3' } });
    assert.equal(quota.status, 403);
    assert.match(quota.body.forbidden.message, /^Quota exceeded for cores: Requested 1, but already used \d+ of \d+ cores/);
    assert.equal((await f.admin.put(`/v2.1/os-quota-sets/${p.id}`, { quota_set: { cores: -1 } })).status, 200);
    assert.equal((await act(p.member, id, { confirmResize: null })).status, 400);
  });

  it('cold migrates (admin only; host from 2.56) to the other host, ports follow, revert comes back', async () => {
    const id = await boot('mig1');
    const src = (await adminView(id))['OS-EXT-SRV-ATTR:host'];
    const dst = src === 'host1' ? 'host2' : 'host1';
    assert.equal((await act(p.member, id, { migrate: null })).status, 403);
    assert.equal((await act(f.admin, id, { migrate: { host: dst } })).status, 400, 'a body before 2.56');
    assert.equal((await act(f.admin.at('2.56'), id, { migrate: { host: src } })).status, 400);
    assert.equal((await act(f.admin.at('2.56'), id, { migrate: { host: 'nohost' } })).status, 400);
    assert.equal((await act(f.admin.at('2.56'), id, { migrate: { host: dst } })).status, 202);
    const s = await f.waitFor(f.admin, id, (x) => x.status === 'VERIFY_RESIZE' || x.status === 'ERROR');
    assert.equal(s.status, 'VERIFY_RESIZE', JSON.stringify(s));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], dst);
    assert.ok((await f.computes.get(dst)!.driver.listInstances()).includes(id));
    assert.ok((await f.computes.get(src)!.driver.listInstances()).includes(id), 'the source keeps its copy until confirmed');
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports[0]['binding:host_id'], dst);
    const [m] = await migrationsOf(id);
    assert.deepEqual([m.migration_type, m.source_compute, m.dest_compute, m.status], ['migration', src, dst, 'finished']);

    assert.equal((await act(p.member, id, { revertResize: null })).status, 202);
    const back = await f.waitFor(f.admin, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    assert.equal(back['OS-EXT-SRV-ATTR:host'], src);
    assert.ok(!(await f.computes.get(dst)!.driver.listInstances()).includes(id));
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports[0]['binding:host_id'], src);

    assert.equal((await act(f.admin, id, { migrate: null })).status, 202);
    const moved = await f.waitFor(f.admin, id, (x) => x.status === 'VERIFY_RESIZE' || x.status === 'ERROR');
    assert.equal(moved['OS-EXT-SRV-ATTR:host'], dst, 'the scheduler never picks the source');
    assert.equal((await act(p.member, id, { confirmResize: null })).status, 204);
    await f.waitFor(f.admin, id, (x) => x.status === 'ACTIVE');
    assert.ok(!(await f.computes.get(src)!.driver.listInstances()).includes(id), 'confirm removes the source copy');
    assert.deepEqual(await usage(id), [{ VCPU: 1, MEMORY_MB: 128, DISK_GB: 1 }]);
  });

  it('lists migrations per microversion with filters and 2.59 paging', async () => {
    const all = (await f.admin.at('2.1').get('/v2.1/os-migrations')).body.migrations;
    assert.ok(all.length >= 4);
    assert.equal(all[0].migration_type, undefined, 'migration_type from 2.23');
    assert.equal(all[0].uuid, undefined, 'uuid from 2.59');
    assert.ok((await f.admin.at('2.23').get('/v2.1/os-migrations?migration_type=migration')).body.migrations.every((m: { migration_type: string }) => m.migration_type === 'migration'));
    assert.ok((await f.admin.get('/v2.1/os-migrations?status=reverted')).body.migrations.length >= 2);
    const page1 = (await f.admin.at('2.59').get('/v2.1/os-migrations?limit=2')).body;
    assert.equal(page1.migrations.length, 2);
    assert.match(page1.migrations_links[0].href, /marker=/);
    const page2 = (await f.admin.at('2.59').get(`/v2.1/os-migrations?limit=2&marker=${page1.migrations[1].uuid}`)).body;
    assert.ok(page2.migrations.every((m: { id: number }) => m.id < page1.migrations[1].id));
    assert.equal((await f.admin.at('2.59').get('/v2.1/os-migrations?marker=00000000-0000-0000-0000-000000000000')).status, 400);
    assert.equal((await p.member.get('/v2.1/os-migrations')).status, 403);
    // Only in-progress live migrations are listed per server, and onestack has none.
    const id = all[0].instance_uuid;
    assert.equal((await f.admin.at('2.22').get(`/v2.1/servers/${id}/migrations`)).status, 404);
    assert.deepEqual((await f.admin.at('2.23').get(`/v2.1/servers/${id}/migrations`)).body, { migrations: [] });
    assert.equal((await f.admin.at('2.23').get(`/v2.1/servers/${id}/migrations/${all[0].id}`)).status, 404);
    assert.equal((await p.member.at('2.23').get(`/v2.1/servers/${id}/migrations`)).status, 403);
  });

  it('creates a snapshot image in Glance (Location before 2.45, image_id from 2.45) that boots', async () => {
    const id = await boot('snap1');
    const old = await act(p.member.at('2.44'), id, { createImage: { name: 'snap-old', metadata: { purpose: 'test' } } });
    assert.equal(old.status, 202, old.text);
    const location = old.headers.get('location')!;
    assert.match(location, /\/images\/[0-9a-f-]{36}$/);
    const busy = await act(p.member.at('2.45'), id, { createImage: { name: 'snap-busy' } });
    if (busy.status === 409) assert.match(busy.body.conflictingRequest.message, /while it is in task_state image_/);
    await f.waitFor(p.member, id, (x) => !x['OS-EXT-STS:task_state']);
    const r = await act(p.member.at('2.45'), id, { createImage: { name: 'snap-new' } });
    assert.equal(r.status, 202, r.text);
    const imageId = r.body.image_id;
    assert.match(imageId, /^[0-9a-f-]{36}$/);
    const waitImage = async (img: string) => {
      for (let i = 0; i < 200; i++) {
        const g = await f.glanceAdmin.get(`/v2/images/${img}`);
        if (g.body.status === 'active') return g.body;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`image ${img} never became active`);
    };
    const img = await waitImage(imageId);
    assert.equal(img.image_type, 'snapshot');
    assert.equal(img.instance_uuid, id);
    assert.equal(img.base_image_ref, f.imageId);
    assert.equal(img.owner, p.id);
    assert.equal(img.visibility, 'private');
    assert.equal((await waitImage(location.split('/').pop()!)).purpose, 'test');
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    // An admin's image of someone's server is the admin project's, shared with the server's (upstream's instance_owner).
    const byAdmin = await act(f.admin.at('2.45'), id, { createImage: { name: 'snap-admin' } });
    assert.equal(byAdmin.status, 202, byAdmin.text);
    const adminImg = await waitImage(byAdmin.body.image_id);
    assert.equal(adminImg.visibility, 'shared');
    assert.notEqual(adminImg.owner, p.id);
    assert.deepEqual((await f.glanceAdmin.get(`/v2/images/${adminImg.id}/members`)).body.members.map((m: { member_id: string }) => m.member_id), [p.id]);
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    await boot('from-snap', '42', imageId);
    assert.equal((await act(p.member, id, { createImage: {} })).status, 400);
  });

  it('rebuilds onto another image with a new name, metadata and key (2.54), returning adminPass', async () => {
    const id = await boot('rb1');
    const up = await f.glanceAdmin.post('/v2/images', { name: 'other-image', disk_format: 'raw', container_format: 'bare', visibility: 'public' });
    const put = await fetch(`${f.glanceAdmin.baseUrl}/v2/images/${up.body.id}/file`, { method: 'PUT', headers: { 'x-auth-token': f.ks.admin.token!, 'content-type': 'application/octet-stream' }, body: new Uint8Array(4096) });
    assert.equal(put.status, 204);
    assert.equal((await p.member.post('/v2.1/os-keypairs', { keypair: { name: 'k1' } })).status, 201);
    assert.equal((await act(p.member.at('2.53'), id, { rebuild: { imageRef: up.body.id, key_name: 'k1' } })).status, 400, 'key_name from 2.54');
    assert.equal((await act(p.member.at('2.54'), id, { rebuild: { imageRef: up.body.id, key_name: 'nokey' } })).status, 400);
    const r = await act(p.member.at('2.54'), id, { rebuild: { imageRef: up.body.id, name: 'rb1-new', metadata: { v: '2' }, key_name: 'k1', adminPass: 'Secret-1' } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.server.adminPass, 'Secret-1');
    assert.equal(r.body.server.status, 'REBUILD');
    assert.equal(r.body.server.image.id, up.body.id);
    assert.equal(r.body.server.key_name, 'k1', 'key_name in the response from 2.54');
    assert.equal(r.body.server['OS-EXT-STS:task_state'], undefined, 'the reduced view before 2.75');
    assert.deepEqual(Object.keys(r.body.server.addresses.private[0]).sort(), ['addr', 'version']);
    const s = await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    assert.equal(s.name, 'rb1-new');
    assert.deepEqual(s.metadata, { v: '2' });
    assert.equal(s.key_name, 'k1');
    assert.equal(s.image.id, up.body.id);
    const rebuild = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions[0];
    assert.equal(rebuild.action, 'rebuild');
    assert.equal((await act(p.member, id, { rebuild: { name: 'x' } })).status, 400, 'imageRef is required');
    assert.equal((await act(p.member, id, { rebuild: { imageRef: '00000000-0000-0000-0000-000000000000' } })).status, 400);
  });

  // Runs once the advertised maximum reaches these versions (conf.ts).
  it('rebuild takes trusted certificates (2.63) and shows server groups (2.71)', { skip: !isAtLeast(parseVersion(MAX_MICROVERSION), '2.71') && 'max microversion below 2.71' }, async () => {
    const id = await boot('rb2');
    const at = p.member.at('2.71');
    assert.equal((await act(at, id, { rebuild: { imageRef: f.imageId, trusted_image_certificates: [] } })).status, 400);
    const r = await act(at, id, { rebuild: { imageRef: f.imageId, trusted_image_certificates: ['cert-a', 'cert-b'] } });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.body.server.trusted_image_certificates, ['cert-a', 'cert-b']);
    assert.deepEqual(r.body.server.server_groups, []);
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    const cleared = await act(at, id, { rebuild: { imageRef: f.imageId, trusted_image_certificates: null } });
    assert.equal(cleared.body.server.trusted_image_certificates, null);
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
  });

  it('shelves (offloaded at once: no host, no allocation, ports unbound) and unshelves through the scheduler', async () => {
    const id = await boot('shelf1');
    assert.equal((await act(p.member, id, { unshelve: null })).status, 409);
    assert.equal((await act(p.member, id, { shelve: null })).status, 202);
    const s = await f.waitFor(f.admin, id, (x) => x.status === 'SHELVED_OFFLOADED' && !x['OS-EXT-STS:task_state']);
    assert.equal(s['OS-EXT-SRV-ATTR:host'], null);
    assert.deepEqual(await usage(id), []);
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports[0]['binding:host_id'], '');
    const images = (await f.glanceAdmin.get('/v2/images?name=shelf1-shelved')).body.images;
    assert.equal(images.length, 1);
    assert.equal(images[0].image_type, 'snapshot');
    assert.equal(images[0].instance_uuid, id);
    assert.equal((await act(p.member, id, { shelveOffload: null })).status, 403);
    const hostless = await act(p.member.at('2.17'), id, { trigger_crash_dump: null });
    assert.equal(hostless.body.conflictingRequest?.message, `Instance ${id} is not ready`, 'no host: checked before the state, as upstream');
    assert.equal((await act(p.member, id, { unshelve: { availability_zone: 'nova' } })).status, 400, 'a body from 2.77');
    assert.equal((await act(p.member, id, { unshelve: null })).status, 202);
    const back = await f.waitFor(f.admin, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    assert.ok(['host1', 'host2'].includes(back['OS-EXT-SRV-ATTR:host']));
    assert.deepEqual(await usage(id), [{ VCPU: 1, MEMORY_MB: 128, DISK_GB: 1 }]);
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports[0]['binding:host_id'], back['OS-EXT-SRV-ATTR:host']);
    assert.equal((await f.glanceAdmin.get(`/v2/images/${images[0].id}`)).status, 404, 'the shelved image is deleted after unshelve');
    const actions = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.map((a: { action: string }) => a.action);
    assert.deepEqual(actions.slice(0, 2), ['unshelve', 'shelve']);
  });

  it('trigger_crash_dump (2.17): 202 and an NMI into the guest on its host; refused as upstream', async () => {
    const id = await boot('nmi1');
    const driver = f.computes.get((await adminView(id))['OS-EXT-SRV-ATTR:host'])!.driver as FakeDriver;
    const crash = (c: NovaClient) => act(c.at('2.17'), id, { trigger_crash_dump: null });
    const nmis = async (n: number) => {
      for (let i = 0; i < 200 && driver.nmiCount(id) < n; i++) await new Promise((res) => setTimeout(res, 25));
      assert.equal(driver.nmiCount(id), n);
    };
    assert.equal((await act(p.member.at('2.16'), id, { trigger_crash_dump: null })).status, 404, 'unknown before 2.17');
    const bad = await act(p.member.at('2.17'), id, { trigger_crash_dump: {} });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.badRequest.message, "Invalid input for field/attribute trigger_crash_dump. Value: {}. {} is not of type 'null'");
    assert.equal((await crash(other.member)).status, 404);
    assert.equal((await crash(p.reader)).status, 403);

    const r = await crash(p.member);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.text, '');
    await nmis(1);
    const [action] = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions;
    assert.equal(action.action, 'trigger_crash_dump');
    const events = (await f.admin.get(`/v2.1/servers/${id}/os-instance-actions/${action.request_id}`)).body.instanceAction.events;
    assert.deepEqual(events.map((e: { event: string; result: string }) => `${e.event}:${e.result}`), ['compute_trigger_crash_dump:Success']);
    const s = await adminView(id);
    assert.deepEqual([s.status, s['OS-EXT-STS:task_state'], s['OS-EXT-STS:power_state']], ['ACTIVE', null, 1], 'no task state, power state as it was');

    assert.equal((await act(f.admin, id, { lock: null })).status, 202);
    const locked = await crash(p.member);
    assert.equal(locked.status, 409);
    assert.equal(locked.body.conflictingRequest.message, `Instance ${id} is locked`);
    assert.equal((await crash(f.admin)).status, 202, 'an admin passes the lock');
    await nmis(2);
    assert.equal((await act(f.admin, id, { unlock: null })).status, 202);
    assert.equal((await act(p.member, id, { pause: null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'PAUSED');
    assert.equal((await crash(p.member)).status, 202, 'PAUSED is allowed');
    await nmis(3);
    assert.equal((await act(p.member, id, { unpause: null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']);
    assert.equal((await act(p.member, id, { 'os-stop': null })).status, 202);
    await f.waitFor(p.member, id, (x) => x.status === 'SHUTOFF' && !x['OS-EXT-STS:task_state']);
    const stopped = await crash(p.member);
    assert.equal(stopped.status, 409);
    assert.equal(stopped.body.conflictingRequest.message, `Cannot 'trigger_crash_dump' instance ${id} while it is in vm_state stopped`);
    // The project's instance quota (10) is shared by this file's tests.
    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
  });

  it('rescues and unrescues; changePassword answers 409 without a guest agent; password and diagnostics', async () => {
    const id = await boot('res1');
    const r = await act(p.member, id, { rescue: { adminPass: 'Rescue-1' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { adminPass: 'Rescue-1' });
    assert.equal((await f.waitFor(p.member, id, (x) => x.status === 'RESCUE')).status, 'RESCUE');
    assert.equal((await act(p.member, id, { rescue: null })).status, 409);
    assert.equal((await act(p.member, id, { unrescue: null })).status, 202);
    assert.equal((await f.waitFor(p.member, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state'])).status, 'ACTIVE');
    assert.equal((await act(p.member, id, { unrescue: null })).status, 409);

    const pw = await act(p.member, id, { changePassword: { adminPass: 'x' } });
    assert.equal(pw.status, 409);
    assert.equal(pw.body.conflictingRequest.message, 'QEMU guest agent is not enabled');
    assert.equal((await act(p.member, id, { changePassword: {} })).status, 400);

    assert.deepEqual((await p.member.get(`/v2.1/servers/${id}/os-server-password`)).body, { password: '' });
    assert.equal((await p.member.delete(`/v2.1/servers/${id}/os-server-password`)).status, 204);
    assert.equal((await other.member.get(`/v2.1/servers/${id}/os-server-password`)).status, 404);

    assert.equal((await p.member.get(`/v2.1/servers/${id}/diagnostics`)).status, 403);
    const d = (await f.admin.at('2.48').get(`/v2.1/servers/${id}/diagnostics`)).body;
    assert.equal(d.state, 'running');
    assert.equal(d.num_cpus, 1);
    assert.equal(d.num_nics, 1);
    assert.equal(d.memory_details.maximum, 128);
    assert.equal(d.nic_details[0].mac_address.slice(0, 8), 'fa:16:3e');
    assert.deepEqual((await f.admin.at('2.47').get(`/v2.1/servers/${id}/diagnostics`)).body, { memory: 128 * 1024, 'memory-actual': 128 * 1024 });
  });
});

describe('nova server actions: allow_resize_to_same_host and shelved_offload_time from the configuration', () => {
  let f: NovaFixture;
  let p: Project;
  before(async () => {
    f = await startNova({ config: { allow_resize_to_same_host: false, shelved_offload_time: -1 } });
    await f.addCompute('only-host');
    p = await f.project('conf-movers');
  });
  after(() => f?.close());

  const boot = async (name: string) => {
    const r = await p.member.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    assert.equal(r.status, 202, r.text);
    assert.equal((await f.waitFor(p.member, r.body.server.id)).status, 'ACTIVE');
    return r.body.server.id as string;
  };

  it('finds no host for a resize when the own host is the only one', async () => {
    const id = await boot('conf-resize');
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { resize: { flavorRef: '84' } })).status, 202);
    const s = await f.waitFor(f.admin, id, (x) => !x['OS-EXT-STS:task_state']);
    assert.equal(s.status, 'ACTIVE');
    assert.equal(s.flavor.original_name ?? s.flavor.id, 'm1.nano');
    const resize = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions.find((a: { action: string }) => a.action === 'resize');
    const events = (await f.admin.get(`/v2.1/servers/${id}/os-instance-actions/${resize.request_id}`)).body.instanceAction.events;
    assert.match(JSON.stringify(events), /Error/);
  });

  it('keeps a shelved server on its host until shelveOffload', async () => {
    const id = await boot('conf-shelf');
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { shelve: null })).status, 202);
    const s = await f.waitFor(f.admin, id, (x) => x.status === 'SHELVED' && !x['OS-EXT-STS:task_state']);
    assert.equal(s['OS-EXT-SRV-ATTR:host'], 'only-host');
    assert.equal(Object.keys((await f.nova.core.placement.allocations(id)).allocations).length, 1, 'still holds its allocation');
    assert.equal((await f.admin.post(`/v2.1/servers/${id}/action`, { shelveOffload: null })).status, 202);
    const off = await f.waitFor(f.admin, id, (x) => x.status === 'SHELVED_OFFLOADED' && !x['OS-EXT-STS:task_state']);
    assert.equal(off['OS-EXT-SRV-ATTR:host'], null);
  });
});

describe('nova server actions: shelved_offload_time > 0, offloaded by the host every shelved_poll_interval', () => {
  let f: NovaFixture;
  let p: Project;
  before(async () => {
    f = await startNova({ config: { shelved_offload_time: 2, shelved_poll_interval: 1 } });
    await f.addCompute('poll-host');
    p = await f.project('shelf-pollers');
  });
  after(() => f?.close());

  it('keeps a shelved server on its host for shelved_offload_time, then offloads it', async () => {
    const r = await p.member.post('/v2.1/servers', { server: { name: 'later', imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    assert.equal(r.status, 202, r.text);
    const id: string = r.body.server.id;
    assert.equal((await f.waitFor(p.member, id)).status, 'ACTIVE');
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { shelve: null })).status, 202);
    const shelvedAt = Date.now();
    const s = await f.waitFor(f.admin, id, (x) => (x.status === 'SHELVED' || x.status === 'SHELVED_OFFLOADED') && !x['OS-EXT-STS:task_state']);
    assert.equal(s.status, 'SHELVED', 'not offloaded at once');
    assert.equal(s['OS-EXT-SRV-ATTR:host'], 'poll-host');
    assert.equal(Object.keys((await f.nova.core.placement.allocations(id)).allocations).length, 1, 'still holds its allocation');
    const off = await f.waitFor(f.admin, id, (x) => x.status === 'SHELVED_OFFLOADED' && !x['OS-EXT-STS:task_state'], 15_000);
    assert.ok(Date.now() - shelvedAt >= 2000, `offloaded after ${Date.now() - shelvedAt} ms, before shelved_offload_time`);
    assert.equal(off['OS-EXT-SRV-ATTR:host'], null);
    assert.deepEqual((await f.nova.core.placement.allocations(id)).allocations, {});
    assert.deepEqual(await f.computes.get('poll-host')!.driver.listInstances(), []);
    // The offload has no request of its own: its event joins the shelve action, as upstream's periodic task.
    const [shelve] = (await p.member.get(`/v2.1/servers/${id}/os-instance-actions`)).body.instanceActions;
    assert.equal(shelve.action, 'shelve');
    const events = (await f.admin.get(`/v2.1/servers/${id}/os-instance-actions/${shelve.request_id}`)).body.instanceAction.events;
    assert.ok(events.some((e: { event: string; result: string }) => e.event === 'compute_shelve_offload_instance' && e.result === 'Success'), JSON.stringify(events));
    // Unshelved again from the offloaded state: back on a host.
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { unshelve: null })).status, 202);
    assert.equal((await f.waitFor(f.admin, id, (x) => x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state'])).status, 'ACTIVE');
  });
});
