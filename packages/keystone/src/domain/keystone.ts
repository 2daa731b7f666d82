import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import { conflict } from '@onestack/core/errors.ts';
import { isUniqueViolation } from '@onestack/core/db/index.ts';
import type { KeystoneConfig } from '../conf.ts';
import type { KeystoneDB } from '../db/schema.ts';
import { AppCredManager } from './app-cred-manager.ts';
import { AssignmentManager } from './assignment-manager.ts';
import { CatalogManager } from './catalog-manager.ts';
import { ClusterSync } from './cluster-sync.ts';
import { CredentialManager } from './credential-manager.ts';
import { IdentityManager } from './identity-manager.ts';
import { IdentityNotifier, type NotificationSink } from './notifier.ts';
import { LimitManager } from './limit-manager.ts';
import { ResourceManager } from './resource-manager.ts';
import { Revocations } from './revocations.ts';
import { TokenProvider } from './token-provider.ts';

export interface KeystoneDeps {
  db: Kysely<KeystoneDB>;
  config: KeystoneConfig;
  clock: Clock;
  ids: IdSource;
  logger: Logger;
  notifications?: NotificationSink;
}

/**
 * The identity service's domain layer: one object holding every manager, so
 * managers reach each other (tokens need users, roles and the catalog) without
 * import cycles between their files.
 */
export class Keystone {
  readonly db: Kysely<KeystoneDB>;
  readonly config: KeystoneConfig;
  readonly clock: Clock;
  readonly ids: IdSource;
  readonly logger: Logger;
  readonly notifier: IdentityNotifier;
  readonly resource: ResourceManager;
  readonly identity: IdentityManager;
  readonly assignment: AssignmentManager;
  readonly catalog: CatalogManager;
  readonly limits: LimitManager;
  readonly revocations: Revocations;
  readonly tokens: TokenProvider;
  readonly appCreds: AppCredManager;
  readonly credentials: CredentialManager;
  readonly sync: ClusterSync;
  /** Bumped by every change that can alter a token's validity or content. */
  generation = 0;

  constructor(deps: KeystoneDeps) {
    this.db = deps.db;
    this.config = deps.config;
    this.clock = deps.clock;
    this.ids = deps.ids;
    this.logger = deps.logger;
    this.notifier = new IdentityNotifier(deps.notifications, deps.config.hostname, deps.logger);
    this.resource = new ResourceManager(this);
    this.identity = new IdentityManager(this);
    this.assignment = new AssignmentManager(this);
    this.catalog = new CatalogManager(this);
    this.limits = new LimitManager(this);
    this.revocations = new Revocations(this);
    this.tokens = new TokenProvider(this);
    this.appCreds = new AppCredManager(this);
    this.credentials = new CredentialManager(this);
    this.sync = new ClusterSync(this);
  }

  async start(): Promise<void> {
    if (this.config.domainConfigDir !== null) await this.identity.loadDomainDrivers(this.config.domainConfigDir);
    await this.revocations.load();
    await this.sync.start();
  }

  /** Finishes background writes and closes directory connections; the database may close afterwards. */
  async close(): Promise<void> {
    await this.sync.settle();
    await this.identity.close();
  }

  /** After any change that can alter a token's content or validity, here and in other Keystone processes. */
  invalidate(): void {
    this.invalidateLocal();
    this.sync.bump();
  }

  /** Drops this process's caches (validations, catalog). */
  invalidateLocal(): void {
    this.generation += 1;
    this.catalog.invalidate();
  }

  /** Runs a write, turning a unique-key violation into upstream's 409 for `kind` (user, project …). */
  async unique<T>(kind: string, detail: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Conflict occurred attempting to store ${kind} - ${detail}`);
      throw e;
    }
  }
}
