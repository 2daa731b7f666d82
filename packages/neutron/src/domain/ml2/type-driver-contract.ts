/**
 * The behaviour every ML2 TypeDriver shares (the contract in type-driver.ts),
 * as node:test tests. A driver's test calls typeDriverContract() with a
 * subject that builds the driver over a database; the suite migrates a fresh
 * database per test (SQLite, or the one ONESTACK_TEST_DB names, where the
 * concurrency checks mean something).
 */
import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { ApiError } from '@onestack/core/errors.ts';
import { dropDatabase, openDatabase, runMigrations, type Database } from '@onestack/core/db/index.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { migrations } from '../../db/migrations/index.ts';
import type { NeutronDB } from '../../db/schema.ts';
import { inTransaction } from '../../db/transaction.ts';
import type { Segment, TypeDriver } from './type-driver.ts';
import { testDatabaseUrl } from '@onestack/testing/test-database.ts';

export interface TypeDriverSubject {
  /** The driver as configured for the suite; it is built once per test. */
  create(): TypeDriver;
  /** A provider request the driver must accept (a specific segment when `exclusive`). */
  validProvider: Partial<Segment>;
  /** Provider requests the driver must refuse with 400 InvalidInput. */
  invalidProviders: Partial<Segment>[];
  /** Whether a reserved provider segment is held exclusively (a second reservation is a 409). */
  exclusive: boolean;
  /** Tenant segments the configured ranges hold: 0 when the type is not tenant-allocatable, Infinity when unlimited. */
  tenantCapacity: number;
}

/** Every allocation table, ordered, to compare before and after. */
async function allocations(db: Kysely<NeutronDB>): Promise<string> {
  const vlan = await db.selectFrom('ml2_vlan_allocations').selectAll().orderBy('physical_network').orderBy('vlan_id').execute();
  const vxlan = await db.selectFrom('ml2_vxlan_allocations').selectAll().orderBy('vxlan_vni').execute();
  const flat = await db.selectFrom('ml2_flat_allocations').selectAll().orderBy('physical_network').execute();
  const norm = (rows: object[]) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' ? v : Number(v)])));
  return JSON.stringify({ vlan: norm(vlan), vxlan: norm(vxlan), flat: norm(flat) });
}

const key = (s: Segment) => `${s.networkType}/${s.physicalNetwork}/${s.segmentationId}`;

async function rejects409(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ApiError && e.status === 409);
}

