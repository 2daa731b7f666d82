import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { ColumnDataType, Expression, Kysely } from 'kysely';
import { beginImmediate } from './cas.ts';
import type { Database, Dialect } from './database.ts';

/** One schema change. Versions are positive integers, applied in ascending order, once. */
export interface Migration {
  version: number;
  name: string;
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
}

export interface AppliedMigration {
  version: number;
  name: string;
  /** Milliseconds since the epoch. */
  appliedAt: number;
}

export interface MigrationStatus {
  /** Highest version recorded in the database; 0 before the first migration. */
  current: number;
  /** Highest version this code knows. */
  latest: number;
  applied: AppliedMigration[];
  pending: { version: number; name: string }[];
  /** Why runMigrations would refuse this database, or null. */
  problem: string | null;
}

export interface MigrationResult {
  /** Names of the migrations this call applied, in order. */
  applied: string[];
  current: number;
}

/** How long runMigrations waits for another process that is migrating the same service. */
const LOCK_WAIT_MS = 5 * 60_000;
const LOCK_POLL_MS = 50;

const migrationTable = (service: string) => `${service}_migration`;

function checkService(service: string): void {
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(service)) {
    throw new Error(`invalid service name for migrations: ${JSON.stringify(service)}`);
  }
}

function sortedMigrations(service: string, migrations: Migration[]): Migration[] {
  const seen = new Set<number>();
  for (const m of migrations) {
    if (!Number.isSafeInteger(m.version) || m.version < 1) {
      throw new Error(`${service}: migration ${JSON.stringify(m.name)} has invalid version ${m.version}`);
    }
    if (seen.has(m.version)) throw new Error(`${service}: migration version ${m.version} is used twice`);
    if (!m.name || m.name.length > 255) throw new Error(`${service}: migration ${m.version} needs a name of 1-255 characters`);
    seen.add(m.version);
  }
  return [...migrations].sort((a, b) => a.version - b.version);
}

async function readApplied(db: Kysely<any>, service: string): Promise<AppliedMigration[]> {
  const rows = await db
    .selectFrom(migrationTable(service))
    .select(['version', 'name', 'applied_at'])
    .orderBy('version')
    .execute();
  return rows.map((r) => ({ version: Number(r.version), name: String(r.name), appliedAt: Number(r.applied_at) }));
}

function plan(
  service: string,
  known: Migration[],
  applied: AppliedMigration[],
): { status: MigrationStatus; todo: Migration[] } {
  const latest = known.at(-1)?.version ?? 0;
  const current = applied.at(-1)?.version ?? 0;
  const byVersion = new Map(known.map((m) => [m.version, m]));
  const done = new Set(applied.map((a) => a.version));
  const todo = known.filter((m) => !done.has(m.version));
  let problem: string | null = null;
  if (current > latest) {
    problem = `${service}: database is at version ${current}, newer than this code's ${latest}`;
  } else {
    for (const a of applied) {
      const m = byVersion.get(a.version);
      if (!m) problem ??= `${service}: database has migration ${a.version} (${a.name}) that this code does not know`;
      else if (m.name !== a.name) {
        problem ??= `${service}: database recorded migration ${a.version} as ${a.name}, this code calls it ${m.name}`;
      }
    }
    const first = todo[0];
    if (first && first.version < current) {
      problem ??= `${service}: migration ${first.version} (${first.name}) is not applied but the database is already at version ${current}; migrations are forward-only`;
    }
  }
  const pending = todo.map(({ version, name }) => ({ version, name }));
  return { status: { current, latest, applied, pending, problem }, todo };
}

/** What runMigrations would do, without doing it or taking the lock. */
export async function migrationStatus<DB>(
  database: Database<DB>,
  service: string,
  migrations: Migration[],
): Promise<MigrationStatus> {
  checkService(service);
  const known = sortedMigrations(service, migrations);
  const db = database.db as Kysely<any>;
  const tables = await db.introspection.getTables();
  const exists = tables.some((t) => t.name === migrationTable(service));
  return plan(service, known, exists ? await readApplied(db, service) : []).status;
}

/**
 * Applies the migrations the database lacks, in version order, each in its own
 * transaction together with its record in `<service>_migration`. Processes starting
 * at once serialize on a lock (a PostgreSQL advisory lock, a MySQL named lock, the
 * SQLite write lock), so each migration runs once. A database that is at a version
 * this code does not know is refused rather than touched.
 *
 * MySQL commits implicitly around DDL, so a migration that fails there halfway leaves
 * its earlier statements applied; on SQLite and PostgreSQL it leaves no trace.
 */
