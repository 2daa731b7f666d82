import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { HashPathConf } from '../src/common/hash-path.ts';
import { proxyRing } from '../src/proxy/ring-adapter.ts';
import type { ProxyRings } from '../src/proxy/ring.ts';
import { RingBuilder } from '../src/ring/builder.ts';
import { Ring } from '../src/ring/ring.ts';
import { hashLocation } from '../src/storage/diskfile.ts';
import { hashPath } from '../src/common/hash-path.ts';
import { createStorageNode } from '../src/storage/storage-node.ts';

/** One real storage node (account, container and object servers on one port) with its own device directories. */
export class StorageNode {
  server?: http.Server;
  port = 0;

  constructor(
    readonly index: number,
    readonly devices: string,
    readonly deviceNames: string[],
    private readonly hashPath: HashPathConf,
    private readonly logger?: Logger,
  ) {
    for (const d of deviceNames) mkdirSync(join(devices, d), { recursive: true });
  }

  /** Listens on `port` (0: any free one; a restart passes the old port so the ring still points here). */
  async start(port = this.port): Promise<this> {
    this.server = createStorageNode({ devices: this.devices, hashPath: this.hashPath, logger: this.logger, containerUpdateTimeoutMs: 1000, accountReportDelayMs: 0 });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** `.data` files of an object on this node, over all its devices (primaries and handoffs alike). */
  dataFiles(account: string, container: string, obj: string, partition: number): string[] {
    const hash = hashPath(this.hashPath, account, container, obj);
    const out: string[] = [];
    for (const d of this.deviceNames) {
      const loc = hashLocation(join(this.devices, d), 0, String(partition), hash);
      let names: string[] = [];
      try {
        names = readdirSync(loc.hashDir);
      } catch {
        continue;
      }
      out.push(...names.filter((n) => n.endsWith('.data')).map((n) => join(loc.hashDir, n)));
    }
    return out;
  }
}

export interface StorageCluster {
  nodes: StorageNode[];
  hashPath: HashPathConf;
  rings: ProxyRings;
  /** The object ring, for tests that ask where an object lives. */
  objectRing: Ring;
  nodeOf(port: number): StorageNode;
  close(): Promise<void>;
}

/**
 * Three real storage nodes on loopback, each its own zone with two devices,
 * and rings built by RingBuilder with three replicas: every partition has one
 * replica per node and handoffs on the other devices.
 */
export async function startStorageCluster(opts: { nodes?: number; devicesPerNode?: number; partPower?: number; logger?: Logger } = {}): Promise<StorageCluster> {
  const root = mkdtempSync(join(tmpdir(), 'onestack-swift-cluster-'));
  const hash: HashPathConf = { prefix: randomBytes(8), suffix: randomBytes(8) };
  const nodes: StorageNode[] = [];
  try {
    for (let i = 0; i < (opts.nodes ?? 3); i++) {
      const names = Array.from({ length: opts.devicesPerNode ?? 2 }, (_, j) => `n${i + 1}d${j + 1}`);
      nodes.push(await new StorageNode(i, join(root, `node${i + 1}`), names, hash, opts.logger).start());
    }
    const builder = new RingBuilder(opts.partPower ?? 6, 3, 0);
    for (const n of nodes) for (const device of n.deviceNames) builder.addDevice({ region: 1, zone: n.index + 1, ip: '127.0.0.1', port: n.port, device, weight: 100 });
    builder.rebalance({ seed: 1 });
    const ring = Ring.fromData(builder.getRing(), hash);
    const pr = proxyRing(ring);
    return {
      nodes,
      hashPath: hash,
      rings: { account: pr, container: pr, object: pr },
      objectRing: ring,
      nodeOf: (port) => nodes.find((n) => n.port === port)!,
      close: async () => {
        for (const n of nodes) await n.stop();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const n of nodes) await n.stop();
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}
