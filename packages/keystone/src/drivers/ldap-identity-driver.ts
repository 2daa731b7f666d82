/**
 * Read-only LDAP identity backend, as upstream's keystone.identity.backends.ldap:
 * users and groups are searched with a service account, passwords are checked
 * by binding as the user, and nothing is ever written to the directory.
 * Every filter is built from ldapts filter objects, so request input is sent as
 * an assertion value and never parsed as filter syntax.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  AndFilter,
  Client,
  EqualityFilter,
  ExtensibleFilter,
  InvalidCredentialsError,
  NoSuchObjectError,
  OrFilter,
  PresenceFilter,
  ResultCodeError,
  type Entry,
  type Filter,
} from 'ldapts';
import type { Logger } from 'pino';
import type { LdapConfig, LdapEntityConfig } from '../domain/domain-config.ts';
import type { DriverGroup, DriverUser, IdentityDriver, IdentityDriverCapabilities, UserFilter } from './identity-driver.ts';

/** Active Directory's LDAP_MATCHING_RULE_IN_CHAIN, for group_ad_nesting. */
const MATCHING_RULE_IN_CHAIN = '1.2.840.113556.1.4.1941';
/** Ids looked up per search when resolving many at once. */
const IDS_PER_SEARCH = 100;

/** The directory could not be reached or refused the service account: a 500, logged, never the user's fault. */
export class LdapBackendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LdapBackendError';
  }
}

export class LdapIdentityDriver implements IdentityDriver {
  readonly capabilities: IdentityDriverCapabilities = { writable: false, mapsIds: true };
  private readonly searches: LdapPool;
  private readonly binds: LdapPool;

  constructor(
    private readonly conf: LdapConfig,
    private readonly log?: Logger,
  ) {
    const tls = conf.tls && { ca: conf.tls.ca?.map((f) => readFileSync(f)), rejectUnauthorized: conf.tls.rejectUnauthorized };
    const connection = { urls: conf.urls, tls, startTls: conf.tls?.startTls ?? false, connectTimeoutMs: conf.connectTimeoutMs, operationTimeoutMs: conf.operationTimeoutMs };
    const retry = { retryMax: conf.pool.retryMax, retryDelayMs: conf.pool.retryDelayMs };
    this.searches = new LdapPool({ ...connection, ...retry, size: conf.pool.size, lifetimeMs: conf.pool.lifetimeMs, bind: conf.bind }, log);
    this.binds = new LdapPool({ ...connection, ...retry, size: conf.authPool.size, lifetimeMs: conf.authPool.lifetimeMs }, log);
  }

  async authenticate(localUserId: string, password: string): Promise<boolean> {
    // An empty password would be an unauthenticated bind, which some servers accept as anonymous.
    if (!localUserId || !password) return false;
    const entry = await this.findUserEntry(localUserId);
    if (!entry) return false;
    return this.binds.use(async (client) => {
      try {
        await client.bind(entry.dn, password);
        return true;
      } catch (e) {
        if (e instanceof ResultCodeError) {
          if (!(e instanceof InvalidCredentialsError)) this.log?.debug({ code: e.code }, 'LDAP bind refused');
          return false;
        }
        throw e;
      }
    });
  }

  async getUser(localId: string): Promise<DriverUser | undefined> {
    return (await this.usersWhere([eq(this.conf.users.idAttribute, localId)]))[0];
  }

  async getUserByName(name: string): Promise<DriverUser | undefined> {
    return (await this.usersWhere([eq(this.conf.users.attributes.name, name)]))[0];
  }

  async listUsers(filter: UserFilter = {}): Promise<DriverUser[]> {
    const extra: Filter[] = [];
    if (filter.name !== undefined) extra.push(eq(this.conf.users.attributes.name, filter.name));
    const users = filter.ids !== undefined ? await this.usersByIds(filter.ids, extra) : await this.usersWhere(extra);
    // Upstream leaves `enabled` to the layer above: its meaning depends on mask, invert and emulation.
    return filter.enabled === undefined ? users : users.filter((u) => u.enabled === filter.enabled);
  }

