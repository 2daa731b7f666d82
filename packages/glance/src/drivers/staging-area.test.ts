import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { StoreLocationError, StoreSizeLimitError } from './image-store.ts';
import { STAGING_STORE_ID, StagingArea } from './staging-area.ts';
import { imageStoreContract } from './store-contract.ts';

const state = tempDir('onestack-staging-');
after(() => state.remove());

let areas = 0;
imageStoreContract('StagingArea', async () => {
  const area = new StagingArea(join(state.path, `contract-${++areas}`));
  const contents = async () => (await readdir(area.dir, { recursive: true }).catch(() => [] as string[])).filter((f) => f !== '.partial').sort();
  return { store: area, contents };
});

const bytes = (n: number, fill = 1) => Readable.from([Buffer.alloc(n, fill)], { objectMode: false });

describe('StagingArea', () => {
  const staging = new StagingArea(state.path);

  it('is the staging store under <state_dir>/glance/staging and accounts for what is on disk', async () => {
    assert.equal(staging.id, STAGING_STORE_ID);
    assert.equal(staging.dir, join(state.path, 'glance', 'staging'));
    assert.equal(await staging.usage(), 0, 'nothing staged before the directory exists');
    assert.deepEqual(await staging.list(), []);

    const a = await staging.write('image-a', bytes(1000), { maxBytes: 10_000 });
    await staging.write('image-b', bytes(2500), { maxBytes: 10_000 });
    assert.equal(a.location, `file://${join(staging.dir, 'image-a')}`);
    assert.equal(a.location, staging.locationOf('image-a'));
    assert.equal(a.size, 1000);

    assert.equal(await staging.sizeOf('image-a'), 1000);
    assert.equal(await staging.sizeOf('image-never-staged'), undefined);
    assert.equal(await staging.usage(), 3500);
    assert.equal(await staging.usage(['image-b', 'image-b', 'image-never-staged']), 2500, 'a project only pays for its own images, once');
    assert.deepEqual(
      (await staging.list()).map(({ imageId, size }) => ({ imageId, size })).sort((x, y) => x.imageId.localeCompare(y.imageId)),
      [
        { imageId: 'image-a', size: 1000 },
        { imageId: 'image-b', size: 2500 },
      ],
    );
    assert.ok((await staging.list()).every((s) => Math.abs(s.stagedAt - Date.now()) < 60_000));
  });

  it('serves the staged bytes by stream and by path', async () => {
    const { location } = await staging.write('image-c', Readable.from(['staged data'], { objectMode: false }), { maxBytes: 100 });
    assert.equal(await text((await staging.read(location)).stream as Readable), 'staged data');
    assert.equal(readFileSync(staging.localPath(location), 'utf8'), 'staged data');
  });

  it('enforces the allowance it is given and leaves nothing when it is exceeded', async () => {
    const before = await staging.usage();
    await assert.rejects(staging.write('image-big', bytes(5000), { maxBytes: 4999 }), StoreSizeLimitError);
    assert.equal(await staging.sizeOf('image-big'), undefined);
    assert.equal(await staging.usage(), before);
    assert.deepEqual(await readdir(join(staging.dir, '.partial')), []);
  });

  it('deletes idempotently and refuses ids that are paths', async () => {
    await staging.delete(staging.locationOf('image-a'));
    await staging.delete(staging.locationOf('image-a'));
    assert.equal(await staging.sizeOf('image-a'), undefined);
    assert.throws(() => staging.locationOf('../../etc/passwd'), StoreLocationError);
    await assert.rejects(staging.sizeOf('../x'), StoreLocationError);
  });
});
