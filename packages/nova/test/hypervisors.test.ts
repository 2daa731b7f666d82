import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isAtLeast, parseVersion } from '@onestack/core/http/microversion.ts';
import { MAX_MICROVERSION } from '../src/conf.ts';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/** Changes above the advertised maximum are checked once it reaches them. */
const served = (v: string) => isAtLeast(parseVersion(MAX_MICROVERSION), v);

/** os-hypervisors per microversion (ids, search, with_servers, 2.88's trimmed view) and os-simple-tenant-usage. */
describe('nova hypervisors and simple tenant usage', () => {
  let f: NovaFixture;
  let p: Project;
  let serverId: string;
  let goneId: string;
  const t0 = new Date(Date.now() - 60_000).toISOString().slice(0, 19);
  before(async () => {
    f = await startNova();
    await f.addCompute('hv-a', { resources: { vcpus: 4, memoryMb: 4096, localGb: 40 } });
    await f.addCompute('hv-b', { resources: { vcpus: 2, memoryMb: 2048, localGb: 20 } });
    p = await f.project('usage');
    const netId = (await p.net.post('/v2.0/networks', { network: { name: 'n' } })).body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.3.0.0/24', ip_version: 4 } });
    const boot = async (name: string) => {
      const r = await p.member.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '1', networks: [{ uuid: netId }], availability_zone: 'nova:hv-a' } });
      assert.equal(r.status, 403, 'forcing a host is for admins');
      const a = await f.admin.post('/v2.1/servers', { server: { name, imageRef: f.imageId, flavorRef: '1', networks: 'none', availability_zone: 'nova:hv-a' } });
      assert.equal(a.status, 202, a.text);
      return (await f.waitFor(f.admin, a.body.server.id)).id as string;
    };
    serverId = await boot('on-a');
    goneId = await boot('gone');
    await f.admin.delete(`/v2.1/servers/${goneId}`);
    await f.waitFor(f.admin, goneId, (s) => s.status === 'DELETED');
  });
  after(() => f?.close());

  it('list, detail and show: integer ids before 2.53, uuids after; resources until 2.87; admin only', async () => {
    assert.equal((await p.reader.get('/v2.1/os-hypervisors')).status, 403);
    const old = await f.admin.at('2.1').get('/v2.1/os-hypervisors/detail');
    assert.equal(old.status, 200);
    const a = old.body.hypervisors.find((h: { hypervisor_hostname: string }) => h.hypervisor_hostname === 'hv-a');
    assert.equal(typeof a.id, 'number');
    assert.equal(typeof a.cpu_info, 'string', 'cpu_info is JSON text before 2.28');
    assert.equal(a.vcpus, 4);
    assert.equal(a.running_vms, 1);
    assert.equal(a.free_ram_mb, a.memory_mb - a.memory_mb_used);
    assert.equal(a.service.host, 'hv-a');
    const shownOld = await f.admin.at('2.1').get(`/v2.1/os-hypervisors/${a.id}`);
    assert.equal(shownOld.status, 200);
    assert.equal(shownOld.body.hypervisor.hypervisor_hostname, 'hv-a');
    assert.equal((await f.admin.at('2.1').get('/v2.1/os-hypervisors/abc')).status, 404, 'a non-integer id is not found before 2.53');

    const list = await f.admin.at('2.53').get('/v2.1/os-hypervisors');
    assert.deepEqual(Object.keys(list.body.hypervisors[0]).sort(), ['hypervisor_hostname', 'id', 'state', 'status']);
    const ua = list.body.hypervisors.find((h: { hypervisor_hostname: string }) => h.hypervisor_hostname === 'hv-a');
    assert.match(ua.id, /^[0-9a-f-]{36}$/);
    assert.equal((await f.admin.at('2.53').get('/v2.1/os-hypervisors/abc')).status, 400, 'a non-uuid is a 400 from 2.53');
    const withServers = await f.admin.at('2.53').get(`/v2.1/os-hypervisors/${ua.id}?with_servers=true`);
    assert.deepEqual(withServers.body.hypervisor.servers, [{ name: 'on-a', uuid: serverId }]);
    assert.ok(!('servers' in (await f.admin.at('2.53').get(`/v2.1/os-hypervisors/${ua.id}`)).body.hypervisor));
    const b = (await f.admin.at('2.53').get('/v2.1/os-hypervisors?with_servers=true&hypervisor_hostname_pattern=hv-b')).body.hypervisors;
    assert.deepEqual(b.map((h: object) => 'servers' in h), [false], 'before 2.75 an empty host has no servers key');
    if (served('2.75')) {
      const b75 = (await f.admin.at('2.75').get('/v2.1/os-hypervisors?with_servers=true&hypervisor_hostname_pattern=hv-b')).body.hypervisors;
      assert.deepEqual(b75.map((h: { servers: unknown[] }) => h.servers), [[]], 'from 2.75 an empty host lists servers: []');
    }
    assert.equal((await f.admin.at('2.53').get('/v2.1/os-hypervisors?hypervisor_hostname_pattern=zzz')).status, 404);
    assert.equal((await f.admin.at('2.53').get('/v2.1/os-hypervisors?hypervisor_hostname_pattern=hv&limit=1')).status, 400);

    const page = await f.admin.at('2.33').get('/v2.1/os-hypervisors?limit=1');
    assert.equal(page.body.hypervisors.length, 1);
    assert.match(page.body.hypervisors_links[0].href, /limit=1&marker=/);
    assert.equal((await f.admin.at('2.33').get('/v2.1/os-hypervisors?marker=424242')).status, 400);

    if (served('2.88')) {
      const trimmed = (await f.admin.at('2.88').get(`/v2.1/os-hypervisors/${ua.id}`)).body.hypervisor;
      assert.ok(!('vcpus' in trimmed) && !('running_vms' in trimmed) && !('cpu_info' in trimmed), JSON.stringify(trimmed));
      assert.ok('uptime' in trimmed);
    }
  });

  it('statistics until 2.87, search and servers routes until 2.52', async () => {
    const st = await f.admin.get('/v2.1/os-hypervisors/statistics');
    assert.equal(st.status, 200);
    assert.equal(st.body.hypervisor_statistics.count, 2);
    assert.equal(st.body.hypervisor_statistics.vcpus, 6);
    assert.equal(st.body.hypervisor_statistics.running_vms, 1);
    if (served('2.88')) assert.equal((await f.admin.at('2.88').get('/v2.1/os-hypervisors/statistics')).status, 404);
    const search = await f.admin.at('2.52').get('/v2.1/os-hypervisors/hv-/search');
    assert.deepEqual(search.body.hypervisors.map((h: { hypervisor_hostname: string }) => h.hypervisor_hostname).sort(), ['hv-a', 'hv-b']);
    const servers = await f.admin.at('2.52').get('/v2.1/os-hypervisors/hv-a/servers');
    assert.deepEqual(servers.body.hypervisors[0].servers, [{ name: 'on-a', uuid: serverId }]);
    assert.equal((await f.admin.at('2.52').get('/v2.1/os-hypervisors/nomatch/search')).status, 404);
    assert.equal((await f.admin.at('2.53').get('/v2.1/os-hypervisors/hv-a/search')).status, 404);
  });

  it('simple tenant usage: a project reads its own, admins all; deleted servers count; 2.40 pages', async () => {
    const end = new Date(Date.now() + 60_000).toISOString().slice(0, 19);
    const mine = await p.reader.get(`/v2.1/os-simple-tenant-usage/${randomUUID()}?start=${t0}&end=${end}`);
    assert.equal(mine.status, 403, "another project's usage");
    assert.equal((await p.reader.get('/v2.1/os-simple-tenant-usage')).status, 403);
    const all = await f.admin.get(`/v2.1/os-simple-tenant-usage?start=${t0}&end=${end}&detailed=1`);
    assert.equal(all.status, 200, all.text);
    const u = all.body.tenant_usages.find((x: { server_usages?: { instance_id: string }[] }) => x.server_usages?.some((s: { instance_id: string }) => s.instance_id === serverId));
    assert.ok(u, JSON.stringify(all.body));
    const byId = Object.fromEntries(u.server_usages.map((s: { instance_id: string }) => [s.instance_id, s]));
    assert.equal(byId[serverId].state, 'active');
    assert.equal(byId[serverId].flavor, 'm1.tiny');
    assert.equal(byId[goneId].state, 'terminated');
    assert.ok(byId[goneId].ended_at);
    assert.ok(u.total_hours > 0 && u.total_vcpus_usage > 0);
    const brief = await f.admin.get(`/v2.1/os-simple-tenant-usage?start=${t0}&end=${end}`);
    assert.ok(!('server_usages' in brief.body.tenant_usages[0]));
    const page = await f.admin.at('2.40').get(`/v2.1/os-simple-tenant-usage?start=${t0}&end=${end}&limit=1`);
    assert.equal(page.body.tenant_usages.length, 1);
    assert.match(page.body.tenant_usages_links[0].href, /limit=1&marker=/);
    const next = new URL(page.body.tenant_usages_links[0].href);
    const rest = await f.admin.at('2.40').get(`/v2.1/os-simple-tenant-usage${next.search}`);
    assert.equal(rest.status, 200, rest.text);
    assert.equal((await f.admin.get(`/v2.1/os-simple-tenant-usage?start=${end}&end=${t0}`)).status, 400);
    assert.equal((await f.admin.get('/v2.1/os-simple-tenant-usage?start=yesterday')).status, 400);
    const empty = await p.reader.get(`/v2.1/os-simple-tenant-usage/${p.id}?start=${t0}&end=${end}`);
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.body.tenant_usage, {});
  });
});
