/**
 * REPLICATE for container and account DBs (upstream's db replicator RPC,
 * reduced): the body is a JSON array [op, ...args].
 *   ["sync", remote_id?]               → this DB's sync info (max_row, hash, id, timestamps, metadata)
 *                                        and `point`: the last ROWID merged from remote_id
 *   ["get_items", since_rowid, count]  → rows with ROWID > since, in ROWID order
 *   ["merge_items", rows, remote_id, max_rowid] → merges rows (newest timestamps win), records the sync point
 *   ["merge_metadata", {key: [value, ts]}]
 *   ["merge_timestamps", put_timestamp, delete_timestamp, status?] → keeps the newer of each (an account's delete only with status DELETED)
 *   ["create", {account, container?, created_at, put_timestamp, delete_timestamp, status?, storage_policy_index?, metadata}]
 *                                      → 201 a new empty DB with the sender's identity (upstream rsyncs the whole file
 *                                        instead; the rows then follow as merge_items), 202 when it already exists
 * 404 when the DB does not exist (the replicator then sends "create").
 */
import { AccountBroker, type ContainerRow } from './account-broker.ts';
import { ContainerBroker, type ObjectRow } from './container-broker.ts';
import type { DbMetadata } from './db-file.ts';

export function handleDbReplicate(kind: 'container' | 'account', path: string, body: Buffer): { status: number; body: unknown } {
  let args: unknown[];
  try {
    args = JSON.parse(body.toString('utf8')) as unknown[];
    if (!Array.isArray(args) || typeof args[0] !== 'string') throw new Error('not an array');
  } catch {
    return { status: 400, body: { error: 'body must be a JSON array [op, ...args]' } };
  }
  const [op, a1, a2, a3] = args;
  if (op === 'create') return create(kind, path, (a1 ?? {}) as CreateInfo);
  const broker = kind === 'container' ? ContainerBroker.open(path) : AccountBroker.open(path);
  if (!broker) return { status: 404, body: null };
  switch (op) {
    case 'sync':
      return { status: 200, body: { ...broker.syncInfo(), point: typeof a1 === 'string' ? broker.incomingSyncPoint(a1) : -1 } };
    case 'get_items':
      return { status: 200, body: broker.itemsSince(Number(a1 ?? -1), Math.min(Number(a2 ?? 1000), 10000)) };
    case 'merge_items': {
      const rows = (a1 ?? []) as (ObjectRow & ContainerRow)[];
      const source = typeof a2 === 'string' ? { id: a2, maxRowId: Number(a3 ?? -1) } : undefined;
      broker.mergeItems(rows, source);
      return { status: 202, body: null };
    }
    case 'merge_timestamps':
      if (typeof a1 === 'string' && a1) broker.updatePutTimestamp(a1);
      if (typeof a2 === 'string' && a2 && (kind === 'container' || a3 === 'DELETED')) broker.deleteDb(a2);
      return { status: 202, body: null };
    case 'merge_metadata':
      broker.updateMetadata((a1 ?? {}) as DbMetadata);
      return { status: 202, body: null };
    default:
      return { status: 400, body: { error: `unknown op ${String(op)}` } };
  }
}

interface CreateInfo {
  account?: string;
  container?: string;
  created_at?: string;
  put_timestamp?: string;
  delete_timestamp?: string;
  status?: string;
  storage_policy_index?: number;
  metadata?: string;
}

function create(kind: 'container' | 'account', path: string, i: CreateInfo): { status: number; body: unknown } {
  if (typeof i.account !== 'string' || (kind === 'container' && typeof i.container !== 'string') || typeof i.put_timestamp !== 'string' || typeof i.created_at !== 'string') {
    return { status: 400, body: { error: 'create needs account, container (for containers), created_at and put_timestamp' } };
  }
  const { broker, created } =
    kind === 'container'
      ? ContainerBroker.openOrCreate(path, { account: i.account, container: i.container!, putTimestamp: i.put_timestamp, policy: Number(i.storage_policy_index ?? 0), now: i.created_at })
      : AccountBroker.openOrCreate(path, { account: i.account, putTimestamp: i.put_timestamp, now: i.created_at });
  if (created) {
    if (i.delete_timestamp && (kind === 'container' || i.status === 'DELETED')) broker.deleteDb(i.delete_timestamp);
    if (i.metadata) broker.updateMetadata(JSON.parse(i.metadata) as DbMetadata);
  }
  return { status: created ? 201 : 202, body: null };
}
