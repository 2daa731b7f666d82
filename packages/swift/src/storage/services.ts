/**
 * The storage servers as `onestack serve` units. Names and config groups are
 * swift_object / swift_container / swift_account: core's config groups (INI
 * sections, ONESTACK_<GROUP>__<OPT> variables) allow no "-", and the runtime
 * finds a service's port under the group named like the service.
 *
 * Each serves plain node:http (no fastify routing on the data path); the
 * fastify instance handed to the runtime only carries that server
 * (serverFactory) so `app.listen()` / `app.close()` work as for any service.
 * Devices: [swift_*] devices, default <state_dir>/swift/devices, each
 * subdirectory one device as named in the rings (device_count dirs sdN are
 * created when the directory is new, for the all-in-one).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { defineGroup, opt } from '@onestack/core/config/index.ts';
import type { RunningService, ServiceDefinition, ServiceRuntime } from '@onestack/core/service.ts';
import { loadOrCreateHashPathConf, swiftDir } from '../common/hash-path.ts';
import { createAccountServer } from './account-server.ts';
import { createContainerServer } from './container-server.ts';
import { ContainerUpdater } from './container-updater.ts';
import { createObjectServer } from './object-server.ts';
import { ObjectUpdater } from './object-updater.ts';
import { buildAllInOneRing } from '../ring/all-in-one.ts';
import { createStorageNode } from './storage-node.ts';

const common = {
  database_connection: opt.string({ default: '', secret: true, help: 'Unused (storage servers keep one SQLite file per account/container under their devices); present for the runtime.' }),
  devices: opt.path({ help: 'Directory holding one directory per device (upstream devices). Empty: <state_dir>/swift/devices.' }),
  device_count: opt.int({ default: 3, min: 0, help: 'When the devices directory is new, create this many device directories sd1…sdN (the all-in-one).' }),
  conn_timeout: opt.float({ default: 0.5, min: 0.01, help: 'Seconds to wait for another storage server to accept a connection.' }),
  node_timeout: opt.float({ default: 3, min: 0.1, help: 'Seconds to wait for another storage server to answer.' }),
};

export const swiftObjectOptions = defineGroup('swift_object', {
  port: opt.port({ default: 6200, help: 'Port of the object server.' }),
  ...common,
  container_update_timeout: opt.float({ default: 1, min: 0, help: 'Seconds a PUT/DELETE waits for container updates before answering (they go on, then fall back to an async pending).' }),
  updater_interval: opt.int({ default: 300, min: 0, help: 'Seconds between object updater passes over async pendings; 0 disables the updater.' }),
});

export const swiftContainerOptions = defineGroup('swift_container', {
  port: opt.port({ default: 6201, help: 'Port of the container server.' }),
  ...common,
  account_report_delay: opt.float({ default: 1, min: 0, help: 'Seconds after object row changes before the container reports its stats to the account; 0: only the container updater reports.' }),
  updater_interval: opt.int({ default: 300, min: 0, help: 'Seconds between container updater passes; 0 disables it.' }),
});

export const swiftAccountOptions = defineGroup('swift_account', {
  port: opt.port({ default: 6202, help: 'Port of the account server.' }),
  ...common,
});

type Values = Record<string, unknown>;

export function devicesDir(rt: ServiceRuntime, v: Values): string {
  const stateDir = (rt.config.DEFAULT as { state_dir: string }).state_dir;
  const dir = String(v.devices || join(swiftDir(stateDir), 'devices'));
  mkdirSync(dir, { recursive: true });
  if (!readdirSync(dir).length) for (let i = 1; i <= Number(v.device_count ?? 0); i++) mkdirSync(join(dir, `sd${i}`));
  return dir;
}

/** A fastify shell around a storage server so the runtime can listen/close it like any service. */
export function wrapServer(server: http.Server, onClose: () => void = () => undefined): RunningService {
  const app = Fastify({ serverFactory: () => server }) as unknown as FastifyInstance;
  return {
    app,
    close: async () => {
      onClose();
      server.closeIdleConnections();
      await app.close();
    },
  };
}

function base(rt: ServiceRuntime, group: string) {
  const v = rt.config[group] as Values;
  const stateDir = (rt.config.DEFAULT as { state_dir: string }).state_dir;
  return {
    v,
    devices: devicesDir(rt, v),
    hashPath: loadOrCreateHashPathConf(stateDir),
    connTimeoutMs: Number(v.conn_timeout) * 1000,
    nodeTimeoutMs: Number(v.node_timeout) * 1000,
    logger: rt.logger,
  };
}

