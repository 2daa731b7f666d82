import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureEndpoints } from '@onestack/keystone/index.ts';
import { ADMIN_PASSWORD } from '../../../keystone/test/fixture.ts';
import { startNova, type NovaFixture } from '../../../nova/test/fixture.ts';
import { waitForCompute } from './compute-ready.ts';

/** What `up` waits for, against a real Keystone, Nova and Placement with nova-compute on the (named) fake driver. */
describe('waitForCompute', () => {
  let fx: NovaFixture;
  let identityUrl: string;
  before(async () => {
    fx = await startNova();
    identityUrl = `${fx.ks.url}/v3`;
    await ensureEndpoints(fx.ks.ks, { type: 'compute', name: 'nova', regionId: 'RegionOne', urls: { public: `${fx.url}/v2.1` } });
    await ensureEndpoints(fx.ks.ks, { type: 'placement', name: 'placement', regionId: 'RegionOne', urls: { public: fx.config.placementUrl } });
  });
  after(() => fx?.close());

  it('gives up with a readable message while no compute host has registered', async () => {
    await assert.rejects(waitForCompute({ identityUrl, adminPassword: ADMIN_PASSWORD, timeoutMs: 1000 }), /^Error: nova-compute did not register within 1 s \(no hypervisor is registered\); servers cannot be scheduled until it does/);
  });

  it('returns once a host registers with its resource provider, not before', async () => {
    let registered = false;
    const waiting = waitForCompute({ identityUrl, adminPassword: ADMIN_PASSWORD, timeoutMs: 30_000 }).then((host) => ({ host, registered }));
    await new Promise((r) => setTimeout(r, 500));
    await fx.addCompute('compute-ready-1');
    registered = true;
    const { host, registered: afterRegistration } = await waiting;
    assert.equal(host, 'compute-ready-1');
    assert.ok(afterRegistration, 'it returned before the host was there');
    const rp = await fetch(`${fx.config.placementUrl}/resource_providers?name=compute-ready-1`, { headers: { 'x-auth-token': fx.ks.admin.token! } });
    assert.equal(((await rp.json()) as { resource_providers: unknown[] }).resource_providers.length, 1);
  });
});
