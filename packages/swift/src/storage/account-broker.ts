/**
 * One account's SQLite database (upstream AccountBroker): container rows with
 * the stats their container servers report, account stats kept by triggers,
 * metadata, status DELETED after a (reseller) DELETE.
 */
import { randomUUID } from 'node:crypto';
import { listingWhere, mergeMetadata, openExisting, openOrCreate, SYNC_TABLES_SQL, walkListing, type DbMetadata, type ListingEntry, type ListingQuery, type Sqlite } from './db-file.ts';

export interface ContainerRow {
  name: string;
  put_timestamp: string;
  delete_timestamp: string;
  object_count: number;
  bytes_used: number;
  deleted: number;
  storage_policy_index: number;
}

export interface AccountInfo {
  account: string;
  created_at: string;
  put_timestamp: string;
  delete_timestamp: string;
  status_changed_at: string;
  container_count: number;
  object_count: number;
  bytes_used: number;
  hash: string;
  id: string;
  status: string;
  metadata: string;
}

const SCHEMA = `
  CREATE TABLE container (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    put_timestamp TEXT NOT NULL DEFAULT '0',
    delete_timestamp TEXT NOT NULL DEFAULT '0',
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    storage_policy_index INTEGER NOT NULL DEFAULT 0
  );
  CREATE UNIQUE INDEX ix_container_name ON container (name);
  CREATE INDEX ix_container_deleted_name ON container (deleted, name);
  CREATE TABLE account_stat (
    account TEXT, created_at TEXT, put_timestamp TEXT DEFAULT '0', delete_timestamp TEXT DEFAULT '0',
    status_changed_at TEXT DEFAULT '0', container_count INTEGER DEFAULT 0, object_count INTEGER DEFAULT 0,
    bytes_used INTEGER DEFAULT 0, hash TEXT DEFAULT '00000000000000000000000000000000', id TEXT,
    status TEXT DEFAULT '', metadata TEXT DEFAULT '{}'
  );
  CREATE TRIGGER container_insert AFTER INSERT ON container BEGIN
    UPDATE account_stat SET container_count = container_count + (1 - new.deleted),
      object_count = object_count + new.object_count, bytes_used = bytes_used + new.bytes_used,
      hash = chexor(hash, new.name, new.put_timestamp || '-' || new.delete_timestamp || '-' || new.object_count || '-' || new.bytes_used);
  END;
  CREATE TRIGGER container_delete AFTER DELETE ON container BEGIN
    UPDATE account_stat SET container_count = container_count - (1 - old.deleted),
      object_count = object_count - old.object_count, bytes_used = bytes_used - old.bytes_used,
      hash = chexor(hash, old.name, old.put_timestamp || '-' || old.delete_timestamp || '-' || old.object_count || '-' || old.bytes_used);
  END;
  ${SYNC_TABLES_SQL}
`;

const ROW_COLS = 'name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index';

export class AccountBroker {
  private constructor(
    readonly db: Sqlite,
    readonly path: string,
  ) {}

  static open(path: string): AccountBroker | undefined {
    const db = openExisting(path);
    return db ? new AccountBroker(db, path) : undefined;
  }

  static openOrCreate(path: string, init: { account: string; putTimestamp: string; now: string }): { broker: AccountBroker; created: boolean } {
    const { db, created } = openOrCreate(path, (d) => {
      d.exec(SCHEMA);
      d.prepare('INSERT INTO account_stat (account, created_at, put_timestamp, status_changed_at, id) VALUES (?, ?, ?, ?, ?)').run(init.account, init.now, init.putTimestamp, init.putTimestamp, randomUUID());
    });
    return { broker: new AccountBroker(db, path), created };
  }

  info(): AccountInfo {
    return this.db.prepare('SELECT * FROM account_stat').get() as AccountInfo;
  }

  isStatusDeleted(): boolean {
    return this.info().status === 'DELETED';
  }

  /** upstream: status DELETED, or no containers and a delete newer than the last put. */
  isDeleted(): boolean {
    const i = this.info();
    return i.status === 'DELETED' || (!i.container_count && i.delete_timestamp > i.put_timestamp);
  }

