/**
 * Where users and groups of a domain live. The SQL driver is the default; a
 * domain can be configured to read them from LDAP instead (domain-specific
 * drivers, as upstream). Contract:
 * - ids passed in and out are the driver's *local* ids; the identity manager maps
 *   them to public ids (for SQL they are the same).
 * - lookups of a missing entity return undefined, never throw.
 * - the interface only reads: for a read-only driver (capabilities.writable
 *   false) the identity manager refuses every write to the domain with a 403
 *   before touching anything, as upstream's LDAP driver does.
 * - authenticate() returns false on a wrong password and never reveals why; an
 *   empty password or an unknown user is a wrong password.
 * - lists come sorted by name.
 * - a backend that cannot be reached throws (a 500), it does not answer "not found".
 */
export interface DriverUser {
  id: string;
  name: string;
  enabled: boolean;
  email?: string;
  description?: string;
  defaultProjectId?: string | null;
  extra?: Record<string, unknown>;
}

export interface DriverGroup {
  id: string;
  name: string;
  description?: string;
  extra?: Record<string, unknown>;
}

export interface UserFilter {
  /** Exact name (LDAP compares with the attribute's matching rule, usually case-insensitively). */
  name?: string;
  enabled?: boolean;
  /** Only these local ids (missing ones are left out). */
  ids?: readonly string[];
}

export interface IdentityDriverCapabilities {
  writable: boolean;
  /** Whether the manager maps local ids to generated public ids (LDAP) or not (SQL). */
  mapsIds: boolean;
}

export interface IdentityDriver {
  readonly capabilities: IdentityDriverCapabilities;
  authenticate(localUserId: string, password: string): Promise<boolean>;
  getUser(localId: string): Promise<DriverUser | undefined>;
  getUserByName(name: string): Promise<DriverUser | undefined>;
  listUsers(filter?: UserFilter): Promise<DriverUser[]>;
  getGroup(localId: string): Promise<DriverGroup | undefined>;
  getGroupByName(name: string): Promise<DriverGroup | undefined>;
  listGroups(filter?: { name?: string }): Promise<DriverGroup[]>;
  /** Members that are not users of this backend are left out; an unknown group has none. */
  listUsersInGroup(localGroupId: string): Promise<DriverUser[]>;
  /** An unknown user is in no group. */
  listGroupsForUser(localUserId: string): Promise<DriverGroup[]>;
  isUserInGroup(localUserId: string, localGroupId: string): Promise<boolean>;
  close?(): Promise<void>;
}
