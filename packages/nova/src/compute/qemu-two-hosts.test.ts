/**
 * Two compute hosts, each a network namespace with its own Neutron L2 agent and its own
 * nova-compute (QemuDriver, QEMU inside that namespace), joined by an underlay veth for VXLAN
 * and sharing one control plane (Keystone, Glance, Neutron, Placement, Nova API, conductor,
 * scheduler, bus). An anti-affinity group puts two guests on different hosts and they ping
 * each other over the VXLAN tenant network (from inside a guest, over SSH); a cold migration
 * moves a guest to the other host, where it boots and answers; a compute host whose service
 * stops heartbeating shows `down` within service_down_time.
 *
 * A functional test and not an e2e one: `onestack up` runs every service in one process on the
 * in-process bus and SQLite, which a second nova-compute process cannot share.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '@onestack/testing/index.ts';
import { ADMIN_PASSWORD } from '../../../keystone/test/fixture.ts';
import type { NovaFixture } from '../../test/fixture.ts';
import { tapName } from './manager.ts';
import { BOOT_TIMEOUT_MS, processesNaming, startQemuTestHost, until, type QemuTestHost } from './qemu-test-host.ts';

const run = promisify(execFile);
const REPORT_INTERVAL_S = 1;
const SERVICE_DOWN_S = 4;
/** The real openstack CLI under Debian's python, as the e2e files run it. */
const OPENSTACK = '/usr/bin/openstack';

interface Guest {
  name: string;
  id: string;
  ip: string;
  port: string;
}

