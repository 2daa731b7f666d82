/**
 * REPLICATE for container and account DBs (upstream's db replicator RPC,
 * reduced): the body is a JSON array [op, ...args].
 *   ["sync", remote_id?]               → this DB's sync info (max_row, hash, id, timestamps, metadata)
 *                                        and `point`: the last ROWID merged from remote_id
 *   ["get_items", since_rowid, count]  → rows with ROWID > since, in ROWID order
 *   ["merge_items", rows, remote_id, max_rowid] → merges rows (newest timestamps win), records the sync point
 *   ["merge_metadata", {key: [value, ts]}]
 * 404 when the DB does not exist (the replicator then pushes the whole file).
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
  const broker = kind === 'container' ? ContainerBroker.open(path) : AccountBroker.open(path);
  if (!broker) return { status: 404, body: null };
  const [op, a1, a2, a3] = args;
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
    case 'merge_metadata':
      broker.updateMetadata((a1 ?? {}) as DbMetadata);
      return { status: 202, body: null };
    default:
      return { status: 400, body: { error: `unknown op ${String(op)}` } };
  }
}
