import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateHashPathConf, swiftDir as defaultSwiftDir, type HashPathConf } from '../common/hash-path.ts';
import { loadBuilder, ringFileFor, saveBuilder } from './builder-file.ts';
import { RingBuilder } from './builder.ts';
import { writeRingFile } from './ring-data.ts';

export const RING_NAMES = ['account', 'container', 'object'] as const;
export type RingName = (typeof RING_NAMES)[number];

export interface AllInOneRingOptions {
  /** Device directories on the one storage node (at least `replicas`). */
  devices?: number;
  replicas?: number;
  ip?: string;
  /** One port for a node answering all three server types, or one per type as upstream runs them. */
  ports: number | Record<RingName, number>;
  /** 2^10 partitions, as upstream's SAIO: plenty for one node, cheap to build and replicate. */
  partPower?: number;
  minPartHours?: number;
  /** Default `<stateDir>/swift`. */
  swiftDir?: string;
  /** Default `<swiftDir>/devices`. */
  devicesDir?: string;
  /** Unix seconds; for tests. */
  now?: number;
}

export interface AllInOneRings {
  swiftDir: string;
  devicesDir: string;
  /** Device names, each a directory under devicesDir. */
  devices: string[];
  rings: Record<RingName, string>;
  hashConf: HashPathConf;
  /** Rings written (built or updated) by this call; empty when all were already right. */
  written: RingName[];
}

/** sd1, sd2 …: the names storage/services.ts creates under the devices dir, so the rings and the node agree. */
export function deviceName(i: number): string {
  return `sd${i + 1}`;
}

/**
 * The all-in-one layout: account, container and object rings for one
 * storage node with n device directories, each device in its own zone (as
 * upstream's SAIO does) so replicas and handoffs spread over devices the way
 * they would over zones. Existing rings are kept; a changed ip/port is
 * written into them without moving partitions; added devices are
 * rebalanced in, respecting min_part_hours: a start after those hours
 * finishes the rebalance.
 */
export function buildAllInOneRing(stateDir: string, opts: AllInOneRingOptions): AllInOneRings {
  const replicas = opts.replicas ?? 3;
  const n = opts.devices ?? Math.max(3, replicas);
  if (n < replicas) throw new Error(`${replicas} replicas need at least ${replicas} devices (got ${n})`);
  const ip = opts.ip ?? '127.0.0.1';
  const swiftDir = opts.swiftDir ?? defaultSwiftDir(stateDir);
  const devicesDir = opts.devicesDir ?? join(swiftDir, 'devices');
  mkdirSync(swiftDir, { recursive: true, mode: 0o755 });
  const hashConf = loadOrCreateHashPathConf(stateDir);
  const devices = Array.from({ length: n }, (_, i) => deviceName(i));
  for (const d of devices) mkdirSync(join(devicesDir, d), { recursive: true });

  const rings = {} as Record<RingName, string>;
  const written: RingName[] = [];
  for (const name of RING_NAMES) {
    const port = typeof opts.ports === 'number' ? opts.ports : opts.ports[name];
    const builderFile = join(swiftDir, `${name}.builder`);
    const ringFile = ringFileFor(builderFile);
    rings[name] = ringFile;
    const exists = existsSync(builderFile);
    const b = exists ? loadBuilder(builderFile) : new RingBuilder(opts.partPower ?? 10, replicas, opts.minPartHours ?? 1);
    let changed = !exists || !existsSync(ringFile);
    for (const dev of b.devices()) {
      if (dev.ip === ip && dev.port === port) continue;
      // Only where the node listens changed: partitions stay put, the ring just points at the new address.
      Object.assign(dev, { ip, port, replication_ip: ip, replication_port: port });
      b.state.version++;
      changed = true;
    }
    const have = new Set(b.devices().map((d) => d.device));
    const missing = devices.filter((d) => !have.has(d));
    missing.forEach((device) => b.addDevice({ region: 1, zone: devices.indexOf(device) + 1, ip, port, device, weight: 100 }));
    // A ring left unbalanced by min_part_hours (devices added less than that ago) is finished on a later start.
    const unfinished = b.everRebalanced && b.getBalance() > 1 && b.minPartSecondsLeft(opts.now) === 0;
    if (missing.length || !b.everRebalanced || unfinished) {
      b.rebalance({ now: opts.now });
      changed = true;
    }
    if (!changed) continue;
    saveBuilder(builderFile, b);
    writeRingFile(ringFile, b.getRing());
    written.push(name);
  }
  return { swiftDir, devicesDir, devices, rings, hashConf, written };
}
