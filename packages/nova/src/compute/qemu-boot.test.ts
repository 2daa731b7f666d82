/**
 * One real guest booted through the Compute API: Nova (API, conductor, scheduler, a
 * compute host with the QemuDriver) on the same host namespace as a Neutron L2/DHCP agent,
 * the project's guest image in Glance. The boot goes ACTIVE, Neutron reports the port
 * plugged, the guest prints its READY line with the address Neutron's DHCP gave it, and
 * delete leaves no QEMU process, tap, instance directory, port or allocation. A restart of
 * nova-compute finds its running guests again and shows one that died meanwhile SHUTOFF.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiStack } from '../../../neutron/src/agent/integration/api-stack.ts';
import { VIF_PLUGGED } from '../../../neutron/src/rpc/server-rpc.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import { ImageCache } from '../virt/image-cache.ts';
import { QemuDriver } from '../virt/qemu-driver.ts';
import { tapName } from './manager.ts';
import { BOOT_TIMEOUT_MS, processesNaming, READY, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

describe('a real QEMU guest through the Compute API', { timeout: 400_000 }, () => {
  let h: QemuTestHost;
  let stack: ApiStack;
  let fx: NovaFixture;
  let instancesDir: string;
  let imageId: string;

  before(async () => {
    h = await startQemuTestHost('nq', { nova: { vif_plugging_timeout: 120, vif_plugging_is_fatal: true } });
    ({ stack, fx, instancesDir, imageId } = h);
  });
  after(() => h?.close());

  it('boots ACTIVE with its port ACTIVE and a DHCP address; delete leaves no process, tap, disk, port or allocation', async (t) => {
    const net = (await stack.fx.admin.post('/v2.0/networks', { network: { name: 'nq-net' } })).body.network;
    const sub = await stack.fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.73.0.0/24', ip_version: 4, gateway_ip: '10.73.0.1' } });
    assert.equal(sub.status, 201, sub.text);

    const t0 = Date.now();
    const created = await fx.admin.post('/v2.1/servers', { server: { name: 'qemu-guest', imageRef: imageId, flavorRef: '42', networks: [{ uuid: net.id }], config_drive: true } });
    assert.equal(created.status, 202, created.text);
    const id: string = created.body.server.id;

    const active = await fx.waitFor(fx.admin, id, (s) => s.status !== 'BUILD', BOOT_TIMEOUT_MS);
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    const activeMs = Date.now() - t0;
    const ports = (await stack.fx.admin.get(`/v2.0/ports?device_id=${id}`)).body.ports as { id: string; status: string; fixed_ips: { ip_address: string }[]; 'binding:host_id': string }[];
    assert.equal(ports.length, 1);
    const [port] = ports;
    // vif_plugging_is_fatal: ACTIVE means network-vif-plugged arrived; Neutron shows it too.
    assert.equal(port.status, 'ACTIVE');
    assert.equal(port['binding:host_id'], stack.hosts[0].name);
    assert.ok(stack.fx.notifications.some((n) => n.event_type === VIF_PLUGGED && (n.payload as { tag: string }).tag === port.id));
    const fixedIp = port.fixed_ips[0].ip_address;
    assert.deepEqual(active.addresses['nq-net'].map((a: { addr: string }) => a.addr), [fixedIp]);

    const console = async () => {
      const r = await fx.admin.post(`/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': {} });
      assert.equal(r.status, 200, r.text);
      return r.body.output as string;
    };
    const log = await until('the READY line', console, (o) => READY.test(o), BOOT_TIMEOUT_MS);
    const [, hostname, ip, uuid, source] = READY.exec(log)!;
    assert.deepEqual({ hostname, ip, uuid, source }, { hostname: 'qemu-guest', ip: fixedIp, uuid: id, source: 'config-drive' });
    t.diagnostic(`ACTIVE after ${activeMs} ms, READY after ${Date.now() - t0} ms`);

    const pidFile = join(instancesDir, id, 'qemu.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    assert.deepEqual(processesNaming(id), [pid]);
    const tap = tapName(port.id);
    const links = async () => (await stack.hosts[0].agent.ip.linkList(stack.hosts[0].ns.name)).map((l) => l.ifname);
    assert.ok((await links()).includes(tap));
    assert.equal(Object.keys((await fx.nova.core.placement.allocations(id)).allocations).length, 1, 'the boot holds one allocation');

    assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    await fx.waitFor(fx.admin, id, (s) => s.status === 'DELETED', 90_000);
    // A killed daemonized QEMU may linger a moment as a zombie of PID 1: a process with the instance in its argv is what must be gone.
    assert.deepEqual(processesNaming(id), [], 'QEMU process gone');
    assert.equal(existsSync(join(instancesDir, id)), false, 'instance directory gone');
    assert.equal((await links()).includes(tap), false, 'tap gone');
    assert.equal((await stack.fx.admin.get(`/v2.0/ports/${port.id}`)).status, 404, 'port gone');
    assert.deepEqual((await fx.nova.core.placement.allocations(id)).allocations, {}, 'no allocation left');
  });

  it('a guest running across a nova-compute restart is found again; one that died meanwhile is shown SHUTOFF', async () => {
    const host = stack.hosts[0].name;
    const boot = async (name: string) => {
      const r = await fx.admin.post('/v2.1/servers', { server: { name, imageRef: imageId, flavorRef: '42', networks: 'none' } });
      assert.equal(r.status, 202, r.text);
      return r.body.server.id as string;
    };
    const alive = await boot('nq-alive');
    const dies = await boot('nq-dies');
    for (const id of [alive, dies]) {
      const s = await fx.waitFor(fx.admin, id, (x) => x.status !== 'BUILD', BOOT_TIMEOUT_MS);
      assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault ?? s));
    }
    const [alivePid] = processesNaming(alive);
    const [diesPid] = processesNaming(dies);
    assert.ok(alivePid && diesPid, 'both guests run');

    // nova-compute goes away; one guest is killed while nobody watches.
    await fx.computes.get(host)!.manager.stop();
    process.kill(diesPid, 'SIGKILL');
    await until('the killed QEMU gone', async () => processesNaming(dies), (p) => p.length === 0, 30_000);

    // A new nova-compute with a new driver object: nothing of the old one's memory.
    const quiet = { info: () => {}, warn: () => {} };
    const imageCache = new ImageCache({ dir: join(dirname(instancesDir), 'cache'), logger: quiet });
    const driver = new QemuDriver({ instancesDir, imageCache, logger: quiet, hostname: host, netns: stack.hosts[0].ns.name, accel: 'tcg' });
    await fx.addCompute(host, { driver, imageCache });

    const died = await fx.waitFor(fx.admin, dies, (x) => x.status === 'SHUTOFF', 30_000);
    assert.equal(died['OS-EXT-STS:power_state'], 4);
    const found = await fx.waitFor(fx.admin, alive, (x) => !x['OS-EXT-STS:task_state'], 30_000);
    assert.deepEqual([found.status, found['OS-EXT-STS:power_state']], ['ACTIVE', 1]);
    assert.deepEqual(processesNaming(alive), [alivePid], 'the same QEMU process, not a new boot');
    // The new driver reaches the running guest (QMP): pause and unpause it.
    for (const [action, status] of [['pause', 'PAUSED'], ['unpause', 'ACTIVE']] as const) {
      assert.equal((await fx.admin.post(`/v2.1/servers/${alive}/action`, { [action]: null })).status, 202, action);
      assert.equal((await fx.waitFor(fx.admin, alive, (x) => x.status === status && !x['OS-EXT-STS:task_state'], 60_000)).status, status);
    }
    assert.equal((await driver.getInfo(dies)).powerState, 4, 'the driver sees the killed guest shut down');

    for (const id of [alive, dies]) assert.equal((await fx.admin.delete(`/v2.1/servers/${id}`)).status, 204);
    for (const id of [alive, dies]) await fx.waitFor(fx.admin, id, (x) => x.status === 'DELETED', 90_000);
    assert.deepEqual([...processesNaming(alive), ...processesNaming(dies)], [], 'no QEMU left');
  });
});