  async getGroup(localId: string): Promise<DriverGroup | undefined> {
    return (await this.groupsWhere([eq(this.conf.groups.idAttribute, localId)]))[0];
  }

  async getGroupByName(name: string): Promise<DriverGroup | undefined> {
    return (await this.groupsWhere([eq(this.conf.groups.attributes.name, name)]))[0];
  }

  async listGroups(filter: { name?: string } = {}): Promise<DriverGroup[]> {
    return this.groupsWhere(filter.name === undefined ? [] : [eq(this.conf.groups.attributes.name, filter.name)]);
  }

  async listGroupsForUser(localUserId: string): Promise<DriverGroup[]> {
    const member = await this.memberValue(localUserId);
    return member === undefined ? [] : this.groupsWhere([this.memberFilter(member)]);
  }

  async isUserInGroup(localUserId: string, localGroupId: string): Promise<boolean> {
    const member = await this.memberValue(localUserId);
    if (member === undefined) return false;
    const found = await this.searchEntities(this.conf.groups, [eq(this.conf.groups.idAttribute, localGroupId), this.memberFilter(member)], ['1.1']);
    return found.length > 0;
  }

  async listUsersInGroup(localGroupId: string): Promise<DriverUser[]> {
    const g = this.conf.groups;
    const [group] = await this.searchEntities(g, [eq(g.idAttribute, localGroupId)], [g.idAttribute, g.memberAttribute]);
    if (!group) return [];
    if (g.adNesting) {
      return this.usersWhere([new ExtensibleFilter({ matchType: 'memberOf', rule: MATCHING_RULE_IN_CHAIN, value: group.dn })]);
    }
    const members = values(group, g.memberAttribute);
    const ids = g.membersAreIds ? members : await this.idsOfDns(members);
    const users = await this.usersByIds(ids, []);
    if (users.length < ids.length) {
      this.log?.debug({ group: localGroupId }, 'LDAP group lists members that are not users of this backend; they are ignored');
    }
    return users;
  }

  async close(): Promise<void> {
    this.searches.close();
    this.binds.close();
  }

  // ---- searches ------------------------------------------------------------

  private memberFilter(member: string): Filter {
    const g = this.conf.groups;
    if (g.adNesting && !g.membersAreIds) return new ExtensibleFilter({ matchType: 'member', rule: MATCHING_RULE_IN_CHAIN, value: member });
    return eq(g.memberAttribute, member);
  }

  /** What a group's member attribute holds for this user: its id or its DN. */
  private async memberValue(localUserId: string): Promise<string | undefined> {
    const entry = await this.findUserEntry(localUserId);
    if (!entry) return undefined;
    return this.conf.groups.membersAreIds ? localUserId : entry.dn;
  }

  private async findUserEntry(localId: string): Promise<Entry | undefined> {
    const u = this.conf.users;
    const [entry] = await this.searchEntities(u, [eq(u.idAttribute, localId)], [u.idAttribute, u.attributes.name]);
    return entry && nonBlank(first(entry, u.attributes.name)) ? entry : undefined;
  }

  private async usersWhere(filters: Filter[]): Promise<DriverUser[]> {
    const entries = await this.searchEntities(this.conf.users, filters, entityAttributes(this.conf.users));
    return this.toUsers(entries);
  }

  private async usersByIds(ids: readonly string[], filters: Filter[]): Promise<DriverUser[]> {
    const unique = [...new Set(ids)];
    const entries: Entry[] = [];
    for (let i = 0; i < unique.length; i += IDS_PER_SEARCH) {
      const chunk = unique.slice(i, i + IDS_PER_SEARCH).map((id) => eq(this.conf.users.idAttribute, id));
      entries.push(...(await this.searchEntities(this.conf.users, [...filters, new OrFilter({ filters: chunk })], entityAttributes(this.conf.users))));
    }
    return this.toUsers(entries);
  }