export function typeDriverContract(name: string, subject: TypeDriverSubject): void {
  describe(`TypeDriver contract: ${name}`, () => {
    const dir = tempDir('onestack-ml2-');
    let database: Database<NeutronDB>;
    let url: string;
    let driver: TypeDriver;
    const tx = <T,>(fn: (trx: Kysely<NeutronDB>) => Promise<T>) => inTransaction(database, fn);

    beforeEach(async () => {
      url = testDatabaseUrl(dir.path, 'ml2');
      database = await openDatabase<NeutronDB>(url);
      await runMigrations(database, 'neutron', [...migrations]);
      driver = subject.create();
      await driver.syncAllocations(database.db);
    });
    afterEach(async () => {
      await database.close();
      await dropDatabase(url).catch(() => undefined);
    });
    after(() => dir.remove());

    it('validateProvider normalizes an accepted request to its own type and refuses bad ones with 400, without touching the database', async () => {
      const before = await allocations(database.db);
      const seg = driver.validateProvider(subject.validProvider);
      assert.equal(seg.networkType, driver.type);
      assert.equal(seg.physicalNetwork === null, !driver.capabilities.needsPhysnet);
      for (const bad of subject.invalidProviders) {
        assert.throws(() => driver.validateProvider(bad), (e: unknown) => e instanceof ApiError && e.status === 400 && e.type === 'InvalidInput', JSON.stringify(bad));
      }
      assert.equal(await allocations(database.db), before);
    });

    it('reserveProvider claims that segment; a second claim is a 409 that changes nothing; release frees it, twice is a no-op', async () => {
      const seg = driver.validateProvider(subject.validProvider);
      const got = await tx((trx) => driver.reserveProvider(trx, seg));
      assert.equal(got.networkType, driver.type);
      if (seg.segmentationId !== null) assert.equal(got.segmentationId, seg.segmentationId);
      if (subject.exclusive) {
        const held = await allocations(database.db);
        await rejects409(tx((trx) => driver.reserveProvider(trx, seg)));
        assert.equal(await allocations(database.db), held);
      }
      await tx((trx) => driver.release(trx, got));
      const released = await allocations(database.db);
      await tx((trx) => driver.release(trx, got));
      assert.equal(await allocations(database.db), released);
      const again = await tx((trx) => driver.reserveProvider(trx, seg));
      assert.equal(key(again), key(got));
    });

    it('a reservation rolled back with its transaction leaves nothing claimed', async () => {
      const before = await allocations(database.db);
      const seg = driver.validateProvider(subject.validProvider);
      await assert.rejects(
        tx(async (trx) => {
          await driver.reserveProvider(trx, seg);
          throw new Error('rollback');
        }),
        /rollback/,
      );
      assert.equal(await allocations(database.db), before);
    });

    it('allocateTenant hands out distinct segments until the ranges are used up, then undefined; a released one comes back', async () => {
      if (subject.tenantCapacity === 0) {
        assert.equal(await tx((trx) => driver.allocateTenant(trx)), undefined);
        return;
      }
      const n = Number.isFinite(subject.tenantCapacity) ? subject.tenantCapacity : 3;
      const got: Segment[] = [];
      for (let i = 0; i < n; i++) {
        const s = await tx((trx) => driver.allocateTenant(trx));
        assert.ok(s, `segment ${i + 1} of ${n}`);
        assert.equal(s.networkType, driver.type);
        got.push(s);
      }
      if (!Number.isFinite(subject.tenantCapacity)) return;
      assert.equal(new Set(got.map(key)).size, n);
      const range = driver.capabilities.segmentationIdRange;
      if (range) for (const s of got) assert.ok(s.segmentationId! >= range[0] && s.segmentationId! <= range[1]);
      assert.equal(await tx((trx) => driver.allocateTenant(trx)), undefined);
      await tx((trx) => driver.release(trx, got[0]));
      const back = await tx((trx) => driver.allocateTenant(trx));
      assert.equal(back && key(back), key(got[0]));
    });

    it('concurrent transactions never get the same tenant segment', async () => {
      if (!Number.isFinite(subject.tenantCapacity) || subject.tenantCapacity === 0) return;
      const attempts = subject.tenantCapacity + 2;
      const results = await Promise.allSettled(Array.from({ length: attempts }, () => tx((trx) => driver.allocateTenant(trx))));
      const segments = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
      assert.equal(new Set(segments.map(key)).size, segments.length, 'no segment handed out twice');
      assert.ok(segments.length <= subject.tenantCapacity);
      // Every lost race ends as "none left" or a retryable conflict, never anything else.
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ApiError && r.reason.status === 409, String(r.reason));
    });

    it('syncAllocations is idempotent and keeps what is allocated', async () => {
      const held = Number.isFinite(subject.tenantCapacity) && subject.tenantCapacity > 0 ? await tx((trx) => driver.allocateTenant(trx)) : undefined;
      const before = await allocations(database.db);
      await driver.syncAllocations(database.db);
      await subject.create().syncAllocations(database.db);
      assert.equal(await allocations(database.db), before);
      if (held) {
        // Still held: the segment is not handed out again.
        const rest: Segment[] = [];
        for (let s = await tx((trx) => driver.allocateTenant(trx)); s; s = await tx((trx) => driver.allocateTenant(trx))) rest.push(s);
        assert.ok(!rest.map(key).includes(key(held)));
      }
    });

    it('mtu is a positive integer no larger than the physical MTU allows', () => {
      const seg = driver.validateProvider(subject.validProvider);
      const mtu = driver.mtu(seg);
      assert.ok(Number.isInteger(mtu) && mtu >= 68, String(mtu));
    });
  });
}
