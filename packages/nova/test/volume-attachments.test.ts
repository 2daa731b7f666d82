import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isAtLeast, parseVersion } from '@onestack/core/http/microversion.ts';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { CinderClient as VolumeApi, startCinder } from '../../cinder/test/fixture.ts';
import { attachmentView, parseAttach, parseUpdate } from '../src/api/volume-attachment-routes.ts';
import { MAX_MICROVERSION } from '../src/conf.ts';
import type { BlockDevice } from '../src/domain/block-devices.ts';
import { nextDeviceName } from '../src/domain/block-devices.ts';
import type { Instance } from '../src/domain/instances.ts';
import { blockDeviceMapping } from '../src/domain/metadata-content.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { NovaFixture, Project } from './fixture.ts';
import { availableVolume, bootNetless, novaBesideCinder } from './with-cinder.ts';

/**
 * os-volume_attachments against a real Cinder (its fake volume driver) on a fake compute
 * host: the attachments API flow (reserve, connect, complete, delete), the guest's disks
 * as the driver sees them, upstream's 400/403/404/409 answers, clean-up after failures and
 * at server delete. Per-microversion views are checked directly while the advertised
 * maximum is below them.
 */
const MAX = parseVersion(MAX_MICROVERSION);
const upTo = (v: string) => (isAtLeast(MAX, v) ? v : MAX_MICROVERSION);