  private async groupsWhere(filters: Filter[]): Promise<DriverGroup[]> {
    const g = this.conf.groups;
    const entries = await this.searchEntities(g, filters, entityAttributes(g));
    return sortByName(
      entries.flatMap((e): DriverGroup[] => {
        const m = this.toEntity(g, e);
        return m ? [{ id: m.id, name: m.name, ...defined({ description: m.attrs.description, extra: m.extra }) }] : [];
      }),
    );
  }

  /**
   * One search under the entity's tree: its object class, the operator's
   * filter, a present id, and `filters`. A missing tree is an empty result, as
   * upstream.
   */
  private async searchEntities(kind: LdapEntityConfig, filters: Filter[], attributes: string[]): Promise<Entry[]> {
    const filter = new AndFilter({
      filters: [eq('objectClass', kind.objectClass), ...(kind.filter ? [kind.filter] : []), new PresenceFilter({ attribute: kind.idAttribute }), ...filters],
    });
    return this.searchAt(kind.treeDn, this.conf.scope, filter, attributes);
  }

  private async searchAt(base: string, scope: 'base' | 'one' | 'sub', filter: Filter, attributes: string[]): Promise<Entry[]> {
    const { pageSize, derefAliases, operationTimeoutMs } = this.conf;
    return this.searches.use(async (client) => {
      try {
        const { searchEntries } = await client.search(base, {
          scope,
          filter,
          attributes,
          derefAliases,
          paged: pageSize > 0 ? { pageSize } : false,
          timeLimit: Math.ceil(operationTimeoutMs / 1000),
        });
        return searchEntries;
      } catch (e) {
        if (e instanceof NoSuchObjectError) return [];
        throw e;
      }
    });
  }

  /** Member DNs to user ids: from the DN itself when its first RDN is the id attribute, else by reading the entry. */
  private async idsOfDns(dns: string[]): Promise<string[]> {
    const idAttribute = this.conf.users.idAttribute;
    const ids: string[] = [];
    for (const dn of dns) {
      const fromDn = rdnValue(dn, idAttribute);
      if (fromDn !== undefined) {
        ids.push(fromDn);
        continue;
      }
      try {
        const [entry] = await this.searchAt(dn, 'base', new PresenceFilter({ attribute: 'objectClass' }), [idAttribute]);
        const id = entry && first(entry, idAttribute);
        if (id !== undefined) ids.push(id);
      } catch (e) {
        // A member value that is no DN the server accepts names no user; it must not break the listing.
        if (!(e instanceof ResultCodeError)) throw e;
      }
    }
    return ids;
  }

  // ---- entries to models ---------------------------------------------------

  private async toUsers(entries: Entry[]): Promise<DriverUser[]> {
    const enabledMembers = this.conf.enabled.emulation && entries.length ? await this.emulationMembers() : undefined;
    const users = entries.flatMap((e): DriverUser[] => {
      const m = this.toEntity(this.conf.users, e);
      if (!m) return [];
      const enabled = enabledMembers
        ? enabledMembers.has(this.conf.enabled.emulation!.membersAreIds ? m.id : normalizeDn(e.dn))
        : this.enabledFrom(m.attrs.enabled);
      const { email, description, default_project_id: defaultProjectId } = m.attrs;
      return [{ id: m.id, name: m.name, enabled, ...defined({ email, description, defaultProjectId, extra: m.extra }) }];
    });
    return sortByName(users);
  }

  /** Members of user_enabled_emulation_dn, as ids or normalized DNs. */
  private async emulationMembers(): Promise<Set<string>> {
    const em = this.conf.enabled.emulation!;
    const [group] = await this.searchAt(em.dn, 'base', eq('objectClass', em.objectClass), [em.memberAttribute]);
    const members = group ? values(group, em.memberAttribute) : [];
    return new Set(em.membersAreIds ? members : members.map(normalizeDn));
  }

