import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { ImageUnacceptableError } from './driver.ts';
import { ImageCache } from './image-cache.ts';

const scratch = tempDir('onestack-image-cache-');
after(() => scratch.remove());
const logger = { info: () => {}, warn: () => {} };
const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });
const info = (p: string) => JSON.parse(qemuImg('info', '--output=json', p));
let n = 0;
const cache = () => new ImageCache({ dir: join(scratch.path, `cache-${++n}`), logger });
const copyFrom = (src: string) => async (dest: string) => copyFileSync(src, dest);

describe('ImageCache', () => {
  const raw = join(scratch.path, 'src.raw');
  writeFileSync(raw, Buffer.alloc(2 * 1024 * 1024, 7));
  const good = join(scratch.path, 'good.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', good, '64M');

  it('converts a raw image to a standalone qcow2 and fetches it once for concurrent callers', async () => {
    const c = cache();
    let fetches = 0;
    const fetch = async (dest: string) => {
      fetches++;
      copyFileSync(raw, dest);
    };
    const [a, b] = await Promise.all([c.ensure('img-raw', 'raw', fetch), c.ensure('img-raw', 'raw', fetch)]);
    assert.equal(a, b);
    assert.equal(fetches, 1);
    const i = info(a);
    assert.equal(i.format, 'qcow2');
    assert.equal(i['backing-filename'], undefined);
    assert.equal(await c.ensure('img-raw', 'raw', fetch), a);
    assert.equal(fetches, 1, 'a cached image is not fetched again');
    assert.deepEqual(readdirSync(join(c.dir, '.partial')), []);
    assert.deepEqual(await c.list(), ['img-raw']);

    const overlay = join(scratch.path, 'overlay.qcow2');
    await c.createOverlay(a, overlay, 1);
    const o = info(overlay);
    assert.equal(o['backing-filename'], a);
    assert.equal(o['backing-filename-format'], 'qcow2');
    assert.equal(o['virtual-size'], 1024 ** 3);
  });

  it('refuses a qcow2 naming a backing file or an external data file, and content of another format than declared', async () => {
    const c = cache();
    const backed = join(scratch.path, 'backed.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', backed);
    const dataFile = join(scratch.path, 'datafile.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(scratch.path, 'datafile.bin')}`, dataFile, '1M');
    await assert.rejects(c.ensure('backed', 'qcow2', copyFrom(backed)), (e) => e instanceof ImageUnacceptableError && /backing file/i.test(e.message));
    // Declared raw, a qcow2 with a backing file inside: still refused, not served as raw bytes.
    await assert.rejects(c.ensure('backed-as-raw', 'raw', copyFrom(backed)), ImageUnacceptableError);
    await assert.rejects(c.ensure('datafile', 'qcow2', copyFrom(dataFile)), /data_file set/);
    await assert.rejects(c.ensure('raw-as-qcow2', 'qcow2', copyFrom(raw)), /declared qcow2 but the content is raw/);
    await assert.rejects(c.ensure('../escape', 'raw', copyFrom(raw)), /invalid image id/);
    await assert.rejects(c.ensure('failing', 'qcow2', async () => { throw new Error('glance said 503'); }), /503/);
    assert.deepEqual(await c.list(), []);
    assert.deepEqual(readdirSync(join(c.dir, '.partial')), []);
    assert.equal(await c.ensure('good', 'qcow2', copyFrom(good)), join(c.dir, 'good'));
  });
});