  metadata(): DbMetadata {
    return JSON.parse(this.info().metadata || '{}') as DbMetadata;
  }

  updateMetadata(updates: DbMetadata): void {
    if (!Object.keys(updates).length) return;
    this.db
      .transaction(() => {
        const { merged, changed } = mergeMetadata(this.metadata(), updates);
        if (changed) this.db.prepare('UPDATE account_stat SET metadata = ?').run(JSON.stringify(merged));
      })
      .immediate();
  }

  updatePutTimestamp(ts: string): void {
    this.db.prepare('UPDATE account_stat SET put_timestamp = ?, status_changed_at = ? WHERE put_timestamp < ?').run(ts, ts, ts);
  }

  /** Reseller DELETE: the account is marked DELETED; the reaper (not built) would empty it. */
  deleteDb(ts: string): void {
    this.db.prepare("UPDATE account_stat SET delete_timestamp = ?, status = 'DELETED', status_changed_at = ? WHERE delete_timestamp < ?").run(ts, ts, ts);
  }

  /** upstream merge_items: newest put and delete timestamps kept, stats from the latest report, deleted when the delete is newer and the container empty. */
  private mergeRow(r: ContainerRow): void {
    const cur = this.db.prepare(`SELECT ROWID AS rid, ${ROW_COLS} FROM container WHERE name = ?`).get(r.name) as (ContainerRow & { rid: number }) | undefined;
    const next = { ...r };
    if (cur) {
      if (cur.put_timestamp > next.put_timestamp) next.put_timestamp = cur.put_timestamp;
      if (cur.delete_timestamp > next.delete_timestamp) next.delete_timestamp = cur.delete_timestamp;
      this.db.prepare('DELETE FROM container WHERE ROWID = ?').run(cur.rid);
    }
    next.deleted = next.delete_timestamp > next.put_timestamp && !next.object_count ? 1 : 0;
    this.db.prepare(`INSERT INTO container (${ROW_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(next.name, next.put_timestamp, next.delete_timestamp, next.object_count, next.bytes_used, next.deleted, next.storage_policy_index);
  }

  mergeItems(rows: ContainerRow[], source?: { id: string; maxRowId: number }): void {
    this.db
      .transaction(() => {
        for (const r of rows) this.mergeRow(r);
        if (source) this.db.prepare('INSERT INTO incoming_sync (remote_id, sync_point) VALUES (?, ?) ON CONFLICT (remote_id) DO UPDATE SET sync_point = max(sync_point, excluded.sync_point)').run(source.id, source.maxRowId);
      })
      .immediate();
  }

  putContainer(r: Omit<ContainerRow, 'deleted'>): void {
    this.mergeItems([{ ...r, deleted: 0 }]);
  }

  list(q: ListingQuery): ListingEntry<ContainerRow>[] {
    return walkListing<ContainerRow>(q, (p) => {
      const w = listingWhere(p);
      return this.db.prepare(`SELECT ${ROW_COLS} FROM container WHERE deleted = 0 AND ${w.sql} ORDER BY name ${p.reverse ? 'DESC' : 'ASC'} LIMIT ?`).all(...w.args, p.limit) as ContainerRow[];
    });
  }

  syncInfo(): Record<string, unknown> {
    const i = this.info();
    const max = this.db.prepare('SELECT max(ROWID) AS m FROM container').get() as { m: number | null };
    return { max_row: max.m ?? -1, hash: i.hash, id: i.id, created_at: i.created_at, put_timestamp: i.put_timestamp, delete_timestamp: i.delete_timestamp, metadata: i.metadata, count: i.container_count };
  }

  incomingSyncPoint(remoteId: string): number {
    const r = this.db.prepare('SELECT sync_point FROM incoming_sync WHERE remote_id = ?').get(remoteId) as { sync_point: number } | undefined;
    return r?.sync_point ?? -1;
  }

  itemsSince(since: number, count: number): (ContainerRow & { ROWID: number })[] {
    return this.db.prepare(`SELECT ROWID, ${ROW_COLS} FROM container WHERE ROWID > ? ORDER BY ROWID LIMIT ?`).all(since, count) as (ContainerRow & { ROWID: number })[];
  }
}