  /** upstream's UserApi._ldap_res_to_model, enabled part. */
  private enabledFrom(raw: string | undefined): boolean {
    const { attribute, mask, invert } = this.conf.enabled;
    if (attribute === undefined) return true;
    const value = raw ?? this.conf.enabled.default;
    if (mask !== 0) return (Number.parseInt(value, 10) & mask) !== mask;
    const on = value.toLowerCase() === 'true';
    return invert ? !on : on;
  }

  /** Id, name and mapped attributes; undefined for an entry without a usable name (upstream skips those). */
  private toEntity(kind: LdapEntityConfig, e: Entry): MappedEntry | undefined {
    const ids = values(e, kind.idAttribute);
    if (ids.length === 0) return undefined;
    // A multi-valued id attribute cannot identify the entry: upstream falls back to the DN's RDN.
    const id = ids.length === 1 ? ids[0] : (rdnValue(e.dn, kind.idAttribute) ?? ids[0]);
    const attrs: Record<string, string | undefined> = {};
    for (const [key, attribute] of Object.entries(kind.attributes)) attrs[key] = first(e, attribute);
    const name = attrs.name;
    if (!nonBlank(name)) return undefined;
    const extra: Record<string, unknown> = {};
    for (const [attribute, key] of Object.entries(kind.additional)) {
      const v = first(e, attribute);
      if (v !== undefined) extra[key] = v;
    }
    return { id, name, attrs, ...(Object.keys(extra).length ? { extra } : {}) };
  }
}

interface MappedEntry {
  id: string;
  name: string;
  /** Keystone attribute (email, description, enabled …) → first LDAP value. */
  attrs: Record<string, string | undefined>;
  extra?: Record<string, unknown>;
}

/** The value of `attribute` in the DN's first RDN, if it is there. */
function rdnValue(dn: string, attribute: string): string | undefined {
  return parseDn(dn)?.[0]?.find(([type]) => type === attribute.toLowerCase())?.[1];
}

/** The object without its undefined properties, for optional model fields. */
function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function entityAttributes(kind: LdapEntityConfig): string[] {
  return [...new Set([kind.idAttribute, ...Object.values(kind.attributes), ...Object.keys(kind.additional)])];
}

function eq(attribute: string, value: string): Filter {
  return new EqualityFilter({ attribute, value });
}

function nonBlank(v: string | undefined): v is string {
  return v !== undefined && v.trim() !== '';
}

function sortByName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Attribute values of an entry, matching the attribute name case-insensitively as LDAP does. */
function values(e: Entry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  for (const [key, v] of Object.entries(e)) {
    if (key.toLowerCase() !== wanted || key === 'dn') continue;
    const list = Array.isArray(v) ? v : [v];
    return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
  }
  return [];
}

function first(e: Entry, attribute: string): string | undefined {
  return values(e, attribute)[0];
}

/**
 * RFC 4514 DN parsing: RDNs of [lowercased type, unescaped value] pairs, or
 * undefined when the text is not a DN. `#`-hex (BER) values stay as written.
 */
