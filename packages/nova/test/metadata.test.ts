import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { signInstanceId } from '@onestack/core/http/instance-signature.ts';
import { createMetadataApp } from '../src/metadata/app.ts';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

const SECRET = 'metadata-test-secret';

describe('nova metadata API (as Neutron\'s metadata proxy calls it)', () => {
  let f: NovaFixture;
  let p: Project;
  let url: string;
  let server: { id: string; fixedIp: string };
  let closeMd: () => Promise<void>;
  const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1ZK3E7lYbOdHc2fG9Wc1bV0n3oR4p0uQ8sXoQyq0Ls md@test';

  before(async () => {
    f = await startNova();
    await f.addCompute('md1');
    p = await f.project('md');
    const netId = (await p.net.post('/v2.0/networks', { network: { name: 'mdnet' } })).body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.9.0.0/24', ip_version: 4 } });
    assert.equal((await p.member.post('/v2.1/os-keypairs', { keypair: { name: 'mdkey', public_key: pub } })).status, 201);
    const r = await p.member.post('/v2.1/servers', {
      server: { name: 'md-vm', imageRef: f.imageId, flavorRef: '42', networks: [{ uuid: netId }], key_name: 'mdkey', metadata: { role: 'web' }, user_data: Buffer.from('#!/bin/sh\necho hi\n').toString('base64') },
    });
    assert.equal(r.status, 202, r.text);
    const s = await f.waitFor(p.member, r.body.server.id);
    assert.equal(s.status, 'ACTIVE');
    server = { id: s.id, fixedIp: s.addresses.mdnet[0].addr };
    const app = createMetadataApp({ instances: f.nova.core.instances, sharedSecret: SECRET, logger: pino({ level: 'silent' }) });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    closeMd = () => app.close();
  });
  after(async () => {
    await closeMd?.();
    await f?.close();
  });

  const get = async (path: string, h: Record<string, string> = { 'x-instance-id': server.id, 'x-tenant-id': p.id, 'x-instance-id-signature': signInstanceId(SECRET, server.id) }) => {
    const res = await fetch(url + path, { headers: h });
    return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
  };

  it('serves meta_data.json, network_data.json, user_data and the listings for a signed instance id', async () => {
    const md = JSON.parse((await get('/openstack/latest/meta_data.json')).text);
    assert.equal(md.uuid, server.id);
    assert.equal(md.name, 'md-vm');
    assert.equal(md.hostname, 'md-vm');
    assert.deepEqual(md.meta, { role: 'web' });
    assert.deepEqual(md.public_keys, { mdkey: pub });
    assert.equal(md.project_id, p.id);
    assert.deepEqual(JSON.parse((await get('/openstack/2018-08-27/meta_data.json')).text).uuid, server.id);
    const nd = JSON.parse((await get('/openstack/latest/network_data.json')).text);
    assert.equal(nd.links.length, 1);
    assert.equal(nd.networks[0].type, 'ipv4_dhcp');
    assert.equal((await get('/openstack/latest/user_data')).text, '#!/bin/sh\necho hi\n');
    assert.match((await get('/openstack')).text, /^2012-08-10\n[\s\S]*\nlatest$/);
    assert.ok((await get('/openstack/latest')).text.split('\n').includes('user_data'));
    assert.equal((await get('/openstack/1999-01-01/meta_data.json')).status, 404);
  });

  it('serves the EC2-style tree', async () => {
    const top = (await get('/latest/meta-data/')).text.split('\n');
    for (const k of ['hostname', 'instance-id', 'local-ipv4', 'placement/', 'public-keys/']) assert.ok(top.includes(k), `${k} in ${top}`);
    assert.equal((await get('/latest/meta-data/local-ipv4')).text, server.fixedIp);
    assert.equal((await get('/latest/meta-data/hostname')).text, 'md-vm');
    assert.equal((await get('/latest/meta-data/placement/availability-zone')).text, 'nova');
    assert.equal((await get('/latest/meta-data/public-keys/')).text, '0=mdkey');
    assert.equal((await get('/latest/meta-data/public-keys/0/openssh-key')).text, pub);
    assert.equal((await get('/2009-04-04/user-data')).text, '#!/bin/sh\necho hi\n');
    assert.equal((await get('/latest/meta-data/nothing-here')).status, 404);
  });

  it('refuses a missing id (400), a bad signature (403) and another project\'s or an unknown instance (404)', async () => {
    assert.equal((await get('/openstack/latest/meta_data.json', { 'x-tenant-id': p.id })).status, 400);
    const forged = await get('/openstack/latest/meta_data.json', { 'x-instance-id': server.id, 'x-tenant-id': p.id, 'x-instance-id-signature': signInstanceId('wrong', server.id) });
    assert.equal(forged.status, 403);
    assert.equal((await get('/openstack/latest/meta_data.json', { 'x-instance-id': server.id, 'x-tenant-id': p.id })).status, 403);
    const other = await get('/openstack/latest/meta_data.json', { 'x-instance-id': server.id, 'x-tenant-id': 'someone-else', 'x-instance-id-signature': signInstanceId(SECRET, server.id) });
    assert.equal(other.status, 404);
    const unknown = '00000000-0000-4000-8000-000000000000';
    assert.equal((await get('/openstack/latest/meta_data.json', { 'x-instance-id': unknown, 'x-tenant-id': p.id, 'x-instance-id-signature': signInstanceId(SECRET, unknown) })).status, 404);
  });
});
