import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startKeystone, type KeystoneFixture } from '../../keystone/test/fixture.ts';
import { CinderClient as VolumeApi, startCinder } from '../../cinder/test/fixture.ts';
import { FakeVolumeDriver } from '../../cinder/src/drivers/fake-driver.ts';
import type { NovaHttp } from '../../cinder/src/domain/nova.ts';
import { FakeDriver } from '../src/virt/fake-driver.ts';
import type { NovaClient, NovaFixture, Project } from './fixture.ts';
import { availableVolume, bootNetless, cinderServiceUser, novaBesideCinder } from './with-cinder.ts';

/**
 * Cinder migrating an attached volume through Nova's swap volume, both services real (Cinder
 * on two fake backends, nova-compute on the fake driver): Cinder's service user calls PUT
 * os-volume_attachments, nova-compute connects the new volume, the driver swaps, Cinder's
 * os-migrate_volume_completion keeps the volume id, and the mapping follows. Also the swap
 * API's refusals and a failed swap rolled back on both sides.
 */
describe('nova swap volume for a Cinder migration', () => {
  let ks: KeystoneFixture;
  let cinder: Awaited<ReturnType<typeof startCinder>>;
  let f: NovaFixture;
  let p: Project;
  let vol: VolumeApi;
  let driver: FakeDriver;
  let server: string;
  /** Cinder's service user (admin and service in the service project), as Cinder calls Nova. */
  let cinderService: NovaClient;
  let novaForCinder: NovaHttp | undefined;
  /** Versioned volume_swap notifications: event type, payload name, old and new volume. */
  const notifications: string[][] = [];
  let sub: { stop(): Promise<void> } | undefined;

  const path = (id: string) => `/v2.1/servers/${server}/os-volume_attachments/${id}`;
  const adminVolume = async (id: string) => (await cinder.admin.get(`/v3/${p.id}/volumes/${id}`)).body.volume;
  const backendOf = (v: any) => String(v['os-vol-host-attr:host']).split('@')[1]!.split('#')[0]!;
  const otherHost = (v: any) => {
    const to = backendOf(v) === 'fast' ? 'slow' : 'fast';
    return `${String(v['os-vol-host-attr:host']).split('@')[0]}@${to}#${to}`;
  };
  const newVolume = () => availableVolume(cinder, vol);
  const attached = async () => {
    const v = await newVolume();
    assert.equal((await p.member.post(`/v2.1/servers/${server}/os-volume_attachments`, { volumeAttachment: { volumeId: v } })).status, 200);
    return v;
  };
  const migstat = (id: string) => adminVolume(id).then((v) => v['os-vol-mig-status-attr:migstat'] as string | null);
  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    const end = Date.now() + 30_000;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const mapping = async (id: string) => (await p.member.at('2.89').get(path(id))).body.volumeAttachment;
  const swapEvents = async () => {
    const actions = (await f.admin.at('2.21').get(`/v2.1/servers/${server}/os-instance-actions`)).body.instanceActions.filter((a: { action: string }) => a.action === 'swap_volume');
    const out: string[] = [];
    for (const a of actions) {
      const shown = (await f.admin.at('2.51').get(`/v2.1/servers/${server}/os-instance-actions/${a.request_id}`)).body.instanceAction;
      out.push(...shown.events.map((e: { event: string; result: string }) => `${e.event}:${e.result}`));
    }
    return out.sort();
  };

  before(async () => {
    ks = await startKeystone();
    cinder = await startCinder({
      ks,
      drivers: () => [new FakeVolumeDriver({ backendName: 'fast' }), new FakeVolumeDriver({ backendName: 'slow' })],
      compute: { extendVolume: async () => true, swapVolume: (s, o, n) => novaForCinder!.swapVolume(s, o, n) },
    });
    driver = new FakeDriver({ hostname: 'sv-h1' });
    ({ f, p, vol } = await novaBesideCinder(ks, cinder.url, driver, 'swap'));
    ({ nova: novaForCinder, client: cinderService } = await cinderServiceUser(ks, f.url));
    server = await bootNetless(f, p, 'sv1');
    sub = await ks.bus.subscribe('versioned_notifications', `swap-test-${randomUUID()}`, async (n) => {
      const p = n.payload as { 'nova_object.name': string; 'nova_object.data': { old_volume_id: string; new_volume_id: string } };
      notifications.push([n.event_type, p['nova_object.name'], p['nova_object.data'].old_volume_id, p['nova_object.data'].new_volume_id]);
    }, { eventTypes: ['instance.volume_swap.start', 'instance.volume_swap.end', 'instance.volume_swap.error'] });
  });
  after(async () => {
    await sub?.stop();
    await f?.close();
    await cinder?.close();
    await ks?.close();
  });

  it('refuses: non-service callers (403), a volume not migrating (409), an unknown or attached new volume (400), a volume not attached (404)', async () => {
    const v = await attached();
    const spare = await newVolume();
    const put = (c: NovaClient, id: string, to: string) => c.put(path(id), { volumeAttachment: { volumeId: to } });
    assert.equal((await put(p.member, v, spare)).status, 403);
    assert.equal((await put(f.admin.at('2.1'), v, spare)).status, 403, 'admin without the service role');
    const idle = await put(cinderService, v, spare);
    assert.equal(idle.status, 409, idle.text);
    assert.equal(idle.body.conflictingRequest.message, `volume ${v} is not migrating; this API should only be called by Cinder`);

    const migrating = async (id: string, status: string) => assert.equal((await cinder.admin.post(`/v3/${p.id}/volumes/${id}/action`, { 'os-reset_status': { migration_status: status } })).status, 202);
    await migrating(v, 'migrating');
    const unknown = await put(cinderService, v, randomUUID());
    assert.equal(unknown.status, 400, unknown.text);
    const busy = await attached();
    const taken = await put(cinderService, v, busy);
    assert.equal(taken.status, 400, taken.text);
    assert.equal(taken.body.badRequest.message, 'Invalid volume: New volume must be detached in order to swap.');
    await migrating(spare, 'migrating');
    const notHere = await put(cinderService, spare, v);
    assert.equal(notHere.status, 404, notHere.text);
    for (const id of [v, spare]) await migrating(id, 'none');
    assert.equal((await vol.get(`/volumes/${spare}`)).body.volume.status, 'available', 'nothing was reserved');
    assert.deepEqual(await swapEvents(), []);
    for (const id of [v, busy]) assert.equal((await p.member.delete(path(id))).status, 202);
  });

  it('os-migrate_volume of an attached volume: Nova swaps the disk, the volume keeps its id, in-use on the other backend', async () => {
    const v = await attached();
    const before = await mapping(v);
    const src = await adminVolume(v);
    const host = otherHost(src);
    notifications.length = 0;
    assert.equal((await cinder.admin.post(`/v3/${p.id}/volumes/${v}/action`, { 'os-migrate_volume': { host } })).status, 202);
    await until('the migration to end', async () => ['success', 'error'].includes((await migstat(v)) ?? ''));
    const after = await adminVolume(v);
    assert.deepEqual([after.status, after['os-vol-host-attr:host'], after['os-vol-mig-status-attr:migstat']], ['in-use', host, 'success']);
    const tmpId = after['os-vol-mig-status-attr:name_id'];
    assert.ok(tmpId && tmpId !== v);
    const now = await mapping(v);
    assert.equal(now.volumeId, v, 'the mapping keeps the volume id (save_volume_id)');
    assert.equal(now.bdm_uuid, before.bdm_uuid);
    assert.notEqual(now.attachment_id, before.attachment_id);
    assert.deepEqual(after.attachments.map((a: any) => [a.attachment_id, a.server_id]), [[now.attachment_id, server]], "Cinder's attachment is Nova's new one");
    assert.equal(driver.volumeDevice(server, v)?.volumeId, v);
    assert.notDeepEqual(driver.volumeDevice(server, v), undefined);
    assert.deepEqual(await swapEvents(), ['compute_swap_volume:Success']);
    await until('the end notification', async () => notifications.some((n) => n[0] === 'instance.volume_swap.end'));
    assert.deepEqual(notifications, ['start', 'end'].map((phase) => [`instance.volume_swap.${phase}`, 'InstanceActionVolumeSwapPayload', v, tmpId]));

    // The moved volume detaches as any other.
    assert.equal((await p.member.delete(path(v))).status, 202);
    assert.equal((await vol.get(`/volumes/${v}`)).body.volume.status, 'available');
  });

  it('a swap that fails on the host leaves both sides as they were: mapping, attachment, backend; migration error', async () => {
    const v = await attached();
    const before = await mapping(v);
    const src = await adminVolume(v);
    const swap = driver.swapVolume.bind(driver);
    driver.swapVolume = async () => {
      throw new Error('mirror failed');
    };
    try {
      assert.equal((await cinder.admin.post(`/v3/${p.id}/volumes/${v}/action`, { 'os-migrate_volume': { host: otherHost(src) } })).status, 202);
      await until('the migration to end', async () => ['success', 'error'].includes((await migstat(v)) ?? ''));
    } finally {
      driver.swapVolume = swap;
    }
    const after = await adminVolume(v);
    assert.deepEqual([after.status, after['os-vol-host-attr:host'], after['os-vol-mig-status-attr:migstat'], after['os-vol-mig-status-attr:name_id']], ['in-use', src['os-vol-host-attr:host'], 'error', null]);
    assert.deepEqual(await mapping(v), before);
    assert.deepEqual(after.attachments.map((a: any) => a.attachment_id), [before.attachment_id]);
    const temps = await cinder.database.db.selectFrom('volumes').select(['deleted']).where('migration_status', '=', `target:${v}`).execute();
    assert.ok(temps.length === 1 && temps[0]!.deleted === 1, 'the target volume is deleted');
    assert.deepEqual((await swapEvents()).sort(), ['compute_swap_volume:Error', 'compute_swap_volume:Success']);
    assert.equal((await p.member.delete(path(v))).status, 202);
  });
});
