import type { Transaction } from 'kysely';
import { forbidden, isApiError, type ApiError } from '@onestack/core/errors.ts';
import { insertIgnoringDuplicates } from '@onestack/core/db/index.ts';
import type { IdMappingRow, KeystoneDB } from '../db/schema.ts';
import type { DriverGroup, DriverUser, IdentityDriver } from '../drivers/identity-driver.ts';
import { LdapIdentityDriver } from '../drivers/ldap-identity-driver.ts';
import { loadDomainConfigs, publicIdFor } from './domain-config.ts';
import type { Group, User } from './identity-manager.ts';
import type { Keystone } from './keystone.ts';

/**
 * How long a directory's answer may be served from the token cache: upstream's
 * [cache] expiration_time default, after which a user disabled or removed in
 * LDAP stops validating.
 */
const DIRECTORY_CACHE_MS = 600_000;
/** id_mapping rows per insert, well under every database's bound-parameter limit. */
export const MAPPING_BATCH = 200;

export type EntityType = IdMappingRow['entity_type'];

/** What a public id from a domain-specific backend stands for: its domain's driver and the driver's own id. */
export interface Mapped {
  domainId: string;
  localId: string;
  driver: IdentityDriver;
}

/**
 * Upstream's domain-specific identity drivers: domains that keep their users and
 * groups in a read-only LDAP directory. Their entities get public ids through
 * id_mapping (upstream's sha256 generator) and are never written.
 */
export class DomainDirectories {
  /** Domain id → its directory; domains not listed are SQL. */
  private readonly drivers = new Map<string, IdentityDriver>();
  /** Public ids known to be in id_mapping, so listing a directory again writes nothing. */
  private readonly mappedIds = new Set<string>();
  private expiry: NodeJS.Timeout | undefined;

  constructor(private readonly ks: Keystone) {}

  /**
   * One LDAP driver per keystone.<domain name>.conf, read once at start-up. A broken
   * file stops start-up (ConfigError); a file naming no existing domain is skipped,
   * as upstream.
   */
  async load(dir: string): Promise<void> {
    const { configs, warnings } = loadDomainConfigs(dir);
    for (const w of warnings) this.ks.logger.warn(w);
    for (const c of configs) {
      const domain = await this.ks.resource.getDomainByName(c.domainName).catch((e: unknown) => {
        if (isApiError(e) && e.status === 404) return undefined;
        throw e;
      });
      if (!domain) {
        this.ks.logger.warn(`Invalid domain name (${c.domainName}) found in config file name`);
        continue;
      }
      this.drivers.set(domain.id, new LdapIdentityDriver(c.ldap, this.ks.logger.child({ domain_id: domain.id })));
      this.ks.logger.info({ domain_id: domain.id, file: c.file }, 'domain-specific identity driver loaded');
    }
    if (this.drivers.size && !this.expiry) {
      this.expiry = setInterval(() => this.ks.invalidateLocal(), DIRECTORY_CACHE_MS);
      this.expiry.unref();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.expiry);
    this.expiry = undefined;
    const drivers = [...this.drivers.values()];
    this.drivers.clear();
    await Promise.all(drivers.map((d) => d.close?.()));
  }

  /** The directory of a domain, undefined for SQL domains. */
  driverFor(domainId: string | undefined): IdentityDriver | undefined {
    return domainId === undefined ? undefined : this.drivers.get(domainId);
  }

  /** The directory entity behind a public id; undefined for SQL entities (their ids are their own). */
  async mapped(publicId: string, type: EntityType): Promise<Mapped | undefined> {
    if (this.drivers.size === 0) return undefined;
    const row = await this.ks.db.selectFrom('id_mapping').selectAll().where('public_id', '=', publicId).executeTakeFirst();
    const driver = row?.entity_type === type ? this.drivers.get(row.domain_id) : undefined;
    return driver && { domainId: row!.domain_id, localId: row!.local_id, driver };
  }

