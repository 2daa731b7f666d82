/**
 * The database layer every service uses: one Kysely handle per service on SQLite (the
 * all-in-one default), PostgreSQL or MySQL/MariaDB (scale-out), chosen by URL alone.
 *
 * Storage conventions, so that one schema and one body of code behave identically on
 * all three dialects (the same tests pass on each):
 * - Times are integer milliseconds since the epoch in BIGINT columns
 *   (timestampColumn), never SQL date/time types: those differ in range, precision and
 *   time-zone handling between dialects and drivers, an integer does not, and it is
 *   what the injected Clock returns. Every driver returns BIGINT as a JS number here.
 * - Booleans are integers 0/1 in SMALLINT columns (booleanColumn, boolToDb,
 *   boolFromDb): SQLite has no boolean type and better-sqlite3 cannot bind `true`.
 * - JSON is text (jsonColumn, jsonToDb, jsonFromDb); unbounded text is bigTextColumn.
 * - Anything indexed or unique is varchar(n) with n ≤ 255: MySQL cannot index TEXT.
 * - MySQL databases created here use utf8mb4_bin, so comparisons and unique keys are
 *   case-sensitive there too.
 * - State changes are compare-and-swap (casUpdate + expectOne); duplicate keys are
 *   recognised with isUniqueViolation and answered 409.
 */
export { openDatabase, dropDatabase, redactUrl } from './database.ts';
export type { Database, Dialect, OpenOptions } from './database.ts';
export {
  runMigrations,
  migrationStatus,
  bigTextColumn,
  jsonColumn,
  booleanColumn,
  timestampColumn,
  jsonToDb,
  jsonFromDb,
  boolToDb,
  boolFromDb,
} from './migrations.ts';
export type { Migration, AppliedMigration, MigrationStatus, MigrationResult } from './migrations.ts';
export { casUpdate, expectOne, withTransaction, isUniqueViolation, insertIgnoringDuplicates } from './cas.ts';
export type { CasWhere } from './cas.ts';
