import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';
import { MAX_MICROVERSION } from '../src/conf.ts';

describe('nova servers with the fake driver', () => {
  let f: NovaFixture;
  let p: Project;
  let netId: string;
  before(async () => {
    f = await startNova();
    await f.addCompute('host1');
    await f.addCompute('host2');
    p = await f.project('alpha');
    const net = await p.net.post('/v2.0/networks', { network: { name: 'private' } });
    netId = net.body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.0.0.0/24', ip_version: 4 } });
  });
  after(() => f?.close());

  it('serves version documents with the microversion range', async () => {
    const r = await f.admin.get('/');
    assert.equal(r.status, 200);
    const v21 = r.body.versions.find((v: { id: string }) => v.id === 'v2.1');
    assert.equal(v21.min_version, '2.1');
    assert.equal(v21.version, MAX_MICROVERSION);
    const s = await f.admin.at('2.30').get('/v2.1/flavors');
    assert.equal(s.headers.get('openstack-api-version'), 'compute 2.30');
    assert.equal(s.headers.get('x-openstack-nova-api-version'), '2.30');
    assert.equal((await f.admin.at('2.99').get('/v2.1/flavors')).status, 406);
  });

  it('boots a server to ACTIVE with a port from Neutron, then deletes it leaving nothing', async () => {
    const r = await p.member.post('/v2.1/servers', { server: { name: 'vm1', imageRef: f.imageId, flavorRef: '42', networks: [{ uuid: netId }], metadata: { a: 'b' } } });
    assert.equal(r.status, 202, r.text);
    const id = r.body.server.id;
    assert.ok(r.body.server.adminPass);
    const s = await f.waitFor(p.member, id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(s['OS-EXT-STS:power_state'], 1);
    assert.deepEqual(s.metadata, { a: 'b' });
    const addrs = s.addresses.private;
    assert.equal(addrs.length, 1);
    assert.match(addrs[0].addr, /^10\.0\.0\./);
    assert.match(addrs[0]['OS-EXT-IPS-MAC:mac_addr'], /^fa:16:3e/);
    assert.equal(s.flavor.original_name, 'm1.nano');
    assert.equal(s['OS-EXT-SRV-ATTR:host'], undefined, 'members do not see the host');
    const ports = await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`);
    assert.equal(ports.body.ports.length, 1);
    assert.equal(ports.body.ports[0]['binding:host_id'], (await f.admin.get(`/v2.1/servers/${id}`)).body.server['OS-EXT-SRV-ATTR:host']);
    const actions = await p.member.get(`/v2.1/servers/${id}/os-instance-actions`);
    assert.equal(actions.body.instanceActions[0].action, 'create');
    const del = await p.member.delete(`/v2.1/servers/${id}`);
    assert.equal(del.status, 204);
    await f.waitFor(p.member, id, (x) => x.status === 'DELETED');
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports.length, 0);
    assert.equal((await f.nova.core.placement.allocations(id)).allocations && Object.keys((await f.nova.core.placement.allocations(id)).allocations).length, 0);
    for (const { driver } of f.computes.values()) assert.ok(!(await driver.listInstances()).includes(id));
  });

  it('runs power actions and answers 409 in the wrong state', async () => {
    const r = await p.member.post('/v2.1/servers', { server: { name: 'vm2', imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    const id = r.body.server.id;
    await f.waitFor(p.member, id);
    const start = await p.member.post(`/v2.1/servers/${id}/action`, { 'os-start': null });
    assert.equal(start.status, 409);
    assert.equal(start.body.conflictingRequest.message, `Cannot 'start' instance ${id} while it is in vm_state active`);
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { 'os-stop': null })).status, 202);
    let s = await f.waitFor(p.member, id);
    assert.equal(s.status, 'SHUTOFF');
    assert.equal(s['OS-EXT-STS:power_state'], 4);
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { 'os-start': null })).status, 202);
    s = await f.waitFor(p.member, id);
    assert.equal(s.status, 'ACTIVE');
    for (const [a, st] of [['pause', 'PAUSED'], ['unpause', 'ACTIVE'], ['suspend', 'SUSPENDED'], ['resume', 'ACTIVE']] as const) {
      assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { [a]: null })).status, 202, a);
      assert.equal((await f.waitFor(p.member, id)).status, st);
    }
    assert.equal((await p.member.post(`/v2.1/servers/${id}/action`, { reboot: { type: 'HARD' } })).status, 202);
    assert.equal((await f.waitFor(p.member, id)).status, 'ACTIVE');
    assert.equal((await f.admin.post(`/v2.1/servers/${id}/action`, { lock: { locked_reason: 'maintenance' } })).status, 202);
    const locked = await p.member.post(`/v2.1/servers/${id}/action`, { 'os-stop': null });
    assert.equal(locked.status, 409);
    assert.equal(locked.body.conflictingRequest.message, `Instance ${id} is locked`);
    const out = await p.member.post(`/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': { length: 5 } });
    assert.equal(out.status, 200);
    assert.equal(typeof out.body.output, 'string');
    await f.admin.post(`/v2.1/servers/${id}/action`, { unlock: null });
    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
  });

  it('refuses bad input with upstream statuses', async () => {
    const base = { name: 'bad', imageRef: f.imageId, flavorRef: '42', networks: 'none' };
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{ flavorRef: 'nope' }, 400, /Flavor nope could not be found/],
      [{ imageRef: '7a1d2b36-59a4-4d3c-a4a1-4f6c1f1c1f1c' }, 400, /Image 7a1d2b36-59a4-4d3c-a4a1-4f6c1f1c1f1c could not be found/],
      [{ imageRef: 'not-a-uuid' }, 400, /is not valid under any of the given schemas/],
      [{ networks: [{ uuid: '11111111-2222-3333-4444-555555555555' }] }, 400, /Network 11111111-2222-3333-4444-555555555555 could not be found/],
      [{ networks: [{ uuid: 'zzz' }] }, 400, /network uuid is not in proper format/],
      [{ name: 'x'.repeat(256) }, 400, /is too long/],
      [{ user_data: 'not base64!' }, 400, /User data needs to be valid base 64/],
      [{ user_data: 'QUFB'.repeat(20000) }, 400, /is too long/],
      [{ metadata: { ['k'.repeat(256)]: 'v' } }, 400, /metadata/],
      [{ key_name: 'missing' }, 400, /Invalid key_name provided/],
    ];
    for (const [patch, status, re] of cases) {
      const r = await p.member.post('/v2.1/servers', { server: { ...base, ...patch } });
      assert.equal(r.status, status, `${JSON.stringify(patch).slice(0, 80)}: ${r.text}`);
      assert.match(r.body.badRequest.message, re);
    }
    const tooMany = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v']));
    const md = await p.member.post('/v2.1/servers', { server: { ...base, metadata: tooMany } });
    assert.equal(md.status, 403);
    const servers = await p.member.get('/v2.1/servers?name=^bad$');
    assert.equal(servers.body.servers.length, 0, 'no orphan rows');
  });

  it("hides another project's server (404) and enforces quotas (403)", async () => {
    const r = await p.member.post('/v2.1/servers', { server: { name: 'mine', imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    const id = r.body.server.id;
    await f.waitFor(p.member, id);
    const other = await f.project('beta');
    const g = await other.member.get(`/v2.1/servers/${id}`);
    assert.equal(g.status, 404);
    assert.equal(g.body.itemNotFound.message, `Instance ${id} could not be found.`);
    assert.equal((await other.member.delete(`/v2.1/servers/${id}`)).status, 404);
    assert.equal((await f.admin.put(`/v2.1/os-quota-sets/${other.id}`, { quota_set: { instances: 1 } })).status, 200);
    const ok = await other.member.post('/v2.1/servers', { server: { name: 'q1', imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    assert.equal(ok.status, 202);
    const over = await other.member.post('/v2.1/servers', { server: { name: 'q2', imageRef: f.imageId, flavorRef: '42', networks: 'none' } });
    assert.equal(over.status, 403);
    assert.match(over.body.forbidden.message, /Quota exceeded for instances: Requested 1, but already used 1 of 1 instances/);
    const limits = await other.member.get('/v2.1/limits');
    assert.equal(limits.body.limits.absolute.maxTotalInstances, 1);
    assert.equal(limits.body.limits.absolute.totalInstancesUsed, 1);
  });

  it('puts a server that fits no host in ERROR with a readable reason', async () => {
    const fl = await f.admin.post('/v2.1/flavors', { flavor: { name: 'huge', ram: 1_000_000, vcpus: 1, disk: 1 } });
    assert.equal(fl.status, 200, fl.text);
    const adminProject = await f.ks.ks.resource.getProjectByName('admin', 'default');
    await f.admin.put(`/v2.1/os-quota-sets/${adminProject.id}`, { quota_set: { ram: -1 } });
    const r = await f.admin.post('/v2.1/servers', { server: { name: 'big', imageRef: f.imageId, flavorRef: fl.body.flavor.id, networks: 'none' } });
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(f.admin, r.body.server.id);
    assert.equal(s.status, 'ERROR');
    assert.match(s.fault.message, /No valid host was found/);
    assert.match(s.fault.message, /PlacementFilter removed host1: not enough resources: needs VCPU 1, MEMORY_MB 1000000, DISK_GB 1/);
    // Placement's own figures of what the host has left.
    assert.match(s.fault.details, /host1 has free VCPU \d+ of \d+, MEMORY_MB \d+ of \d+, DISK_GB \d+ of \d+/);
    assert.deepEqual(Object.keys((await f.nova.core.placement.allocations(r.body.server.id)).allocations), []);
  });

  it('lists with filters, paging and detail; tags and metadata', async () => {
    const ids: string[] = [];
    for (const n of ['list-a', 'list-b', 'list-c']) {
      const r = await p.member.at('2.52').post('/v2.1/servers', { server: { name: n, imageRef: f.imageId, flavorRef: '42', networks: 'none', tags: [n] } });
      assert.equal(r.status, 202, r.text);
      ids.push(r.body.server.id);
    }
    for (const id of ids) await f.waitFor(p.member, id);
    const page = await p.member.get('/v2.1/servers?name=^list-&limit=2');
    assert.equal(page.body.servers.length, 2);
    assert.ok(page.body.servers_links[0].href.includes('marker='));
    // Unfiltered pages (read by id, a page at a time) walk the same order as one full list.
    const all = (await p.member.get('/v2.1/servers/detail')).body.servers.map((s: { id: string }) => s.id);
    const walked: string[] = [];
    for (let marker = ''; ; ) {
      const r = await p.member.get(`/v2.1/servers/detail?limit=2${marker && `&marker=${marker}`}`);
      walked.push(...r.body.servers.map((s: { id: string }) => s.id));
      if (!r.body.servers_links) break;
      marker = walked.at(-1)!;
    }
    assert.deepEqual(walked, all);
    assert.ok(all.length >= 3);
    // Pages bounded by the marker's sort values (ties broken by uuid, in the first key's direction)
    // walk the order a filtered list, sorted in memory, gives.
    for (const sort of ['sort_key=vm_state&sort_dir=asc', 'sort_key=display_name&sort_dir=desc&sort_key=created_at&sort_dir=asc', 'sort_key=task_state']) {
      const whole = (await p.member.get(`/v2.1/servers?name=.&${sort}`)).body.servers.map((s: { id: string }) => s.id);
      const pages: string[] = [];
      for (let marker = ''; ; ) {
        const r = await p.member.get(`/v2.1/servers?limit=2&${sort}${marker && `&marker=${marker}`}`);
        pages.push(...r.body.servers.map((s: { id: string }) => s.id));
        if (!r.body.servers_links) break;
        marker = pages.at(-1)!;
      }
      assert.deepEqual(pages, whole, sort);
      assert.equal(whole.length, all.length);
    }
    assert.deepEqual((await p.member.get(`/v2.1/servers?marker=${all[0]}&limit=1`)).body.servers.map((s: { id: string }) => s.id), [all[1]]);
    assert.equal((await p.member.get(`/v2.1/servers?marker=${randomUUID()}`)).status, 400);
    const tagged = await p.member.get('/v2.1/servers/detail?tags=list-b');
    assert.deepEqual(tagged.body.servers.map((s: { name: string }) => s.name), ['list-b']);
    assert.deepEqual(tagged.body.servers[0].tags, ['list-b']);
    assert.equal((await p.member.put(`/v2.1/servers/${ids[0]}/tags/extra`)).status, 201);
    assert.deepEqual((await p.member.get(`/v2.1/servers/${ids[0]}/tags`)).body.tags, ['extra', 'list-a']);
    assert.equal((await p.member.post(`/v2.1/servers/${ids[0]}/metadata`, { metadata: { x: '1' } })).status, 200);
    assert.deepEqual((await p.member.get(`/v2.1/servers/${ids[0]}/metadata/x`)).body, { meta: { x: '1' } });
    const up = await p.member.put(`/v2.1/servers/${ids[0]}`, { server: { name: 'renamed', description: 'd' } });
    assert.equal(up.body.server.name, 'renamed');
    assert.equal(up.body.server.description, 'd');
    const active = await p.member.get('/v2.1/servers?status=ACTIVE');
    assert.ok(active.body.servers.length >= 3);
    for (const id of ids) await p.member.delete(`/v2.1/servers/${id}`);
  });
});
