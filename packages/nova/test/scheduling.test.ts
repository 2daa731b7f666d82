import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * Two small fake hosts (1 VCPU ×4 allocation ratio, 768 MiB: three m1.tiny each by memory)
 * under 20 boots at once: placement's claims keep every host within its inventory, the rest
 * fail with a readable reason and hold nothing. Heartbeats every second, down after two.
 */
describe('nova scheduling under concurrency and service liveness', () => {
  let f: NovaFixture;
  let p: Project;
  let netId: string;
  before(async () => {
    f = await startNova({ config: { quota_instances: -1, quota_cores: -1, quota_ram: -1, service_down_time: 2 } });
    for (const h of ['small1', 'small2']) await f.addCompute(h, { resources: { vcpus: 1, memoryMb: 768, localGb: 20 } });
    p = await f.project('sched');
    netId = (await p.net.post('/v2.0/networks', { network: { name: 'n' } })).body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.1.0.0/24', ip_version: 4 } });
  });
  after(() => f?.close());

  it('20 concurrent boots never oversubscribe a host; the others fail with a reason and hold no allocation', async () => {
    const created = await Promise.all(
      Array.from({ length: 20 }, (_, i) => p.member.post('/v2.1/servers', { server: { name: `c${i}`, imageRef: f.imageId, flavorRef: '1', networks: [{ uuid: netId }] } })),
    );
    for (const c of created) assert.equal(c.status, 202, c.text);
    const ids = created.map((c) => c.body.server.id as string);
    const final = await Promise.all(ids.map((id) => f.waitFor(f.admin, id, undefined, 120_000)));
    const active = final.filter((s) => s.status === 'ACTIVE');
    const failed = final.filter((s) => s.status === 'ERROR');
    assert.equal(active.length + failed.length, 20, JSON.stringify(final.map((s) => s.status)));
    const perHost = new Map<string, number>();
    for (const s of active) perHost.set(s['OS-EXT-SRV-ATTR:host'], (perHost.get(s['OS-EXT-SRV-ATTR:host']) ?? 0) + 1);
    for (const [host, n] of perHost) assert.ok(n <= 3, `${host} runs ${n} servers of 256 MiB in 768 MiB`);
    // Every slot is used: a claim that loses a race is retried on the other host rather than failing early.
    assert.equal(active.length, 6, JSON.stringify([...perHost]));
    for (const s of failed) assert.match(s.fault.message, /No valid host/);
    for (const s of failed) assert.deepEqual((await f.nova.core.placement.allocations(s.id)).allocations, {}, `ERROR server ${s.id} holds nothing`);
    for (const s of active) assert.equal(Object.keys((await f.nova.core.placement.allocations(s.id)).allocations).length, 1);

    await Promise.all(ids.map((id) => p.member.delete(`/v2.1/servers/${id}`)));
    await Promise.all(ids.map((id) => f.waitFor(p.member, id, (s) => s.status === 'DELETED', 60_000)));
    const ports = (await f.neutronAdmin.get(`/v2.0/ports?network_id=${netId}&device_owner=compute:nova`)).body.ports;
    assert.deepEqual(ports, []);
  });

  it('a compute host that stops heartbeating shows down after service_down_time; the other stays up', async () => {
    const state = async () => {
      const r = await f.admin.at('2.53').get('/v2.1/os-services?binary=nova-compute');
      return Object.fromEntries((r.body.services as { host: string; state: string }[]).map((s) => [s.host, s.state]));
    };
    assert.deepEqual(await state(), { small1: 'up', small2: 'up' });
    await f.computes.get('small2')!.manager.stop();
    const end = Date.now() + 10_000;
    let s = await state();
    while (s.small2 !== 'down' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 250));
      s = await state();
    }
    assert.deepEqual(s, { small1: 'up', small2: 'down' });
  });
});
