import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isAtLeast, parseVersion } from '@onestack/core/http/microversion.ts';
import { MAX_MICROVERSION } from '../src/conf.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import { startNova, type NovaFixture, type Project } from './fixture.ts';

/**
 * os-interface over the real Neutron API on a fake compute host: attach by network (the
 * port is Nova's, deleted on detach) or by port (only unbound on detach), the guest's NICs
 * as the driver sees them, and upstream's 400/404/409 answers.
 */
// Tags show from 2.70: checked once the advertised maximum gets there.
const V270 = isAtLeast(parseVersion(MAX_MICROVERSION), '2.70');

describe('nova os-interface', () => {
  let f: NovaFixture;
  let p: Project;
  let other: Project;
  let driver: FakeDriver;
  let netA: string;
  let netB: string;
  let server: string;

  before(async () => {
    f = await startNova();
    driver = new FakeDriver({ hostname: 'if-h1' });
    await f.addCompute('if-h1', { driver });
    p = await f.project('ifc');
    other = await f.project('ifc-other');
    const net = async (name: string, cidr: string) => {
      const n = (await p.net.post('/v2.0/networks', { network: { name } })).body.network.id as string;
      assert.equal((await p.net.post('/v2.0/subnets', { subnet: { network_id: n, cidr, ip_version: 4 } })).status, 201);
      return n;
    };
    netA = await net('if-a', '10.61.0.0/24');
    netB = await net('if-b', '10.62.0.0/24');
    const s = await p.member.post('/v2.1/servers', { server: { name: 'ifs', imageRef: f.imageId, flavorRef: '1', networks: [{ uuid: netA }] } });
    assert.equal(s.status, 202, s.text);
    server = s.body.server.id;
    assert.equal((await f.waitFor(p.member, server)).status, 'ACTIVE');
  });
  after(() => f?.close());

  const path = () => `/v2.1/servers/${server}/os-interface`;

  it('lists and shows the boot port; another project sees no server', async () => {
    const list = await p.reader.get(path());
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.interfaceAttachments.length, 1);
    const a = list.body.interfaceAttachments[0];
    assert.deepEqual(Object.keys(a).sort(), ['fixed_ips', 'mac_addr', 'net_id', 'port_id', 'port_state']);
    assert.equal(a.net_id, netA);
    const shown = await p.reader.at(V270 ? '2.70' : '2.49').get(`${path()}/${a.port_id}`);
    assert.equal(shown.status, 200, shown.text);
    assert.equal(shown.body.interfaceAttachment.tag, V270 ? null : undefined, '2.70 shows the tag');
    assert.equal((await p.reader.get(`${path()}/${randomUUID()}`)).status, 404);
    assert.equal((await other.member.get(path())).status, 404);
  });

  it('attach by network with a fixed IP and a tag, detach deletes the port Nova made', async () => {
    const r = await p.member.at(V270 ? '2.70' : '2.49').post(path(), { interfaceAttachment: { net_id: netB, fixed_ips: [{ ip_address: '10.62.0.50' }], tag: 'data' } });
    assert.equal(r.status, 200, r.text);
    const att = r.body.interfaceAttachment;
    assert.equal(att.net_id, netB);
    assert.deepEqual(att.fixed_ips.map((x: { ip_address: string }) => x.ip_address), ['10.62.0.50']);
    assert.equal(att.tag, V270 ? 'data' : undefined);
    assert.ok(driver.attachedPorts(server).includes(att.port_id), 'hot-plugged into the guest');
    const port = (await f.neutronAdmin.get(`/v2.0/ports/${att.port_id}`)).body.port;
    assert.deepEqual([port.device_id, port['binding:host_id']], [server, 'if-h1']);
    const s = (await p.member.get(`/v2.1/servers/${server}`)).body.server;
    assert.deepEqual(s.addresses['if-b'].map((x: { addr: string }) => x.addr), ['10.62.0.50']);

    const dup = await p.member.post(path(), { interfaceAttachment: { net_id: netB, fixed_ips: [{ ip_address: '10.62.0.50' }] } });
    assert.equal(dup.status, 409, dup.text);
    assert.equal((await p.reader.delete(`${path()}/${att.port_id}`)).status, 403);
    assert.equal((await p.member.delete(`${path()}/${att.port_id}`)).status, 202);
    assert.equal(driver.attachedPorts(server).includes(att.port_id), false);
    assert.equal((await f.neutronAdmin.get(`/v2.0/ports/${att.port_id}`)).status, 404, "Nova's port is deleted");
    assert.equal((await p.member.delete(`${path()}/${att.port_id}`)).status, 404);
  });

  it('attach by port: the user keeps it after detach; a port in use is 409', async () => {
    const own = (await p.net.post('/v2.0/ports', { port: { network_id: netB } })).body.port;
    const r = await p.member.post(path(), { interfaceAttachment: { port_id: own.id } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.interfaceAttachment.port_id, own.id);
    assert.ok(driver.attachedPorts(server).includes(own.id));
    assert.equal((await p.member.post(path(), { interfaceAttachment: { port_id: own.id } })).status, 409);
    assert.equal((await p.member.delete(`${path()}/${own.id}`)).status, 202);
    const after = (await f.neutronAdmin.get(`/v2.0/ports/${own.id}`)).body.port;
    assert.deepEqual([after.device_id, after['binding:host_id']], ['', ''], 'unbound, not deleted');
  });

  it("upstream's 400 and 404 answers", async () => {
    const bad = async (body: unknown, status = 400, c = p.member) => {
      const r = await c.post(path(), body);
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
      return r.body;
    };
    assert.equal((await bad({ interfaceAttachment: { net_id: netA, port_id: randomUUID() } })).badRequest.message, 'Must not input both network_id and port_id');
    assert.equal((await bad({ interfaceAttachment: { fixed_ips: [{ ip_address: '10.61.0.9' }] } })).badRequest.message, 'Must input network_id when request IP address');
    await bad({ interfaceAttachment: { net_id: netA, tag: 'x' } }, 400, p.member.at('2.48'));
    assert.equal((await bad({ interfaceAttachment: { port_id: randomUUID() } }, 404)).itemNotFound.message.startsWith('Port '), true);
    await bad({ interfaceAttachment: { net_id: randomUUID() } }, 404);
    assert.equal((await bad({ interfaceAttachment: {} })).badRequest.message, 'More than one possible network found. Specify network ID(s) to select which one(s) to connect to.');
    await bad({ interfaceAttachment: { net_id: netA } }, 403, p.reader);
  });

  it('a locked server refuses attach and detach (409)', async () => {
    assert.equal((await p.member.post(`/v2.1/servers/${server}/action`, { lock: null })).status, 202);
    const r = await p.member.post(path(), { interfaceAttachment: { net_id: netB } });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.conflictingRequest.message, `Instance ${server} is locked`);
    assert.equal((await p.member.post(`/v2.1/servers/${server}/action`, { unlock: null })).status, 202);
  });
});
