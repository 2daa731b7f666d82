import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, sql } from 'kysely';
import mysql from 'mysql2';
import mysqlPromise from 'mysql2/promise';
import pg from 'pg';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

export interface Database<DB> {
  db: Kysely<DB>;
  dialect: Dialect;
  /** As given to openDatabase, password included: pass it through redactUrl before printing it. */
  url: string;
  /** The logger given to openDatabase (a no-op without one), for migrations and the like. */
  log(msg: string): void;
  close(): Promise<void>;
}

export interface OpenOptions {
  logger?: (msg: string) => void;
}

type Target =
  | { dialect: 'sqlite'; path: string | null }
  | { dialect: 'postgres'; url: URL; database: string; poolSize: number }
  | { dialect: 'mysql'; url: URL; database: string; poolSize: number };

/** Connections per pool unless the URL's `max_pool_size` says otherwise (the drivers' own default). */
const DEFAULT_POOL_SIZE = 10;

/** The URL with any password (in the userinfo or a password query parameter) replaced by `***`. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not parseable (e.g. an unencoded character in the password): blank everything
    // between the user name and the last '@', erring on the side of hiding too much.
    return url.replace(/^([^:/?#]+:\/\/[^:@/]*:)[^]*@/, '$1***@');
  }
  if (u.password) u.password = '***';
  for (const key of [...u.searchParams.keys()]) {
    if (/pass/i.test(key)) u.searchParams.set(key, '***');
  }
  return u.toString();
}

function parseTarget(url: string): Target {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'sqlite': {
      // Handled by hand: WHATWG URL parsing rejects `sqlite://:memory:`.
      if (url === 'sqlite://:memory:') return { dialect: 'sqlite', path: null };
      const rest = url.slice('sqlite://'.length);
      if (!url.startsWith('sqlite://') || !rest.startsWith('/')) {
        throw new Error(`unsupported sqlite URL ${redactUrl(url)}: use sqlite:///absolute/path.db or sqlite://:memory:`);
      }
      return { dialect: 'sqlite', path: decodeURIComponent(rest) };
    }
    case 'postgres':
    case 'postgresql':
    case 'mysql':
    case 'mariadb': {
      const u = new URL(url);
      const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
      if (!database) throw new Error(`database URL ${redactUrl(url)} names no database`);
      const dialect = scheme === 'mysql' || scheme === 'mariadb' ? 'mysql' : 'postgres';
      return { dialect, url: u, database, poolSize: poolSize(u) };
    }
    default:
      throw new Error(`unsupported database URL ${redactUrl(url)}: expected sqlite://, postgresql:// or mysql://`);
  }
}

/**
 * oslo.db's `max_pool_size`, given as a query parameter of the URL (taken out of it before
 * the driver sees it): every service process holds one pool per database, so a server's
 * connection limit (PostgreSQL's 100, MariaDB's 151 by default) caps processes × pool size.
 */
function poolSize(u: URL): number {
  const given = u.searchParams.get('max_pool_size');
  u.searchParams.delete('max_pool_size');
  if (given === null) return DEFAULT_POOL_SIZE;
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) throw new Error(`database URL ${redactUrl(u.toString())}: max_pool_size must be a positive integer, not ${given}`);
  return n;
}

/**
 * Opens a connection pool (one connection for SQLite) and checks that it works.
 * A PostgreSQL or MySQL database that does not exist yet is created. PostgreSQL URLs
 * take pg's query parameters (sslmode, …); MySQL URLs are read for host, port, user,
 * password and database only. Both take `max_pool_size` (default 10).
 */
