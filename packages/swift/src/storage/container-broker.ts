/**
 * One container's SQLite database (upstream ContainerBroker): object rows with
 * deleted flags, stats kept by triggers, metadata with timestamps, and the
 * rows-since-a-point sync used by the DB replicator.
 */
import { randomUUID } from 'node:crypto';
import { openExisting, openOrCreate, SYNC_TABLES_SQL, walkListing, listingWhere, mergeMetadata, type DbMetadata, type ListingEntry, type ListingQuery, type Sqlite } from './db-file.ts';

export interface ObjectRow {
  name: string;
  created_at: string;
  size: number;
  content_type: string;
  etag: string;
  deleted: number;
  storage_policy_index: number;
  ctype_timestamp: string | null;
  meta_timestamp: string | null;
}

export interface ContainerInfo {
  account: string;
  container: string;
  created_at: string;
  put_timestamp: string;
  delete_timestamp: string;
  status_changed_at: string;
  object_count: number;
  bytes_used: number;
  reported_put_timestamp: string;
  reported_delete_timestamp: string;
  reported_object_count: number;
  reported_bytes_used: number;
  hash: string;
  id: string;
  metadata: string;
  storage_policy_index: number;
  /** JSON [{host, device, partition}] of the account replicas, as last given by X-Account-* headers (onestack addition). */
  account_targets: string;
}

const SCHEMA = `
  CREATE TABLE object (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    etag TEXT NOT NULL DEFAULT '',
    deleted INTEGER NOT NULL DEFAULT 0,
    storage_policy_index INTEGER NOT NULL DEFAULT 0,
    ctype_timestamp TEXT,
    meta_timestamp TEXT
  );
  CREATE UNIQUE INDEX ix_object_name ON object (name);
  CREATE INDEX ix_object_deleted_name ON object (deleted, name);
  CREATE TABLE container_stat (
    account TEXT, container TEXT, created_at TEXT, put_timestamp TEXT DEFAULT '0', delete_timestamp TEXT DEFAULT '0',
    status_changed_at TEXT DEFAULT '0', object_count INTEGER DEFAULT 0, bytes_used INTEGER DEFAULT 0,
    reported_put_timestamp TEXT DEFAULT '0', reported_delete_timestamp TEXT DEFAULT '0',
    reported_object_count INTEGER DEFAULT 0, reported_bytes_used INTEGER DEFAULT 0,
    hash TEXT DEFAULT '00000000000000000000000000000000', id TEXT, metadata TEXT DEFAULT '{}',
    storage_policy_index INTEGER DEFAULT 0, account_targets TEXT DEFAULT '[]'
  );
  CREATE TRIGGER object_insert AFTER INSERT ON object BEGIN
    UPDATE container_stat SET object_count = object_count + (1 - new.deleted), bytes_used = bytes_used + new.size,
      hash = chexor(hash, new.name, new.created_at);
  END;
  CREATE TRIGGER object_delete AFTER DELETE ON object BEGIN
    UPDATE container_stat SET object_count = object_count - (1 - old.deleted), bytes_used = bytes_used - old.size,
      hash = chexor(hash, old.name, old.created_at);
  END;
  ${SYNC_TABLES_SQL}
`;

const ROW_COLS = 'name, created_at, size, content_type, etag, deleted, storage_policy_index, ctype_timestamp, meta_timestamp';

export class ContainerBroker {
  private constructor(
    readonly db: Sqlite,
    readonly path: string,
  ) {}

  static open(path: string): ContainerBroker | undefined {
    const db = openExisting(path);
    return db ? new ContainerBroker(db, path) : undefined;
  }