describe('nova os-volume_attachments', () => {
  let ks: KeystoneFixture;
  let cinder: Awaited<ReturnType<typeof startCinder>>;
  let f: NovaFixture;
  let p: Project;
  let other: Project;
  let vol: VolumeApi;
  let driver: FakeDriver;
  let server: string;
  let second: string;

  const path = (s = server) => `/v2.1/servers/${s}/os-volume_attachments`;
  const newVolume = (name: string) => availableVolume(cinder, vol, name);
  const volume = async (id: string) => (await vol.get(`/volumes/${id}`)).body.volume;
  const boot = (name: string) => bootNetless(f, p, name);

  before(async () => {
    ks = await startKeystone();
    cinder = await startCinder({ ks });
    driver = new FakeDriver({ hostname: 'va-h1', hotplugSlots: 2 });
    ({ f, p, vol } = await novaBesideCinder(ks, cinder.url, driver, 'vat'));
    other = await f.project('vat-other');
    server = await boot('va1');
    second = await boot('va2');
  });
  after(async () => {
    await f?.close();
    await cinder?.close();
    await ks?.close();
  });

  it('attaches a volume: in-use in Cinder, plugged into the guest, listed with its device name', async () => {
    const v = await newVolume('data');
    const r = await p.member.at(upTo('2.79')).post(path(), { volumeAttachment: { volumeId: v } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.volumeAttachment.id, v);
    assert.equal(r.body.volumeAttachment.volumeId, v);
    assert.equal(r.body.volumeAttachment.serverId, server);
    assert.equal(r.body.volumeAttachment.device, '/dev/vdb');
    const shown = await volume(v);
    assert.equal(shown.status, 'in-use');
    assert.deepEqual(shown.attachments.map((a: { server_id: string }) => a.server_id), [server]);
    assert.deepEqual(driver.attachedVolumes(server), [v]);
    const bdm = await f.nova.core.blockDevices.byVolume(server, v);
    assert.equal(bdm?.connectionInfo?.path, `/dev/fake/${v}`, 'the connection info Cinder gave this host is kept');

    const list = await p.reader.get(path());
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.volumeAttachments, [{ id: v, volumeId: v, serverId: server, device: '/dev/vdb' }]);
    const one = await p.reader.get(`${path()}/${v}`);
    assert.deepEqual(one.body.volumeAttachment, list.body.volumeAttachments[0]);
    const actions = await p.member.get(`/v2.1/servers/${server}/os-instance-actions`);
    assert.ok(actions.body.instanceActions.some((a: { action: string }) => a.action === 'attach_volume'));
  });

  it('refuses a volume attached already, here or elsewhere, with upstream’s messages', async () => {
    const v = (await p.reader.get(path())).body.volumeAttachments[0].volumeId;
    const again = await p.member.post(path(), { volumeAttachment: { volumeId: v } });
    assert.equal(again.status, 400);
    assert.match(again.body.badRequest.message, new RegExp(`volume ${v} is already attached to instances: ${server}`));
    const elsewhere = await p.member.post(path(second), { volumeAttachment: { volumeId: v } });
    assert.equal(elsewhere.status, 400);
    assert.equal((await volume(v)).status, 'in-use');
  });

  it('validates the request and the caller', async () => {
    const bad = async (body: unknown, status = 400) => {
      const r = await p.member.post(path(), body);
      assert.equal(r.status, status, r.text);
      return r;
    };
    await bad({ volumeAttachment: { volumeId: 'not-a-uuid' } });
    await bad({ volumeAttachment: {} });
    await bad({});
    await bad({ volumeAttachment: { volumeId: randomUUID(), device: 'sdb' } });
    assert.equal((await p.member.at('2.48').post(path(), { volumeAttachment: { volumeId: randomUUID(), tag: 'x' } })).status, 400, 'tags from 2.49');
    await bad({ volumeAttachment: { volumeId: randomUUID() } }, 404);
    const v = await newVolume('other');
    assert.equal((await p.reader.post(path(), { volumeAttachment: { volumeId: v } })).status, 403);
    assert.equal((await other.member.post(path(), { volumeAttachment: { volumeId: v } })).status, 404);
    assert.equal((await other.member.get(path())).status, 404);
    assert.equal((await p.reader.get(`${path()}/${v}`)).status, 404);
    assert.equal((await p.member.delete(`${path()}/${v}`)).status, 404, 'not attached');
    assert.equal((await p.member.delete(`${path()}/${randomUUID()}`)).status, 404, 'no such volume');
    assert.equal((await volume(v)).status, 'available');
  });

  it('a failed attach leaves the volume available and no mapping (Cinder fails, then no free slot)', async () => {
    const v = await newVolume('fails');
    cinder.fake!.failNext.add('initializeConnection');
    const r = await p.member.post(path(second), { volumeAttachment: { volumeId: v } });
    assert.ok(r.status >= 400, r.text);
    assert.equal((await volume(v)).status, 'available');
    assert.deepEqual((await p.member.get(path(second))).body.volumeAttachments, []);

    // va1 has one volume and 2 slots: the second fills them, the third finds none.
    const fill = await newVolume('fill');
    assert.equal((await p.member.post(path(), { volumeAttachment: { volumeId: fill } })).status, 200);
    const none = await p.member.post(path(), { volumeAttachment: { volumeId: v } });
    assert.equal(none.status, 400, none.text);
    assert.match(none.body.badRequest.message, /no free hot-plug slot/);
    assert.equal((await volume(v)).status, 'available');
    assert.equal((await volume(v)).attachments.length, 0);
    assert.equal((await p.member.get(path())).body.volumeAttachments.length, 2);
    assert.equal((await p.member.delete(`${path()}/${fill}`)).status, 202);
    assert.equal((await volume(fill)).status, 'available');
  });

  it('PUT: swapping is Cinder’s (service role) alone; the mapping’s own fields are not mutable', async () => {
    const v = (await p.reader.get(path())).body.volumeAttachments[0].volumeId;
    const swap = await p.member.put(`${path()}/${v}`, { volumeAttachment: { volumeId: randomUUID() } });
    assert.equal(swap.status, 403, swap.text);
    const same = await f.admin.put(`${path()}/${v}`, { volumeAttachment: { volumeId: v } });
    if (!isAtLeast(MAX, '2.85')) {
      // Before 2.85 PUT always swaps: an admin passes the policy only with the service role.
      assert.equal(same.status, 403, same.text);
      return;
    }
    assert.equal((await p.member.at('2.84').put(`${path()}/${v}`, { volumeAttachment: { volumeId: v } })).status, 403, 'before 2.85 PUT is a swap');
    const m = p.member.at('2.85');
    const set = await m.put(`${path()}/${v}`, { volumeAttachment: { volumeId: v, delete_on_termination: true, serverId: server, device: '/dev/vdb' } });
    assert.equal(set.status, 202, set.text);
    assert.equal((await m.get(`${path()}/${v}`)).body.volumeAttachment.delete_on_termination, true);
    const tag = await m.put(`${path()}/${v}`, { volumeAttachment: { volumeId: v, tag: 'other' } });
    assert.equal(tag.status, 400);
    assert.equal(tag.body.badRequest.message, 'The tag property is not mutable');
    assert.equal((await m.put(`${path()}/${randomUUID()}`, { volumeAttachment: { volumeId: v } })).status, 403, 'another volumeId is a swap');
    assert.equal((await m.put(`${path()}/${v}`, { volumeAttachment: { volumeId: v, delete_on_termination: false } })).status, 202);
    if (isAtLeast(MAX, '2.89')) {
      const shown = (await p.reader.at('2.89').get(`${path()}/${v}`)).body.volumeAttachment;
      assert.equal(shown.id, undefined);
      assert.match(shown.attachment_id, /^[0-9a-f-]{36}$/);
      assert.match(shown.bdm_uuid, /^[0-9a-f-]{36}$/);
      assert.equal(shown.delete_on_termination, false);
    }
  });

  it('detaches: unplugged, available again, the mapping gone', async () => {
    const v = (await p.reader.get(path())).body.volumeAttachments[0].volumeId;
    assert.equal((await p.member.delete(`${path()}/${v}`)).status, 202);
    assert.equal((await volume(v)).status, 'available');
    assert.deepEqual(driver.attachedVolumes(server), []);
    assert.deepEqual((await p.member.get(path())).body.volumeAttachments, []);
    // Free again: it goes to the other server.
    assert.equal((await p.member.post(path(second), { volumeAttachment: { volumeId: v } })).status, 200);
    assert.equal((await volume(v)).attachments[0].server_id, second);
  });

  it('a locked server refuses its owner; a server being deleted refuses everybody', async () => {
    const v = await newVolume('locked');
    assert.equal((await f.admin.post(`/v2.1/servers/${server}/action`, { lock: null })).status, 202);
    const r = await p.member.post(path(), { volumeAttachment: { volumeId: v } });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.conflictingRequest.message, `Instance ${server} is locked`);
    assert.equal((await f.admin.post(`/v2.1/servers/${server}/action`, { unlock: null })).status, 202);
    assert.equal((await volume(v)).status, 'available');
  });

  it('deleting the server detaches its volumes and deletes those marked delete_on_termination', async () => {
    const keep = (await p.reader.get(path(second))).body.volumeAttachments[0].volumeId;
    const gone = await newVolume('gone');
    const at = isAtLeast(MAX, '2.79') ? '2.79' : MAX_MICROVERSION;
    const body = isAtLeast(MAX, '2.79') ? { volumeId: gone, delete_on_termination: true } : { volumeId: gone };
    assert.equal((await p.member.at(at).post(path(second), { volumeAttachment: body })).status, 200);
    if (!isAtLeast(MAX, '2.79')) {
      // No API for the flag yet at this maximum: set it as a boot request would have.
      const bdm = (await f.nova.core.blockDevices.byVolume(second, gone))!;
      await f.nova.core.blockDevices.update(bdm.uuid, { deleteOnTermination: true });
    }
    assert.equal((await p.member.delete(`/v2.1/servers/${second}`)).status, 204);
    await f.waitFor(p.member, second, (s) => s.status === 'DELETED');
    assert.equal((await volume(keep)).status, 'available');
    assert.equal((await volume(keep)).attachments.length, 0);
    for (let i = 0; i < 100 && (await vol.get(`/volumes/${gone}`)).status !== 404; i++) {
      await cinder.volumes.drain();
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await vol.get(`/volumes/${gone}`)).status, 404);
    assert.deepEqual(await f.nova.core.blockDevices.forInstance(second), []);
  });
});

