/**
 * A Fernet key repository laid out as `keystone-manage fernet_setup` /
 * `fernet_rotate` lay it out, so that one can be shared with (or migrated from) a
 * real Keystone: files named by integers, `0` the staged key, the highest the
 * primary, the rest secondary keys still accepted for decryption.
 */
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ApiError } from '@onestack/core/errors.ts';
import type { Clock } from '@onestack/core/clock.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { FernetKey, generateFernetKey } from './fernet.ts';

const STAGED = '0';
const TMP = '0.tmp';
const RECHECK_MS = 1000;

interface KeyFile {
  path: string;
  size: number;
  mtimeMs: number;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Numeric key file names mapped to their size and mtime; empty files are skipped as
 * upstream does, and so are files that vanish mid-listing (another process rotating).
 */
function keyFiles(dir: string): Map<number, KeyFile> {
  const files = new Map<number, KeyFile>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isMissing(err)) return files;
    throw err;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (st.isFile() && st.size > 0) files.set(Number(name), { path, size: st.size, mtimeMs: st.mtimeMs });
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
  return files;
}

/** Writes the next staged key as 0.tmp; it only becomes key 0 by rename, so a crash never leaves a torn key. */
function writeTmpKey(dir: string): void {
  const path = join(dir, TMP);
  const fd = openSync(path, 'w', 0o600);
  try {
    writeSync(fd, generateFernetKey());
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The mode given to open() is ignored when a stale 0.tmp already existed.
  chmodSync(path, 0o600);
}

/** `keystone-manage fernet_setup`: a no-op when the repository already has a staged key. */
export function setup(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  if (existsSync(join(dir, STAGED))) return;
  writeTmpKey(dir);
  renameSync(join(dir, TMP), join(dir, STAGED));
  rotate(dir);
}

/**
 * `keystone-manage fernet_rotate`: the staged key becomes the primary under the next
 * number, a fresh staged key is written, and the oldest keys beyond
 * `maxActiveKeys` (the staged key counts) are removed.
 */
export function rotate(dir: string, maxActiveKeys = 3): void {
  if (!Number.isInteger(maxActiveKeys) || maxActiveKeys < 1) throw new RangeError('max_active_keys must be at least 1');
  const files = keyFiles(dir);
  if (!files.has(0)) throw new Error(`${dir} has no staged key 0; run fernet_setup first`);
  writeTmpKey(dir);
  const primary = Math.max(...files.keys()) + 1;
  renameSync(join(dir, STAGED), join(dir, String(primary)));
  renameSync(join(dir, TMP), join(dir, STAGED));
  const active = [...files.keys()].filter((n) => n !== 0);
  active.push(primary);
  active.sort((a, b) => b - a);
  while (active.length > maxActiveKeys - 1) unlinkSync(join(dir, String(active.pop())));
}

interface Cached {
  signature: string;
  checkedAt: number;
  keys: readonly FernetKey[];
}

const cache = new Map<string, Cached>();

function readKeys(files: Map<number, KeyFile>): FernetKey[] {
  const keys: FernetKey[] = [];
  for (const n of [...files.keys()].sort((a, b) => b - a)) {
    const { path } = files.get(n)!;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (isMissing(err)) continue;
      throw err;
    }
    try {
      keys.push(FernetKey.fromString(text));
    } catch (err) {
      throw new ApiError('internal', `Invalid Fernet key in ${path}`, { cause: err });
    }
  }
  return keys;
}

/**
 * The repository's keys, primary first then the others from newest to oldest (the
 * staged key last). The directory is looked at again at most once a second, so a
 * rotation by another process is picked up without re-reading keys on every token.
 * The array is the same object until the keys change.
 */
export function loadKeys(dir: string, clock: Clock = systemClock): readonly FernetKey[] {
  const now = clock.now();
  const hit = cache.get(dir);
  if (hit && now - hit.checkedAt < RECHECK_MS) return hit.keys;
  const files = keyFiles(dir);
  // Names, sizes and mtimes: changes on a rotation and on an in-place copy from another node alike.
  const signature = [...files].map(([n, f]) => `${n}:${f.size}:${f.mtimeMs}`).join(',');
  if (hit && hit.signature === signature) {
    hit.checkedAt = now;
    return hit.keys;
  }
  const keys = readKeys(files);
  if (keys.length === 0) {
    cache.delete(dir);
    throw new ApiError('internal', 'No encryption keys found; run keystone-manage fernet_setup to bootstrap one.');
  }
  cache.set(dir, { signature, checkedAt: now, keys });
  return keys;
}
