/**
 * Suffix hashes of a partition, as upstream's get_hashes: what REPLICATE
 * answers so a replicator can tell which suffix dirs differ between nodes.
 *
 * A suffix's hash is md5 over, for each hash dir in name order, the newest
 * .meta, .ts and .data that decide the object's state ("<timestamp><ext>").
 * Results are cached in <partition>/hashes.json; writers append the suffix to
 * <partition>/hashes.invalid (invalidateSuffix), which the next call folds in.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanupHashDir } from './diskfile.ts';

export type SuffixHashes = Record<string, string | null>;

const SUFFIX_RE = /^[0-9a-f]{3}$/;

export async function hashSuffix(suffixDir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = (await readdir(suffixDir)).sort();
  } catch {
    return undefined;
  }
  const md5 = createHash('md5');
  let any = false;
  for (const hsh of names) {
    const state = await cleanupHashDir(join(suffixDir, hsh));
    for (const f of [state.meta, state.ts, state.data]) {
      if (!f) continue;
      md5.update(f.timestamp + f.ext);
      any = true;
    }
  }
  if (!any) {
    // An empty suffix dir is removed and reported as absent, like upstream.
    await rmdir(suffixDir).catch(() => undefined);
    try {
      await readdir(suffixDir);
    } catch {
      return undefined;
    }
  }
  return md5.digest('hex');
}

const locks = new Map<string, Promise<unknown>>();
function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return next;
}

async function readCached(partitionDir: string): Promise<SuffixHashes | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(partitionDir, 'hashes.json'), 'utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as SuffixHashes) : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the invalidations atomically: appends made after the rename land in a fresh file. */
async function takeInvalidations(partitionDir: string): Promise<string[]> {
  const file = join(partitionDir, 'hashes.invalid');
  const taken = `${file}.${process.pid}.consolidating`;
  try {
    await rename(file, taken);
  } catch {
    return [];
  }
  const text = await readFile(taken, 'utf8').catch(() => '');
  await unlink(taken).catch(() => undefined);
  return text.split('\n').filter((s) => SUFFIX_RE.test(s));
}

/**
 * The partition's suffix hashes, recomputing invalidated suffixes and those in
 * `recalculate`. Without a cache every suffix dir is hashed.
 */
export function getSuffixHashes(partitionDir: string, recalculate: readonly string[] = []): Promise<SuffixHashes> {
  return withLock(partitionDir, async () => {
    let hashes = await readCached(partitionDir);
    let changed = false;
    if (!hashes) {
      changed = true;
      hashes = {};
      const entries = await readdir(partitionDir).catch(() => [] as string[]);
      for (const s of entries) if (SUFFIX_RE.test(s)) hashes[s] = null;
    }
    for (const s of [...(await takeInvalidations(partitionDir)), ...recalculate.filter((s) => SUFFIX_RE.test(s))]) {
      hashes[s] = null;
      changed = true;
    }
    for (const [s, h] of Object.entries(hashes)) {
      if (h !== null) continue;
      const computed = await hashSuffix(join(partitionDir, s));
      if (computed === undefined) delete hashes[s];
      else hashes[s] = computed;
    }
    if (changed) {
      const file = join(partitionDir, 'hashes.json');
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        await writeFile(tmp, JSON.stringify(hashes));
        await rename(tmp, file);
      } catch (e) {
        // A partition dir that does not exist has no hashes to cache.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return hashes;
  });
}
