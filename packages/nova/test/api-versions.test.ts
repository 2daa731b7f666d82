import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/** An OpenSSH ssh-ed25519 public key line from a fresh key. */
function sshPublicKey(): string {
  const der = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const raw = der.subarray(der.length - 32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')} test@onestack`;
}

describe('nova keypairs, flavors and per-microversion changes', () => {
  let f: NovaFixture;
  let p: Project;
  let netId: string;
  before(async () => {
    f = await startNova();
    await f.addCompute('hv1');
    await f.addCompute('hv2');
    p = await f.project('mv');
    const net = await p.net.post('/v2.0/networks', { network: { name: 'private' } });
    netId = net.body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.0.0.0/24', ip_version: 4 } });
  });
  after(() => f?.close());

  it('keypairs: import and generate (201 from 2.2, 200 before), type, paging (2.35), 409 on a duplicate, 204/202 on delete', async () => {
    const pub = sshPublicKey();
    const imported = await p.member.post('/v2.1/os-keypairs', { keypair: { name: 'k1', public_key: pub } });
    assert.equal(imported.status, 201, imported.text);
    assert.equal(imported.body.keypair.type, 'ssh');
    assert.equal(imported.body.keypair.public_key, pub);
    assert.match(imported.body.keypair.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    assert.equal(imported.body.keypair.private_key, undefined);

    const generated = await p.member.at('2.1').post('/v2.1/os-keypairs', { keypair: { name: 'k0' } });
    assert.equal(generated.status, 200, generated.text);
    assert.match(generated.body.keypair.private_key, /PRIVATE KEY/);
    assert.equal(generated.body.keypair.type, undefined, 'no type before 2.2');
    assert.equal((await p.member.at('2.1').post('/v2.1/os-keypairs', { keypair: { name: 'kx', type: 'ssh' } })).status, 400, 'type is unknown before 2.2');

    const dup = await p.member.post('/v2.1/os-keypairs', { keypair: { name: 'k1', public_key: pub } });
    assert.equal(dup.status, 409);
    assert.match(dup.body.conflictingRequest.message, /Key pair 'k1' already exists/);
    assert.equal((await p.member.post('/v2.1/os-keypairs', { keypair: { name: 'bad', public_key: 'not a key' } })).status, 400);

    const page = await p.member.at('2.35').get('/v2.1/os-keypairs?limit=1');
    assert.deepEqual(page.body.keypairs.map((k: { keypair: { name: string } }) => k.keypair.name), ['k0']);
    assert.match(page.body.keypairs_links[0].href, /marker=k0/);
    const rest = await p.member.at('2.35').get('/v2.1/os-keypairs?marker=k0');
    assert.deepEqual(rest.body.keypairs.map((k: { keypair: { name: string } }) => k.keypair.name), ['k1']);
    // Before 2.35 limit is not a paging parameter.
    assert.equal((await p.member.at('2.34').get('/v2.1/os-keypairs?limit=1')).body.keypairs.length, 2);
    // Another user's keypairs are theirs alone.
    assert.equal((await p.reader.get('/v2.1/os-keypairs/k1')).status, 404);

    assert.equal((await p.member.at('2.1').delete('/v2.1/os-keypairs/k0')).status, 202);
    assert.equal((await p.member.delete('/v2.1/os-keypairs/k1')).status, 204);
    assert.equal((await p.member.get('/v2.1/os-keypairs/k1')).status, 404);
  });

  it('flavors: private flavors need access (409 for a public one), description only from 2.55, members cannot create', async () => {
    assert.equal((await p.member.post('/v2.1/flavors', { flavor: { name: 'x', ram: 64, vcpus: 1, disk: 0 } })).status, 403);
    const early = await f.admin.at('2.54').post('/v2.1/flavors', { flavor: { name: 'd', ram: 64, vcpus: 1, disk: 0, description: 'no' } });
    assert.equal(early.status, 400);
    const c = await f.admin.post('/v2.1/flavors', { flavor: { name: 'secret', id: 'secret-1', ram: 64, vcpus: 1, disk: 0, 'os-flavor-access:is_public': false, description: 'for mv only' } });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.body.flavor.description, 'for mv only');
    assert.equal((await p.member.get('/v2.1/flavors/secret-1')).status, 404);
    const add = await f.admin.post('/v2.1/flavors/secret-1/action', { addTenantAccess: { tenant: p.id } });
    assert.deepEqual(add.body.flavor_access, [{ flavor_id: 'secret-1', tenant_id: p.id }]);
    assert.equal((await p.member.get('/v2.1/flavors/secret-1')).status, 200);
    assert.ok((await p.member.get('/v2.1/flavors')).body.flavors.some((x: { id: string }) => x.id === 'secret-1'));
    const pub = await f.admin.post('/v2.1/flavors/1/action', { addTenantAccess: { tenant: p.id } });
    assert.equal(pub.status, 409);
    assert.equal(pub.body.conflictingRequest.message, 'Can not add access to a public flavor.');
    const upd = await f.admin.put('/v2.1/flavors/secret-1', { flavor: { description: 'changed' } });
    assert.equal(upd.body.flavor.description, 'changed');
    assert.equal((await f.admin.at('2.54').get('/v2.1/flavors/secret-1')).body.flavor.description, undefined);
    assert.equal((await f.admin.post('/v2.1/flavors/secret-1/action', { removeTenantAccess: { tenant: p.id } })).status, 200);
    assert.equal((await p.member.get('/v2.1/flavors/secret-1')).status, 404);
    assert.equal((await f.admin.delete('/v2.1/flavors/secret-1')).status, 202);
    assert.equal((await f.admin.get('/v2.1/flavors/secret-1')).status, 404);
  });

  it('limits lose maxImageMeta at 2.39 and the personality limits at 2.57', async () => {
    const at = async (v: string) => (await p.member.at(v).get('/v2.1/limits')).body.limits.absolute;
    assert.equal((await at('2.38')).maxImageMeta, 128);
    assert.equal((await at('2.39')).maxImageMeta, undefined);
    assert.equal((await at('2.39')).maxPersonality, 5);
    assert.equal((await at('2.35')).maxSecurityGroups, -1);
    assert.equal((await at('2.36')).maxSecurityGroups, undefined);
  });

  it('hypervisors: cpu_info as an object from 2.28, paging from 2.33, uuids from 2.53', async () => {
    const at = (v: string, q = '') => f.admin.at(v).get(`/v2.1/os-hypervisors/detail${q}`);
    assert.equal(typeof (await at('2.27')).body.hypervisors[0].cpu_info, 'string');
    assert.equal(typeof (await at('2.28')).body.hypervisors[0].cpu_info, 'object');
    const all = (await at('2.53')).body.hypervisors as { id: string; hypervisor_hostname: string }[];
    assert.ok(all.length >= 2);
    assert.match(all[0].id, /^[0-9a-f-]{36}$/);
    const first = await at('2.53', '?limit=1');
    assert.deepEqual(first.body.hypervisors.map((h: { id: string }) => h.id), [all[0].id]);
    const next = await at('2.53', `?marker=${all[0].id}`);
    assert.deepEqual(next.body.hypervisors.map((h: { id: string }) => h.id), all.slice(1).map((h) => h.id));
    assert.equal((await at('2.53', '?marker=nope')).status, 400);
    assert.equal((await at('2.32', '?limit=1')).body.hypervisors.length, all.length, 'no paging before 2.33');
  });

  it('network tags are refused between 2.37 and 2.41; a deleted server keeps its actions from 2.21; x-compute-request-id is sent', async () => {
    const body = { server: { name: 'tagged', imageRef: f.imageId, flavorRef: '42', networks: [{ uuid: netId, tag: 'nic1' }] } };
    const refused = await p.member.at('2.41').post('/v2.1/servers', body);
    assert.equal(refused.status, 400);
    assert.match(refused.text, /'tag' was unexpected/);
    const r = await p.member.at('2.42').post('/v2.1/servers', body);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.headers.get('x-compute-request-id'), r.headers.get('x-openstack-request-id'));
    const id = r.body.server.id;
    assert.equal((await f.waitFor(p.member, id)).status, 'ACTIVE');
    assert.equal((await p.member.delete(`/v2.1/servers/${id}`)).status, 204);
    await f.waitFor(p.member, id, (s) => s.status === 'DELETED');
    assert.equal((await p.member.at('2.20').get(`/v2.1/servers/${id}/os-instance-actions`)).status, 404);
    const actions = await p.member.at('2.21').get(`/v2.1/servers/${id}/os-instance-actions`);
    assert.equal(actions.status, 200, actions.text);
    assert.deepEqual(actions.body.instanceActions.map((a: { action: string }) => a.action).sort(), ['create', 'delete']);
  });
});
