import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { PYTHON, sharedCloud, type Cloud } from './cloud.ts';
import { DEMO, waitFor } from './nova-guest.ts';

const execFileAsync = promisify(execFile);

/**
 * The unmodified CLIs as a project member on a whole cloud (Cinder's file
 * driver, backups into the real Swift): `openstack volume backup create` with
 * properties (3.43), then a volume from the backup (3.47) that holds what the
 * backed-up volume held. Debian's openstackclient has no `volume create
 * --backup`, and python-cinderclient's version discovery asks `/` at its own
 * maximum (3.70), which this Cinder answers 406; so that step is the unmodified
 * openstacksdk's block-storage proxy, posting at 3.47.
 */
describe('openstack CLI: volume backups and volumes from backups', () => {
  let c: Cloud;
  const made: { volumes: string[]; backups: string[] } = { volumes: [], backups: [] };
  const t0 = Date.now();

  before(async () => {
    c = await sharedCloud('cinder-backup');
  });
  after(async () => {
    for (const id of made.backups) await c.osRaw(DEMO, 'volume', 'backup', 'delete', id).catch(() => undefined);
    for (const id of made.volumes) await c.osRaw(DEMO, 'volume', 'delete', id).catch(() => undefined);
    await c?.stop();
    console.log(`# e2e/cinder-backup-cli.test.ts: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  /** The file driver's file of a volume, wherever under the cloud's state dir its backend keeps it. */
  const fileOf = (id: string): string => {
    const walk = (dir: string): string | undefined => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) {
          const found = walk(join(dir, e.name));
          if (found) return found;
        } else if (e.name.startsWith(`volume-${id}.`)) return join(dir, e.name);
      }
      return undefined;
    };
    const found = walk(join(c.stateDir, 'cinder'));
    assert.ok(found, `no file of volume ${id}`);
    return found;
  };
  /** A volume from `backupId` through openstacksdk as the demo member: the status code and the body. */
  const volumeFromBackup = async (backupId: string, name: string): Promise<{ status: number; body: any }> => {
    const script = [
      'import json, sys, openstack',
      `conn = openstack.connect(cloud=${JSON.stringify(DEMO)})`,
      "r = conn.block_storage.post('/volumes', json={'volume': {'backup_id': sys.argv[1], 'name': sys.argv[2]}}, microversion='3.47')",
      "print(json.dumps({'status': r.status_code, 'body': r.json()}))",
    ].join('\n');
    return JSON.parse((await execFileAsync(PYTHON, ['-c', script, backupId, name], { env: c.env })).stdout);
  };
  const status = (kind: 'volume' | 'backup', id: string, want: string) =>
    waitFor(`${kind} ${id} ${want}`, 180_000, async () => {
      const s = (await c.os(DEMO, 'volume', ...(kind === 'backup' ? ['backup'] : []), 'show', id)).status;
      if (s === 'error') throw new Error(`${kind} ${id} went to error`);
      return s === want ? true : undefined;
    });

  test('backup create --property (3.43); a volume from the backup (3.47) holds the data', async () => {
    const v = await c.os(DEMO, 'volume', 'create', '--size', '1', 'bk-source');
    made.volumes.push(v.id);
    await status('volume', v.id, 'available');
    // Data written into the volume's file while nothing uses it: a pattern at 1 MiB.
    const src = fileOf(v.id);
    await execFileAsync('qemu-io', ['-f', src.endsWith('.raw') ? 'raw' : 'qcow2', '-c', 'write -P 0x5a 1M 256k', src]);

    const b = await c.os(DEMO, '--os-volume-api-version', '3.43', 'volume', 'backup', 'create', '--name', 'bk', '--property', 'tier=gold', v.id);
    made.backups.unshift(b.id);
    await status('backup', b.id, 'available');
    const shown = await c.os(DEMO, '--os-volume-api-version', '3.43', 'volume', 'backup', 'show', b.id);
    assert.match(JSON.stringify(shown.metadata ?? shown.properties), /tier.*gold/);

    const res = await volumeFromBackup(b.id, 'bk-restored');
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const restored = res.body.volume;
    made.volumes.push(restored.id);
    assert.equal(restored.size, 1);
    assert.equal(restored.status, 'creating');
    await status('volume', restored.id, 'available');
    const dst = fileOf(restored.id);
    await execFileAsync('qemu-img', ['compare', '-q', src, dst]);
    assert.equal((await c.os(DEMO, 'volume', 'backup', 'show', b.id)).status, 'available');
  });
});
