/**
 * What container and account brokers share (upstream swift/common/db.py):
 * the DB file layout, an open-handle cache, chexor hashes, metadata with
 * per-key timestamps, sync points, and the listing walk.
 *
 * Layout: <device>/<containers|accounts>/<part>/<suffix>/<hash>/<hash>.db with
 * <hash> = hash_path(account[, container]). SQLite in WAL mode with
 * synchronous=NORMAL: a commit survives a process crash, and the last commits
 * before a power loss may be lost, like upstream's unsynced .pending files;
 * object data itself is always fsynced by the object server.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Sqlite = Database.Database;

export function dbPath(devicePath: string, kind: 'containers' | 'accounts', partition: string, hash: string): string {
  return join(devicePath, kind, partition, hash.slice(-3), hash, `${hash}.db`);
}

/** upstream chexor: XOR of md5("<name>-<timestamp>") over all rows, a cheap whole-table fingerprint for replication. */
export function chexor(old: string, name: string, timestamp: string): string {
  const n = createHash('md5').update(`${name}-${timestamp}`).digest();
  const o = Buffer.from(old.padStart(32, '0'), 'hex');
  for (let i = 0; i < 16; i++) n[i] ^= o[i];
  return n.toString('hex');
}

const cache = new Map<string, Sqlite>();
const CACHE_LIMIT = 512;

function configure(db: Sqlite): Sqlite {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.function('chexor', { deterministic: true }, (old: unknown, name: unknown, ts: unknown) => chexor(String(old ?? ''), String(name), String(ts)));
  return cachePreparedStatements(db);
}

/**
 * Brokers call db.prepare(sql) per operation; compiling the SQL each time was
 * a visible share of a container row update. Statements are reused per handle
 * (nothing here iterates a statement or switches it to raw/pluck mode, which
 * would make sharing one unsafe); listing SQL varies, so the cache is bounded.
 */
function cachePreparedStatements(db: Sqlite): Sqlite {
  const compile = db.prepare.bind(db);
  const stmts = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let st = stmts.get(sql);
    if (!st) {
      st = compile(sql);
      if (stmts.size < 256) stmts.set(sql, st);
    }
    return st;
  }) as Sqlite['prepare'];
  return db;
}

/** An open handle for an existing DB file, or undefined when there is none. */
export function openExisting(path: string): Sqlite | undefined {
  const hit = cache.get(path);
  if (hit) {
    // LRU: move to the end.
    cache.delete(path);
    cache.set(path, hit);
    if (existsSync(path)) return hit;
    hit.close();
    cache.delete(path);
    return undefined;
  }
  if (!existsSync(path)) return undefined;
  return remember(path, configure(new Database(path)));
}

/** Creates the DB with `schema` (run in one transaction) unless it exists. */
export function openOrCreate(path: string, init: (db: Sqlite) => void): { db: Sqlite; created: boolean } {
  const existing = openExisting(path);
  if (existing) return { db: existing, created: false };
  mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true });
  const db = configure(new Database(path));
  db.transaction(() => init(db)).immediate();
  return { db: remember(path, db), created: true };
}

function remember(path: string, db: Sqlite): Sqlite {
  cache.set(path, db);
  while (cache.size > CACHE_LIMIT) {
    const [oldest, h] = cache.entries().next().value as [string, Sqlite];
    cache.delete(oldest);
    h.close();
  }
  return db;
}

export function closeAllDbs(prefix = ''): void {
  for (const [p, db] of cache) {
    if (!p.startsWith(prefix)) continue;
    db.close();
    cache.delete(p);
  }
}

/** Metadata as upstream stores it: {key: [value, timestamp]}; an empty value is a deletion that still carries its timestamp. */
export type DbMetadata = Record<string, [string, string]>;

export function mergeMetadata(current: DbMetadata, updates: DbMetadata): { merged: DbMetadata; changed: boolean } {
  const merged = { ...current };
  let changed = false;
  for (const [k, [v, ts]] of Object.entries(updates)) {
    const cur = merged[k];
    if (!cur || cur[1] < ts) {
      merged[k] = [v, ts];
      changed = true;
    }
  }
  return { merged, changed };
}

