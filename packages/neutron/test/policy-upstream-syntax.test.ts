import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

/**
 * Rules as upstream writes them: `field:` checks in the defaults and in an
 * operator's override file, and the tags API authorised by
 * `<action>_<member>:tags`.
 */
describe('neutron policy: upstream check strings and tag rules', () => {
  let n: NeutronFixture;
  let a: Project;
  let b: Project;
  const dir = tempDir('onestack-neutron-policy-');
  before(async () => {
    const file = join(dir.path, 'policy.yaml');
    writeFileSync(
      file,
      [
        // Upstream's syntax in an override: only networks whose MTU is 1400 may be updated by their owner.
        '"update_network": "rule:admin_only or (role:member and project_id:%(project_id)s and field:networks:mtu=1400)"',
        // Tag reads of networks for admins only, upstream's current rule name.
        '"get_network:tags": "rule:admin_only"',
        '',
      ].join('\n'),
    );
    n = await startNeutron({ config: { policy_file: file } });
    a = await n.project('pola');
    b = await n.project('polb');
  });
  after(async () => {
    await n?.close();
    dir.remove();
  });

  it('evaluates a field: check from an override file against the network', async () => {
    const net = (await a.member.post('/v2.0/networks', { network: { name: 'f1' } })).body.network;
    const refused = await a.member.put(`/v2.0/networks/${net.id}`, { network: { name: 'f2' } });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.NeutronError.type, 'PolicyNotAuthorized');
    const small = (await a.member.post('/v2.0/networks', { network: { name: 'f3', mtu: 1400 } })).body.network;
    assert.equal((await a.member.put(`/v2.0/networks/${small.id}`, { network: { name: 'f4' } })).status, 200);
  });

  it('the default field: rules still share and hide networks', async () => {
    const shared = await n.admin.post('/v2.0/networks', { network: { name: 'pub', shared: true } });
    assert.equal(shared.status, 201);
    assert.equal((await b.reader.get(`/v2.0/networks/${shared.body.network.id}`)).status, 200);
    const ext = await n.admin.post('/v2.0/networks', { network: { name: 'ext', 'router:external': true } });
    assert.equal((await b.reader.get(`/v2.0/networks/${ext.body.network.id}`)).status, 200);
    const priv = (await a.member.post('/v2.0/networks', { network: { name: 'priv' } })).body.network;
    assert.equal((await b.reader.get(`/v2.0/networks/${priv.id}`)).status, 404);
  });

  it('authorises the tags API with <action>_<member>:tags rules', async () => {
    const net = (await a.member.post('/v2.0/networks', { network: { name: 't1' } })).body.network;
    const created = await a.member.post(`/v2.0/networks/${net.id}/tags`, { tags: ['x', 'y'] });
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.body.tags, ['x', 'y']);
    // get_network:tags is admin-only here; the network itself still shows its tags.
    const read = await a.member.get(`/v2.0/networks/${net.id}/tags`);
    assert.equal(read.status, 403);
    assert.match(read.body.NeutronError.message, /get_network:tags/);
    assert.deepEqual((await n.admin.get(`/v2.0/networks/${net.id}/tags`)).body.tags, ['x', 'y']);
    // update_network:tags and delete_network:tags need a member: a reader is refused.
    const update = await a.reader.put(`/v2.0/networks/${net.id}/tags/z`);
    assert.equal(update.status, 403);
    assert.match(update.body.NeutronError.message, /update_network:tags/);
    const del = await a.reader.delete(`/v2.0/networks/${net.id}/tags`);
    assert.equal(del.status, 403);
    assert.match(del.body.NeutronError.message, /delete_network:tags/);
    assert.equal((await a.member.delete(`/v2.0/networks/${net.id}/tags`)).status, 204);
    // Subnet pools use their own rules: the reader may read them.
    const pool = (await a.member.post('/v2.0/subnetpools', { subnetpool: { name: 'tp', prefixes: ['10.50.0.0/16'] } })).body.subnetpool;
    assert.equal((await a.member.put(`/v2.0/subnetpools/${pool.id}/tags/blue`)).status, 201);
    assert.deepEqual((await a.reader.get(`/v2.0/subnetpools/${pool.id}/tags`)).body.tags, ['blue']);
  });
});
