import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PortState, SecurityGroupRuleState, SecurityGroupState } from '../model.ts';
import { conntrackDeletions, departedMembers, removedRules } from './conntrack.ts';

const rule = (over: Partial<SecurityGroupRuleState>): SecurityGroupRuleState => ({
  id: 'r', direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp', portRangeMin: null, portRangeMax: null, remoteIpPrefix: null, remoteGroupId: null, ...over,
});
const port = (groups: string[]): PortState => ({
  id: 'p1', networkId: 'n', macAddress: 'fa:16:3e:00:00:01', fixedIps: [{ subnetId: 's', ipAddress: '10.0.0.5' }], deviceOwner: 'compute:nova', deviceId: 'vm',
  adminStateUp: true, portSecurityEnabled: true, securityGroupIds: groups, allowedAddressPairs: [],
});
const group = (id: string, rules: SecurityGroupRuleState[], memberIps: string[]): SecurityGroupState => ({ id, stateful: true, rules, memberIps });

describe('conntrack cuts', () => {
  const byPeers = rule({ protocol: 'tcp', portRangeMin: 22, portRangeMax: 22, remoteGroupId: 'peers' });

  it('a member leaving a remote group cuts only its flows with the ports whose rules name the group', () => {
    const before = { ports: [port(['sg'])], securityGroups: [group('sg', [byPeers], ['10.0.0.5']), group('peers', [], ['10.0.0.7', '10.0.0.8', '10.0.1.0/24', 'fd00::9'])] };
    const after = { ports: [port(['sg'])], securityGroups: [group('sg', [byPeers], ['10.0.0.5']), group('peers', [], ['10.0.0.8'])] };
    assert.deepEqual(removedRules(before, after), []);
    const gone = departedMembers(before, after);
    assert.deepEqual(gone.map((g) => g.remotes), [['10.0.0.7', '10.0.1.0/24', 'fd00::9']]);
    assert.deepEqual(conntrackDeletions(gone[0].port, gone[0].rule, gone[0].remotes), [
      ['-D', '-f', 'ipv4', '-d', '10.0.0.5', '--src', '10.0.0.7', '-p', 'tcp', '--dport', '22'],
      ['-D', '-f', 'ipv4', '-d', '10.0.0.5', '--src', '10.0.1.0', '--mask-src', '255.255.255.0', '-p', 'tcp', '--dport', '22'],
    ]);
  });

  it('egress rules cut by destination; IPv6 networks get a v6 mask', () => {
    const out = rule({ direction: 'egress', ethertype: 'IPv6', protocol: null, remoteGroupId: 'peers' });
    const p = { ...port(['sg']), fixedIps: [{ subnetId: 's6', ipAddress: 'fd00::5' }] };
    assert.deepEqual(conntrackDeletions(p, out, ['fd00:1::/64']), [['-D', '-f', 'ipv6', '-s', 'fd00::5', '--dst', 'fd00:1::', '--mask-dst', 'ffff:ffff:ffff:ffff:0:0:0:0']]);
  });

  it('nothing to cut when the group only grew, or for a port that was not there before', () => {
    const before = { ports: [port(['sg'])], securityGroups: [group('sg', [byPeers], []), group('peers', [], ['10.0.0.7'])] };
    const grown = { ports: [port(['sg'])], securityGroups: [group('sg', [byPeers], []), group('peers', [], ['10.0.0.7', '10.0.0.9'])] };
    assert.deepEqual(departedMembers(before, grown), []);
    const newPort = { ports: [{ ...port(['sg']), id: 'p2' }], securityGroups: [group('sg', [byPeers], []), group('peers', [], [])] };
    assert.deepEqual(departedMembers(before, newPort), []);
  });
});