  usersFrom(domainId: string, users: DriverUser[]): Promise<User[]> {
    return this.withPublicIds(domainId, 'user', users, (u, id) => driverUser(domainId, id, u));
  }

  groupsFrom(domainId: string, groups: DriverGroup[]): Promise<Group[]> {
    return this.withPublicIds(domainId, 'group', groups, (g, id) => driverGroup(domainId, id, g));
  }

  /** Upstream's answer to a write on a read-only backend: the generic 403, the reason only in the log. */
  readOnly(domainId: string): ApiError {
    this.ks.logger.warn({ domain_id: domainId }, 'LDAP does not support write operations');
    return forbidden('You are not authorized to perform the requested action.');
  }

  /** Refuses a write to `id` when it lives in a directory. */
  async refuseMapped(id: string, type: EntityType): Promise<void> {
    const m = await this.mapped(id, type);
    if (m) throw this.readOnly(m.domainId);
  }

  /**
   * A membership joins a user and a group of the same backend; upstream names
   * the entities by the backends' own ids here. Returns the directory both
   * live in, if any.
   */
  async sameBackend(userId: string, groupId: string): Promise<Mapped | undefined> {
    const [user, group] = await Promise.all([this.mapped(userId, 'user'), this.mapped(groupId, 'group')]);
    if (user?.driver !== group?.driver) {
      throw forbidden(
        `Group membership across backend boundaries is not allowed. Group in question is ${group?.localId ?? groupId}, user is ${user?.localId ?? userId}.`,
      );
    }
    return group;
  }

  /**
   * A deleted domain's directory users and groups: their public ids and, through
   * `purge`, everything granted to them go; the directory itself is never touched.
   */
  async purgeMappings(tx: Transaction<KeystoneDB>, domainId: string, purge: (kind: 'user' | 'group', ids: string[]) => Promise<void>): Promise<void> {
    const rows = await tx.selectFrom('id_mapping').select(['public_id', 'entity_type']).where('domain_id', '=', domainId).execute();
    for (const kind of ['user', 'group'] as const) {
      const ids = rows.filter((r) => r.entity_type === kind).map((r) => r.public_id);
      for (let i = 0; i < ids.length; i += MAPPING_BATCH) await purge(kind, ids.slice(i, i + MAPPING_BATCH));
    }
    await tx.deleteFrom('id_mapping').where('domain_id', '=', domainId).execute();
    for (const r of rows) this.mappedIds.delete(r.public_id);
  }

  /** Entities read from a directory, with their public ids recorded in id_mapping, as the hash cannot be reversed. */
  private async withPublicIds<T extends { id: string }, R>(domainId: string, type: EntityType, items: T[], to: (item: T, publicId: string) => R): Promise<R[]> {
    const rows = new Map<string, IdMappingRow>();
    const ids = items.map((item) => {
      const id = publicIdFor(domainId, item.id, type);
      if (!this.mappedIds.has(id)) rows.set(id, { public_id: id, domain_id: domainId, local_id: item.id, entity_type: type });
      return id;
    });
    const missing = [...rows.values()];
    for (let i = 0; i < missing.length; i += MAPPING_BATCH) {
      await insertIgnoringDuplicates(this.ks.db, 'id_mapping', missing.slice(i, i + MAPPING_BATCH)).execute();
    }
    for (const id of rows.keys()) this.mappedIds.add(id);
    return items.map((item, i) => to(item, ids[i]!));
  }
}

/** A directory user as Keystone shows it: no options, no password expiry (those are SQL's). */
export function driverUser(domainId: string, id: string, u: DriverUser): User {
  return {
    id,
    name: u.name,
    domainId,
    enabled: u.enabled,
    defaultProjectId: u.defaultProjectId ?? null,
    description: u.description ?? null,
    email: u.email ?? null,
    extra: u.extra ?? {},
    options: {},
    passwordExpiresAt: null,
  };
}

export function driverGroup(domainId: string, id: string, g: DriverGroup): Group {
  return { id, name: g.name, domainId, description: g.description ?? '', extra: g.extra ?? {} };
}