export function visibleMetadata(md: DbMetadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, [v]] of Object.entries(md)) if (v !== '') out[k] = v;
  return out;
}

export const SYNC_TABLES_SQL = `
  CREATE TABLE incoming_sync (remote_id TEXT PRIMARY KEY, sync_point INTEGER, updated_at TEXT DEFAULT '0');
  CREATE TABLE outgoing_sync (remote_id TEXT PRIMARY KEY, sync_point INTEGER, updated_at TEXT DEFAULT '0');
`;

export interface ListingQuery {
  limit: number;
  marker?: string;
  endMarker?: string;
  prefix?: string;
  delimiter?: string;
  path?: string;
  reverse?: boolean;
  /** Names in the reserved namespace (leading NUL) are listed only for internal requests (X-Backend-Allow-Reserved-Names). */
  allowReserved?: boolean;
}

export type ListingEntry<R> = { subdir: string } | { row: R };

/**
 * upstream's list_objects_iter / list_containers_iter: rows in name order
 * after marker and before end_marker, under prefix; with a delimiter, names
 * with the delimiter after the prefix fold into one "subdir" entry each; with
 * path, only the direct children of path. `fetch` runs one SQL page.
 */
export function walkListing<R extends { name: string }>(
  q: ListingQuery,
  fetch: (p: { marker?: string; endMarker?: string; prefix?: string; reverse: boolean; limit: number; allowReserved?: boolean }) => R[],
): ListingEntry<R>[] {
  let { prefix, delimiter, marker, endMarker } = q;
  const { path } = q;
  const reverse = !!q.reverse;
  if (path !== undefined) {
    prefix = path ? `${path.replace(/\/+$/, '')}/` : '';
    delimiter = '/';
  }
  prefix ??= '';
  const origMarker = marker;
  const out: ListingEntry<R>[] = [];
  while (out.length < q.limit) {
    const want = q.limit - out.length;
    const rows = fetch({ marker, endMarker, prefix: prefix || undefined, reverse, limit: want, allowReserved: q.allowReserved });
    let restarted = false;
    for (const row of rows) {
      marker = row.name;
      if (!delimiter) {
        out.push({ row });
        continue;
      }
      if (path !== undefined && row.name === path) continue;
      const end = row.name.indexOf(delimiter, prefix.length);
      if (end < 0) {
        out.push({ row });
        continue;
      }
      const dir = row.name.slice(0, end + delimiter.length);
      if (path === undefined && dir !== origMarker) out.push({ subdir: dir });
      // Skip everything under this subdir, then query again from there.
      marker = reverse ? dir : row.name.slice(0, end) + String.fromCharCode(delimiter.charCodeAt(0) + 1);
      restarted = true;
      break;
    }
    if (!restarted && rows.length < want) break;
  }
  return out.slice(0, q.limit);
}

/** SQL WHERE pieces for one listing page; names compare as UTF-8 bytes in SQLite. */
export function listingWhere(p: { marker?: string; endMarker?: string; prefix?: string; reverse: boolean; allowReserved?: boolean }): { sql: string; args: string[] } {
  const parts: string[] = [];
  const args: string[] = [];
  if (!p.allowReserved) (parts.push('name >= ?'), args.push('\x01'));
  if (p.reverse) {
    if (p.marker) (parts.push('name < ?'), args.push(p.marker));
    if (p.endMarker) (parts.push('name > ?'), args.push(p.endMarker));
  } else {
    if (p.marker) (parts.push('name > ?'), args.push(p.marker));
    if (p.endMarker) (parts.push('name < ?'), args.push(p.endMarker));
  }
  if (p.prefix) {
    // Every name starting with prefix sorts below prefix + U+10FFFF in UTF-8 byte order.
    parts.push('name >= ? AND name < ?');
    args.push(p.prefix, `${p.prefix}\u{10FFFF}`);
  }
  return { sql: parts.length ? parts.join(' AND ') : '1', args };
}
