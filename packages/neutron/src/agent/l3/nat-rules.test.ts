import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ipv4Network, natScript, natTableMatches, renderNat } from './nat-rules.ts';
import type { RouterState } from './router-state.ts';

const router: RouterState = {
  id: 'r1',
  adminStateUp: true,
  interfaces: [
    { portId: 'aaaaaaaaaaaaaaaa', networkId: 'n1', macAddress: 'fa:16:3e:00:00:01', fixedIps: [{ ipAddress: '10.0.0.1', prefixlen: 24, subnetId: 's1' }] },
    { portId: 'bbbbbbbbbbbbbbbb', networkId: 'n2', macAddress: 'fa:16:3e:00:00:02', fixedIps: [{ ipAddress: '10.1.2.129', prefixlen: 25, subnetId: 's2' }, { ipAddress: 'fd00::1', prefixlen: 64, subnetId: 's3' }] },
  ],
  gateway: {
    portId: 'gggggggggggggggg',
    networkId: 'ext',
    macAddress: 'fa:16:3e:00:00:0a',
    fixedIps: [{ ipAddress: '172.24.4.10', prefixlen: 24, subnetId: 'e' }],
    enableSnat: true,
    externalGatewayIps: ['172.24.4.1'],
  },
  routes: [],
  floatingIps: [{ id: 'f1', floatingIpAddress: '172.24.4.100', fixedIpAddress: '10.0.0.11', portId: 'p' }],
};

test('network of an address', () => {
  assert.equal(ipv4Network('10.1.2.129', 25), '10.1.2.128/25');
  assert.equal(ipv4Network('10.0.0.1', 24), '10.0.0.0/24');
  assert.equal(ipv4Network('1.2.3.4', 0), '0.0.0.0/0');
  assert.equal(ipv4Network('1.2.3.4', 32), '1.2.3.4/32');
});

test('renders SNAT per IPv4 subnet, 1:1 NAT per floating IP, the hairpin, out of qg- only', () => {
  const r = renderNat(router);
  assert.match(r.chains, /ip daddr 172\.24\.4\.100 dnat to 10\.0\.0\.11\n/);
  assert.match(r.chains, /ip saddr 10\.0\.0\.11 oifname "qg-ggggggggggg" snat to 172\.24\.4\.100\n/);
  assert.match(r.chains, /ip saddr 10\.0\.0\.0\/24 oifname "qg-ggggggggggg" snat to 172\.24\.4\.10\n/);
  assert.match(r.chains, /ip saddr 10\.1\.2\.128\/25 oifname "qg-ggggggggggg" snat to 172\.24\.4\.10\n/);
  assert.doesNotMatch(r.chains, /fd00/);
  // The FIP's SNAT comes before the subnet's, or the guest would leave as the gateway address.
  assert.ok(r.chains.indexOf('snat to 172.24.4.100') < r.chains.indexOf('snat to 172.24.4.10\n'));
  assert.equal(r.ruleCount, 2 + 1 + 2 + 1);
});

test('enable_snat=false keeps floating IPs and drops the subnets’ SNAT; no gateway, no NAT', () => {
  const r = renderNat({ ...router, gateway: { ...router.gateway!, enableSnat: false } });
  assert.doesNotMatch(r.chains, /snat to 172\.24\.4\.10\n/);
  assert.match(r.chains, /snat to 172\.24\.4\.100/);
  assert.equal(renderNat({ ...router, gateway: undefined }).ruleCount, 0);
});

test('the digest follows the rendering; a listing matches only its own rendering', () => {
  const a = renderNat(router);
  const b = renderNat({ ...router, floatingIps: [] });
  assert.notEqual(a.digest, b.digest);
  assert.equal(renderNat(router).digest, a.digest);
  // What `nft list table` prints back for the script (tabs, blank lines between chains).
  const listing = natScript(a).split('\n').slice(2).join('\n').replace(/\t}\n\tchain/g, '\t}\n\n\tchain');
  assert.equal(natTableMatches(listing, a), true);
  assert.equal(natTableMatches(listing, b), false);
  assert.equal(natTableMatches(listing.replace(/\t\tip daddr[^\n]*\n/, ''), a), false, 'a rule removed by hand is noticed');
});
