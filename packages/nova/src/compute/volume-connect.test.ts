import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CinderClient, ConnectionInfo } from '../domain/service-clients.ts';
import { blockDeviceFromConnection, connectVolume, UnsupportedVolumeError } from './volume-connect.ts';

/** A fake Cinder (named so): records the attachments API calls and answers the given connection info. */
function fakeCinder(answer: ConnectionInfo | Error) {
  const calls: string[] = [];
  const cinder = {
    createAttachment: async (_t: string, p: string, v: string, i: string) => (calls.push(`create ${p} ${v} ${i}`), { id: 'att-1' }),
    updateAttachment: async (_t: string, _p: string, id: string, c: { host: string }) => {
      calls.push(`update ${id} ${c.host}`);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    deleteAttachment: async (_t: string, _p: string, id: string) => void calls.push(`delete ${id}`),
  } as unknown as CinderClient;
  return { cinder, calls };
}
const deps = (cinder: CinderClient) => ({ cinder, host: 'cmp1', serviceToken: async () => 'tok' });

describe('volume connection', () => {
  it('turns file and nbd connection info into block devices', () => {
    assert.deepEqual(blockDeviceFromConnection('v1', { driver_volume_type: 'file', data: { path: '/var/lib/cinder/v1', format: 'qcow2' } }), { volumeId: 'v1', serial: 'v1', path: '/var/lib/cinder/v1', format: 'qcow2' });
    assert.deepEqual(blockDeviceFromConnection('v2', { driver_volume_type: 'nbd', data: { host: '127.0.0.1', port: 10809, export_name: 'volume-v2', access_mode: 'ro' } }, { bootIndex: 0 }), {
      volumeId: 'v2',
      serial: 'v2',
      readOnly: true,
      bootIndex: 0,
      nbd: { host: '127.0.0.1', port: 10809, exportName: 'volume-v2' },
      format: 'raw',
    });
    assert.equal(blockDeviceFromConnection('v3', { driver_volume_type: 'file', path: '/flat', format: 'raw', attachment_id: 'a' } as never).path, '/flat', 'the fields may sit beside driver_volume_type');
    assert.throws(() => blockDeviceFromConnection('v', { driver_volume_type: 'iscsi', data: {} }), UnsupportedVolumeError);
    assert.throws(() => blockDeviceFromConnection('v', { driver_volume_type: 'file', data: { path: 'relative' } }), /absolute path/);
    assert.throws(() => blockDeviceFromConnection('v', { driver_volume_type: 'nbd', data: { host: 'h', port: 70000, export_name: 'e' } }), /host, port and export_name/);
  });

  it('creates the attachment when none was reserved and deletes it again when the connection fails', async () => {
    const ok = fakeCinder({ driver_volume_type: 'file', data: { path: '/v', format: 'raw' } });
    const c = await connectVolume(deps(ok.cinder), { projectId: 'p', instanceUuid: 'i', volumeId: 'v' });
    assert.equal(c.attachmentId, 'att-1');
    assert.equal(c.device.path, '/v');
    assert.deepEqual(ok.calls, ['create p v i', 'update att-1 cmp1']);

    const bad = fakeCinder({ driver_volume_type: 'rbd', data: {} });
    await assert.rejects(connectVolume(deps(bad.cinder), { projectId: 'p', instanceUuid: 'i', volumeId: 'v' }), UnsupportedVolumeError);
    assert.deepEqual(bad.calls, ['create p v i', 'update att-1 cmp1', 'delete att-1']);

    const reserved = fakeCinder(new Error('cinder down'));
    await assert.rejects(connectVolume(deps(reserved.cinder), { projectId: 'p', instanceUuid: 'i', volumeId: 'v', attachmentId: 'att-api' }), /cinder down/);
    assert.deepEqual(reserved.calls, ['update att-api cmp1'], 'an attachment the caller reserved is the caller’s to delete');
  });
});
