import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

/**
 * Concurrent creates against the last free slot of a quota: the count and
 * the insert of each create commit together, and the quota row lock makes
 * them take turns, so exactly one wins on every database.
 */
describe('neutron quota under concurrency', () => {
  let n: NeutronFixture;
  let a: Project;
  before(async () => {
    n = await startNeutron({ config: { vni_ranges: ['1000:1100'] } });
    a = await n.project('qrace');
  });
  after(() => n?.close());

  const race = async (resource: string, create: (i: number) => Promise<{ status: number; text: string; body: any }>) => {
    assert.equal((await n.admin.put(`/v2.0/quotas/${a.id}`, { quota: { [resource]: 2 } })).status, 200);
    assert.equal((await create(-1)).status, 201);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => create(i)));
    const won = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 409);
    assert.equal(won.length, 1, results.map((r) => `${r.status} ${r.text}`).join('\n'));
    assert.equal(refused.length, 9, results.map((r) => `${r.status} ${r.text}`).join('\n'));
    for (const r of refused) assert.equal(r.body.NeutronError.type, 'OverQuota');
    const details = await a.reader.get(`/v2.0/quotas/${a.id}/details`);
    assert.deepEqual(details.body.quota[resource], { limit: 2, used: 2, reserved: 0 });
  };

  it('10 concurrent subnet pool creates with one slot left: exactly one succeeds', async () => {
    await race('subnetpool', (i) => a.member.post('/v2.0/subnetpools', { subnetpool: { name: `p${i}`, prefixes: [`10.${i + 2}.0.0/16`] } }));
  });

  it('10 concurrent network creates with one slot left: exactly one succeeds', async () => {
    await race('network', (i) => a.member.post('/v2.0/networks', { network: { name: `n${i}` } }));
  });
});
