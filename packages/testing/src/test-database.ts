import { join } from 'node:path';

/**
 * The database a functional test runs on: a file in `dir` on SQLite, or, with
 * ONESTACK_TEST_DB=postgres (or mysql), a fresh database of the local server, named
 * so that parallel test processes never share one (the caller drops it afterwards).
 * Four connections per pool: a test process holds one pool per service, two test files run
 * at once, and the servers' own limits (PostgreSQL 100, MariaDB 151 connections) are shared
 * by all of them; with the drivers' default of ten, a busy moment ran out ("Too many
 * connections" as Placement's 500 in the 20-boot test).
 */
export function testDatabaseUrl(dir: string, name: string): string {
  const unique = `onestack_${name}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  switch (process.env.ONESTACK_TEST_DB) {
    case 'postgres':
      return `postgresql://postgres@127.0.0.1:5432/${unique}?max_pool_size=4`;
    case 'mysql':
      return `mysql://root@127.0.0.1:3306/${unique}?max_pool_size=4`;
    default:
      return `sqlite://${join(dir, `${name}.db`)}`;
  }
}

/**
 * node:test's `skip` for a test whose database part is trivial beside its real cost (a GiB
 * through zlib, say): it runs in the SQLite phase only, and the PostgreSQL and MariaDB
 * phases skip it, saying why.
 */
export function onSqliteOnly(cost: string): string | false {
  const db = process.env.ONESTACK_TEST_DB;
  return db && db !== 'sqlite' ? `database-independent (${cost}): run on SQLite only` : false;
}
