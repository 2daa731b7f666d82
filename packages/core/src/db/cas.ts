import { MysqlAdapter, sql } from 'kysely';
import type { Expression, ExpressionBuilder, InsertObject, Kysely, SelectType, SqlBool, UpdateObject } from 'kysely';
import { SQLITE_BUSY_TIMEOUT_MS } from './database.ts';
import type { Database } from './database.ts';

/**
 * The expected current state: column → value (`null` meaning IS NULL), or any
 * condition built with Kysely's expression builder.
 */
export type CasWhere<DB, TB extends keyof DB> =
  | { [C in keyof DB[TB]]?: SelectType<DB[TB][C]> | null }
  | ((eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>);

/**
 * `UPDATE table SET … WHERE …`, returning how many rows the WHERE matched: 0 means
 * the row was not in the expected state (someone else changed it first).
 *
 * Matched, not changed: SQLite and PostgreSQL count every row the WHERE selects, and
 * mysql2 connects with CLIENT_FOUND_ROWS (its default), so MySQL also counts a row
 * whose new values equal its old ones.
 */
export async function casUpdate<DB, TB extends keyof DB & string>(
  db: Kysely<DB>,
  table: TB,
  spec: {
    set: UpdateObject<DB, TB> | ((eb: ExpressionBuilder<DB, TB>) => UpdateObject<DB, TB>);
    where: CasWhere<DB, TB>;
  },
): Promise<number> {
  // Kysely's builder types do not resolve against a generic DB; the public signature
  // above carries the checking.
  const untyped = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  let query = untyped.updateTable(table as string).set(spec.set as never);
  const where = spec.where;
  if (typeof where === 'function') {
    query = query.where(where as (eb: ExpressionBuilder<any, any>) => Expression<SqlBool>);
  } else {
    const entries = Object.entries(where);
    if (entries.length === 0) throw new Error(`casUpdate on ${table} without a where condition`);
    for (const [column, value] of entries) {
      // An undefined expected value is a caller bug that would silently widen the match.
      if (value === undefined) throw new Error(`casUpdate on ${table}: where.${column} is undefined`);
      query = value === null ? query.where(column, 'is', null) : query.where(column, '=', value);
    }
  }
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Throws `onZero()` when a compare-and-swap matched nothing; more than one row is a bug. */
export function expectOne(n: number, onZero: () => Error): void {
  if (n === 1) return;
  throw n === 0 ? onZero() : new Error(`expected one row to change, ${n} did`);
}

/**
 * Runs fn in a transaction: committed when fn resolves, rolled back when it throws.
 * Inside fn use only `trx`: on SQLite the one connection is held for the transaction,
 * so a query through `database.db` would wait for it forever.
 *
 * On SQLite the transaction starts with BEGIN IMMEDIATE, taking the write lock up
 * front: a deferred transaction that reads and then writes fails with SQLITE_BUSY
 * when another process wrote in between, and waiting does not help it.
 */
export async function withTransaction<DB, T>(
  database: Database<DB>,
  fn: (trx: Kysely<DB>) => Promise<T>,
): Promise<T> {
  if (database.dialect !== 'sqlite') return database.db.transaction().execute(fn);
  return database.db.connection().execute(async (conn) => {
    await beginImmediate(conn, SQLITE_BUSY_TIMEOUT_MS);
    let result: T;
    try {
      result = await fn(conn);
      await sql`commit`.execute(conn);
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => {});
      throw err;
    }
    return result;
  });
}

const BUSY_POLL_MS = 20;

/**
 * BEGIN IMMEDIATE on a SQLite connection, retrying while another connection holds the
 * write lock. SQLite's own busy wait would block the event loop, and with it the
 * holder when the holder is in this same process.
 */
export async function beginImmediate(conn: Kysely<any>, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  await sql`pragma busy_timeout = 0`.execute(conn);
  try {
    for (;;) {
      try {
        await sql`begin immediate`.execute(conn);
        return;
      } catch (err) {
        if (!isSqliteBusy(err) || Date.now() >= deadline) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, BUSY_POLL_MS));
    }
  } finally {
    await sql.raw(`pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`).execute(conn);
  }
}

function isSqliteBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

const UNIQUE_CODES = new Set([
  'SQLITE_CONSTRAINT_UNIQUE',
  'SQLITE_CONSTRAINT_PRIMARYKEY',
  '23505', // PostgreSQL unique_violation
  'ER_DUP_ENTRY',
  'ER_DUP_ENTRY_WITH_KEY_NAME',
]);
const UNIQUE_ERRNOS = new Set([1062, 1586]);

/** Whether err (or an error it wraps as `cause`) is a duplicate key: services answer 409. */
export function isUniqueViolation(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, errno } = e as { code?: unknown; errno?: unknown };
    if (typeof code === 'string' && UNIQUE_CODES.has(code)) return true;
    if (typeof errno === 'number' && UNIQUE_ERRNOS.has(errno)) return true;
  }
  return false;
}

/**
 * INSERT that silently skips rows whose key already exists, in each dialect's
 * words: `ON CONFLICT DO NOTHING` (SQLite, PostgreSQL) or `INSERT IGNORE` (MySQL).
 */
export function insertIgnoringDuplicates<DB, TB extends keyof DB & string>(
  db: Kysely<DB>,
  table: TB,
  values: InsertObject<DB, TB> | readonly InsertObject<DB, TB>[],
) {
  const q = db.insertInto(table).values(values as InsertObject<DB, TB>);
  return db.getExecutor().adapter instanceof MysqlAdapter ? q.ignore() : q.onConflict((oc) => oc.doNothing());
}
