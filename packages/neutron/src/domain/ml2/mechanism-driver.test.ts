import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mechanismDriverContract } from './mechanism-driver-contract.ts';
import { bindPort, createMechanismDrivers, FakeMechanismDriver, LinuxBridgeMechanismDriver } from './mechanism-driver.ts';

mechanismDriverContract('linuxbridge', () => new LinuxBridgeMechanismDriver());
mechanismDriverContract('fake', () => new FakeMechanismDriver());
mechanismDriverContract('fake (direct vnic on vlan only)', () => new FakeMechanismDriver({ vnicTypes: ['direct'], networkTypes: ['vlan'] }));

describe('mechanism driver chain', () => {
  const vxlan = { networkType: 'vxlan', physicalNetwork: null, segmentationId: 100 };
  const req = (vnicType: string) => ({ portId: 'p', host: 'h', vnicType, profile: {}, segments: [vxlan] });

  it('the first driver that binds wins; none binding is undefined', () => {
    const fake = new FakeMechanismDriver({ vnicTypes: ['direct'], networkTypes: ['vxlan'] });
    const drivers = [new LinuxBridgeMechanismDriver(), fake];
    assert.equal(bindPort(drivers, req('normal'))?.vifType, 'bridge');
    assert.equal(fake.requests.length, 0, 'later drivers are not asked once one binds');
    assert.equal(bindPort(drivers, req('direct'))?.vifType, 'fake');
    assert.equal(bindPort(drivers, req('macvtap')), undefined);
  });

  it('builds the configured drivers in order and refuses unknown names', () => {
    assert.deepEqual(createMechanismDrivers(['fake', 'linuxbridge']).map((d) => d.name), ['fake', 'linuxbridge']);
    assert.throws(() => createMechanismDrivers(['ovs']), /unknown driver "ovs"/);
  });
});
