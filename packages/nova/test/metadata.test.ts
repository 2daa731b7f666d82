import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { signInstanceId } from '@onestack/core/http/instance-signature.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { CinderClient as VolumeApi, startCinder } from '../../cinder/test/fixture.ts';
import { createMetadataApp } from '../src/metadata/app.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import { startNova, type NovaFixture, type Project } from './fixture.ts';
import { novaBesideCinder } from './with-cinder.ts';

const SECRET = 'metadata-test-secret';

/** The metadata API over the fixture's instances, on a free loopback port. */
async function listenMetadata(f: NovaFixture): Promise<{ url: string; close: () => Promise<void> }> {
  const app = createMetadataApp({ instances: f.nova.core.instances, sharedSecret: SECRET, logger: pino({ level: 'silent' }) });
  return { url: await app.listen({ host: '127.0.0.1', port: 0 }), close: () => app.close() };
}

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
    ({ url, close: closeMd } = await listenMetadata(f));
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
    assert.deepEqual(md.devices, [], 'an untagged NIC and root disk are no devices to show');
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

/**
 * meta_data.json's `devices` (upstream's device role tagging): a real Cinder with its fake volume
 * driver and a fake compute host, whose PCI layout is q35's (root device 00:01.0, slot N on bus N+1).
 */
describe('nova metadata API: tagged disks and NICs in meta_data.json devices', () => {
  let ks: KeystoneFixture;
  let cinder: Awaited<ReturnType<typeof startCinder>>;
  let f: NovaFixture;
  let p: Project;
  let vol: VolumeApi;
  let driver: FakeDriver;
  let netId: string;
  let url: string;
  let closeMd: () => Promise<void>;

  before(async () => {
    ks = await startKeystone();
    cinder = await startCinder({ ks });
    driver = new FakeDriver({ hostname: 'mdd1' });
    ({ f, p, vol } = await novaBesideCinder(ks, cinder.url, driver, 'mdd'));
    netId = (await p.net.post('/v2.0/networks', { network: { name: 'mddnet' } })).body.network.id;
    await p.net.post('/v2.0/subnets', { subnet: { network_id: netId, cidr: '10.19.0.0/24', ip_version: 4 } });
    ({ url, close: closeMd } = await listenMetadata(f));
  });
  after(async () => {
    await closeMd?.();
    await f?.close();
    await cinder?.close();
    await ks?.close();
  });

  const newVolume = async (name: string, bootable = false) => {
    const r = await vol.post('/volumes', { volume: { name, size: 1 } });
    assert.equal(r.status, 202, r.text);
    await cinder.waitFor(vol, 'volumes', r.body.volume.id, ['available']);
    if (bootable) assert.equal((await vol.post(`/volumes/${r.body.volume.id}/action`, { 'os-set_bootable': { bootable: true } })).status, 200);
    return r.body.volume.id as string;
  };
  const metaData = async (id: string, version = 'latest') => {
    const res = await fetch(`${url}/openstack/${version}/meta_data.json`, { headers: { 'x-instance-id': id, 'x-tenant-id': p.id, 'x-instance-id-signature': signInstanceId(SECRET, id) } });
    assert.equal(res.status, 200);
    return JSON.parse(await res.text());
  };
  const until = async (what: string, check: () => Promise<boolean>) => {
    for (let i = 0; i < 200; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`never: ${what}`);
  };

  it('shows tagged disks (serial, bus, address) beside tagged NICs, in the config drive too, per version; hot-plugs update them', async () => {
    const root = await newVolume('mdd-root', true);
    const data = await newVolume('mdd-data');
    const r = await p.member.at('2.42').post('/v2.1/servers', {
      server: {
        name: 'mdd-vm',
        imageRef: '',
        flavorRef: '1',
        config_drive: true,
        networks: [{ uuid: netId, tag: 'nic1' }],
        block_device_mapping_v2: [{ uuid: root, boot_index: 0, source_type: 'volume', destination_type: 'volume', tag: 'root-disk' }],
      },
    });
    assert.equal(r.status, 202, r.text);
    const id: string = r.body.server.id;
    const s = await f.waitFor(p.member, id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    const mac = (await f.neutronAdmin.get(`/v2.0/ports?device_id=${id}`)).body.ports[0].mac_address;
    const rootDisk = { type: 'disk', serial: root, bus: 'pci', address: '0000:00:01.0', tags: ['root-disk'] };
    const nic1 = { vf_trusted: false, type: 'nic', mac, bus: 'pci', address: '0000:01:00.0', tags: ['nic1'] };
    const md = await metaData(id);
    assert.deepEqual(md.devices, [rootDisk, nic1]);
    assert.deepEqual(md.devices.map((d: object) => Object.keys(d)), [Object.keys(rootDisk), Object.keys(nic1)], 'upstream\'s key order');
    // The config drive was written before the guest started, with the same devices.
    const drive = driver.spawnedSpec(id).configDrive!;
    assert.deepEqual(JSON.parse(String(drive['openstack/latest/meta_data.json'])).devices, md.devices);
    // vf_trusted from 2018-08-27, devices from 2016-06-30 (nova/api/metadata/base.py).
    const { vf_trusted: _, ...nicBeforeRocky } = nic1;
    assert.deepEqual((await metaData(id, '2017-02-22')).devices, [rootDisk, nicBeforeRocky]);
    assert.equal('devices' in (await metaData(id, '2015-10-15')), false);
    assert.equal('devices' in JSON.parse(String(drive['openstack/2015-10-15/meta_data.json'])), false);

    // A tagged volume and a tagged interface hot-plugged (2.49), then taken out again.
    const attached = await p.member.at('2.49').post(`/v2.1/servers/${id}/os-volume_attachments`, { volumeAttachment: { volumeId: data, tag: 'data-disk' } });
    assert.equal(attached.status, 200, attached.text);
    const dataDisk = { type: 'disk', serial: data, bus: 'pci', address: '0000:02:00.0', tags: ['data-disk'] };
    assert.deepEqual((await metaData(id)).devices, [rootDisk, dataDisk, nic1]);
    const iface = await p.member.at('2.49').post(`/v2.1/servers/${id}/os-interface`, { interfaceAttachment: { net_id: netId, tag: 'nic2' } });
    assert.equal(iface.status, 200, iface.text);
    const nic2 = { vf_trusted: false, type: 'nic', mac: iface.body.interfaceAttachment.mac_addr, bus: 'pci', address: '0000:03:00.0', tags: ['nic2'] };
    assert.deepEqual((await metaData(id)).devices, [rootDisk, dataDisk, nic1, nic2]);
    assert.equal((await p.member.delete(`/v2.1/servers/${id}/os-volume_attachments/${data}`)).status, 202);
    await until('the data disk leaves the devices', async () => (await metaData(id)).devices.length === 3);
    assert.equal((await p.member.delete(`/v2.1/servers/${id}/os-interface/${iface.body.interfaceAttachment.port_id}`)).status, 202);
    await until('nic2 leaves the devices', async () => (await metaData(id)).devices.length === 2);
    assert.deepEqual((await metaData(id)).devices, [rootDisk, nic1]);
  });
});