export function parseDn(dn: string): Array<Array<[string, string]>> | undefined {
  const rdns: Array<Array<[string, string]>> = [];
  let rdn: Array<[string, string]> = [];
  let i = 0;
  const n = dn.length;
  const skipSpaces = () => {
    while (i < n && dn[i] === ' ') i++;
  };
  skipSpaces();
  if (i === n) return [];
  for (;;) {
    skipSpaces();
    const typeStart = i;
    while (i < n && dn[i] !== '=' && dn[i] !== ',' && dn[i] !== '+') i++;
    const type = dn.slice(typeStart, i).trim().toLowerCase();
    if (i === n || dn[i] !== '=' || !type) return undefined;
    i++;
    skipSpaces();
    const bytes: number[] = [];
    let trailingSpaces = 0;
    while (i < n && dn[i] !== ',' && dn[i] !== '+' && dn[i] !== ';') {
      const c = dn[i];
      if (c === '\\') {
        const hex = dn.slice(i + 1, i + 3);
        if (/^[0-9a-fA-F]{2}$/.test(hex)) {
          bytes.push(Number.parseInt(hex, 16));
          i += 3;
        } else if (i + 1 < n) {
          bytes.push(...Buffer.from(dn[i + 1], 'utf8'));
          i += 2;
        } else {
          return undefined;
        }
        trailingSpaces = 0;
        continue;
      }
      trailingSpaces = c === ' ' ? trailingSpaces + 1 : 0;
      bytes.push(...Buffer.from(c, 'utf8'));
      i++;
    }
    rdn.push([type, Buffer.from(bytes.slice(0, bytes.length - trailingSpaces)).toString('utf8')]);
    if (i === n) {
      rdns.push(rdn);
      return rdns;
    }
    if (dn[i] !== '+') {
      rdns.push(rdn);
      rdn = [];
    }
    i++;
  }
}

/**
 * A DN in a form two spellings of the same entry share: types lowercased,
 * values compared case-insensitively with runs of spaces collapsed, as
 * upstream's is_dn_equal for the attributes (cn, uid, ou, dc) DNs are made of.
 */
export function normalizeDn(dn: string): string {
  const rdns = parseDn(dn);
  if (!rdns) return dn.toLowerCase();
  return rdns
    .map((rdn) =>
      rdn
        .map(([t, v]) => `${t}=${v.toLowerCase().replace(/\s+/g, ' ').trim()}`)
        .sort()
        .join('+'),
    )
    .join(',');
}

// ---- connections -------------------------------------------------------------

interface PoolOptions {
  urls: string[];
  tls?: { ca?: Buffer[]; rejectUnauthorized: boolean };
  startTls: boolean;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
  size: number;
  /** 0: close after every use. */
  lifetimeMs: number;
  retryMax: number;
  retryDelayMs: number;
  bind?: LdapConfig['bind'];
}

interface Connection {
  client: Client;
  url: string;
  openedAt: number;
  /**
   * Whether our socket is still open. ldapts' own isConnected misses a close
   * after StartTLS (it compares the closed socket with the TLS one), and
   * would then send into the void until the operation timed out.
   */
  open: () => boolean;
}

/**
 * Connections used one request at a time (a bind changes who the connection
 * is, and LDAP forbids other operations during a bind), kept open for reuse.
 * A connection the server dropped is replaced and the operation retried; a
 * dropped connection is never silently reopened underneath us, so nothing
 * is ever sent unauthenticated or in clear after a StartTLS.
 */