export const swiftObjectService: ServiceDefinition = {
  name: 'swift_object',
  type: 'object-store-backend',
  catalog: false,
  defaultPort: 6200,
  configGroups: [swiftObjectOptions],
  migrations: [],
  async start(rt) {
    const b = base(rt, 'swift_object');
    const server = createObjectServer({ ...b, containerUpdateTimeoutMs: Number(b.v.container_update_timeout) * 1000 });
    const interval = Number(b.v.updater_interval);
    const updater = interval ? new ObjectUpdater({ devices: b.devices, logger: b.logger, intervalMs: interval * 1000, connTimeoutMs: b.connTimeoutMs, nodeTimeoutMs: b.nodeTimeoutMs }) : undefined;
    updater?.start();
    return wrapServer(server, () => updater?.stop());
  },
};

export const swiftContainerService: ServiceDefinition = {
  name: 'swift_container',
  type: 'object-store-backend',
  catalog: false,
  defaultPort: 6201,
  configGroups: [swiftContainerOptions],
  migrations: [],
  async start(rt) {
    const b = base(rt, 'swift_container');
    const server = createContainerServer({ ...b, accountReportDelayMs: Number(b.v.account_report_delay) * 1000 });
    const interval = Number(b.v.updater_interval);
    const updater = interval ? new ContainerUpdater(b.devices, { logger: b.logger, intervalMs: interval * 1000, connTimeoutMs: b.connTimeoutMs, nodeTimeoutMs: b.nodeTimeoutMs }) : undefined;
    updater?.start();
    return wrapServer(server, () => updater?.stop());
  },
};

export const swiftAccountService: ServiceDefinition = {
  name: 'swift_account',
  type: 'object-store-backend',
  catalog: false,
  defaultPort: 6202,
  configGroups: [swiftAccountOptions],
  migrations: [],
  async start(rt) {
    const b = base(rt, 'swift_account');
    return wrapServer(createAccountServer(b));
  },
};

export const swiftStorageOptions = defineGroup('swift_storage', {
  port: opt.port({ default: 6200, help: 'Port of the all-in-one storage node (account, container and object servers on one port).' }),
  ...common,
  ring_ip: opt.string({ default: '', help: "Address the rings give for this node. Empty: [DEFAULT] bind_host, or 127.0.0.1 when that is a wildcard." }),
  replicas: opt.int({ default: 3, min: 1, help: 'Replica count of the all-in-one rings when they are first built (device_count must be at least this).' }),
  container_update_timeout: swiftObjectOptions.options.container_update_timeout,
  account_report_delay: swiftContainerOptions.options.account_report_delay,
  updater_interval: opt.int({ default: 300, min: 0, help: 'Seconds between object and container updater passes; 0 disables them.' }),
});

function ringIp(rt: ServiceRuntime, v: Values): string {
  if (v.ring_ip) return String(v.ring_ip);
  const bind = String((rt.config.DEFAULT as { bind_host?: string }).bind_host ?? '');
  return !bind || bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind;
}

/**
 * The all-in-one storage node: account, container and object servers on one
 * port (requests routed by X-Backend-Server-Type), the object and container
 * updaters, and the account/container/object rings for this node built under
 * <state_dir>/swift on first start (kept, or re-pointed when the port
 * changes, afterwards). Scale-out runs swift_account/swift_container/
 * swift_object per node with rings from `onestack swift ring`.
 */
export const swiftStorageService: ServiceDefinition = {
  name: 'swift_storage',
  type: 'object-store-backend',
  catalog: false,
  defaultPort: 6200,
  configGroups: [swiftStorageOptions],
  migrations: [],
  async start(rt) {
    const b = base(rt, 'swift_storage');
    const stateDir = (rt.config.DEFAULT as { state_dir: string }).state_dir;
    const count = readdirSync(b.devices).length;
    const ip = ringIp(rt, b.v);
    buildAllInOneRing(stateDir, { devices: count, replicas: Math.min(Number(b.v.replicas), count), ip, ports: Number(b.v.port), devicesDir: b.devices });
    const server = createStorageNode({
      ...b,
      selfHosts: [`${ip}:${Number(b.v.port)}`],
      containerUpdateTimeoutMs: Number(b.v.container_update_timeout) * 1000,
      accountReportDelayMs: Number(b.v.account_report_delay) * 1000,
      version: SWIFT_STORAGE_VERSION,
    });
    const interval = Number(b.v.updater_interval) * 1000;
    const timeouts = { connTimeoutMs: b.connTimeoutMs, nodeTimeoutMs: b.nodeTimeoutMs };
    const updaters = interval
      ? [new ObjectUpdater({ devices: b.devices, logger: b.logger, intervalMs: interval, ...timeouts }), new ContainerUpdater(b.devices, { logger: b.logger, intervalMs: interval, ...timeouts })]
      : [];
    for (const u of updaters) u.start();
    return wrapServer(server, () => updaters.forEach((u) => u.stop()));
  },
};

const SWIFT_STORAGE_VERSION = '0.1.0';

export const STORAGE_SERVICES: readonly ServiceDefinition[] = [swiftAccountService, swiftContainerService, swiftObjectService];
