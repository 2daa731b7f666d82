import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { dropDatabase, openDatabase, redactUrl } from './database.ts';
import type { Dialect } from './database.ts';

const tmp = mkdtempSync(join(tmpdir(), 'onestack-db-'));
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

describe('redactUrl', () => {
  test('hides passwords in the userinfo and in query parameters', () => {
    assert.equal(redactUrl('postgresql://nova:s3cret@db:5432/nova'), 'postgresql://nova:***@db:5432/nova');
    assert.equal(redactUrl('mysql://root:pw@127.0.0.1/x?password=pw&ssl=1'), 'mysql://root:***@127.0.0.1/x?password=***&ssl=1');
    assert.equal(redactUrl('postgresql://postgres@127.0.0.1/x'), 'postgresql://postgres@127.0.0.1/x');
    assert.equal(redactUrl('sqlite://:memory:'), 'sqlite://:memory:');
    assert.equal(redactUrl('sqlite:///var/lib/onestack/nova.db'), 'sqlite:///var/lib/onestack/nova.db');
  });

  test('hides the password of a URL that does not parse', () => {
    const redacted = redactUrl('mysql://root:p@ss w/rd@host/db');
    assert.ok(!redacted.includes('ss w'), redacted);
    assert.equal(redacted, 'mysql://root:***@host/db');
  });
});

describe('openDatabase', () => {
  test('rejects unknown schemes and relative SQLite paths', async () => {
    await assert.rejects(openDatabase('oracle://x/y'), /unsupported database URL/);
    await assert.rejects(openDatabase('sqlite://relative.db'), /sqlite:\/\/\/absolute/);
  });

  test('errors do not carry the password', async () => {
    const err = await openDatabase('postgresql://postgres:hunter2@127.0.0.1:1/x').then(
      () => assert.fail('opened'),
      (e: Error) => e,
    );
    assert.match(err.message, /cannot open database postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/x/);
    assert.ok(!err.message.includes('hunter2'));
  });

  test('SQLite in memory', async () => {
    const database = await openDatabase('sqlite://:memory:');
    assert.equal(database.dialect, 'sqlite');
    const { rows } = await sql<{ v: number }>`select 1 + 1 as v`.execute(database.db);
    assert.equal(rows[0].v, 2);
    await database.close();
  });

  test('SQLite file: creates the directory and sets the pragmas', async () => {
    const path = join(tmp, 'nested', 'dir', 'pragmas.db');
    const database = await openDatabase(`sqlite://${path}`);
    assert.ok(existsSync(path));
    const pragma = async (name: string) =>
      Object.values((await sql.raw(`pragma ${name}`).execute(database.db)).rows[0] as object)[0];
    assert.equal(await pragma('journal_mode'), 'wal');
    assert.equal(await pragma('synchronous'), 1);
    assert.equal(await pragma('foreign_keys'), 1);
    assert.equal(await pragma('busy_timeout'), 5000);
    await database.close();
  });
});

for (const { dialect, newUrl } of targets()) {
  describe(`openDatabase on ${dialect}`, () => {
    const url = newUrl();
    after(() => dropDatabase(url));

    test('creates the database, opens it again, and closes', async () => {
      const logged: string[] = [];
      const first = await openDatabase(url, { logger: (m) => logged.push(m) });
      assert.equal(first.dialect, dialect);
      assert.equal(first.url, url);
      await first.db.schema.createTable('probe').addColumn('n', 'integer').execute();
      await first.close();
      if (dialect !== 'sqlite') assert.ok(logged.some((m) => m.startsWith('created database onestack_dbtest_')), logged.join());

      const again = await openDatabase<{ probe: { n: number } }>(url);
      await again.db.insertInto('probe').values({ n: 1 }).execute();
      assert.deepEqual(await again.db.selectFrom('probe').selectAll().execute(), [{ n: 1 }]);
      await again.close();
    });

    test('BIGINT, COUNT and SUM come back as numbers', async () => {
      type DB = { stamp: { at: number } };
      const database = await openDatabase<DB>(url);
      await database.db.schema.createTable('stamp').addColumn('at', 'bigint').execute();
      const now = Date.UTC(2026, 0, 1, 12, 30, 45, 678);
      await database.db.insertInto('stamp').values([{ at: now }, { at: 2 }]).execute();
      const row = await database.db
        .selectFrom('stamp')
        .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('at').as('total'), eb.fn.max('at').as('latest')])
        .executeTakeFirstOrThrow();
      assert.deepEqual(row, { n: 2, total: now + 2, latest: now });
      await database.close();
    });

    test('max_pool_size caps the connections of one pool', { skip: dialect === 'sqlite' && 'one connection by design' }, async () => {
      await assert.rejects(openDatabase(`${url}?max_pool_size=0`), /max_pool_size must be a positive integer/);
      const database = await openDatabase(`${url}?max_pool_size=2`);
      try {
        const query =
          dialect === 'postgres' ? sql<{ id: number }>`select pg_backend_pid() as id from (select pg_sleep(0.05)) s` : sql<{ id: number }>`select connection_id() as id from (select sleep(0.05)) s`;
        const ids = await Promise.all(Array.from({ length: 6 }, async () => (await query.execute(database.db)).rows[0].id));
        assert.equal(new Set(ids).size, 2, `six queries at once ran on connections ${ids.join(', ')}`);
      } finally {
        await database.close();
      }
    });
  });
}

describe('dropDatabase', () => {
  test('removes a SQLite file with its WAL files', async () => {
    const path = join(tmp, 'drop', 'gone.db');
    const database = await openDatabase(`sqlite://${path}`);
    await database.db.schema.createTable('t').addColumn('n', 'integer').execute();
    await database.close();
    await dropDatabase(`sqlite://${path}`);
    assert.ok(!existsSync(path) && !existsSync(`${path}-wal`));
  });
});
