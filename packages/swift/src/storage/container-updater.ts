/**
 * Container → account stat reports (upstream's container-updater, plus an
 * eager path): a container DB whose put/delete timestamps or counts differ
 * from what it last reported sends them to its account's replicas. The
 * container server calls reportContainer shortly after changes; runOnce walks
 * every container DB and retries whatever is still unreported.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { UpdateTarget } from './async-pending.ts';
import { ContainerBroker, type ContainerInfo } from './container-broker.ts';
import { backendRequest } from './http-util.ts';

export interface AccountUpdateOptions {
  connTimeoutMs?: number;
  nodeTimeoutMs?: number;
  logger?: Logger;
  /** Where an account's replicas are (the account ring); else the targets remembered from X-Account-* headers. */
  accountNodes?: (account: string) => UpdateTarget[];
}

export function accountUpdateHeaders(i: ContainerInfo, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'x-put-timestamp': i.put_timestamp,
    'x-delete-timestamp': i.delete_timestamp,
    'x-object-count': String(i.object_count),
    'x-bytes-used': String(i.bytes_used),
    'x-backend-storage-policy-index': String(i.storage_policy_index),
    'user-agent': `container-server ${process.pid}`,
    'x-backend-server-type': 'account',
    ...extra,
  };
}

/** PUTs the container's row to each account replica; counts the answers. */
export async function sendAccountUpdates(i: ContainerInfo, targets: UpdateTarget[], extra: Record<string, string>, o: AccountUpdateOptions): Promise<{ ok: number; notFound: number }> {
  let ok = 0;
  let notFound = 0;
  await Promise.all(
    targets.map(async (t) => {
      try {
        const r = await backendRequest({ ...t, method: 'PUT', path: `/${i.account}/${i.container}`, headers: accountUpdateHeaders(i, extra), connTimeoutMs: o.connTimeoutMs, nodeTimeoutMs: o.nodeTimeoutMs });
        if (r.status >= 200 && r.status < 300) ok++;
        else if (r.status === 404) notFound++;
        else o.logger?.error({ status: r.status, host: t.host, device: t.device }, 'ERROR Account update failed');
      } catch (e) {
        o.logger?.error({ err: (e as Error).message, host: t.host, device: t.device }, 'ERROR account update failed');
      }
    }),
  );
  return { ok, notFound };
}

export function needsReport(i: ContainerInfo): boolean {
  return i.put_timestamp > i.reported_put_timestamp || i.delete_timestamp > i.reported_delete_timestamp || i.object_count !== i.reported_object_count || i.bytes_used !== i.reported_bytes_used;
}

/** Reports one container if its stats changed; true when every account replica took it. */
export async function reportContainer(broker: ContainerBroker, o: AccountUpdateOptions): Promise<boolean> {
  const info = broker.info();
  if (!needsReport(info)) return true;
  const targets = o.accountNodes ? o.accountNodes(info.account) : (JSON.parse(info.account_targets || '[]') as UpdateTarget[]);
  if (!targets.length) return false;
  const { ok } = await sendAccountUpdates(info, targets, {}, o);
  if (ok !== targets.length) return false;
  broker.reported(info);
  return true;
}

async function* containerDbs(devices: string): AsyncGenerator<string> {
  const ls = (p: string) => readdir(p).catch(() => [] as string[]);
  for (const dev of await ls(devices)) {
    const root = join(devices, dev, 'containers');
    for (const part of await ls(root))
      for (const suffix of await ls(join(root, part)))
        for (const hash of await ls(join(root, part, suffix))) {
          const db = join(root, part, suffix, hash, `${hash}.db`);
          if ((await ls(join(root, part, suffix, hash))).includes(`${hash}.db`)) yield db;
        }
  }
}

export class ContainerUpdater {
  private timer?: NodeJS.Timeout;
  constructor(
    private readonly devices: string,
    private readonly o: AccountUpdateOptions & { intervalMs?: number },
  ) {}

  /** One pass over every container DB; returns how many were reported and how many still fail. */
  async runOnce(): Promise<{ reported: number; failed: number }> {
    let reported = 0;
    let failed = 0;
    for await (const path of containerDbs(this.devices)) {
      const b = ContainerBroker.open(path);
      if (!b || !needsReport(b.info())) continue;
      if (await reportContainer(b, this.o)) reported++;
      else failed++;
    }
    return { reported, failed };
  }

  start(): void {
    const loop = () => {
      this.timer = setTimeout(() => void this.runOnce().catch((e: unknown) => this.o.logger?.error({ err: e }, 'container updater pass failed')).finally(() => this.timer && loop()), this.o.intervalMs ?? 300_000);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
