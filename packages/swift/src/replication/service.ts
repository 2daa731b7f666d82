/**
 * swift_replicator: the background daemons of one storage node as a
 * `onestack serve` unit, upstream's swift-object-replicator,
 * swift-container-replicator, swift-account-replicator, swift-object-auditor
 * and swift-object-expirer in one process. They work on the devices under
 * [swift_replicator] devices (the storage node's), on the ring devices whose
 * port is storage_port (the node's own), with the rings in swift_dir.
 *
 * Its port answers GET /healthcheck and, like upstream's recon middleware,
 * GET /recon/replication/<object|container|account>, /recon/auditor and
 * /recon/expirer with the last pass's stats.
 * Rings not written yet (the storage node builds the all-in-one rings on
 * its first start) are looked for again every few seconds.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { defineGroup, opt } from '@onestack/core/config/index.ts';
import { registerOpsRoutes } from '@onestack/core/http/ops-routes.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { loadOrCreateHashPathConf, swiftDir } from '../common/hash-path.ts';
import { ObjectExpirer } from '../expirer/expirer.ts';
import { Ring } from '../ring/ring.ts';
import { VERSION } from '../index.ts';
import { devicesDir } from '../storage/services.ts';
import { ObjectAuditor } from './auditor.ts';
import { DbReplicator } from './db-replicator.ts';
import { ObjectReplicator } from './object-replicator.ts';

export const swiftReplicatorOptions = defineGroup('swift_replicator', {
  port: opt.port({ default: 6203, help: 'Port of the healthcheck and recon stats of the replication daemons.' }),
  database_connection: opt.string({ default: '', secret: true, help: 'Unused; present for the runtime.' }),
  devices: opt.path({ help: "The storage node's devices directory. Empty: <state_dir>/swift/devices." }),
  device_count: opt.int({ default: 0, min: 0, help: 'Never creates devices (the storage node does); kept for the shared devices helper.' }),
  swift_dir: opt.path({ help: 'Directory of the rings. Empty: <state_dir>/swift.' }),
  storage_port: opt.port({ default: 6200, help: "The storage node's port: ring devices with this port are this node's (upstream matches bind_port)." }),
  storage_ips: opt.list({ default: [], help: "This node's ring addresses; empty: any (nodes sharing a host differ by port)." }),
  replication_interval: opt.int({ default: 30, min: 1, help: 'Seconds between object, container and account replication passes (upstream interval).' }),
  replication_concurrency: opt.int({ default: 2, min: 1, help: 'Partitions the object replicator works on at once.' }),
  audit_interval: opt.int({ default: 30, min: 1, help: 'Seconds between auditor passes.' }),
  files_per_second: opt.int({ default: 20, min: 0, help: 'Auditor rate limit in files per second (upstream files_per_second); 0 = unlimited.' }),
  bytes_per_second: opt.int({ default: 10_000_000, min: 0, help: 'Auditor rate limit in bytes per second (upstream bytes_per_second); 0 = unlimited.' }),
  expirer_interval: opt.int({ default: 300, min: 1, help: 'Seconds between expirer passes (upstream interval).' }),
  conn_timeout: opt.float({ default: 0.5, min: 0.01, help: 'Seconds to wait for a peer to accept a connection.' }),
  node_timeout: opt.float({ default: 10, min: 0.1, help: 'Seconds to wait for a peer to answer.' }),
});

type Daemon = { start(): void; stop(): Promise<void>; lastStats?: unknown };

export const swiftReplicatorService: ServiceDefinition = {
  name: 'swift_replicator',
  type: 'object-store-replicator',
  catalog: false,
  defaultPort: 6203,
  configGroups: [swiftReplicatorOptions],
  migrations: [],
  async start(rt) {
    const v = rt.config.swift_replicator as Record<string, unknown>;
    const stateDir = (rt.config.DEFAULT as { state_dir: string }).state_dir;
    const dir = String(v.swift_dir || swiftDir(stateDir));
    const devices = devicesDir(rt, v);
    const hash = loadOrCreateHashPathConf(stateDir);
    const ips = v.storage_ips as string[];
    const node = { port: Number(v.storage_port), ...(ips.length ? { ips } : {}) };
    const timeouts = { connTimeoutMs: Number(v.conn_timeout) * 1000, nodeTimeoutMs: Number(v.node_timeout) * 1000 };
    const logger = rt.logger;
    const daemons: Record<string, Daemon> = {};

    const auditor = new ObjectAuditor({ devices, filesPerSecond: Number(v.files_per_second), bytesPerSecond: Number(v.bytes_per_second), intervalMs: Number(v.audit_interval) * 1000, logger });
    auditor.start();
    daemons.auditor = auditor;

    let retry: NodeJS.Timeout | undefined;
    const startRingDaemons = () => {
      if (!['object', 'container', 'account'].every((n) => existsSync(join(dir, `${n}.ring.gz`)))) {
        retry = setTimeout(startRingDaemons, 5000);
        retry.unref();
        return;
      }
      const ring = (name: string) => Ring.loadNamed(dir, name, hash);
      const interval = Number(v.replication_interval) * 1000;
      const objectRing = ring('object');
      const containerRing = ring('container');
      daemons.object = new ObjectReplicator({ devices, ring: objectRing, node, intervalMs: interval, concurrency: Number(v.replication_concurrency), logger, ...timeouts });
      daemons.container = new DbReplicator({ kind: 'container', devices, ring: containerRing, node, intervalMs: interval, logger, ...timeouts });
      daemons.account = new DbReplicator({ kind: 'account', devices, ring: ring('account'), node, intervalMs: interval, logger, ...timeouts });
      daemons.expirer = new ObjectExpirer({ devices, objectRing, containerRing, node, intervalMs: Number(v.expirer_interval) * 1000, logger, ...timeouts });
      for (const k of ['object', 'container', 'account', 'expirer']) daemons[k].start();
    };
    startRingDaemons();

    const app = Fastify({ logger: false });
    // The JSON form of /healthcheck is what `onestack status` reads.
    registerOpsRoutes(app, { service: 'swift_replicator', version: VERSION, metrics: rt.metrics });
    app.get<{ Params: { kind: string } }>('/recon/replication/:kind', async (req, reply) => {
      const d = daemons[req.params.kind];
      if (!d || req.params.kind === 'auditor' || req.params.kind === 'expirer') return reply.code(404).send({ error: 'unknown replicator' });
      return { stats: d.lastStats ?? null };
    });
    app.get('/recon/auditor', async () => ({ stats: daemons.auditor.lastStats ?? null }));
    app.get('/recon/expirer', async () => ({ stats: daemons.expirer?.lastStats ?? null }));
    return {
      app,
      close: async () => {
        clearTimeout(retry);
        await Promise.all(Object.values(daemons).map((d) => d.stop()));
        await app.close();
      },
    };
  },
};