class LdapPool {
  private readonly idle: Connection[] = [];
  private opened = 0;
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly o: PoolOptions,
    private readonly log?: Logger,
  ) {}

  async use<T>(op: (client: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let conn: Connection | undefined;
      try {
        conn = await this.acquire();
        const result = await op(conn.client);
        this.release(conn);
        return result;
      } catch (e) {
        if (!isConnectionFailure(e)) {
          if (conn) this.release(conn);
          throw e;
        }
        if (conn) this.discard(conn);
        if (attempt >= this.o.retryMax || isTimeout(e)) {
          throw new LdapBackendError(`LDAP server ${conn?.url ?? this.o.urls.join(', ')} is unavailable: ${(e as Error).message}`, { cause: e });
        }
        this.log?.warn({ err: (e as Error).message, attempt: attempt + 1 }, 'LDAP connection failed, retrying');
        await new Promise((r) => setTimeout(r, this.o.retryDelayMs));
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) this.discard(conn);
  }

  private async acquire(): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new LdapBackendError('LDAP driver is closed');
      const now = Date.now();
      let conn: Connection | undefined;
      while ((conn = this.idle.pop())) {
        if (conn.open() && now - conn.openedAt < this.o.lifetimeMs) return conn;
        this.discard(conn);
      }
      if (this.opened < this.o.size) {
        this.opened++;
        try {
          return await this.open();
        } catch (e) {
          this.opened--;
          this.wakeOne();
          throw e;
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(conn: Connection): void {
    if (this.closed || this.o.lifetimeMs === 0 || !conn.open()) {
      this.discard(conn);
      return;
    }
    this.idle.push(conn);
    this.wakeOne();
  }

  private discard(conn: Connection): void {
    this.opened--;
    // An unbind on a closed StartTLS connection would wait for its timeout.
    if (conn.open()) conn.client.unbind().catch(() => undefined);
    this.wakeOne();
  }

  private wakeOne(): void {
    this.waiting.shift()?.();
  }

  /** The first URL that connects (and accepts the service account) wins, as upstream. */
  private async open(): Promise<Connection> {
    let lastError: unknown;
    for (const url of this.o.urls) {
      let client: Client;
      let open = true;
      try {
        const socket = await openSocket(url, this.o);
        socket.once('close', () => {
          open = false;
        });
        client = singleSocketClient(url, socket, this.o);
      } catch (e) {
        lastError = e;
        continue;
      }
      try {
        // With a socket given, Node checks the certificate against `host` (default localhost), SNI aside.
        if (this.o.startTls) await client.startTLS({ ...this.o.tls, host: hostOf(url), servername: serverName(url) });
        if (this.o.bind) await client.bind(this.o.bind.dn, this.o.bind.password());
        return { client, url, openedAt: Date.now(), open: () => open };
      } catch (e) {
        client.unbind().catch(() => undefined);
        if (e instanceof ResultCodeError) {
          // Wrong service credentials or a refused StartTLS: a configuration problem, retrying cannot help.
          throw new LdapBackendError(`LDAP server ${url} refused the ${this.o.bind ? `bind as ${this.o.bind.dn}` : 'connection'}: ${e.message}`, { cause: e });
        }
        lastError = e;
      }
    }
    throw lastError;
  }
}

function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

/** SNI takes names only. */
function serverName(url: string): string | undefined {
  const host = hostOf(url);
  return isIP(host) ? undefined : host;
}

/**
 * Connects before handing the socket to ldapts, so that an unreachable URL
 * is noticed here (and the next one tried) rather than at the first request.
 */
function openSocket(url: string, o: PoolOptions): Promise<Socket> {
  const u = new URL(url);
  const ldaps = u.protocol === 'ldaps:';
  const host = hostOf(url);
  const port = u.port ? Number(u.port) : ldaps ? 636 : 389;
  return new Promise((resolve, reject) => {
    const socket = ldaps ? tlsConnect({ host, port, servername: serverName(url), ...o.tls }) : netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`Connection to ${url} timed out`));
    }, o.connectTimeoutMs);
    socket.once(ldaps ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
  });
}

/** A Client on `socket` that never opens another: a reconnect attempt fails instead of going out unauthenticated or in clear. */
function singleSocketClient(url: string, socket: Socket, o: PoolOptions): Client {
  const closed = () => new Error('LDAP connection was closed');
  let handedOver = false;
  let upgraded = false;
  const ldaps = url.toLowerCase().startsWith('ldaps:');
  const existing = () => {
    if (handedOver) throw closed();
    handedOver = true;
    return socket;
  };
  return new Client({
    url,
    timeout: o.operationTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    createConnection: existing as unknown as typeof netConnect,
    createSecureConnection: (ldaps
      ? existing
      : (options: ConnectionOptions) => {
          if (upgraded) throw closed();
          upgraded = true;
          return tlsConnect(options);
        }) as unknown as typeof tlsConnect,
  });
}

function isConnectionFailure(e: unknown): boolean {
  return e instanceof Error && !(e instanceof ResultCodeError) && !(e instanceof LdapBackendError) && !(e instanceof TypeError) && !(e instanceof RangeError);
}

function isTimeout(e: unknown): boolean {
  return e instanceof Error && /timed? ?out/i.test(e.message);
}
