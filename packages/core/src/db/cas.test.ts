import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { conflict } from '../errors.ts';
import { casUpdate, expectOne, insertIgnoringDuplicates, isUniqueViolation, withTransaction } from './cas.ts';
import { dropDatabase, openDatabase } from './database.ts';
import type { Database, Dialect } from './database.ts';
import { runMigrations } from './migrations.ts';

const tmp = mkdtempSync(join(tmpdir(), 'onestack-cas-'));
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

interface DB {
  server: { id: string; name: string; vm_state: string; task_state: string | null; counter: number };
}

describe('expectOne', () => {
  test('passes one, throws the given error on zero and a plain error on more', () => {
    expectOne(1, () => conflict('unused'));
    assert.throws(() => expectOne(0, () => conflict('Instance is busy')), { code: 'conflict', message: 'Instance is busy' });
    assert.throws(() => expectOne(2, () => conflict('unused')), /expected one row to change, 2 did/);
  });
});

describe('isUniqueViolation', () => {
  test('recognises each driver and wrapped errors, and nothing else', () => {
    assert.ok(isUniqueViolation(Object.assign(new Error('x'), { code: '23505' })));
    assert.ok(isUniqueViolation(Object.assign(new Error('x'), { code: 'ER_DUP_ENTRY', errno: 1062 })));
    assert.ok(isUniqueViolation(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }) })));
    assert.ok(!isUniqueViolation(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT_NOTNULL' })));
    assert.ok(!isUniqueViolation(new Error('x')));
    assert.ok(!isUniqueViolation(undefined));
    assert.ok(!isUniqueViolation('23505'));
  });
});

for (const { dialect, newUrl } of targets()) {
  describe(`cas and transactions on ${dialect}`, () => {
    const url = newUrl();
    let database: Database<DB>;
    before(async () => {
      database = await openDatabase<DB>(url);
      await runMigrations(database, 'cas', [
        {
          version: 1,
          name: 'server',
          async up(db) {
            await db.schema
              .createTable('server')
              .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
              .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
              .addColumn('vm_state', 'varchar(32)', (c) => c.notNull())
              .addColumn('task_state', 'varchar(32)')
              .addColumn('counter', 'integer', (c) => c.notNull().defaultTo(0))
              .execute();
          },
        },
      ]);
    });
    after(async () => {
      await database.close();
      await dropDatabase(url);
    });

    const insert = (id: string, name = id) =>
      database.db.insertInto('server').values({ id, name, vm_state: 'active', task_state: null, counter: 0 }).execute();

    test('a compare-and-swap matches once, then not again', async () => {
      await insert('s1');
      const start = () =>
        casUpdate(database.db, 'server', { set: { task_state: 'powering-off' }, where: { id: 's1', task_state: null } });
      assert.equal(await start(), 1);
      assert.equal(await start(), 0);
      assert.throws(() => expectOne(0, () => conflict('busy')), { code: 'conflict' });
      const row = await database.db.selectFrom('server').selectAll().where('id', '=', 's1').executeTakeFirstOrThrow();
      assert.equal(row.task_state, 'powering-off');
    });

    test('inserts ignoring duplicates, in this dialect\'s words', async () => {
      const row = { id: 'dup', name: 'dup', vm_state: 'active', task_state: null, counter: 0 };
      await insertIgnoringDuplicates(database.db, 'server', row).execute();
      await insertIgnoringDuplicates(database.db, 'server', { ...row, counter: 7 }).execute();
      const rows = await database.db.selectFrom('server').selectAll().where('id', '=', 'dup').execute();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.counter, 0, 'the existing row is kept');
    });

    test('counts matched rows, not changed ones', async () => {
      await insert('s2');
      const same = { set: { vm_state: 'active' }, where: { id: 's2', vm_state: 'active' } };
      assert.equal(await casUpdate(database.db, 'server', same), 1);
      assert.equal(await casUpdate(database.db, 'server', same), 1);
    });

    test('takes an expression-builder condition and refuses an undefined expected value', async () => {
      await insert('s3');
      const n = await casUpdate(database.db, 'server', {
        set: (eb) => ({ counter: eb('counter', '+', 1) }),
        where: (eb) => eb.and([eb('id', '=', 's3'), eb('counter', '<', 1)]),
      });
      assert.equal(n, 1);
      await assert.rejects(
        casUpdate(database.db, 'server', { set: { vm_state: 'x' }, where: { id: undefined } }),
        /where\.id is undefined/,
      );
      await assert.rejects(casUpdate(database.db, 'server', { set: { vm_state: 'x' }, where: {} }), /without a where/);
    });

    test('recognises duplicate primary and unique keys from the driver', async () => {
      await insert('s4', 'web');
      const dupKey = await insert('s4', 'other').then(() => assert.fail('inserted'), (e: unknown) => e);
      assert.ok(isUniqueViolation(dupKey), String(dupKey));
      const dupName = await insert('s5', 'web').then(() => assert.fail('inserted'), (e: unknown) => e);
      assert.ok(isUniqueViolation(dupName), String(dupName));
      const notNull = await database.db
        .insertInto('server')
        .values({ id: 's6', name: null as unknown as string, vm_state: 'active', task_state: null, counter: 0 })
        .execute()
        .then(() => assert.fail('inserted'), (e: unknown) => e);
      assert.ok(!isUniqueViolation(notNull), String(notNull));
    });

    test('a transaction commits when fn resolves and rolls back when it throws', async () => {
      const value = await withTransaction(database, async (trx) => {
        await trx.insertInto('server').values({ id: 't1', name: 't1', vm_state: 'building', task_state: null, counter: 0 }).execute();
        return 'done';
      });
      assert.equal(value, 'done');

      await assert.rejects(
        withTransaction(database, async (trx) => {
          await trx.insertInto('server').values({ id: 't2', name: 't2', vm_state: 'building', task_state: null, counter: 0 }).execute();
          expectOne(
            await casUpdate(trx, 'server', { set: { vm_state: 'active' }, where: { id: 't1', vm_state: 'deleted' } }),
            () => conflict('not deleted'),
          );
        }),
        { message: 'not deleted' },
      );
      const ids = await database.db.selectFrom('server').select('id').where('id', 'in', ['t1', 't2']).execute();
      assert.deepEqual(ids, [{ id: 't1' }]);
    });

    if (dialect === 'sqlite') {
      test('transactions from two handles on one file serialize', async () => {
        await insert('race');
        const second = await openDatabase<DB>(url);
        try {
          // Read-then-write inside each transaction: it only adds up if the write lock
          // is taken at BEGIN.
          const bump = (handle: Database<DB>) =>
            withTransaction(handle, async (trx) => {
              const { counter } = await trx.selectFrom('server').select('counter').where('id', '=', 'race').executeTakeFirstOrThrow();
              await new Promise((resolve) => setTimeout(resolve, 2));
              await trx.updateTable('server').set({ counter: counter + 1 }).where('id', '=', 'race').execute();
            });
          await Promise.all(Array.from({ length: 10 }, (_, i) => bump(i % 2 ? second : database)));
          const row = await database.db.selectFrom('server').select('counter').where('id', '=', 'race').executeTakeFirstOrThrow();
          assert.equal(row.counter, 10);
        } finally {
          await second.close();
        }
      });
    }
  });
}
