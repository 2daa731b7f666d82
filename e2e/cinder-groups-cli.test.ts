import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { PYTHON, sharedCloud, type Cloud } from './cloud.ts';
import { ADMIN, DEMO, waitFor } from './nova-guest.ts';

const execFileAsync = promisify(execFile);

/**
 * Generic volume groups through the unmodified CLI on a whole cloud (file
 * driver): a group type as admin (3.11), a group (3.13) with a member, its
 * group snapshot (3.14), the refusals of a group delete and
 * `volume group delete --force`. Debian's openstackclient has no way to create a
 * volume in a group, so that one step is openstacksdk posting at 3.13.
 */
describe('openstack CLI: volume groups and group snapshots', () => {
  let c: Cloud;
  const t0 = Date.now();
  const typeName = `e2e-grp-type-${process.pid}`;
  const made: { groups: string[]; snapshots: string[] } = { groups: [], snapshots: [] };
  const at = (v: string) => ['--os-volume-api-version', v];

  before(async () => {
    c = await sharedCloud('cinder-groups');
  });
  after(async () => {
    for (const id of made.snapshots) await c?.osRaw(DEMO, ...at('3.14'), 'volume', 'group', 'snapshot', 'delete', id).catch(() => undefined);
    for (const id of made.groups) await c?.osRaw(DEMO, ...at('3.13'), 'volume', 'group', 'delete', '--force', id).catch(() => undefined);
    await waitFor('groups gone', 60_000, async () => ((await c.os(DEMO, ...at('3.13'), 'volume', 'group', 'list')) as { ID: string }[]).some((g) => made.groups.includes(g.ID)) ? undefined : true).catch(() => undefined);
    await c?.osRaw(ADMIN, ...at('3.11'), 'volume', 'group', 'type', 'delete', typeName).catch(() => undefined);
    await c?.stop();
    console.log(`# e2e/cinder-groups-cli.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  // Debian's `volume group show` calls a method its cinderclient lacks (GroupManager.show): the list has the status.
  const groupStatus = (id: string, want: string) =>
    waitFor(`group ${id} ${want}`, 120_000, async () => {
      const s = ((await c.os(DEMO, ...at('3.13'), 'volume', 'group', 'list')) as { ID: string; Status: string }[]).find((g) => g.ID === id)?.Status;
      if (s === 'error') throw new Error(`group ${id} went to error`);
      return s === want ? true : undefined;
    });
  const memberVolume = async (groupId: string, name: string): Promise<{ status: number; body: any }> => {
    const script = [
      'import json, sys, openstack',
      `conn = openstack.connect(cloud=${JSON.stringify(DEMO)})`,
      "r = conn.block_storage.post('/volumes', json={'volume': {'size': 1, 'name': sys.argv[2], 'group_id': sys.argv[1], 'volume_type': '__DEFAULT__'}}, microversion='3.13')",
      "print(json.dumps({'status': r.status_code, 'body': r.json()}))",
    ].join('\n');
    return JSON.parse((await execFileAsync(PYTHON, ['-c', script, groupId, name], { env: c.env })).stdout);
  };

  test('group type, group with a member, group snapshot, delete refusals, delete --force', async () => {
    await assert.rejects(c.osRaw(DEMO, ...at('3.11'), 'volume', 'group', 'type', 'create', 'not-mine'), /Policy doesn't allow group:group_types:create/);
    const gt = await c.os(ADMIN, ...at('3.11'), 'volume', 'group', 'type', 'create', '--description', 'e2e', typeName);
    assert.equal(gt.Name, typeName);
    assert.equal(gt['Is Public'], true);

    const g = await c.os(DEMO, ...at('3.13'), 'volume', 'group', 'create', '--name', 'e2e-group', typeName, '__DEFAULT__');
    made.groups.push(g.ID);
    await groupStatus(g.ID, 'available');

    const res = await memberVolume(g.ID, 'e2e-member');
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const volumeId = res.body.volume.id;
    assert.equal(res.body.volume.group_id, g.ID);
    await waitFor(`volume ${volumeId} available`, 120_000, async () => ((await c.os(DEMO, 'volume', 'show', volumeId)).status === 'available' ? true : undefined));
    await assert.rejects(c.osRaw(DEMO, 'volume', 'delete', volumeId), /belong to a group/);

    const gs = await c.os(DEMO, ...at('3.14'), 'volume', 'group', 'snapshot', 'create', '--name', 'e2e-gs', g.ID);
    made.snapshots.push(gs.ID);
    // `volume group snapshot show` fails client-side as `volume group show` does: the list has the status.
    await waitFor(`group snapshot ${gs.ID} available`, 120_000, async () =>
      ((await c.os(DEMO, ...at('3.14'), 'volume', 'group', 'snapshot', 'list')) as { ID: string; Status: string }[]).some((s) => s.ID === gs.ID && s.Status === 'available') ? true : undefined,
    );

    await assert.rejects(c.osRaw(DEMO, ...at('3.13'), 'volume', 'group', 'delete', '--force', g.ID), /Group has existing snapshots/);
    await c.osRaw(DEMO, ...at('3.14'), 'volume', 'group', 'snapshot', 'delete', gs.ID);
    await waitFor(`group snapshot ${gs.ID} gone`, 120_000, async () => (((await c.os(DEMO, ...at('3.14'), 'volume', 'group', 'snapshot', 'list')) as { ID: string }[]).some((s) => s.ID === gs.ID) ? undefined : true));
    await assert.rejects(c.osRaw(DEMO, ...at('3.13'), 'volume', 'group', 'delete', g.ID), /still contains volumes\. The delete-volumes flag is required to delete it/);
    await c.osRaw(DEMO, ...at('3.13'), 'volume', 'group', 'delete', '--force', g.ID);
    await waitFor(`group ${g.ID} gone`, 120_000, async () => (((await c.os(DEMO, ...at('3.13'), 'volume', 'group', 'list')) as { ID: string }[]).some((x) => x.ID === g.ID) ? undefined : true));
    await assert.rejects(c.osRaw(DEMO, 'volume', 'show', volumeId), /No volume with a name or ID/);
  });
});