export async function runMigrations<DB>(
  database: Database<DB>,
  service: string,
  migrations: Migration[],
): Promise<MigrationResult> {
  checkService(service);
  const known = sortedMigrations(service, migrations);
  const { dialect } = database;
  return withMigrationLock(database, service, async (conn) => {
    await conn.schema
      .createTable(migrationTable(service))
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('applied_at', 'bigint', (c) => c.notNull())
      .execute();
    const { status, todo } = plan(service, known, await readApplied(conn, service));
    if (status.problem) throw new Error(status.problem);
    const applied: string[] = [];
    let current = status.current;
    for (const m of todo) {
      try {
        await inStep(conn, dialect, async () => {
          await m.up(conn, dialect);
          await conn
            .insertInto(migrationTable(service))
            .values({ version: m.version, name: m.name, applied_at: Date.now() })
            .execute();
        });
      } catch (err) {
        throw new Error(`${service}: migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      database.log(`${service}: applied migration ${m.version} ${m.name}`);
      applied.push(m.name);
      current = m.version;
    }
    return { applied, current };
  });
}

/**
 * Runs fn on one connection while holding the service's migration lock. Database
 * locks rather than a lock row: they are released when a crashed process's
 * connection closes, so nothing is left to clean up by hand.
 */
async function withMigrationLock<DB, T>(
  database: Database<DB>,
  service: string,
  fn: (conn: Kysely<any>) => Promise<T>,
): Promise<T> {
  return (database.db as Kysely<any>).connection().execute(async (conn) => {
    if (database.dialect === 'sqlite') {
      // The write lock is the migration lock: the whole run is one transaction, each
      // migration a savepoint within it (see inStep).
      await beginImmediate(conn, LOCK_WAIT_MS);
      try {
        const result = await fn(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        // Migrations that completed before the failure are kept, as on the other dialects.
        await sql`commit`.execute(conn).catch(() => sql`rollback`.execute(conn).catch(() => {}));
        throw err;
      }
    }
    const lock =
      database.dialect === 'postgres'
        ? {
            // Advisory locks are scoped to the current database; the key names the service.
            take: sql<{ locked: boolean }>`select pg_try_advisory_lock(${pgLockKey(service)}::bigint) as locked`,
            free: sql`select pg_advisory_unlock(${pgLockKey(service)}::bigint)`,
          }
        : {
            // MySQL lock names are server-wide (at most 64 characters): include the database.
            take: sql<{ locked: number }>`select get_lock(${mysqlLockName(service)}, 0) as locked`,
            free: sql`select release_lock(${mysqlLockName(service)})`,
          };
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const { rows } = await lock.take.execute(conn);
      if (rows[0]?.locked) break;
      if (Date.now() >= deadline) throw new Error(`${service}: timed out waiting for the migration lock`);
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    try {
      return await fn(conn);
    } finally {
      // A lock that cannot be released goes with its connection; do not hide fn's outcome.
      await lock.free.execute(conn).catch((err) => database.log(`${service}: releasing the migration lock: ${err}`));
    }
  });
}

function pgLockKey(service: string): string {
  const digest = createHash('sha256').update(`onestack_migration:${service}`).digest();
  return digest.readBigInt64BE(0).toString();
}

function mysqlLockName(service: string): Expression<string> {
  return sql<string>`concat('onestack_mig:', left(sha2(concat(database(), '/', ${service}), 256), 48))`;
}

async function inStep(conn: Kysely<any>, dialect: Dialect, fn: () => Promise<void>): Promise<void> {
  const [begin, commit, rollback] =
    dialect === 'sqlite'
      ? [sql`savepoint migration_step`, sql`release migration_step`, sql`rollback to migration_step`]
      : [sql`begin`, sql`commit`, sql`rollback`];
  await begin.execute(conn);
  try {
    await fn();
  } catch (err) {
    // Best effort: the migration's own error is the one worth reporting.
    await rollback.execute(conn).catch(() => {});
    if (dialect === 'sqlite') await commit.execute(conn).catch(() => {});
    throw err;
  }
  await commit.execute(conn);
}

// Portable column types. Values are stored the same way on every dialect so that the
// same code reads the same JavaScript values back (see the notes in index.ts).

/** Text without a practical length limit (MySQL's TEXT stops at 64 KiB). */
export function bigTextColumn(dialect: Dialect): ColumnDataType | Expression<unknown> {
  return dialect === 'mysql' ? sql`longtext` : 'text';
}

/**
 * JSON kept as text (write jsonToDb, read jsonFromDb): PostgreSQL's jsonb and MySQL's
 * JSON come back parsed, MariaDB's and SQLite's as strings; text reads alike everywhere.
 */
export function jsonColumn(dialect: Dialect): ColumnDataType | Expression<unknown> {
  return bigTextColumn(dialect);
}

/** A boolean as the integer 0 or 1 (write boolToDb, read boolFromDb). */
export function booleanColumn(_dialect: Dialect): ColumnDataType {
  return 'smallint';
}

/** A point in time as integer milliseconds since the epoch (what Clock.now() returns). */
export function timestampColumn(_dialect: Dialect): ColumnDataType {
  return 'bigint';
}

export function jsonToDb(value: unknown): string {
  return JSON.stringify(value);
}

export function jsonFromDb<T = unknown>(text: string): T {
  return JSON.parse(text) as T;
}

export function boolToDb(value: boolean): 0 | 1 {
  return value ? 1 : 0;
}

export function boolFromDb(value: number): boolean {
  return value !== 0;
}
