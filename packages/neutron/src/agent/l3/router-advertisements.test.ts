import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { radvdConfig } from './router-advertisements.ts';
import type { RouterState } from './router-state.ts';

function router(modes: (string | undefined)[]): RouterState {
  return {
    id: 'r1',
    adminStateUp: true,
    interfaces: modes.map((mode, i) => ({
      portId: `0000000${i}-aaaa-bbbb-cccc-dddddddddddd`,
      networkId: `n${i}`,
      macAddress: `fa:16:3e:00:00:0${i}`,
      mtu: 1450,
      fixedIps: [{ ipAddress: `2001:db8:${i}::1`, prefixlen: 64, subnetId: `s${i}`, ...(mode ? { ipv6RaMode: mode } : {}) }, { ipAddress: `10.0.${i}.1`, prefixlen: 24, subnetId: `v4-${i}` }],
    })),
    routes: [],
    floatingIps: [],
  };
}

describe('radvd configuration per ipv6_ra_mode (upstream ra.py)', () => {
  it('slaac: autonomous prefix, neither flag', () => {
    const conf = radvdConfig(router(['slaac']))!;
    assert.match(conf, /prefix 2001:db8::\/64/);
    assert.match(conf, /AdvAutonomous on;/);
    assert.doesNotMatch(conf, /AdvManagedFlag|AdvOtherConfigFlag/);
    assert.match(conf, /AdvLinkMTU 1450;/);
  });

  it('dhcpv6-stateless: autonomous prefix and the other-configuration flag', () => {
    const conf = radvdConfig(router(['dhcpv6-stateless']))!;
    assert.match(conf, /AdvOtherConfigFlag on;/);
    assert.match(conf, /AdvAutonomous on;/);
    assert.doesNotMatch(conf, /AdvManagedFlag/);
  });

  it('dhcpv6-stateful: managed flag, prefix on-link but not autonomous', () => {
    const conf = radvdConfig(router(['dhcpv6-stateful']))!;
    assert.match(conf, /AdvManagedFlag on;/);
    assert.match(conf, /AdvOnLink on;\s+AdvAutonomous off;/);
  });

  it('one interface block per advertised interface; v4 and mode-less v6 subnets advertise nothing', () => {
    const conf = radvdConfig(router(['slaac', undefined, 'dhcpv6-stateful']))!;
    assert.equal(conf.match(/^interface /gm)?.length, 2);
    assert.doesNotMatch(conf, /10\.0\./);
    assert.equal(radvdConfig(router([undefined])), null);
  });
});
