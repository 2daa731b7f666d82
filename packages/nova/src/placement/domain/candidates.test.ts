import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findCandidates, type CandidateQuery, type RequestGroup, type Snapshot } from './candidates.ts';

const inv = (resourceClass: string, total: number) => ({ resourceClass, total, reserved: 0, minUnit: 1, maxUnit: total, stepSize: 1, allocationRatio: 1 });
const group = (suffix: string, resources: Record<string, number>, extra: Partial<RequestGroup> = {}): RequestGroup => ({
  suffix,
  resources,
  requiredTraits: [],
  forbiddenTraits: [],
  memberOf: [],
  forbiddenAggs: [],
  ...extra,
});
const query = (groups: RequestGroup[], extra: Partial<CandidateQuery> = {}): CandidateQuery => ({ groups, rootRequired: [], rootForbidden: [], sameSubtree: [], nested: true, ...extra });

function snapshot(): Snapshot {
  const providers = [
    { uuid: 'root', parent: null, root: 'root' },
    { uuid: 'n0', parent: 'root', root: 'root' },
    { uuid: 'n1', parent: 'root', root: 'root' },
  ];
  return {
    providers,
    byUuid: new Map(providers.map((p) => [p.uuid, p])),
    inventories: new Map([
      ['n0', [inv('VCPU', 4)]],
      ['n1', [inv('VCPU', 4)]],
    ]),
    usage: new Map([['n1', new Map([['VCPU', 2]])]]),
    traits: new Map([['n0', new Set(['HW_NUMA_ROOT'])]]),
    aggregates: new Map(),
  };
}

describe('findCandidates', () => {
  it('checks the sum of all groups landing on one provider against its free capacity', () => {
    const r = findCandidates(snapshot(), query([group('1', { VCPU: 2 }), group('2', { VCPU: 2 })], { groupPolicy: 'none' }));
    const keys = r.requests.map((x) => [...x.allocations].map(([p, res]) => `${p}:${res.VCPU}`).sort().join(','));
    // n0 alone (2+2 = 4 fits), n0+n1 both ways; never n1 alone (2 used + 4 > 4).
    assert.deepEqual(keys.sort(), ['n0:2,n1:2', 'n0:2,n1:2', 'n0:4'].sort());
  });

  it('keeps isolated groups on different providers and applies required traits per granular group', () => {
    const iso = findCandidates(snapshot(), query([group('1', { VCPU: 1 }), group('2', { VCPU: 1 })], { groupPolicy: 'isolate' }));
    assert.ok(iso.requests.every((x) => x.mappings['1'][0] !== x.mappings['2'][0]));
    const traits = findCandidates(snapshot(), query([group('1', { VCPU: 1 }, { requiredTraits: [['HW_NUMA_ROOT']] })]));
    assert.deepEqual(traits.requests.map((x) => x.mappings['1']), [['n0']]);
  });

  it('considers only root providers before 1.29 and stops at the limit', () => {
    assert.equal(findCandidates(snapshot(), query([group('', { VCPU: 1 })], { nested: false })).requests.length, 0);
    assert.equal(findCandidates(snapshot(), query([group('', { VCPU: 1 })], { limit: 1 })).requests.length, 1);
  });
});
