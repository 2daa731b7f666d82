import { parseVlanRanges } from '../../conf.ts';
import { typeDriverContract } from './type-driver-contract.ts';
import { FlatTypeDriver, LocalTypeDriver, VlanTypeDriver, VxlanTypeDriver } from './type-drivers.ts';

const base = { globalPhysnetMtu: 1500, physnetMtus: new Map([['physnet1', 9000]]) };

typeDriverContract('local', {
  create: () => new LocalTypeDriver(base),
  validProvider: { networkType: 'local' },
  invalidProviders: [
    { networkType: 'local', physicalNetwork: 'physnet1' },
    { networkType: 'local', segmentationId: 5 },
  ],
  exclusive: false,
  tenantCapacity: Infinity,
});

typeDriverContract('flat', {
  create: () => new FlatTypeDriver({ ...base, flatNetworks: ['public', 'physnet1'] }),
  validProvider: { networkType: 'flat', physicalNetwork: 'public' },
  invalidProviders: [
    { networkType: 'flat' },
    { networkType: 'flat', physicalNetwork: 'nowhere' },
    { networkType: 'flat', physicalNetwork: 'public', segmentationId: 3 },
  ],
  exclusive: true,
  tenantCapacity: 0,
});

typeDriverContract('vlan', {
  create: () => new VlanTypeDriver({ ...base, vlanRanges: parseVlanRanges(['physnet1:10:12', 'physnet2']) }),
  validProvider: { networkType: 'vlan', physicalNetwork: 'physnet1', segmentationId: 11 },
  invalidProviders: [
    { networkType: 'vlan' },
    { networkType: 'vlan', physicalNetwork: 'nowhere', segmentationId: 11 },
    { networkType: 'vlan', physicalNetwork: 'physnet1', segmentationId: 0 },
    { networkType: 'vlan', physicalNetwork: 'physnet1', segmentationId: 4095 },
  ],
  exclusive: true,
  tenantCapacity: 3,
});

typeDriverContract('vlan (an id outside the tenant ranges)', {
  create: () => new VlanTypeDriver({ ...base, vlanRanges: parseVlanRanges(['physnet1:10:12', 'physnet2']) }),
  validProvider: { networkType: 'vlan', physicalNetwork: 'physnet2', segmentationId: 300 },
  invalidProviders: [],
  exclusive: true,
  tenantCapacity: 3,
});

typeDriverContract('vxlan', {
  create: () => new VxlanTypeDriver({ ...base, vniRanges: [{ min: 100, max: 103 }] }),
  validProvider: { networkType: 'vxlan', segmentationId: 101 },
  invalidProviders: [
    { networkType: 'vxlan', physicalNetwork: 'physnet1' },
    { networkType: 'vxlan', segmentationId: 0 },
    { networkType: 'vxlan', segmentationId: 16777216 },
  ],
  exclusive: true,
  tenantCapacity: 4,
});

typeDriverContract('vxlan (a VNI outside the tenant ranges)', {
  create: () => new VxlanTypeDriver({ ...base, vniRanges: [{ min: 100, max: 103 }] }),
  validProvider: { networkType: 'vxlan', segmentationId: 5000 },
  invalidProviders: [],
  exclusive: true,
  tenantCapacity: 4,
});
