/**
 * `onestack up` as root runs the neutron agent: the `public` network exists, a router made with
 * the unmodified CLI gets its namespace with the gateway on the external network (reachable
 * from the external namespace, which holds 172.24.4.1), the agents are listed alive, and
 * the router's namespace goes with the router. That `onestack down --purge` leaves none of the
 * cloud's namespaces behind is checked by every cloud's teardown (e2e/cloud.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { namespaces, sharedCloud, type Cloud } from './cloud.ts';

const run = promisify(execFile);

async function eventually<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

describe('neutron agent in onestack up (root)', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  let c: Cloud;
  let prefix: string;
  before(async () => {
    c = await sharedCloud('neutron-agent');
    prefix = c.env.ONESTACK_NEUTRON_AGENT__NAMESPACE_PREFIX!;
  });
  after(() => c?.stop());

  it('routes: public network, router with gateway and interface, gateway reachable from the external namespace; agents alive', async () => {
    const pub = await c.os('onestack', 'network', 'show', 'public');
    assert.equal(pub['router:external'] ?? pub.router_external, true);
    await c.os('onestack-demo', 'network', 'create', 'rnet');
    await c.os('onestack-demo', 'subnet', 'create', '--network', 'rnet', '--subnet-range', '10.91.0.0/24', 'rsub');
    const router = await c.os('onestack-demo', 'router', 'create', 'r1');
    await c.osRaw('onestack-demo', 'router', 'set', '--external-gateway', 'public', 'r1');
    await c.osRaw('onestack-demo', 'router', 'add', 'subnet', 'r1', 'rsub');
    const shown = await c.os('onestack-demo', 'router', 'show', 'r1');
    const info = shown.external_gateway_info;
    const gw: string = (typeof info === 'string' ? JSON.parse(info) : info).external_fixed_ips[0].ip_address;
    const ext = c.env.ONESTACK_NEUTRON_AGENT__EXTERNAL_NAMESPACE!;
    await eventually(async () => assert.ok((await namespaces(prefix)).includes(`${prefix}qrouter-${router.id}`), 'router namespace'));
    await eventually(() => run('ip', ['netns', 'exec', ext, 'busybox', 'ping', '-c', '1', '-W', '1', gw]));
    const agents = await c.os('onestack', 'network', 'agent', 'list');
    const types = agents.filter((a: { Alive: unknown }) => a.Alive === true || a.Alive === ':-)').map((a: { 'Agent Type': string }) => a['Agent Type']).sort();
    assert.deepEqual(types, ['DHCP agent', 'L3 agent', 'Linux bridge agent']);
    await c.osRaw('onestack-demo', 'router', 'remove', 'subnet', 'r1', 'rsub');
    await c.osRaw('onestack-demo', 'router', 'delete', 'r1');
    await eventually(async () => assert.ok(!(await namespaces(prefix)).includes(`${prefix}qrouter-${router.id}`), 'router namespace removed'));
  });
});