export async function openDatabase<DB>(url: string, opts: OpenOptions = {}): Promise<Database<DB>> {
  const log = opts.logger ?? (() => {});
  const target = parseTarget(url);
  let db: Kysely<DB>;
  try {
    db = await connect<DB>(target, log);
  } catch (err) {
    throw new Error(`cannot open database ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  return { db, dialect: target.dialect, url, log, close: () => db.destroy() };
}

async function connect<DB>(target: Target, log: (msg: string) => void): Promise<Kysely<DB>> {
  if (target.dialect === 'sqlite') return openSqlite<DB>(target.path, log);
  const open = target.dialect === 'postgres' ? () => openPostgres<DB>(target.url, target.poolSize, log) : () => openMysql<DB>(target.url, target.poolSize);
  const db = open();
  try {
    await sql`select 1`.execute(db);
    return db;
  } catch (err) {
    await db.destroy();
    if (!isMissingDatabase(err)) throw err;
  }
  await createDatabase(target);
  log(`created database ${target.database} at ${redactUrl(target.url.toString())}`);
  const created = open();
  try {
    await sql`select 1`.execute(created);
  } catch (err) {
    await created.destroy();
    throw err;
  }
  return created;
}

function openSqlite<DB>(path: string | null, log: (msg: string) => void): Kysely<DB> {
  if (path) mkdirSync(dirname(path), { recursive: true });
  const sqlite = new BetterSqlite3(path ?? ':memory:');
  try {
    // WAL lets readers proceed while one writer commits; NORMAL is durable at each
    // checkpoint under WAL, which is enough for a control plane and much faster.
    const mode = sqlite.pragma('journal_mode = WAL', { simple: true });
    if (path && mode !== 'wal') log(`sqlite ${path}: journal_mode is ${String(mode)}, not wal`);
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  } catch (err) {
    sqlite.close();
    throw err;
  }
  return new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
}

const STATEMENT_CACHE_MAX = 2000;

/**
 * Kysely prepares every query anew; on hot paths (token validation) preparing
 * cost as much as running. Statements are reusable once finished, and queries
 * here run synchronously one at a time, so identical SQL texts share one.
 */
function withStatementCache(sqlite: BetterSqlite3.Database) {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let stmt = statements.get(text);
      if (!stmt) {
        // `IN (?, ?, …)` lists make texts vary: start over rather than grow without bound.
        if (statements.size >= STATEMENT_CACHE_MAX) statements.clear();
        stmt = sqlite.prepare(text);
        statements.set(text, stmt);
      }
      return stmt;
    },
  };
}

export const SQLITE_BUSY_TIMEOUT_MS = 5000;

const PG_INT8 = 20;
const PG_NUMERIC = 1700;

function parseSafeNumber(text: string): number {
  const n = Number(text);
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) {
    throw new RangeError(`database value ${text} does not fit a JavaScript number exactly`);
  }
  return n;
}

// pg returns int8 and numeric as strings while the other drivers return numbers; bigint
// columns hold millisecond timestamps and count()/sum() yield int8/numeric, so parse
// them as numbers here and let every dialect return the same JavaScript types.
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    (oid === PG_INT8 || oid === PG_NUMERIC) && format !== 'binary'
      ? parseSafeNumber
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function openPostgres<DB>(url: URL, max: number, log: (msg: string) => void): Kysely<DB> {
  const pool = new pg.Pool({ connectionString: url.toString(), types: pgTypes, max });
  // An idle client losing its server (a restart) is reported here; unhandled it would
  // crash the process, handled the pool replaces the client on next use.
  pool.on('error', (err) => log(`postgres pool error on ${redactUrl(url.toString())}: ${err.message}`));
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

function mysqlOptions(url: URL, withDatabase: boolean): mysql.PoolOptions {
  return {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: withDatabase ? decodeURIComponent(url.pathname.slice(1)) : undefined,
    charset: 'utf8mb4',
    // DECIMAL (what SUM() returns) as numbers, as the other dialects do.
    decimalNumbers: true,
  };
}

function openMysql<DB>(url: URL, connectionLimit: number): Kysely<DB> {
  const pool = mysql.createPool({ ...mysqlOptions(url, true), connectionLimit });
  return new Kysely<DB>({ dialect: new MysqlDialect({ pool }) });
}

function isMissingDatabase(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown };
  return e?.code === '3D000' || e?.code === 'ER_BAD_DB_ERROR' || e?.errno === 1049;
}

const pgIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
const mysqlIdent = (name: string) => `\`${name.replace(/`/g, '``')}\``;

function adminPgUrl(url: URL): string {
  const admin = new URL(url.toString());
  admin.pathname = '/postgres';
  return admin.toString();
}

async function withPgAdmin<T>(url: URL, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminPgUrl(url) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function withMysqlAdmin<T>(url: URL, fn: (conn: mysqlPromise.Connection) => Promise<T>): Promise<T> {
  const conn = await mysqlPromise.createConnection(mysqlOptions(url, false));
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

async function createDatabase(target: Target & { dialect: 'postgres' | 'mysql' }): Promise<void> {
  if (target.dialect === 'postgres') {
    await withPgAdmin(target.url, async (client) => {
      try {
        await client.query(`CREATE DATABASE ${pgIdent(target.database)}`);
      } catch (err) {
        // Another process created it first: 42P04, or 23505 when the two creates raced
        // on pg_database's unique index.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    });
  } else {
    // utf8mb4_bin: comparisons and unique keys are case- and accent-sensitive, as they
    // are on SQLite and PostgreSQL, so the same data behaves the same on every dialect.
    await withMysqlAdmin(target.url, (conn) =>
      conn.query(`CREATE DATABASE IF NOT EXISTS ${mysqlIdent(target.database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`),
    );
  }
}

/**
 * Drops the database a URL names (for tests cleaning up after themselves): the
 * PostgreSQL or MySQL database, or the SQLite file with its WAL and shared-memory files.
 */
export async function dropDatabase(url: string): Promise<void> {
  const target = parseTarget(url);
  try {
    if (target.dialect === 'sqlite') {
      if (target.path) for (const suffix of ['', '-wal', '-shm']) rmSync(target.path + suffix, { force: true });
    } else if (target.dialect === 'postgres') {
      await withPgAdmin(target.url, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${pgIdent(target.database)} WITH (FORCE)`),
      );
    } else {
      await withMysqlAdmin(target.url, (conn) => conn.query(`DROP DATABASE IF EXISTS ${mysqlIdent(target.database)}`));
    }
  } catch (err) {
    throw new Error(`cannot drop database ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
}
