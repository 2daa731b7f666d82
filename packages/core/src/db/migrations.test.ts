import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { dropDatabase, openDatabase } from './database.ts';
import type { Database, Dialect } from './database.ts';
import {
  bigTextColumn,
  boolFromDb,
  boolToDb,
  booleanColumn,
  jsonColumn,
  jsonFromDb,
  jsonToDb,
  migrationStatus,
  runMigrations,
  timestampColumn,
} from './migrations.ts';
import type { Migration } from './migrations.ts';

const tmp = mkdtempSync(join(tmpdir(), 'onestack-migrations-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A fresh database URL per call, on each dialect this machine is asked to test. */
function targets(): { dialect: Dialect; newUrl(): string }[] {
  const suffix = () => `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const list: { dialect: Dialect; newUrl(): string }[] = [
    { dialect: 'sqlite', newUrl: () => `sqlite://${join(tmp, `db_${suffix()}`, 'test.db')}` },
  ];
  if (process.env.ONESTACK_TEST_SKIP_EXTERNAL_DB !== '1') {
    list.push(
      { dialect: 'postgres', newUrl: () => `postgresql://postgres@127.0.0.1:5432/onestack_dbtest_${suffix()}` },
      { dialect: 'mysql', newUrl: () => `mysql://root@127.0.0.1:3306/onestack_dbtest_${suffix()}` },
    );
  }
  return list;
}

/** Migrations that record the order they ran in and create a table each (named after tag). */
function recording(tag: string, calls: number[], versions: number[], delayMs = 0): Migration[] {
  return versions.map((version) => ({
    version,
    name: `create_t${version}`,
    async up(db: Kysely<any>) {
      calls.push(version);
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
      await db.schema.createTable(`${tag}_t${version}`).addColumn('id', 'integer', (c) => c.primaryKey()).execute();
    },
  }));
}

for (const { dialect, newUrl } of targets()) {
  describe(`migrations on ${dialect}`, () => {
    const url = newUrl();
    let database: Database<any>;
    before(async () => {
      database = await openDatabase(url);
    });
    after(async () => {
      await database.close();
      await dropDatabase(url);
    });

    test('applies in version order, once, and records names', async () => {
      const calls: number[] = [];
      const logged: string[] = [];
      const logging = { ...database, log: (m: string) => logged.push(m) };
      const migrations = recording('svc_order', calls, [2, 1, 3]);

      assert.deepEqual(await runMigrations(logging, 'svc_order', migrations), {
        applied: ['create_t1', 'create_t2', 'create_t3'],
        current: 3,
      });
      assert.deepEqual(calls, [1, 2, 3]);
      assert.deepEqual(logged, [1, 2, 3].map((v) => `svc_order: applied migration ${v} create_t${v}`));

      assert.deepEqual(await runMigrations(database, 'svc_order', migrations), { applied: [], current: 3 });
      assert.deepEqual(calls, [1, 2, 3]);

      const status = await migrationStatus(database, 'svc_order', migrations);
      assert.equal(status.current, 3);
      assert.equal(status.latest, 3);
      assert.deepEqual(status.pending, []);
      assert.equal(status.problem, null);
      assert.deepEqual(
        status.applied.map((a) => [a.version, a.name]),
        [[1, 'create_t1'], [2, 'create_t2'], [3, 'create_t3']],
      );
      assert.ok(status.applied.every((a) => typeof a.appliedAt === 'number' && a.appliedAt > 0));
    });

    test('a later release applies only its new migrations', async () => {
      const calls: number[] = [];
      await runMigrations(database, 'svc_upgrade', recording('svc_upgrade', calls, [1]));
      const status = await migrationStatus(database, 'svc_upgrade', recording('svc_upgrade', [], [1, 2]));
      assert.deepEqual(status.pending, [{ version: 2, name: 'create_t2' }]);
      assert.deepEqual(await runMigrations(database, 'svc_upgrade', recording('svc_upgrade', calls, [1, 2])), {
        applied: ['create_t2'],
        current: 2,
      });
      assert.deepEqual(calls, [1, 2]);
    });

    test('status of a service never migrated', async () => {
      const status = await migrationStatus(database, 'svc_fresh', recording('svc_fresh', [], [1, 2]));
      assert.equal(status.current, 0);
      assert.equal(status.latest, 2);
      assert.equal(status.pending.length, 2);
    });

    test('refuses a database newer than the code', async () => {
      await runMigrations(database, 'svc_newer', recording('svc_newer', [], [1, 2, 3]));
      const calls: number[] = [];
      await assert.rejects(
        runMigrations(database, 'svc_newer', recording('svc_newer', calls, [1, 2])),
        { message: "svc_newer: database is at version 3, newer than this code's 2" },
      );
      assert.deepEqual(calls, []);
      const status = await migrationStatus(database, 'svc_newer', recording('svc_newer', [], [1, 2]));
      assert.match(status.problem ?? '', /newer than this code's 2/);
    });

    test('refuses a skipped migration and a renamed one', async () => {
      await runMigrations(database, 'svc_gap', recording('svc_gap', [], [1, 3]));
      await assert.rejects(
        runMigrations(database, 'svc_gap', recording('svc_gap', [], [1, 2, 3])),
        /migration 2 \(create_t2\) is not applied but the database is already at version 3/,
      );
      const renamed = recording('svc_gap', [], [1, 3]);
      renamed[1].name = 'something_else';
      await assert.rejects(runMigrations(database, 'svc_gap', renamed), /recorded migration 3 as create_t3/);
    });

    test('rejects invalid migration lists and service names', async () => {
      await assert.rejects(runMigrations(database, 'svc_bad', recording('svc_bad', [], [1, 1])), /version 1 is used twice/);
      await assert.rejects(runMigrations(database, 'svc_bad', recording('svc_bad', [], [0])), /invalid version 0/);
      await assert.rejects(runMigrations(database, 'Bad-Name', []), /invalid service name/);
    });

    test('a failing migration is reported and the ones before it stay applied', async () => {
      const failing: Migration[] = [
        ...recording('svc_fail', [], [1]),
        {
          version: 2,
          name: 'broken',
          async up(db) {
            await db.insertInto('no_such_table').values({ x: 1 }).execute();
          },
        },
      ];
      await assert.rejects(runMigrations(database, 'svc_fail', failing), /svc_fail: migration 2 \(broken\) failed/);
      const status = await migrationStatus(database, 'svc_fail', failing);
      assert.equal(status.current, 1);
      failing[1] = { version: 2, name: 'broken', up: async () => {} };
      assert.deepEqual(await runMigrations(database, 'svc_fail', failing), { applied: ['broken'], current: 2 });
    });

    test('two processes migrating at once apply each migration once', async () => {
      const second = await openDatabase(url);
      try {
        const calls: number[] = [];
        const results = await Promise.all([
          runMigrations(database, 'svc_race', recording('svc_race', calls, [1, 2, 3], 30)),
          runMigrations(second, 'svc_race', recording('svc_race', calls, [1, 2, 3], 30)),
        ]);
        assert.deepEqual(calls, [1, 2, 3]);
        assert.deepEqual(
          results.flatMap((r) => r.applied),
          ['create_t1', 'create_t2', 'create_t3'],
        );
        assert.ok(results.every((r) => r.current === 3));
      } finally {
        await second.close();
      }
    });

    test('portable column helpers store and return the same values', async () => {
      const columns: Migration = {
        version: 1,
        name: 'columns',
        async up(db, d) {
          await db.schema
            .createTable('typed')
            .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
            .addColumn('enabled', booleanColumn(d), (c) => c.notNull())
            .addColumn('created_at', timestampColumn(d), (c) => c.notNull())
            .addColumn('extra', jsonColumn(d))
            .addColumn('blob', bigTextColumn(d))
            .execute();
        },
      };
      await runMigrations(database, 'svc_columns', [columns]);
      const big = 'x'.repeat(100_000);
      const extra = { nested: { list: [1, 'two', null], flag: true }, unicode: 'ünï 🐍' };
      const createdAt = Date.UTC(2026, 5, 30, 23, 59, 59, 999);
      await database.db
        .insertInto('typed')
        .values([
          { id: 'a', enabled: boolToDb(true), created_at: createdAt, extra: jsonToDb(extra), blob: big },
          { id: 'b', enabled: boolToDb(false), created_at: 0, extra: null, blob: '' },
        ])
        .execute();
      const rows = await database.db.selectFrom('typed').selectAll().orderBy('id').execute();
      assert.equal(boolFromDb(rows[0].enabled), true);
      assert.equal(boolFromDb(rows[1].enabled), false);
      assert.equal(rows[0].created_at, createdAt);
      assert.deepEqual(jsonFromDb(rows[0].extra), extra);
      assert.equal(rows[1].extra, null);
      assert.equal(rows[0].blob, big);
      const enabled = await database.db.selectFrom('typed').select('id').where('enabled', '=', boolToDb(true)).execute();
      assert.deepEqual(enabled, [{ id: 'a' }]);
    });
  });
}
