/**
 * Container updates from the object server and their fallback, the async
 * pending: when a container server cannot take an object's row update, the
 * update is saved on the object's device and the object updater retries it.
 *
 * File: <device>/async_pending[-<policy>]/<suffix>/<hash>-<timestamp>, a JSON
 * document (upstream pickles a dict with the same keys):
 *   {"op": "PUT"|"DELETE", "account", "container", "obj", "headers": {…},
 *    "container_path"?: "a/c", "targets": [{"host": "ip:port", "device", "partition"}]}
 * `targets` is onestack's addition: the container replicas still owed the
 * update, so the updater needs no ring (it may use one to find new nodes).
 */
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { asyncDirName, fsyncDir, tmpName } from './diskfile.ts';
import { backendRequest } from './http-util.ts';

export interface UpdateTarget {
  host: string;
  device: string;
  partition: string;
}

export interface AsyncPending {
  op: string;
  account: string;
  container: string;
  obj: string;
  headers: Record<string, string>;
  container_path?: string;
  targets: UpdateTarget[];
}

export function asyncPendingPath(devicePath: string, policy: number, hash: string, timestamp: string): string {
  return join(devicePath, asyncDirName(policy), hash.slice(-3), `${hash}-${timestamp}`);
}

export async function writeJsonDurably(devicePath: string, target: string, doc: unknown): Promise<void> {
  await mkdir(join(devicePath, 'tmp'), { recursive: true });
  const tmp = tmpName(devicePath);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(JSON.stringify(doc));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  const dir = target.slice(0, target.lastIndexOf('/'));
  await mkdir(dir, { recursive: true });
  await rename(tmp, target);
  await fsyncDir(dir);
}

/** One object row change as sent to a container server. */
export type RowUpdate = Pick<AsyncPending, 'op' | 'account' | 'container' | 'obj' | 'headers' | 'container_path'>;

/** A container server in this process: true when it took the update, false when it failed, undefined when `t` is not this node. */
export type LocalUpdate = (t: UpdateTarget, p: RowUpdate) => boolean | undefined;

export interface UpdateOptions {
  connTimeoutMs: number;
  nodeTimeoutMs: number;
  logger?: Logger;
  /** Applies updates addressed to this storage node without HTTP (the all-in-one storage node). */
  local?: LocalUpdate;
}

/** Sends one row update; true when the container server took it (2xx). */
export async function sendUpdate(p: RowUpdate, t: UpdateTarget, o: UpdateOptions): Promise<boolean> {
  const applied = o.local?.(t, p);
  if (applied !== undefined) return applied;
  const path = p.container_path ? `/${p.container_path}/${p.obj}` : `/${p.account}/${p.container}/${p.obj}`;
  try {
    const r = await backendRequest({
      host: t.host,
      device: t.device,
      partition: t.partition,
      method: p.op,
      path,
      headers: { ...p.headers, 'user-agent': `object-server ${process.pid}`, 'x-backend-server-type': 'container' },
      connTimeoutMs: o.connTimeoutMs,
      nodeTimeoutMs: o.nodeTimeoutMs,
    });
    if (r.status >= 200 && r.status < 300) return true;
    o.logger?.error({ status: r.status, host: t.host, device: t.device }, 'ERROR Container update failed (saving for async update later)');
  } catch (e) {
    o.logger?.error({ err: (e as Error).message, host: t.host, device: t.device }, 'ERROR container update failed (saving for async update later)');
  }
  return false;
}

/**
 * Updates every container replica in parallel; those that fail are saved in
 * one async pending. Resolves once the pending (if any) is durable.
 */
export async function updateContainers(
  p: Omit<AsyncPending, 'targets'>,
  targets: UpdateTarget[],
  where: { devicePath: string; policy: number; hash: string; timestamp: string },
  o: UpdateOptions,
): Promise<void> {
  const results = await Promise.all(targets.map((t) => sendUpdate(p, t, o)));
  const failed = targets.filter((_, i) => !results[i]);
  if (!failed.length) return;
  const doc: AsyncPending = { ...p, targets: failed };
  await writeJsonDurably(where.devicePath, asyncPendingPath(where.devicePath, where.policy, where.hash, where.timestamp), doc);
}