  static openOrCreate(path: string, init: { account: string; container: string; putTimestamp: string; policy: number; now: string }): { broker: ContainerBroker; created: boolean } {
    const { db, created } = openOrCreate(path, (d) => {
      d.exec(SCHEMA);
      d.prepare(
        `INSERT INTO container_stat (account, container, created_at, put_timestamp, status_changed_at, id, storage_policy_index) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(init.account, init.container, init.now, init.putTimestamp, init.putTimestamp, randomUUID(), init.policy);
    });
    return { broker: new ContainerBroker(db, path), created };
  }

  info(): ContainerInfo {
    return this.db.prepare('SELECT * FROM container_stat').get() as ContainerInfo;
  }

  /** upstream _is_deleted_info: no objects and a delete newer than the last put. */
  static isDeletedInfo(i: Pick<ContainerInfo, 'object_count' | 'put_timestamp' | 'delete_timestamp'>): boolean {
    return !i.object_count && i.delete_timestamp > i.put_timestamp;
  }

  isDeleted(): boolean {
    return ContainerBroker.isDeletedInfo(this.info());
  }

  empty(): boolean {
    return !this.db.prepare('SELECT 1 FROM object WHERE deleted = 0 LIMIT 1').get();
  }

  metadata(): DbMetadata {
    return JSON.parse(this.info().metadata || '{}') as DbMetadata;
  }

  updateMetadata(updates: DbMetadata): void {
    if (!Object.keys(updates).length) return;
    this.db
      .transaction(() => {
        const { merged, changed } = mergeMetadata(this.metadata(), updates);
        if (changed) this.db.prepare('UPDATE container_stat SET metadata = ?').run(JSON.stringify(merged));
      })
      .immediate();
  }

  updatePutTimestamp(ts: string): void {
    this.db.prepare('UPDATE container_stat SET put_timestamp = ?, status_changed_at = ? WHERE put_timestamp < ?').run(ts, ts, ts);
  }

  setStoragePolicy(policy: number): void {
    this.db.prepare('UPDATE container_stat SET storage_policy_index = ?').run(policy);
  }

  setAccountTargets(json: string): void {
    this.db.prepare('UPDATE container_stat SET account_targets = ? WHERE account_targets != ?').run(json, json);
  }

  deleteDb(ts: string): void {
    this.db.prepare('UPDATE container_stat SET delete_timestamp = ?, status_changed_at = ? WHERE delete_timestamp < ?').run(ts, ts, ts);
  }

  reported(i: Pick<ContainerInfo, 'put_timestamp' | 'delete_timestamp' | 'object_count' | 'bytes_used'>): void {
    this.db
      .prepare('UPDATE container_stat SET reported_put_timestamp = ?, reported_delete_timestamp = ?, reported_object_count = ?, reported_bytes_used = ?')
      .run(i.put_timestamp, i.delete_timestamp, i.object_count, i.bytes_used);
  }

  /** Upstream merge_items for one row: the newer data timestamp wins; content-type and metadata timestamps merge separately. */
  private mergeRow(r: ObjectRow): boolean {
    const cur = this.db.prepare(`SELECT ROWID AS rid, ${ROW_COLS} FROM object WHERE name = ?`).get(r.name) as (ObjectRow & { rid: number }) | undefined;
    let next: ObjectRow = r;
    if (cur) {
      const rct = r.ctype_timestamp ?? r.created_at;
      const cct = cur.ctype_timestamp ?? cur.created_at;
      if (r.created_at > cur.created_at) next = r;
      // Same data, newer content-type (a fast POST): only the content type and meta timestamp move.
      else if (r.created_at === cur.created_at && !cur.deleted && !r.deleted && rct > cct) next = { ...cur, content_type: r.content_type, ctype_timestamp: rct, meta_timestamp: r.meta_timestamp ?? cur.meta_timestamp };
      else return false;
      this.db.prepare('DELETE FROM object WHERE ROWID = ?').run(cur.rid);
    }
    // Re-inserting moves the row past every replication sync point.
    this.db
      .prepare(`INSERT INTO object (${ROW_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(next.name, next.created_at, next.deleted ? 0 : next.size, next.content_type, next.etag, next.deleted ? 1 : 0, next.storage_policy_index, next.ctype_timestamp, next.meta_timestamp);
    return true;
  }

  mergeItems(rows: ObjectRow[], source?: { id: string; maxRowId: number }): void {
    this.db
      .transaction(() => {
        for (const r of rows) this.mergeRow(r);
        if (source) this.db.prepare('INSERT INTO incoming_sync (remote_id, sync_point) VALUES (?, ?) ON CONFLICT (remote_id) DO UPDATE SET sync_point = max(sync_point, excluded.sync_point)').run(source.id, source.maxRowId);
      })
      .immediate();
  }

  putObject(r: Omit<ObjectRow, 'deleted'>): void {
    this.mergeItems([{ ...r, deleted: 0 }]);
  }

  deleteObject(name: string, ts: string, policy: number): void {
    this.mergeItems([{ name, created_at: ts, size: 0, content_type: '', etag: '', deleted: 1, storage_policy_index: policy, ctype_timestamp: null, meta_timestamp: null }]);
  }

  list(q: ListingQuery): ListingEntry<ObjectRow>[] {
    return walkListing<ObjectRow>(q, (p) => {
      const w = listingWhere(p);
      return this.db.prepare(`SELECT ${ROW_COLS} FROM object WHERE deleted = 0 AND ${w.sql} ORDER BY name ${p.reverse ? 'DESC' : 'ASC'} LIMIT ?`).all(...w.args, p.limit) as ObjectRow[];
    });
  }

  /** What a DB replicator compares first (upstream's "sync" answer). */
  syncInfo(): Record<string, unknown> {
    const i = this.info();
    const max = this.db.prepare('SELECT max(ROWID) AS m FROM object').get() as { m: number | null };
    return { max_row: max.m ?? -1, hash: i.hash, id: i.id, created_at: i.created_at, put_timestamp: i.put_timestamp, delete_timestamp: i.delete_timestamp, metadata: i.metadata, count: i.object_count };
  }

  incomingSyncPoint(remoteId: string): number {
    const r = this.db.prepare('SELECT sync_point FROM incoming_sync WHERE remote_id = ?').get(remoteId) as { sync_point: number } | undefined;
    return r?.sync_point ?? -1;
  }

  /** Rows changed after `since` (a ROWID), in ROWID order, for pushing to a peer. */
  itemsSince(since: number, count: number): (ObjectRow & { ROWID: number })[] {
    return this.db.prepare(`SELECT ROWID, ${ROW_COLS} FROM object WHERE ROWID > ? ORDER BY ROWID LIMIT ?`).all(since, count) as (ObjectRow & { ROWID: number })[];
  }
}
