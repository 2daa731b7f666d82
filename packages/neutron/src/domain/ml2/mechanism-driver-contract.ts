/**
 * The behaviour every ML2 MechanismDriver shares (the contract in
 * mechanism-driver.ts), as node:test tests: a driver's test calls
 * mechanismDriverContract() with a factory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BindingRequest, MechanismDriver } from './mechanism-driver.ts';
import type { Segment } from './type-driver.ts';

const SEGMENTS: Record<string, Segment> = {
  local: { networkType: 'local', physicalNetwork: null, segmentationId: null },
  flat: { networkType: 'flat', physicalNetwork: 'public', segmentationId: null },
  vlan: { networkType: 'vlan', physicalNetwork: 'physnet1', segmentationId: 10 },
  vxlan: { networkType: 'vxlan', physicalNetwork: null, segmentationId: 100 },
};
/** A network type no driver here supports. */
const ALIEN: Segment = { networkType: 'alien-type', physicalNetwork: null, segmentationId: 7 };

function segmentOf(type: string): Segment {
  return SEGMENTS[type] ?? { networkType: type, physicalNetwork: null, segmentationId: 1 };
}

function request(over: Partial<BindingRequest> = {}): BindingRequest {
  return { portId: 'port-1', host: 'host-1', vnicType: 'normal', profile: {}, segments: [SEGMENTS.vxlan], ...over };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export function mechanismDriverContract(name: string, create: () => MechanismDriver): void {
  describe(`MechanismDriver contract: ${name}`, () => {
    it('binds every vnic type and network type it declares, on a segment of the request', () => {
      const d = create();
      assert.ok(d.capabilities.vnicTypes.length > 0 && d.capabilities.networkTypes.length > 0);
      for (const vnicType of d.capabilities.vnicTypes) {
        for (const type of d.capabilities.networkTypes) {
          const req = request({ vnicType, segments: [segmentOf(type)] });
          const b = d.bindPort(req);
          assert.ok(b, `${vnicType} on ${type}`);
          assert.ok(req.segments.includes(b.segment), 'the bound segment is one of the request');
          assert.equal(typeof b.vifType, 'string');
          assert.ok(b.vifType.length > 0 && b.vifType !== 'binding_failed' && b.vifType !== 'unbound');
          assert.equal(typeof b.vifDetails, 'object');
          assert.ok(b.vifDetails !== null && !Array.isArray(b.vifDetails));
        }
      }
    });

    it('skips segments it cannot bind and takes one it can', () => {
      const d = create();
      const good = segmentOf(d.capabilities.networkTypes[0]);
      const b = d.bindPort(request({ vnicType: d.capabilities.vnicTypes[0], segments: [ALIEN, good] }));
      assert.equal(b?.segment, good);
    });

    it('refuses without throwing: an unknown vnic type, only unsupported segments, no segments', () => {
      const d = create();
      assert.equal(d.bindPort(request({ vnicType: 'no-such-vnic' })), undefined);
      assert.equal(d.bindPort(request({ vnicType: d.capabilities.vnicTypes[0], segments: [ALIEN] })), undefined);
      assert.equal(d.bindPort(request({ vnicType: d.capabilities.vnicTypes[0], segments: [] })), undefined);
    });

    it('is pure: the request is not changed and the same request binds the same way', () => {
      const d = create();
      const req = deepFreeze(request({ vnicType: d.capabilities.vnicTypes[0], segments: [ALIEN, segmentOf(d.capabilities.networkTypes[0])], profile: { a: 1 } }));
      const first = d.bindPort(req);
      const second = d.bindPort(req);
      assert.deepEqual(second, first);
    });
  });
}
