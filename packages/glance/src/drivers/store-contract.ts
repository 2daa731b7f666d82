/**
 * The behaviour every ImageStore shares (see the contract in image-store.ts), as
 * node:test tests. A store's test file calls imageStoreContract() with a setup
 * that returns a fresh, empty store and a way to list everything it holds.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  StoreLocationError,
  StoreNotFoundError,
  StoreRangeError,
  StoreSizeLimitError,
  type ImageStore,
} from './image-store.ts';

export interface StoreSubject {
  store: ImageStore;
  /** Everything the store holds, finished or not (objects, temporary files), to check that failures leave nothing. */
  contents(): Promise<string[]>;
  /** A store that keeps images in memory by design (a fake) skips the memory-bound check. */
  holdsImagesInMemory?: boolean;
  teardown?(): Promise<void>;
}

const MiB = 1024 * 1024;
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

/** Uneven chunk sizes, so that batching in the store cannot line up with them by chance. */
function chunked(bytes: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = [1, 7919, 65536, 100_003, 3][i % 5];
    parts.push(bytes.subarray(at, at + n));
    at += n;
  }
  return Readable.from(parts, { objectMode: false });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

/** A source that yields `chunk` forever, counting what was pulled from it. */
function endless(chunk: Buffer): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const stream = new Readable({
    read() {
      pulled += chunk.length;
      this.push(chunk);
    },
  });
  return { stream, pulled: () => pulled };
}

