/**
 * The agent's link watch (`ip monitor link` in the host namespace): with the fallback poll
 * set to a minute, a tap plugged for a bound port, or a wired tap taken off its bridge, is
 * wired again within moments only because the watch saw it. Killing the watch restarts it;
 * stopping the agent leaves no `ip monitor` behind.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '@onestack/core/exec/privileged-exec.ts';
import type { Netns } from '@onestack/testing/netns.ts';
import { quietLogger } from '../agent-test-kit.ts';
import { tapNameFor } from '../model.ts';
import { settled, startApiStack, type ApiStack } from './api-stack.ts';

const FALLBACK_POLL_MS = 60_000;
/** Far under the fallback poll, with room for a loaded 2-core machine. */
const WIRED_WITHIN_MS = 5000;

async function monitorPids(hostNs: string): Promise<number[]> {
  const r = await runCommand('pgrep', ['-f', `^(/[^ ]*/)?ip -o -n ${hostNs} monitor link$`], { logger: quietLogger, timeoutMs: 5000, allowedExitCodes: [0, 1] });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, withinMs: number): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return { value, ms: Date.now() - t0 };
    if (Date.now() - t0 > withinMs) assert.fail(`${what}: not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('tap watch: link events wire taps without waiting for the poll', () => {
  let stack: ApiStack | undefined;
  let guest: Netns;
  let tap: string;

  before(async () => {
    stack = await startApiStack({ hosts: 1, tag: 'tw', pollIntervalMs: FALLBACK_POLL_MS });
    guest = await stack.lab.addNamespace('tw-g0');
  });
  after(async () => {
    await stack?.close();
  });

  const master = async () => (await stack!.hosts[0].agent.ip.linkShow(stack!.hosts[0].ns.name, tap))?.master;

  it('a tap plugged for a bound port is on its bridge within moments', async () => {
    const { fx, hosts } = stack!;
    const net = (await fx.admin.post('/v2.0/networks', { network: { name: 'tw-net' } })).body.network;
    assert.equal((await fx.admin.post('/v2.0/subnets', { subnet: { network_id: net.id, cidr: '10.73.0.0/24', ip_version: 4 } })).status, 201);
    const res = await fx.admin.post('/v2.0/ports', { port: { network_id: net.id, device_owner: 'compute:nova', device_id: randomUUID(), 'binding:host_id': hosts[0].name } });
    assert.equal(res.status, 201, res.text);
    const port = res.body.port;
    tap = tapNameFor(port.id);
    await settled(stack!);
    assert.deepEqual(hosts[0].rpc.report?.unwiredPorts, [port.id]);

    const t0 = Date.now();
    await hosts[0].agent.l2.plugVethPort({ id: port.id, macAddress: port.mac_address }, guest.name);
    const wired = await until('tap on a bridge', async () => (await master()) || undefined, WIRED_WITHIN_MS);
    assert.match(wired.value, /^brq/);
    await until('port ACTIVE', async () => ((await fx.admin.get(`/v2.0/ports/${port.id}`)).body.port.status === 'ACTIVE' ? true : undefined), WIRED_WITHIN_MS);
    console.log(`# tap plugged → on its bridge ${wired.ms} ms after the plug returned, port ACTIVE ${Date.now() - t0} ms after the plug began`);
  });

  it('a wired tap taken off its bridge is put back, also after the watch was killed and restarted', async () => {
    const host = stack!.hosts[0];
    const off = async () => {
      await host.ns.ip('link', 'set', 'dev', tap, 'nomaster');
      return (await until('tap back on its bridge', async () => (await master()) || undefined, WIRED_WITHIN_MS)).ms;
    };
    const firstMs = await off();

    const [pid] = await monitorPids(host.ns.name);
    assert.ok(pid, 'the agent runs an ip monitor in its host namespace');
    process.kill(pid, 'SIGKILL');
    const restarted = await until('a new ip monitor', async () => (await monitorPids(host.ns.name)).find((p) => p !== pid), WIRED_WITHIN_MS);
    assert.notEqual(restarted.value, pid);
    // Let the new watch subscribe before the change it must see.
    await new Promise((r) => setTimeout(r, 300));
    const againMs = await off();
    console.log(`# off the bridge → back in ${firstMs} ms; after the watch restarted: ${againMs} ms`);
  });

  it('stopping the agent stops its ip monitor', async () => {
    const ns = stack!.hosts[0].ns.name;
    assert.equal((await monitorPids(ns)).length, 1);
    await stack!.hosts[0].rpc.stop();
    assert.deepEqual(await monitorPids(ns), []);
  });
});
