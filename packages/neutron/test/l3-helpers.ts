import assert from 'node:assert/strict';
import type { JsonClient } from '@onestack/testing/index.ts';
import type { NeutronFixture } from './fixture.ts';

/** Shared setup of the router and floating IP tests: an external network and tenant networks with subnets. */
export async function externalNetwork(n: NeutronFixture, cidr = '203.0.113.0/24'): Promise<{ net: any; subnet: any }> {
  const net = await n.admin.post('/v2.0/networks', { network: { name: `ext-${cidr}`, 'router:external': true } });
  assert.equal(net.status, 201, net.text);
  const subnet = await n.admin.post('/v2.0/subnets', { subnet: { network_id: net.body.network.id, ip_version: 4, cidr, enable_dhcp: false, name: `ext-sub-${cidr}` } });
  assert.equal(subnet.status, 201, subnet.text);
  return { net: net.body.network, subnet: subnet.body.subnet };
}

export async function tenantNetwork(c: JsonClient, cidr: string, extra: Record<string, unknown> = {}): Promise<{ net: any; subnet: any }> {
  const net = await c.post('/v2.0/networks', { network: { name: `net-${cidr}` } });
  assert.equal(net.status, 201, net.text);
  const subnet = await c.post('/v2.0/subnets', { subnet: { network_id: net.body.network.id, ip_version: cidr.includes(':') ? 6 : 4, cidr, enable_dhcp: false, ...extra } });
  assert.equal(subnet.status, 201, subnet.text);
  return { net: net.body.network, subnet: subnet.body.subnet };
}

export async function createRouter(c: JsonClient, router: Record<string, unknown> = {}): Promise<any> {
  const res = await c.post('/v2.0/routers', { router: { name: 'r', ...router } });
  assert.equal(res.status, 201, res.text);
  return res.body.router;
}

export function assertError(res: { status: number; body: any; text: string }, status: number, type: string, message?: string | RegExp): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.NeutronError.type, type, res.text);
  if (typeof message === 'string') assert.equal(res.body.NeutronError.message, message);
  else if (message) assert.match(res.body.NeutronError.message, message);
}
