import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { FileStore } from './file-store.ts';
import { StoreLocationError } from './image-store.ts';
import { imageStoreContract } from './store-contract.ts';

const scratch = tempDir('onestack-file-store-');
after(() => scratch.remove());
let dirs = 0;
const freshDir = () => join(scratch.path, `store-${++dirs}`);

/** Every file under dir, temporary ones included. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}

imageStoreContract('FileStore', async () => {
  const dir = freshDir();
  return { store: new FileStore(dir), contents: () => filesUnder(dir) };
});

describe('FileStore', () => {
  const bytes = (s: string) => Readable.from([Buffer.from(s)], { objectMode: false });

  it('keeps each image in a private file named by its id, located as file://<path>', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    const { location } = await store.write('0f3e-image', bytes('hello'), { maxBytes: 100 });
    assert.equal(location, `file://${dir}/0f3e-image`);
    assert.equal(store.localPath(location), join(dir, '0f3e-image'));
    assert.equal(readFileSync(join(dir, '0f3e-image'), 'utf8'), 'hello');
    assert.equal(statSync(join(dir, '0f3e-image')).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(join(dir, '.partial')), [], 'no temporary file left');
  });

  it('does not follow a symlink planted in its directory', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await store.write('real', bytes('x'), { maxBytes: 100 });
    await symlink('/etc/passwd', join(dir, 'planted'));
    await assert.rejects(store.read(`file://${dir}/planted`), StoreLocationError);
  });

  it('refuses a location in a sibling directory with a common prefix', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await mkdir(`${dir}-evil`, { recursive: true });
    await writeFile(`${dir}-evil/img`, 'secret');
    await assert.rejects(store.read(`file://${dir}-evil/img`), StoreLocationError);
    await assert.rejects(store.read(`file://${dir}/./img`), StoreLocationError);
    await assert.rejects(store.read(`file://${dir}//img`), StoreLocationError);
  });

  it('removes temporary files left by a dead process, not ones being written', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await mkdir(join(dir, '.partial'), { recursive: true });
    await writeFile(join(dir, '.partial', 'stale'), 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(dir, '.partial', 'stale'), twoHoursAgo, twoHoursAgo);
    await writeFile(join(dir, '.partial', 'live'), 'x');
    assert.equal(await store.removePartials(), 1);
    assert.deepEqual(await readdir(join(dir, '.partial')), ['live']);
    assert.equal(await new FileStore(freshDir()).removePartials(), 0, 'a store never written to has none');
  });
});
