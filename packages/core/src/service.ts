import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenValidator } from './auth/token-validator.ts';
import type { Bus } from './bus/bus.ts';
import type { Clock } from './clock.ts';
import type { Group } from './config/options.ts';
import type { Database } from './db/database.ts';
import type { Migration } from './db/migrations.ts';
import type { IdSource } from './ids.ts';
import type { Metrics } from './metrics.ts';

/**
 * The contract between a service package and the `onestack` command that runs
 * it: the all-in-one starts every definition in one process, `onestack serve X`
 * starts one. A service only learns about the others through URLs and the bus.
 */
export interface ServiceDefinition {
  /** keystone, nova … — also its config section and its log stream. */
  name: string;
  /** OpenStack service type in the catalog (identity, compute …). */
  type: string;
  defaultPort: number;
  configGroups: readonly Group[];
  migrations: readonly Migration[];
  /**
   * A Keystone user of its own (devstack's `glance`, `nova` …), for a service
   * that validates tokens or talks to Keystone: bootstrap creates it, named
   * after the service, in project `service` with these roles. Its group then
   * carries serviceAuthOptions().
   */
  serviceUser?: { roles: readonly string[] };
  /**
   * Appended to the service's URL in the catalog, with Keystone's
   * substitutions (Swift's `/v1/AUTH_%(project_id)s`); none by default.
   */
  catalogPath?: string;
  /**
   * More catalog entries for the same endpoint under other types (devstack registers Cinder
   * as `block-storage` named cinder and `volumev3` named cinderv3: older clients look for the latter).
   */
  catalogAliases?: readonly { type: string; name: string }[];
  /** false: an internal service (Swift's storage nodes) that clients never call: no catalog entry. */
  catalog?: boolean;
  /**
   * A host agent that changes the data plane (namespaces, bridges, nftables,
   * taps): `onestack up` without root leaves it out and says so.
   */
  requiresRoot?: boolean;
  /**
   * Removes what the service made outside its state directory (a host agent's namespaces and
   * daemons): `onestack down` calls it after the process has stopped. Given the configuration
   * values (as ServiceRuntime.config); idempotent.
   */
  cleanup?(config: Record<string, Record<string, unknown>>, logger: Pick<Logger, 'info' | 'warn'>): Promise<void>;
  start(rt: ServiceRuntime): Promise<RunningService>;
}

export interface ServiceRuntime {
  /** Values of this service's groups and of [DEFAULT], keyed by group name. */
  config: Record<string, Record<string, unknown>>;
  db: Database<any>;
  bus: Bus;
  logger: Logger;
  clock: Clock;
  ids: IdSource;
  metrics: Metrics;
  /** The URL clients reach this service at (catalog, links). */
  publicUrl: string;
  /** Keystone's public endpoint (…/v3) in this deployment: where a service user authenticates unless its auth_url says otherwise. */
  identityUrl: string;
  /** How to validate tokens: in-process when Keystone shares the process, else over HTTP. */
  tokens?: TokenValidator;
  /** Serve HTTPS with these PEM files ([DEFAULT] tls_cert_file / tls_key_file). */
  tls?: { certFile: string; keyFile: string };
}

export interface RunningService {
  app: FastifyInstance;
  /** Offered to the other services of the process (Keystone offers its in-process validator). */
  tokens?: TokenValidator;
  close(): Promise<void>;
}
