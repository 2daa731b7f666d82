import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Md5Thread } from './md5-thread.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Feeds a body in chunks of the given size, waiting when the thread asks for it. */
async function hashOn(thread: Md5Thread, body: Buffer, chunk: number): Promise<string> {
  const id = thread.open();
  for (let at = 0; at < body.length; at += chunk) await thread.update(id, body.subarray(at, at + chunk));
  return thread.digest(id);
}

describe('Md5Thread', () => {
  it('gives the digest of each of several interleaved jobs, across message boundaries', async () => {
    const thread = new Md5Thread();
    // Odd chunk sizes so that chunks straddle the thread's message buffers.
    const bodies = [randomBytes(3 * 1024 * 1024 + 17), randomBytes(1 << 20), randomBytes(5), Buffer.alloc(0)];
    const digests = await Promise.all(bodies.map((b, i) => hashOn(thread, b, 65_521 + i * 1000)));
    assert.deepEqual(digests, bodies.map(md5));
  });

  it('hashes only the bytes of a reused buffer that a job filled', async () => {
    const thread = new Md5Thread();
    // The first job leaves full buffers of other bytes behind for reuse; the next jobs fill only part of one.
    const big = Buffer.alloc(4 * 1024 * 1024 + 3, 0xaa);
    assert.equal(await hashOn(thread, big, 1 << 16), md5(big));
    for (const size of [1, 4096, 300_000]) {
      const small = randomBytes(size);
      assert.equal(await hashOn(thread, small, 1000), md5(small), `${size} bytes`);
    }
  });

  it('fails the jobs in flight when the thread dies', async () => {
    const thread = new Md5Thread();
    const id = thread.open();
    await thread.update(id, randomBytes(1 << 20));
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await new Promise(setImmediate);
    assert.equal(thread.dead, true);
    assert.throws(() => thread.update(id, randomBytes(10)), /md5 worker exited/);
  });
});