describe('os-volume_attachments per microversion (views and bodies)', () => {
  const bdm: BlockDevice = {
    uuid: 'b1', instanceUuid: 's1', sourceType: 'volume', destinationType: 'volume', bootIndex: null, deviceName: '/dev/vdb', volumeId: 'v1',
    imageId: null, volumeSize: null, deleteOnTermination: true, tag: 't', attachmentId: 'a1', connectionInfo: null, volumeType: null,
    diskBus: null, deviceType: null, guestFormat: null, createdAt: 0, updatedAt: null,
  };
  const at = (max: string) => (v: string) => isAtLeast(parseVersion(max), v);

  it('shows tag from 2.70, delete_on_termination from 2.79, attachment_id and bdm_uuid instead of id from 2.89', () => {
    assert.deepEqual(attachmentView(bdm, at('2.1')), { id: 'v1', volumeId: 'v1', serverId: 's1', device: '/dev/vdb' });
    assert.deepEqual(attachmentView(bdm, at('2.70')), { id: 'v1', volumeId: 'v1', serverId: 's1', device: '/dev/vdb', tag: 't' });
    assert.deepEqual(attachmentView(bdm, at('2.79')), { id: 'v1', volumeId: 'v1', serverId: 's1', device: '/dev/vdb', tag: 't', delete_on_termination: true });
    assert.deepEqual(attachmentView(bdm, at('2.89')), { volumeId: 'v1', serverId: 's1', device: '/dev/vdb', tag: 't', delete_on_termination: true, attachment_id: 'a1', bdm_uuid: 'b1' });
    assert.ok(!('device' in attachmentView({ ...bdm, deviceName: null }, at('2.1'))));
  });

  it('takes tag from 2.49 and delete_on_termination from 2.79; PUT takes more than volumeId only from 2.85', () => {
    const id = randomUUID();
    assert.throws(() => parseAttach({ volumeAttachment: { volumeId: id, tag: 'x' } }, at('2.48')), /Additional properties/);
    assert.equal(parseAttach({ volumeAttachment: { volumeId: id, tag: 'x' } }, at('2.49')).tag, 'x');
    assert.throws(() => parseAttach({ volumeAttachment: { volumeId: id, delete_on_termination: true } }, at('2.78')), /Additional properties/);
    assert.equal(parseAttach({ volumeAttachment: { volumeId: id, delete_on_termination: 'yes' } }, at('2.79')).deleteOnTermination, true);
    assert.throws(() => parseAttach({ volumeAttachment: { volumeId: id, delete_on_termination: 'maybe' } }, at('2.79')), /delete_on_termination/);
    assert.throws(() => parseAttach({ volumeAttachment: { volumeId: id, device: '/dev/sdb/../x' } }, at('2.1')), /device/);
    assert.equal(parseAttach({ volumeAttachment: { volumeId: id, device: '/dev/vdc' } }, at('2.1')).device, '/dev/vdc');
    assert.throws(() => parseUpdate({ volumeAttachment: { volumeId: id, delete_on_termination: false } }, at('2.84')), /Additional properties/);
    assert.equal(parseUpdate({ volumeAttachment: { volumeId: id, delete_on_termination: false } }, at('2.85')).deleteOnTermination, false);
    assert.throws(() => parseUpdate({ volumeAttachment: { volumeId: id, serverId: 'nope' } }, at('2.85')), /serverId/);
  });

  it('names disks as upstream’s libvirt driver (vda root, then ephemeral and swap, then the first free letter) and the EC2 metadata’s block-device-mapping so', () => {
    assert.equal(nextDeviceName([], { ephemeral: 0, swap: 0 }), '/dev/vdb');
    assert.equal(nextDeviceName([], { ephemeral: 1, swap: 512 }), '/dev/vdd');
    assert.equal(nextDeviceName(['/dev/vdb', '/dev/vdd'], { ephemeral: 0, swap: 0 }), '/dev/vdc');
    const inst = (ephemeral: number, swap: number) => ({ flavor: { ephemeral, swap } }) as Instance;
    assert.deepEqual(blockDeviceMapping(inst(0, 0), ['/dev/vdc', '/dev/vdb']), { ami: 'vda', root: '/dev/vda', ebs0: '/dev/vdb', ebs1: '/dev/vdc' });
    assert.deepEqual(blockDeviceMapping(inst(1, 512), ['/dev/vdd']), { ami: 'vda', root: '/dev/vda', ephemeral0: '/dev/vdb', swap: '/dev/vdc', ebs0: '/dev/vdd' });
    assert.equal(nextDeviceName('bcdefghijklmnopqrstuvwxyz'.split('').map((l) => `/dev/vd${l}`), { ephemeral: 0, swap: 0 }), undefined);
  });
});