describe('two compute hosts with real QEMU guests over VXLAN', () => {
  let h: QemuTestHost;
  let fx: NovaFixture;
  let netId: string;
  let dhcpNs: string;
  const keys = tempDir('onestack-n2h-keys-');
  const keyFile = join(keys.path, 'id');
  const guests: Guest[] = [];

  const hostOf = async (id: string) => (await fx.admin.get(`/v2.1/servers/${id}`)).body.server['OS-EXT-SRV-ATTR:host'] as string;
  /** SSH as root from the network's DHCP namespace on host 0: a guest on host 1 is reached over VXLAN. */
  const ssh = (ip: string, ...command: string[]) =>
    run('ip', ['netns', 'exec', dhcpNs, 'ssh', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', '-l', 'root', ip, ...command], { timeout: 60_000 });
  const bootId = (g: Guest, previous?: string) =>
    until(`SSH to ${g.ip}`, async () => (await ssh(g.ip, 'cat', '/proc/sys/kernel/random/boot_id').catch(() => undefined))?.stdout.trim(), (v) => !!v && v !== previous, BOOT_TIMEOUT_MS) as Promise<string>;
  const waitStatus = (id: string, status: string) => fx.waitFor(fx.admin, id, (s) => (s.status === status && !s['OS-EXT-STS:task_state']) || s.status === 'ERROR', BOOT_TIMEOUT_MS);
  const tapsOf = async (i: number) => (await h.stack.hosts[i]!.agent.ip.linkList(h.stack.hosts[i]!.ns.name)).map((l) => l.ifname);
  const hostIndex = (name: string) => h.computes.findIndex((c) => c.name === name);
  /** `openstack compute service list` as the admin: the fixture's catalog has only Keystone, so clouds.yaml points the CLI at Nova. */
  const cliComputeServices = async () => {
    const cloudsYaml = join(keys.path, 'clouds.yaml');
    const auth = { auth_url: `${h.stack.fx.ks.url}/v3`, username: 'admin', password: ADMIN_PASSWORD, project_name: 'admin', user_domain_name: 'Default', project_domain_name: 'Default' };
    writeFileSync(cloudsYaml, JSON.stringify({ clouds: { n2h: { auth, identity_api_version: 3, compute_endpoint_override: `${fx.url}/v2.1` } } }), { mode: 0o600 });
    const { stdout } = await run(OPENSTACK, ['--os-cloud', 'n2h', 'compute', 'service', 'list', '--service', 'nova-compute', '-f', 'json'], { env: { ...process.env, OS_CLIENT_CONFIG_FILE: cloudsYaml }, timeout: 60_000 });
    return Object.fromEntries((JSON.parse(stdout) as { Host: string; State: string }[]).map((r) => [r.Host, r.State]));
  };

  /** Boots `name` in the anti-affinity `group`; ACTIVE, with its port's address. */
  const boot = async (name: string, group: string): Promise<Guest> => {
    const created = await fx.admin.post('/v2.1/servers', {
      server: { name, imageRef: h.imageId, flavorRef: '42', networks: [{ uuid: netId }], key_name: 'n2h-key', security_groups: [{ name: 'n2h-sg' }], config_drive: true },
      'os:scheduler_hints': { group },
    });
    assert.equal(created.status, 202, created.text);
    const id = created.body.server.id as string;
    guests.push({ name, id, ip: '', port: '' });
    const active = await waitStatus(id, 'ACTIVE');
    assert.equal(active.status, 'ACTIVE', JSON.stringify(active.fault ?? active));
    const [port] = (await h.stack.fx.admin.get(`/v2.0/ports?device_id=${id}`)).body.ports as { id: string; fixed_ips: { ip_address: string }[] }[];
    return Object.assign(guests.find((g) => g.id === id)!, { ip: port!.fixed_ips[0]!.ip_address, port: port!.id });
  };

  /** Deletes a guest and proves no host kept anything of it. */
  const deleteLeavingNothing = async (g: Guest) => {
    assert.equal((await fx.admin.delete(`/v2.1/servers/${g.id}`)).status, 204);
    await fx.waitFor(fx.admin, g.id, (s) => s.status === 'DELETED', 90_000);
    assert.deepEqual(processesNaming(g.id), [], 'QEMU process gone');
    for (const [i, c] of h.computes.entries()) {
      assert.equal(existsSync(join(c.instancesDir, g.id)), false, `instance directory gone on ${c.name}`);
      assert.equal((await tapsOf(i)).includes(tapName(g.port)), false, `tap gone on ${c.name}`);
    }
    assert.equal((await h.stack.fx.admin.get(`/v2.0/ports/${g.port}`)).status, 404, 'port gone');
    assert.deepEqual((await fx.nova.core.placement.allocations(g.id)).allocations, {}, 'no allocation left');
    guests.splice(guests.indexOf(g), 1);
  };

  before(async () => {
    h = await startQemuTestHost('n2h', { hosts: 2, nova: { report_interval: REPORT_INTERVAL_S, service_down_time: SERVICE_DOWN_S } });
    fx = h.fx;
    const neutron = h.stack.fx.admin;
    const net = (await neutron.post('/v2.0/networks', { network: { name: 'n2h-net', 'provider:network_type': 'vxlan' } })).body.network;
    netId = net.id;
    assert.equal(net['provider:network_type'], 'vxlan');
    const sub = await neutron.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.74.0.0/24', ip_version: 4, gateway_ip: '10.74.0.1' } });
    assert.equal(sub.status, 201, sub.text);
    const sg = (await neutron.post('/v2.0/security-groups', { security_group: { name: 'n2h-sg' } })).body.security_group;
    for (const rule of [{ protocol: 'tcp', port_range_min: 22, port_range_max: 22 }, { protocol: 'icmp' }]) {
      const r = await neutron.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', remote_ip_prefix: '0.0.0.0/0', ...rule } });
      assert.equal(r.status, 201, r.text);
    }
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const kp = await fx.admin.post('/v2.1/os-keypairs', { keypair: { name: 'n2h-key', public_key: readFileSync(`${keyFile}.pub`, 'utf8') } });
    assert.equal(kp.body.keypair?.name, 'n2h-key', kp.text);
    // The network host (host 0) serves DHCP; its namespace is on the tenant network.
    dhcpNs = await until('the DHCP namespace', async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).find((n) => n === `${h.stack.hosts[0]!.ns.name}-qdhcp-${netId}`), (n) => !!n, 60_000) as string;
  });
  after(async () => {
    for (const g of guests) await fx?.admin.delete(`/v2.1/servers/${g.id}`).catch(() => undefined);
    for (const g of guests) await fx?.waitFor(fx.admin, g.id, (s) => s.status === 'DELETED', 90_000).catch(() => undefined);
    await h?.close();
    keys.remove();
  });

  it('registers both hosts as up nova-compute services and hypervisors', async () => {
    assert.notEqual(h.computes[0]!.name, h.computes[1]!.name);
    const services = (await fx.admin.get('/v2.1/os-services?binary=nova-compute')).body.services as { host: string; state: string; status: string }[];
    for (const c of h.computes) assert.deepEqual(services.filter((s) => s.host === c.name).map((s) => [s.state, s.status]), [['up', 'enabled']]);
    const hypervisors = (await fx.admin.get('/v2.1/os-hypervisors')).body.hypervisors as { hypervisor_hostname: string }[];
    for (const c of h.computes) assert.ok(hypervisors.some((x) => x.hypervisor_hostname === c.name), `hypervisor ${c.name}`);
  });

  it('anti-affinity puts two guests on different hosts; they ping each other over VXLAN', async () => {
    const group = await fx.admin.post('/v2.1/os-server-groups', { server_group: { name: 'n2h-anti', policies: ['anti-affinity'] } });
    assert.equal(group.status, 200, group.text);
    const [a, b] = await Promise.all([boot('n2h-a', group.body.server_group.id), boot('n2h-b', group.body.server_group.id)]);
    const hosts = [await hostOf(a!.id), await hostOf(b!.id)];
    assert.deepEqual([...hosts].sort(), h.computes.map((c) => c.name).sort(), 'one guest per host');
    // Each guest's tap is wired by the agent of its own host only.
    for (const [g, host] of [[a!, hosts[0]!], [b!, hosts[1]!]] as const) {
      const i = hostIndex(host);
      assert.ok((await tapsOf(i)).includes(tapName(g.port)), `tap of ${g.id} on ${host}`);
      assert.equal((await tapsOf(1 - i)).includes(tapName(g.port)), false);
      assert.equal((await h.stack.fx.admin.get(`/v2.0/ports/${g.port}`)).body.port['binding:host_id'], host);
    }
    await bootId(a!);
    await bootId(b!);
    for (const [from, to] of [[a!, b!], [b!, a!]]) {
      const ping = await ssh(from.ip, 'ping', '-c', '3', '-W', '5', to.ip);
      assert.match(ping.stdout, /3 packets transmitted, [1-3] packets received/, `${from.ip} → ${to.ip}`);
    }
    const members = (await fx.admin.get(`/v2.1/os-server-groups/${group.body.server_group.id}`)).body.server_group.members as string[];
    assert.deepEqual([...members].sort(), [a!.id, b!.id].sort());
  });

  it('cold-migrates a guest to the other host, where it boots and answers', async () => {
    assert.equal(guests.length, 2, 'both guests booted');
    // The anti-affinity group leaves a guest no host to move to while the other runs.
    await deleteLeavingNothing(guests.find((x) => x.name === 'n2h-b')!);
    const g = guests.find((x) => x.name === 'n2h-a')!;
    const source = await hostOf(g.id);
    const booted = await bootId(g);
    const r = await fx.admin.post(`/v2.1/servers/${g.id}/action`, { migrate: null });
    assert.equal(r.status, 202, r.text);
    const moved = await waitStatus(g.id, 'VERIFY_RESIZE');
    assert.equal(moved.status, 'VERIFY_RESIZE', JSON.stringify(moved.fault ?? moved));
    const dest = moved['OS-EXT-SRV-ATTR:host'] as string;
    assert.notEqual(dest, source);
    assert.equal(hostIndex(dest) >= 0, true);
    await bootId(g, booted);
    assert.equal((await ssh(g.ip, 'hostname')).stdout.trim(), 'n2h-a');
    assert.equal((await fx.admin.post(`/v2.1/servers/${g.id}/action`, { confirmResize: null })).status, 204);
    assert.equal((await waitStatus(g.id, 'ACTIVE')).status, 'ACTIVE');
    // Confirmed: nothing of the guest is left on the source, its port and QEMU are on the destination.
    const s = hostIndex(source);
    assert.equal(existsSync(join(h.computes[s]!.instancesDir, g.id)), false, 'source instance directory gone');
    assert.equal((await tapsOf(s)).includes(tapName(g.port)), false, 'source tap gone');
    assert.ok((await tapsOf(1 - s)).includes(tapName(g.port)), 'tap on the destination');
    assert.equal((await h.stack.fx.admin.get(`/v2.0/ports/${g.port}`)).body.port['binding:host_id'], dest);
    assert.equal(processesNaming(g.id).length, 1, 'one QEMU process');
    const allocations = (await fx.nova.core.placement.allocations(g.id)).allocations as Record<string, unknown>;
    assert.equal(Object.keys(allocations).length, 1, 'one allocation, on the destination');
    await deleteLeavingNothing(g);
  });

  it('openstack compute service list shows a compute host down within service_down_time once its service stops heartbeating', async () => {
    const second = h.computes[1]!.name;
    const state = async () => ((await fx.admin.get('/v2.1/os-services?binary=nova-compute')).body.services as { host: string; state: string }[]).find((s) => s.host === second)?.state;
    assert.deepEqual(await cliComputeServices(), { [h.computes[0]!.name]: 'up', [second]: 'up' });
    const stopped = Date.now();
    await fx.computes.get(second)!.manager.stop();
    await until(`${second} down`, state, (s) => s === 'down', (SERVICE_DOWN_S + 2 * REPORT_INTERVAL_S + 5) * 1000);
    const tookS = (Date.now() - stopped) / 1000;
    assert.ok(tookS >= SERVICE_DOWN_S - 2 * REPORT_INTERVAL_S, `down after ${tookS} s: not before its last heartbeat aged`);
    // What the CLI shows; the other host goes on heartbeating.
    assert.deepEqual(await cliComputeServices(), { [h.computes[0]!.name]: 'up', [second]: 'down' });
  });
});