export function imageStoreContract(label: string, setup: () => Promise<StoreSubject>): void {
  describe(`ImageStore contract: ${label}`, () => {
    let subject: StoreSubject;
    let store: ImageStore;
    let n = 0;
    const newId = () => `img-${process.pid}-${++n}`;
    const write = (id: string, bytes: Buffer, maxBytes = NO_LIMIT) => store.write(id, chunked(bytes), { maxBytes });
    const readBack = async (location: string) => readAll((await store.read(location)).stream);

    before(async () => {
      subject = await setup();
      store = subject.store;
    });
    after(async () => {
      await subject?.teardown?.();
    });

    it('declares an id and its capabilities', () => {
      assert.match(store.id, /^[a-z0-9_]+$/);
      assert.equal(typeof store.capabilities.readRange, 'boolean');
      assert.equal(typeof store.capabilities.localPath, 'boolean');
      assert.equal(typeof store.localPath === 'function', store.capabilities.localPath);
    });

    it('writes an image and reads it back byte for byte, with md5 and sha512 of what arrived', async () => {
      const bytes = randomBytes(5 * MiB + 12345);
      const result = await write(newId(), bytes);
      assert.deepEqual(
        { size: result.size, checksum: result.checksum, osHashAlgo: result.osHashAlgo, osHashValue: result.osHashValue },
        { size: bytes.length, checksum: md5(bytes), osHashAlgo: 'sha512', osHashValue: sha512(bytes) },
      );
      const { stream, size } = await store.read(result.location);
      (stream as Readable).destroy();
      assert.equal(size, bytes.length);
      assert.ok((await readBack(result.location)).equals(bytes));
    });

    it('stores an empty image', async () => {
      const result = await write(newId(), Buffer.alloc(0));
      assert.equal(result.size, 0);
      assert.equal(result.checksum, 'd41d8cd98f00b204e9800998ecf8427e');
      assert.equal((await readBack(result.location)).length, 0);
    });

    it('accepts string chunks as their UTF-8 bytes', async () => {
      const result = await store.write(newId(), Readable.from(['héllo ', 'wörld'], { objectMode: true }), { maxBytes: NO_LIMIT });
      assert.equal(result.size, Buffer.byteLength('héllo wörld'));
      assert.equal(await text((await store.read(result.location)).stream as Readable), 'héllo wörld');
    });

    it('reads byte ranges (end inclusive) and reports the whole size', async () => {
      const bytes = randomBytes(300_000);
      const { location } = await write(newId(), bytes);
      for (const [start, end] of [
        [0, 0],
        [10, 20],
        [65_530, 200_000],
        [bytes.length - 1, bytes.length - 1],
        [0, bytes.length - 1],
      ]) {
        const { stream, size } = await store.read(location, { start, end });
        assert.equal(size, bytes.length);
        assert.ok((await readAll(stream)).equals(bytes.subarray(start, end + 1)), `range ${start}-${end}`);
      }
    });

    it('refuses ranges outside the image with a 416', async () => {
      const { location } = await write(newId(), randomBytes(1000));
      for (const range of [
        { start: 1000, end: 1000 },
        { start: 10, end: 5 },
        { start: -1, end: 5 },
        { start: 0, end: 1000 },
        { start: 0.5, end: 3 },
      ]) {
        await assert.rejects(store.read(location, range), (e: unknown) => e instanceof StoreRangeError && e.status === 416);
      }
    });

    it('deletes idempotently; a deleted image is not found', async () => {
      const { location } = await write(newId(), randomBytes(1000));
      await store.delete(location);
      await store.delete(location);
      await assert.rejects(store.read(location), StoreNotFoundError);
    });

    it('replaces an image written again under the same id', async () => {
      const id = newId();
      await write(id, randomBytes(5000));
      const second = randomBytes(3000);
      const { location } = await write(id, second);
      assert.ok((await readBack(location)).equals(second));
    });

    it('stops as soon as more than maxBytes arrive, with StoreSizeLimitError, and leaves nothing', async () => {
      const before = await subject.contents();
      const source = endless(Buffer.alloc(64 * 1024, 1));
      await assert.rejects(store.write(newId(), source.stream, { maxBytes: 3 * MiB }), (e: unknown) => {
        assert.ok(e instanceof StoreSizeLimitError);
        assert.equal(e.status, 413);
        return true;
      });
      // It stopped reading: what it pulled is the limit plus what the stream buffers ahead.
      await sleep(20);
      assert.ok(source.pulled() < 3 * MiB + 2 * MiB, `pulled ${source.pulled()} bytes`);
      assert.equal(source.stream.destroyed, false, 'the caller owns the source');
      assert.deepEqual(await subject.contents(), before);
    });

    it('accepts an image of exactly maxBytes', async () => {
      const bytes = randomBytes(MiB);
      const result = await write(newId(), bytes, MiB);
      assert.equal(result.size, MiB);
    });

    it('leaves nothing when the source fails mid-way', async () => {
      const before = await subject.contents();
      const failing = Readable.from(
        (async function* () {
          yield randomBytes(2 * MiB);
          yield randomBytes(MiB);
          throw new Error('connection reset by peer');
        })(),
        { objectMode: false },
      );
      await assert.rejects(store.write(newId(), failing, { maxBytes: NO_LIMIT }), /connection reset by peer/);
      assert.deepEqual(await subject.contents(), before);
    });

    it('stops on abort, even while the source is stalled, and leaves nothing', async () => {
      const before = await subject.contents();
      const stalled = new Readable({ read() {} });
      stalled.push(randomBytes(2 * MiB));
      const ac = new AbortController();
      const writing = store.write(newId(), stalled, { maxBytes: NO_LIMIT, signal: ac.signal });
      await sleep(50);
      ac.abort();
      await assert.rejects(writing, (e: unknown) => (e as Error).name === 'AbortError');
      assert.deepEqual(await subject.contents(), before);
      stalled.destroy();
    });

    it('keeps concurrent writes of different images apart', async () => {
      const images = Array.from({ length: 8 }, () => ({ id: newId(), bytes: randomBytes(MiB + Math.floor(Math.random() * MiB)) }));
      const results = await Promise.all(images.map(({ id, bytes }) => write(id, bytes)));
      for (const [i, result] of results.entries()) {
        assert.equal(result.checksum, md5(images[i].bytes));
        assert.ok((await readBack(result.location)).equals(images[i].bytes));
      }
    });

    it('leaves one whole image when the same id is written concurrently', async () => {
      const id = newId();
      const a = randomBytes(2 * MiB);
      const b = randomBytes(3 * MiB);
      const [ra, rb] = await Promise.all([write(id, a), write(id, b)]);
      assert.equal(ra.location, rb.location);
      const stored = await readBack(ra.location);
      assert.ok(stored.equals(a) || stored.equals(b), 'one of the two images, whole');
    });

    it('refuses image ids that are not plain names', async () => {
      for (const id of ['', '..', '../escape', 'a/b', '.hidden', 'x\0y']) {
        await assert.rejects(store.write(id, chunked(Buffer.from('x')), { maxBytes: NO_LIMIT }), StoreLocationError, JSON.stringify(id));
      }
    });

    it('refuses locations it did not make (other stores, other paths, traversal)', async () => {
      const { location } = await write(newId(), randomBytes(10));
      for (const foreign of [
        `${location}/../../../../../../etc/passwd`,
        `${location}/x`,
        'file:///etc/passwd',
        'swift+https://example.com/v1/AUTH_x/glance/abc',
        location.replace(/[^/]+$/, '.partial'),
        '',
      ]) {
        await assert.rejects(store.read(foreign), StoreLocationError, foreign);
        await assert.rejects(store.delete(foreign), StoreLocationError, foreign);
        if (store.localPath) assert.throws(() => store.localPath!(foreign), StoreLocationError, foreign);
      }
    });

    it('streams: memory stays flat while a large image goes through', async (t) => {
      if (subject.holdsImagesInMemory) {
        t.skip('this store keeps images in memory by design');
        return;
      }
      const total = 256 * MiB;
      let produced = 0;
      let peak = 0;
      const baseline = process.memoryUsage().arrayBuffers;
      const source = new Readable({
        read() {
          if (produced >= total) return void this.push(null);
          if ((produced / (64 * 1024)) % 64 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
          produced += 64 * 1024;
          // A fresh buffer each time: a store that kept them would grow by the image's size.
          this.push(Buffer.alloc(64 * 1024, produced & 0xff));
        },
      });
      const result = await store.write(newId(), source, { maxBytes: NO_LIMIT });
      assert.equal(result.size, total);
      assert.ok(peak < 128 * MiB, `external memory grew by ${Math.round(peak / MiB)} MiB for a ${total / MiB} MiB image`);
      await store.delete(result.location);
    });
  });
}
