/**
 * Where users and groups of a domain live. The SQL driver is the default; a
 * domain can be configured to read them from LDAP instead (domain-specific
 * drivers, as upstream). Contract:
 * - ids passed in and out are the driver's *local* ids; the identity manager maps
 *   them to public ids (for SQL they are the same).
 * - lookups of a missing entity return undefined, never throw.
 * - a read-only driver (capabilities.writable false) throws `forbidden` on writes;
 *   nothing is written anywhere in that case.
 * - authenticate() returns false on a wrong password and never reveals why.
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
  listUsers(filter: { name?: string; enabled?: boolean }): Promise<DriverUser[]>;
  getGroup(localId: string): Promise<DriverGroup | undefined>;
  getGroupByName(name: string): Promise<DriverGroup | undefined>;
  listGroups(filter: { name?: string }): Promise<DriverGroup[]>;
  listUsersInGroup(localGroupId: string): Promise<DriverUser[]>;
  listGroupsForUser(localUserId: string): Promise<DriverGroup[]>;
  close?(): Promise<void>;
}
